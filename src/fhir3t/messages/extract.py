"""fhir3t's Babel extractor: every message declared in a module, found by reading its syntax tree.

    NAME = Message("area.id", "English {placeholder}")          -> msgctxt "area.id", msgid "English ..."
    NAME = Plural("area.id", "one {n} thing", "{n} things")     -> the same, with msgid_plural
    WORDS = table("report.html", {"h.summary": "Summary", ...}) -> msgctxt "report.html.h.summary", ...

Registered as the `fhir3t` extraction method (pyproject.toml, `babel.extractors`), so `pybabel extract -F
babel.cfg` uses it; tools/i18n.py calls it directly. Use the keywords `Message:1c,2` and `Plural:1c,2,3`
(`KEYWORDS`). A declaration whose id or template is not a literal cannot be extracted: the extractor
yields nothing for it, and tests/test_i18n.py fails because the message is declared but not in the catalog.
"""
from __future__ import annotations

import ast
import string
from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any

#: Babel keyword specs: the first argument is the context (the message id), then msgid (and msgid_plural)
KEYWORDS: dict[str, Any] = {"Message": ((1, "c"), 2), "Plural": ((1, "c"), 2, 3)}
#: the function that declares a module's table of messages under a prefix (fhir3t.messages.core.table)
TABLE = "table"


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _comment(*templates: str) -> list[str]:
    names = sorted({f for t in templates for _, f, _, _ in string.Formatter().parse(t) if f})
    return [f"placeholders: {', '.join('{' + n + '}' for n in names)}"] if names else []


def declarations(source: str) -> Iterator[tuple[int, str, tuple[str, ...], list[str]]]:
    """(line, "Message" | "Plural", (id, template[, plural template]), comments) of every declaration."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        args = [_literal(a) for a in node.args]
        texts = [a for a in args if a is not None]
        if len(texts) != len(args):
            texts = []
        if len(texts) >= 2 and not texts[1]:
            continue  # an empty template (a table's corner cell) is not a message to translate
        if name == "Message" and len(texts) == 2:
            yield node.lineno, "Message", (texts[0], texts[1]), _comment(texts[1])
        elif name == "Plural" and len(texts) == 3:
            yield node.lineno, "Plural", (texts[0], texts[1], texts[2]), _comment(texts[1], texts[2])
        elif name == TABLE and len(node.args) == 2 and args[0] is not None and isinstance(node.args[1], ast.Dict):
            prefix = args[0]
            for key, value in zip(node.args[1].keys, node.args[1].values):
                k, v = (_literal(key) if key is not None else None), _literal(value)
                if k is not None and v:
                    yield value.lineno, "Message", (f"{prefix}.{k}", v), _comment(v)


def extract(fileobj: IO[bytes], keywords: Collection[str], comment_tags: Collection[str],
            options: Mapping[str, Any]) -> Iterator[tuple[int, str, tuple[str, ...], list[str]]]:
    """The Babel extraction method (see the module doc)."""
    source = fileobj.read().decode(options.get("encoding", "utf-8") if options else "utf-8")
    for lineno, func, messages, comments in declarations(source):
        if func in keywords:
            yield lineno, func, messages, comments


__all__ = ["KEYWORDS", "TABLE", "declarations", "extract"]
