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

    def __init__(self, reads: Iterable[Read]) -> None:
        by_type: dict[str, list[Read]] = {}
        for r in reads:
            by_type.setdefault(r.type, []).append(r)
        self.by_type = {t: tuple(v) for t, v in by_type.items()}
        self.types = frozenset(by_type)
        #: types read whatever their code
        self.any_code = frozenset(t for t, rs in self.by_type.items() if any(r.valueset is None for r in rs))
        self.valuesets: dict[str, tuple[ValueSet, ...]] = {
            t: tuple(dict.fromkeys(r.valueset for r in rs if r.valueset is not None)) for t, rs in self.by_type.items()}
        self.complete = frozenset(t for t, rs in self.by_type.items() if any(r.complete for r in rs))
        self.elements: dict[str, frozenset[str]] = {
            t: frozenset().union(*(r.elements for r in rs)) for t, rs in self.by_type.items()}
        self._hit: dict[tuple[str, Code], bool] = {}

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
