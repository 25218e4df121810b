"""Rendering a Msg in a language: the template from the catalog, the parameters by kind (core.py)."""
from __future__ import annotations

import gettext
import string
from collections.abc import Mapping
from datetime import date
from functools import lru_cache

from fhir3t.messages import catalog
from fhir3t.messages.catalog import LOCALE_DIR
from fhir3t.messages.core import REGISTRY, Arg, Many, Message, Msg, Plural, Text
from fhir3t.messages.lang import EN, gettext_code, normalize

#: how each language joins a list: (separator, last separator for "and", for "or", clause separator)
_JOIN = {
    "en": (", ", " and ", " or ", "; "),
    "zh": ("、", "和", "或", "；"),
}


def _joiner(lang: str) -> tuple[str, str, str, str]:
    return _JOIN.get(lang, _JOIN.get(lang.split("-")[0], _JOIN["en"]))


@lru_cache(maxsize=16)
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of a language (English and languages fhir3t does not speak: none, the templates
    as written). Compiled from its .po on first use when no build compiled it (messages/catalog.py)."""
    chosen = normalize(lang)
    if chosen is None or chosen == EN:
        return gettext.NullTranslations()
    return catalog.load(gettext_code(chosen))


def template(msg_id: str, lang: str, n: int | None = None) -> str:
    decl = REGISTRY.get(msg_id)
    if decl is None:
        raise KeyError(f"no message {msg_id!r} is declared")
    if not decl.en:  # an empty cell (a table's corner): nothing to translate, and gettext reserves the empty msgid
        return ""
    t = translations(lang)
    if isinstance(decl, Plural):
        count = n if n is not None else 0
        return t.npgettext(msg_id, decl.en, decl.en_plural, count)
    return t.pgettext(msg_id, decl.en)


def arg_text(value: Arg, lang: str) -> str:
    if value is None:
        return ""
    if isinstance(value, Msg):
        return render(value, lang)
    if isinstance(value, Text):
        return value.get(lang)
    if isinstance(value, Many):
        return _join(value, lang)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _join(m: Many, lang: str) -> str:
    sep, last_and, last_or, clause = _joiner(lang)
    parts = [p for p in (arg_text(i, lang) for i in m.items) if p]
    if m.how == "; ":
        return clause.join(parts)
    if m.how in ("and", "or"):
        if len(parts) < 2:
            return sep.join(parts)
        return sep.join(parts[:-1]) + (last_and if m.how == "and" else last_or) + parts[-1]
    return (sep if m.how == ", " else m.how).join(parts)


class _Args(dict):
    """format_map's view of a message's parameters: a name the template does not know is kept visible."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@lru_cache(maxsize=65536)
def render(msg: Msg, lang: str = "en") -> str:
    """The message in `lang` (English where the catalog has no translation)."""
    n = msg.arg("n")
    tpl = template(msg.id, lang, n if isinstance(n, int) else None)
    return string.Formatter().vformat(tpl, (), _Args({k: arg_text(v, lang) for k, v in msg.args}))


class Later(str):
    """A message where a str is expected before the reader's language is known (an argparse help text): it reads
    as its English text, and keeps the message (`msg`) so it can be said in another language once that is known
    (fhir3t.cli.words.localize)."""

    msg: Msg

    def __new__(cls, msg: Msg) -> Later:
        out = super().__new__(cls, render(msg, EN))
        out.msg = msg
        return out


def later(msg: Msg) -> str:
    return Later(msg)


class Words:
    """A module's table of messages (core.table) rendered in one language: `w("h.summary")`, `w("x", n=3)`."""

    def __init__(self, messages: Mapping[str, Message], lang: str = EN) -> None:
        self.messages, self.lang = messages, lang

    def __call__(self, key: str, **values: Arg) -> str:
        return render(self.messages[key](**values), self.lang)

    def msg(self, key: str, **values: Arg) -> Msg:
        return self.messages[key](**values)

    def template(self, key: str) -> str:
        """The template in this language, placeholders unfilled (for a caller that fills them itself)."""
        return template(self.messages[key].id, self.lang)


__all__ = ["LOCALE_DIR", "Later", "Words", "arg_text", "later", "render", "template", "translations"]
