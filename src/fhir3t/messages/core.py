"""Messages: every sentence a person reads is a `Msg` — a message id and its parameters — rendered
in the reader's language at the edge (a format, a card, the CLI), never concatenated from pieces.

A message is declared once, beside the code that says it, with its English template:

    NO_RESULT = Message("obs.no-result", "no {test} result in {window}")
    ...
    return Outcome(UNKNOWN, (), reason(NO_RESULT(test=vs.term, window=str(w))))

The English template is the gettext msgid and the id its msgctxt, so `pybabel extract` (keywords
`Message:1c,2` and `Plural:1c,2,3`) finds every message, and a catalog translates it with the id as
context (catalog.py). Parameters are rendered by kind:

- `str`, numbers, dates: as written (codes, references, values from a record are never translated);
- `Text`: a name in several languages (a value set's title with its zh-CN designation, a criterion's
  label), shown in the reader's language, English when it has no translation;
- `Msg`: a nested message (an optional fragment, a clause);
- `Many`: a list joined the way the language joins lists ("A, B or C", "A、B或C").
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Union

from fhir3t.frozen import Frozen

#: every declared message, by id (the catalog-coverage test and the extractor read it)
REGISTRY: dict[str, Message | Plural] = {}


@dataclass(frozen=True, slots=True)
class Text(Frozen):
    """A name in several languages: (language, text) pairs, English first."""

    texts: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, en: str, translations: Mapping[str, str] | None = None) -> Text:
        pairs = [("en", en)]
        pairs += sorted((k, v) for k, v in (translations or {}).items() if k != "en" and v)
        return cls(tuple(pairs))

    @property
    def en(self) -> str:
        return self.texts[0][1]

    def get(self, lang: str) -> str:
        """The text in `lang` (a zh-CN request takes zh-CN, then zh; English when there is none)."""
        if lang == "en":
            return self.en
        base = lang.split("-")[0]
        exact = next((t for k, t in self.texts if k == lang), None)
        return exact or next((t for k, t in self.texts if k.split("-")[0] == base), None) or self.en

    def lower(self) -> Text:
        """The English lower-cased (a title used inside a sentence); translations as they are."""
        return Text(((self.texts[0][0], self.en.lower()), *self.texts[1:]))

    def __str__(self) -> str:
        return self.en


Arg = Union[str, int, float, date, Text, "Msg", "Many", None]


@dataclass(frozen=True, slots=True)
class Msg(Frozen):
    """A message to render: its id and its parameters (hashable: rendered text is cached)."""

    id: str
    args: tuple[tuple[str, Arg], ...] = ()

    def arg(self, name: str) -> Arg:
        for k, v in self.args:
            if k == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Many(Frozen):
    """Items joined as a list: `how` is "and", "or", ", " (a plain list) or "; " (clauses)."""

    items: tuple[Arg, ...]
    how: str = ", "


class Message:
    """A message declared with its id and English template (see the module doc)."""

    __slots__ = ("en", "id", "names")
    id: str
    en: str
    names: frozenset[str]

    def __init__(self, id: str, en: str) -> None:
        if id in REGISTRY and REGISTRY[id].en != en:
            raise ValueError(f"message {id!r} declared twice with different templates")
        self.id = id
        self.en = en
        self.names = _placeholders(en)
        REGISTRY[id] = self

    def __call__(self, **args: Arg) -> Msg:
        missing = self.names - set(args)
        if missing:
            raise TypeError(f"message {self.id}: missing {', '.join(sorted(missing))}")
        return Msg(self.id, tuple(sorted(args.items())))


class Plural:
    """A message whose words depend on a count (`n`): one English template for 1, one for others;
    other languages choose by their own plural rules (catalog.py)."""

    __slots__ = ("en", "en_plural", "id", "names")
    id: str
    en: str
    en_plural: str
    names: frozenset[str]

    def __init__(self, id: str, en: str, en_plural: str) -> None:
        if id in REGISTRY and REGISTRY[id].en != en:
            raise ValueError(f"message {id!r} declared twice with different templates")
        self.id = id
        self.en = en
        self.en_plural = en_plural
        self.names = _placeholders(en) | _placeholders(en_plural) | {"n"}
        REGISTRY[id] = self

    def __call__(self, n: int, **args: Arg) -> Msg:
        return Msg(self.id, tuple(sorted({**args, "n": n}.items())))


def _placeholders(template: str) -> frozenset[str]:
    import string

    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def table(prefix: str, templates: Mapping[str, str]) -> dict[str, Message]:
    """A module's messages declared as one table (key -> English template), each under the id `prefix.key`
    (the extractor reads the literal dict: keep it a literal)."""
    return {key: Message(f"{prefix}.{key}", en) for key, en in templates.items()}


def many(items: Iterable[Arg], how: str = ", ") -> Many:
    return Many(tuple(items), how)


def to_data(value: Arg) -> object:
    """A message (or parameter) as JSON-able data, to travel through a disk store or a process pool."""
    if isinstance(value, Msg):
        return {"m": value.id, "a": [[k, to_data(v)] for k, v in value.args]}
    if isinstance(value, Text):
        return {"t": [list(p) for p in value.texts]}
    if isinstance(value, Many):
        return {"l": [to_data(v) for v in value.items], "h": value.how}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    return value


def from_data(data: object) -> Arg:
    if isinstance(data, dict):
        if "m" in data:
            return Msg(str(data["m"]), tuple((str(k), from_data(v)) for k, v in data.get("a") or ()))
        if "t" in data:
            return Text(tuple((str(k), str(v)) for k, v in data["t"]))
        if "l" in data:
            return Many(tuple(from_data(v) for v in data["l"]), str(data.get("h", ", ")))
        if "d" in data:
            return date.fromisoformat(str(data["d"]))
    if data is None or isinstance(data, str | int | float):
        return data
    raise ValueError(f"not message data: {type(data).__name__}")


__all__ = ["REGISTRY", "Arg", "Many", "Message", "Msg", "Plural", "Text", "from_data", "many", "table", "to_data"]
