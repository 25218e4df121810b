"""Result types of screening: the public contract other tools read (see README, "JSON contract")."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri

STATUSES = ("eligible", "ineligible", "candidate")


@dataclass(frozen=True, slots=True)
class Outcome:
    """A rule's answer: the three-valued result, the resources that decided it, and why."""

    result: Tri
    evidence: tuple[str, ...] = ()
    reason: str = ""


def merge_evidence(parts: Iterable[Outcome]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for p in parts:
        for e in p.evidence:
            seen.setdefault(e, None)
    return tuple(seen)


@dataclass(frozen=True, slots=True)
class CriterionResult:
    id: str
    kind: str  # inclusion | exclusion
    result: Tri
    evidence: tuple[str, ...]
    reason: str
    requires_review: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "result": self.result,
            "evidence": list(self.evidence),
            "reason": self.reason,
            "requires_review": self.requires_review,
        }


@dataclass(frozen=True, slots=True)
class ScreeningResult:
    patient: str  # "Patient/<id>"
    status: str  # eligible | ineligible | candidate
    criteria: tuple[CriterionResult, ...]
    as_of: date
    d1: date
    source: str = field(default="", compare=False)
    #: facts a coordinator must see that no criterion covers (deceased, already enrolled)
    notes: tuple[str, ...] = ()

    def by_id(self, criterion_id: str) -> CriterionResult:
        for c in self.criteria:
            if c.id == criterion_id:
                return c
        raise KeyError(criterion_id)

    def ids_with(self, result: Tri, kind: str | None = None) -> list[str]:
        return [c.id for c in self.criteria if c.result == result and (kind is None or c.kind == kind)]

    @property
    def failing(self) -> list[str]:
        """Criteria that make the patient ineligible."""
        return [c.id for c in self.criteria
                if (c.kind == "inclusion" and c.result == NOT_MET) or (c.kind == "exclusion" and c.result == MET)]

    @property
    def unknown(self) -> list[str]:
        return self.ids_with(UNKNOWN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "status": self.status,
            "as_of": self.as_of.isoformat(),
            "d1": self.d1.isoformat(),
            "criteria": [c.to_dict() for c in self.criteria],
            "notes": list(self.notes),
        }


def status_of(results: Iterable[CriterionResult]) -> str:
    """ineligible if any inclusion not-met or exclusion met; eligible if all pass; else candidate."""
    all_pass = True
    for r in results:
        if (r.kind == "inclusion" and r.result == NOT_MET) or (r.kind == "exclusion" and r.result == MET):
            return "ineligible"
        passing = r.result == (MET if r.kind == "inclusion" else NOT_MET)
        all_pass = all_pass and passing
    return "eligible" if all_pass else "candidate"
