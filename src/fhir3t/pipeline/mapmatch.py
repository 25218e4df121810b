"""Which standard code a hospital's local code probably stands for, from its display text: the candidate
targets of `fhir3t codes --conceptmap-draft`, each with a confidence, for a person to confirm.

The targets are the concepts the criteria read for the resource type (the codes listed in their value
sets and the codes their is-a filters are rooted at), named by their displays and designations and,
for a value set that stands for one concept, by the set's own names (match-names, title). A target is a
candidate for a display when:

- one of its names occurs in the display as written (Latin names as whole words, names with Chinese
  characters anywhere): "他克莫司" in "他克莫司片", never "乙肝表面抗原" for "乙肝表面抗体";
- its names explain most of the display (`confidence`, at least MIN_CONFIDENCE): counted in units, a Latin
  word or a Chinese character each, leaving out words that name the act of testing or a dose form
  (profiles/terminology/display-words.json); "juvenile arthritis" is half explained by
  "arthritis", so it is not proposed for adult arthritis;
- no other target's names explain a strict superset of what it explains (the longest match wins):
  "一氧化碳弥散量实测值/预计值%" holds "一氧化碳弥散量实测值" (DLCO measured), but DLCO % predicted's
  "一氧化碳弥散量实测值/预计值" covers that and more, so DLCO measured is not proposed; nor for
  "DLCO % predicted", where "DLCO" is the measured value's name.

Ties are ordered by whether the local code extends the target's (a Chinese ICD-10 extension M33.101 under
M33.1), then listed concepts before filter roots, then value-set file order. Pure: no I/O but the one
data file, read once.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import orjson

from fhir3t.profiles import profile_path
from fhir3t.terminology import Code, ValueSet
from fhir3t.textnorm import fold

#: the share of a display's units a target's names must explain to be proposed
MIN_CONFIDENCE = 0.6
#: candidates kept per local code
MAX_CANDIDATES = 3

_LATIN = re.compile(r"[0-9a-z]+")


def _is_cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


@dataclass
class Target:
    """A standard concept a local code could be mapped to."""

    system: str
    code: str
    display: str
    valuesets: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # as written (for the reviewer); folded when matched
    listed: bool = True  # a concept listed in a value set (False: the root of an is-a filter)
    order: int = 0


@dataclass(frozen=True)
class Candidate:
    target: Target
    confidence: float  # the share of the display's units its names explain
    matched: str  # the longest of its names found in the display
    extends: bool  # the local code extends the target's code (M33.101 under M33.1)


def targets(valuesets: Iterable[ValueSet], others: Iterable[ValueSet] = ()) -> list[Target]:
    """The concepts of these value sets, with their names; one Target per (system, code).

    A concept also takes the names of any value set in `others` that stands for it alone: the 3T drugs
    set lists three drugs under one set of names, while a one-drug set's names are that drug's."""
    out: dict[Code, Target] = {}
    for vs in valuesets:
        own = _own_names(vs)
        for (system, code), names in vs.concept_names.items():
            display = vs.prop((system, code), "display")
            _add(out, system, code, display if isinstance(display, str) else code, vs.id, [*names, *own], True)
        for system, code in vs.roots:
            _add(out, system, code, vs.title, vs.id, own, False)
    for vs in others:
        own = _own_names(vs)
        if not own:
            continue
        for key in [*vs.concept_names, *vs.roots]:
            t = out.get(key)
            if t is not None:
                t.names += [n for n in [*vs.concept_names.get(key, ()), *own] if n not in t.names]
    return list(out.values())


def _own_names(vs: ValueSet) -> list[str]:
    """The set's own names (match-names, title) when it stands for one concept (one code per system), else none."""
    per_system: dict[str, int] = {}
    for system, _code in [*vs.concept_names, *vs.roots]:
        per_system[system] = per_system.get(system, 0) + 1
    return list(vs.set_names) if per_system and all(n == 1 for n in per_system.values()) else []


def _add(out: dict[Code, Target], system: str, code: str, display: str, vs: str, names: list[str], listed: bool) -> None:
    t = out.get((system, code))
    if t is None:
        t = out[(system, code)] = Target(system, code, display, listed=listed, order=len(out))
    if vs not in t.valuesets:
        t.valuesets.append(vs)
    t.names += [n for n in names if n not in t.names]
    t.listed = t.listed or listed


@lru_cache(maxsize=1)
def neutral_words() -> tuple[str, ...]:
    data = orjson.loads(profile_path("terminology", "display-words.json").read_bytes())
    return tuple(sorted({fold(w) for w in data.get("neutral", []) if isinstance(w, str) and w.strip()}, key=len, reverse=True))


def _occurrences(text: str, name: str) -> list[range]:
    """Where a (folded) name occurs in a (folded) text: anywhere if it has Chinese characters, else as whole words."""
    if not name:
        return []
    cjk = any(_is_cjk(c) for c in name)
    out, start = [], text.find(name)
    while start >= 0:
        end = start + len(name)
        if cjk or ((start == 0 or not _word(text[start - 1])) and (end == len(text) or not _word(text[end]))):
            out.append(range(start, end))
        start = text.find(name, start + 1)
    return out


def _word(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def units(text: str) -> list[range]:
    """The display's units: each Latin word (letters and digits), each Chinese character, each '%'."""
    out = [range(m.start(), m.end()) for m in _LATIN.finditer(text)]
    out += [range(i, i + 1) for i, ch in enumerate(text) if _is_cjk(ch) or ch == "%"]
    return sorted(out, key=lambda r: r.start)


@dataclass
class _Match:
    target: Target
    covered: set[int]  # character positions its names cover
    explained: int  # units wholly covered
    matched: str


def candidates(display: str, local_code: str, pool: Sequence[Target]) -> list[Candidate]:
    """The targets whose names explain `display`, best first (see the module doc); [] when none does."""
    text = fold(display)
    parts = units(text)
    if not parts:
        return []
    neutral: set[int] = set()
    for w in neutral_words():
        for r in _occurrences(text, w):
            neutral.update(r)
    matches: list[_Match] = []
    for t in pool:
        covered: set[int] = set()
        longest = ""
        for name in t.names:
            hits = _occurrences(text, fold(name))
            for r in hits:
                covered.update(r)
            if hits and len(name) > len(longest):
                longest = name
        if covered:
            explained = sum(1 for u in parts if set(u) <= covered)
            matches.append(_Match(t, covered, explained, longest))
    counted = [u for u in parts if not set(u) <= neutral]
    out = []
    for m in matches:
        denominator = sum(1 for u in counted if not set(u) <= m.covered) + m.explained
        if not denominator:
            continue
        confidence = m.explained / denominator
        dominated = any(o is not m and m.covered < o.covered and o.explained > m.explained for o in matches)
        if confidence >= MIN_CONFIDENCE and not dominated:
            out.append(Candidate(m.target, round(confidence, 2), m.matched, _extends(local_code, m.target.code)))
    out.sort(key=rank)
    return out[:MAX_CANDIDATES]


def rank(c: Candidate) -> tuple[float, bool, bool, int]:
    """Best first: confidence, then a local code extending the target's, then listed concepts, then file order."""
    return (-c.confidence, not c.extends, not c.target.listed, c.target.order)


def named_like(displays: Iterable[str], valuesets: Sequence[ValueSet]) -> tuple[str, ...]:
    """The value sets whose names occur in the displays, less those another set's longer name covers
    ("DLCO % predicted" names DLCO % predicted, not DLCO measured, whose name 'DLCO' it holds)."""
    texts = [fold(d) for d in displays]
    spans: dict[str, set[tuple[int, int]]] = {}
    for vs in valuesets:
        covered: set[tuple[int, int]] = set()
        for i, text in enumerate(texts):
            for name in vs.names:
                for r in _occurrences(text, name):
                    covered.update((i, pos) for pos in r)
        if covered:
            spans[vs.id] = covered
    return tuple(v for v, c in spans.items() if not any(c < other for o, other in spans.items() if o != v))


def _extends(local: str, target: str) -> bool:
    a, b = local.strip().upper(), target.strip().upper()
    return len(b) >= 3 and a != b and a.startswith(b)


__all__ = ["MAX_CANDIDATES", "MIN_CONFIDENCE", "Candidate", "Target", "candidates", "named_like", "neutral_words", "rank",
           "targets", "units"]
