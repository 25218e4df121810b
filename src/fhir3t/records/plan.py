"""What the criteria (or safety) read, declared once: the read filter and the record builder keep
exactly what these declarations name, so a rule cannot read a resource the sources dropped."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fhir3t.terminology import Code, ValueSet


@dataclass(frozen=True, eq=False)
class Read:
    """One rule's read of one resource type.

    `valueset`: the type's main code must be in it (None: every resource of the type is read).
    `elements`: the top-level elements the rule looks at (choice types written `value[x]`); the
    builder checks the ones it can (status codes, dates) and a test holds every rule to its list.
    `complete`: no match means "absent" (the EHR is taken as complete for diagnoses, drugs,
    allergies): records of the type whose code cannot be read must be kept, as they may be the one.
    """

    type: str
    valueset: ValueSet | None = None
    elements: frozenset[str] = frozenset()
    complete: bool = False


def read(rtype: str, valueset: ValueSet | None, *elements: str, complete: bool = False) -> Read:
    return Read(rtype, valueset, frozenset(elements), complete)


class ReadPlan:
    """All reads of a run, by resource type."""

    def __init__(self, reads: Iterable[Read], mention_types: Iterable[str] = ()) -> None:
        by_type: dict[str, list[Read]] = {}
        for r in reads:
            by_type.setdefault(r.type, []).append(r)
        self.by_type = {t: tuple(v) for t, v in by_type.items()}
        #: types no rule reads, read only for the criteria's concepts their coded elements name (R4Facts.mention_types)
        self.mention_only = frozenset(mention_types) - frozenset(by_type)
        self.types = frozenset(by_type) | self.mention_only
        #: types read whatever their code
        self.any_code = frozenset(t for t, rs in self.by_type.items() if any(r.valueset is None for r in rs))
        self.valuesets: dict[str, tuple[ValueSet, ...]] = {
            t: tuple(dict.fromkeys(r.valueset for r in rs if r.valueset is not None)) for t, rs in self.by_type.items()}
        self.complete = frozenset(t for t, rs in self.by_type.items() if any(r.complete for r in rs))
        self.elements: dict[str, frozenset[str]] = {
            t: frozenset().union(*(r.elements for r in rs)) for t, rs in self.by_type.items()}
        self._hit: dict[tuple[str, Code], bool] = {}
        self._names: dict[str, NameIndex] = {}

    def names(self, rtype: str) -> NameIndex:
        """The names of all value sets read for a type, in one index (one regex search per text)."""
        idx = self._names.get(rtype)
        if idx is None:
            idx = self._names[rtype] = NameIndex(self.valuesets.get(rtype, ()))
        return idx

    def reads(self, rtype: str) -> tuple[Read, ...]:
        return self.by_type.get(rtype, ())

    def wants_code(self, rtype: str, codes: Iterable[Code]) -> bool:
        """Is a resource of this type with these codes read by some rule?"""
        if rtype in self.any_code:
            return rtype in self.types
        sets = self.valuesets.get(rtype)
        if not sets:
            return False
        cache = self._hit
        for code in codes:
            key = (rtype, code)
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = any(code in vs for vs in sets)
            if hit:
                return True
        return False


class NameIndex:
    """Which value sets' names (match-names, designations, short displays) a text uses.

    One Aho-Corasick automaton (pyahocorasick) over every name of a type's value sets: each text is
    scanned once in C whatever the number of names, which is what makes the name net affordable on
    every lab result of a million-patient export. Latin names must stand as whole words
    (`hiv` is not in `archival`); names with Chinese characters match anywhere.
    """

    def __init__(self, sets: Iterable[ValueSet]) -> None:
        import ahocorasick

        by_name: dict[str, list[ValueSet]] = {}
        for vs in sets:
            for n in vs.names:
                by_name.setdefault(n, []).append(vs)
        self.by_name = by_name
        self.sets = tuple(dict.fromkeys(v for vs in by_name.values() for v in vs))
        self._auto = ahocorasick.Automaton() if by_name else None
        if self._auto is not None:
            for name in by_name:
                self._auto.add_word(name, (name, not _has_cjk(name)))
            self._auto.make_automaton()

    def __bool__(self) -> bool:
        return self._auto is not None

    def which(self, folded_texts: Iterable[str]) -> list[ValueSet]:
        """The value sets one of whose names appears in the (folded) texts, in plan order."""
        auto = self._auto
        if auto is None:
            return []
        found: dict[int, ValueSet] = {}
        for t in folded_texts:
            for end, (name, whole_word) in auto.iter(t):
                if whole_word:
                    start = end - len(name) + 1
                    if (start > 0 and _WORD(t[start - 1])) or (end + 1 < len(t) and _WORD(t[end + 1])):
                        continue
                for vs in self.by_name[name]:
                    found[id(vs)] = vs
        return [vs for vs in self.sets if id(vs) in found]

    def which_names(self, folded_texts: Iterable[str]) -> list[tuple[ValueSet, str]]:
        """(value set, the name found) for every value set one of whose names appears in the texts."""
        auto = self._auto
        if auto is None:
            return []
        found: dict[int, tuple[ValueSet, str]] = {}
        for t in folded_texts:
            for end, (name, whole_word) in auto.iter(t):
                if whole_word:
                    start = end - len(name) + 1
                    if (start > 0 and _WORD(t[start - 1])) or (end + 1 < len(t) and _WORD(t[end + 1])):
                        continue
                for vs in self.by_name[name]:
                    found.setdefault(id(vs), (vs, name))
        return [found[id(vs)] for vs in self.sets if id(vs) in found]


def _has_cjk(name: str) -> bool:
    return any("\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in name)


def _WORD(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()
