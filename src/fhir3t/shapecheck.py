"""One typed boundary for what fhir3t takes from outside: a JSON Schema per kind of document.

Config tables, CDS Hooks request bodies, rest-hook notifications, the watch state file and JWKS
answers are each checked against a schema in `fhir3t/schemas/` (files a reviewer reads beside the
code) before any value of theirs is used, so a list where a string belongs, a number where an
object belongs or a table nested a thousand deep becomes one sentence naming where and what, never
a TypeError (exit 70, HTTP 500) somewhere later.

`check(name, doc, where)` raises ShapeError with that sentence. The sentence is made from the first
(most relevant) schema error: where it is (`where` renders the path: a config file's table and key,
or a request body's dotted path) and what is wrong, from the failing keyword. A schema may carry an
`x-message` (a message id of the caller's catalogue) where the keyword alone would say too little
(a pattern, "exactly one of"), and `x-kind` to name what a value must be.

The sentence is a message (said in the reader's language: a config file's errors on the command line);
`str()` of the ShapeError is its English, what the service's HTTP 400 bodies carry. A caller whose
`x-message` templates are plain English (the service's HTTP error bodies) gets that English. The
schemas' `x-kind` texts are data of the schema files, said as written (English).

Depth is checked before validation, iteratively (validation recurses): a document deeper than
`MAX_DEPTH` is refused as such.
"""
from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from fhir3t.ids import fhir_id
from fhir3t.messages import EN, Message, Msg, render, table
from fhir3t.origins import origin

SCHEMAS = Path(__file__).resolve().parent / "schemas"
#: nesting deeper than this is refused before any validation (every document fhir3t reads this way is shallow)
MAX_DEPTH = 32

#: formats the schemas name (`"format": "http-url"`), checked as fhir3t checks them everywhere else
FORMATS = FormatChecker(formats=())


@FORMATS.checks("http-url")
def _http_url(value: object) -> bool:
    """An http(s) URL with a host and a usable port (`origin` is None for a bad port or a broken IPv6 literal)."""
    return not isinstance(value, str) or (origin(value) is not None and value.isprintable() and " " not in value)


@FORMATS.checks("fhir-id")
def _fhir_id(value: object) -> bool:
    """A FHIR id, matched whole (a pattern's `$` would let "p01\\n" through)."""
    return not isinstance(value, str) or fhir_id(value) is not None


@FORMATS.checks("time-zone")
def _time_zone(value: object) -> bool:
    """An IANA time zone fhir3t can load (Asia/Shanghai): a typo would silently move the site's day."""
    if not isinstance(value, str):
        return True
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except Exception:  # ZoneInfoNotFoundError, ValueError for a path-like key, OSError
        return False
    return True


Path_ = Sequence[str | int]
#: renders a path inside the document ('server', 'url') as the place a person looks ("fhir3t.toml [server] 'url'")
Where = Callable[[Path_], str]

#: message id -> message (named placeholders); the sentence for each failing keyword
MESSAGES = table("shape", {
    "too-deep": "{where} is nested more than {limit} levels deep",
    "type": "{where} must be {kind}",
    "required": "{where} is required",
    "unknown-key": "{where}: unknown key '{key}'{hint}",
    "unknown-key-hint": "; did you mean '{near}'?",
    "unknown-key-known": " (known: {known})",
    "enum": "{where} must be one of {choices}, not {value}",
    "const": "{where} must be {value}",
    "minimum": "{where} must be at least {limit}",
    "exclusiveMinimum": "{where} must be more than {limit}",
    "maximum": "{where} must be at most {limit}",
    "exclusiveMaximum": "{where} must be less than {limit}",
    "minLength": "{where} must not be empty",
    "minLength-n": "{where} must be at least {limit} characters long",
    "maxLength": "{where} must be at most {limit} characters long",
    "minItems": "{where} must hold at least {limit} item(s)",
    "maxItems": "{where} must hold at most {limit} items",
    "maxProperties": "{where} must hold at most {limit} keys",
    "pattern": "{where} is not in the expected form",
    "format-http-url": "{where} must be an http:// or https:// URL with a host (and a port from 1 to 65535)",
    "format-fhir-id": "{where} must be a FHIR id ([A-Za-z0-9-.], at most 64 characters)",
    "other": "{where} is not of an accepted form",
})
#: what a JSON Schema type is, said in "{where} must be {kind}"
KINDS = table("shape.kind", {"string": "a string", "integer": "a whole number", "number": "a number",
                             "boolean": "true or false", "array": "a list", "object": "an object", "null": "null"})
#: two kinds a value may be
EITHER = Message("shape.kind.either", "{first} or {second}")
OTHER_TYPE = Message("shape.kind.other", "of another type")


class ShapeError(ValueError):
    """A document that does not have the shape its schema says; `str()` is the one-sentence error (English),
    `msg` the sentence as a message (`text(lang)`), or None when the caller's own English said it."""

    def __init__(self, message: Msg | str, path: Path_ = ()) -> None:
        super().__init__(render(message, EN) if isinstance(message, Msg) else message)
        self.msg = message if isinstance(message, Msg) else None
        self.path = tuple(path)

    @property
    def said(self) -> Msg | str:
        """The sentence to pass on inside another message (a message when there is one, else the English)."""
        return self.msg if self.msg is not None else str(self)

    def text(self, lang: str = EN) -> str:
        return render(self.msg, lang) if self.msg is not None else str(self)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """The validator of `schemas/<name>.schema.json` (loaded once; the schema itself is checked)."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMATS)


def too_deep(doc: object, limit: int = MAX_DEPTH) -> bool:
    """Is `doc` nested deeper than `limit` (counted without recursion)?"""
    stack: list[tuple[object, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((c, depth + 1) for c in children)
    return False


def dotted(root: str) -> Where:
    """Paths as `root.key[0].other` (request bodies)."""
    def where(path: Path_) -> str:
        out = root
        for p in path:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
        return out or "the body"
    return where


#: the caller's sentences for the schemas' `x-message` ids: messages (placeholder: where), or English templates
#: (the service's HTTP error bodies, machine text)
Custom = Mapping[str, Message] | Mapping[str, str]


def check(name: str, doc: object, where: Where, messages: Custom | None = None,
          *, max_depth: int | None = MAX_DEPTH) -> None:
    """Raise ShapeError (one sentence) unless `doc` has the shape of schema `name`.

    `messages` are the caller's templates for the schema's `x-message` ids (placeholders: where). `max_depth`
    None: no depth check (a schema that does not descend into the deep parts, whose readers bound themselves)."""
    if max_depth is not None and too_deep(doc, max_depth):
        raise ShapeError(MESSAGES["too-deep"](where=where(()), limit=max_depth))
    error = best_match(validator(name).iter_errors(doc))
    if error is not None:
        raise ShapeError(sentence(error, where, messages or {}), error.absolute_path)


def errors(name: str, doc: object, where: Where, messages: Custom | None = None) -> list[Msg | str]:
    """Every problem as a sentence (for reports that list them all; depth checked first)."""
    if too_deep(doc):
        return [MESSAGES["too-deep"](where=where(()), limit=MAX_DEPTH)]
    return [sentence(e, where, messages or {}) for e in validator(name).iter_errors(doc)]


def _custom(error: ValidationError) -> ValidationError | None:
    """The outermost error on the way to `error` whose schema carries its own message."""
    found = error if "x-message" in _schema(error) else None
    e = error.parent
    while e is not None:
        if "x-message" in _schema(e):
            found = e
        e = e.parent
    return found


def _schema(error: ValidationError) -> dict:
    return error.schema if isinstance(error.schema, dict) else {}


def _show(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return f"'{text[:60]}…'" if len(text) > 60 else f"'{text}'"


def _kind(schema: dict) -> Msg | str:
    if "x-kind" in schema:
        return str(schema["x-kind"])
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or ())
    said: list[Msg | str] = [KINDS[k]() if k in KINDS else k for k in kinds if k != "null" or len(kinds) == 1]
    if not said:
        return OTHER_TYPE()
    out = said[-1]
    for k in reversed(said[:-1]):  # "a or b or c", as the English always said it
        out = EITHER(first=k, second=out)
    return out


def sentence(error: ValidationError, where: Where, messages: Custom) -> Msg | str:
    """The one-sentence message of a schema error."""
    path = list(error.absolute_path)
    custom = _custom(error)
    if custom is not None:
        mid = str(_schema(custom)["x-message"])
        at = where(list(custom.absolute_path))
        template = messages.get(mid)
        if isinstance(template, str):
            return template.format(where=at)
        return (template or MESSAGES.get(mid, MESSAGES["other"]))(where=at)
    schema, kw, limit = _schema(error), str(error.validator), error.validator_value
    if kw == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = next((k for k in limit if k not in present), limit[0] if limit else "?")
        return MESSAGES["required"](where=where([*path, missing]))
    if kw in ("additionalProperties", "unevaluatedProperties"):
        known = sorted(_schema(error).get("properties", {}))
        extra = sorted(k for k in (error.instance if isinstance(error.instance, dict) else {}) if k not in known)
        key = extra[0] if extra else "?"
        near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint: Msg | str = (MESSAGES["unknown-key-hint"](near=near[0]) if near
                           else MESSAGES["unknown-key-known"](known=", ".join(known)) if known else "")
        return MESSAGES["unknown-key"](where=where(path), key=key, hint=hint)
    if kw == "type":
        return MESSAGES["type"](where=where(path), kind=_kind(schema))
    if kw == "enum":
        return MESSAGES["enum"](where=where(path), choices=", ".join(str(c) for c in limit),
                                       value=_show(error.instance))
    if kw == "const":
        return MESSAGES["const"](where=where(path), value=_show(limit))
    if kw == "minLength" and limit != 1:
        kw = "minLength-n"
    if kw == "format":
        kw = f"format-{limit}"
    if kw in MESSAGES:
        return MESSAGES[kw](where=where(path), limit=str(limit))
    return MESSAGES["other"](where=where(path))


__all__ = ["FORMATS", "MAX_DEPTH", "MESSAGES", "SCHEMAS", "ShapeError", "Where", "check", "dotted", "errors", "sentence",
           "too_deep", "validator"]
