"""Result types of screening: the public contract other tools read (see README, "JSON contract")."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir3t.enrolment import Status
from fhir3t.frozen import Frozen, Shared
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri
from fhir3t.messages import Msg, Reason, reason_text, render

STATUSES = (Status.ELIGIBLE.value, Status.INELIGIBLE.value, Status.CANDIDATE.value)  # the order summaries use
#: HL7 v2-0203 identifier type of a medical record number: the id a coordinator looks a patient up by
MR_TYPE = ("http://terminology.hl7.org/CodeSystem/v2-0203", "MR")


@dataclass(frozen=True, slots=True)
class PatientId(Frozen):
    """One Patient.identifier, as written (system may be empty; `mr` = typed as a medical record number)."""

    system: str
    value: str
    mr: bool = False


@dataclass(frozen=True, slots=True)
class Outcome(Frozen):
    """A rule's answer: the three-valued result, the resources that decided it, and why (clauses of
    messages, rendered in the reader's language where they are shown)."""

    result: Tri
    evidence: tuple[str, ...] = ()
    reason: Reason = ()


def merge_evidence(parts: Iterable[Outcome]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for p in parts:
        for e in p.evidence:
            seen.setdefault(e, None)
    return tuple(seen)


@dataclass(frozen=True, slots=True)
class CriterionResult(Shared):
    id: str
    kind: str  # inclusion | exclusion
    result: Tri
    evidence: tuple[str, ...]
    #: why, as clauses (a finding, and what would settle it): see fhir3t.messages.reasons
    explanation: Reason
    requires_review: bool = False

    @property
    def reason(self) -> str:
        """The reason in English (the JSON contract's `reason`)."""
        return reason_text(self.explanation)

    def reason_in(self, lang: str) -> str:
        return reason_text(self.explanation, lang)

    @property
    def settles(self) -> list[Msg]:
        """What would settle it, clause by clause, without repeats."""
        return list(dict.fromkeys(c.settle for c in self.explanation if c.settle is not None))

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        """The JSON contract's criterion; in another language than English the reason in it is added as
        `reason_localized` (beside `reason`, which stays English for programs). A fresh dict each call."""
        out = {
            "id": self.id,
            "kind": self.kind,
            "result": self.result,
            "evidence": list(self.evidence),
            "reason": self.reason,
            "requires_review": self.requires_review,
        }
        if lang != "en":
            out["reason_localized"] = self.reason_in(lang)
        return out


@dataclass(frozen=True, slots=True)
class ScreeningResult(Frozen):
    patient: str  # "Patient/<id>"
    status: str  # eligible | ineligible | candidate
    criteria: tuple[CriterionResult, ...]
    as_of: date
    d1: date
    source: str = field(default="", compare=False)
    #: facts a coordinator must see that no criterion covers (deceased, already enrolled), as messages
    remarks: tuple[Msg, ...] = ()
    #: the Patient's identifiers (for the display id: an MRN, or the one --id-system names)
    identifiers: tuple[PatientId, ...] = field(default=(), compare=False)
    #: the Patient's name, filled only when the run asks for names (--show-names); None otherwise
    name: str | None = field(default=None, compare=False)

    @property
    def notes(self) -> tuple[str, ...]:
        """The remarks in English (the JSON contract's `notes`)."""
        return tuple(render(m, "en") for m in self.remarks)

    def notes_in(self, lang: str) -> tuple[str, ...]:
        return tuple(render(m, lang) for m in self.remarks)

    def display_id(self, system: str | None = None) -> str:
        """What a coordinator looks the patient up by: the identifier of `system` if it has one, else
        the MRN (typed MR, or a system naming 'mrn'), else the first identifier, else the FHIR id."""
        ids = [i for i in self.identifiers if i.value]
        if system:
            chosen = next((i for i in ids if i.system == system), None)
        else:
            chosen = (next((i for i in ids if i.mr), None) or next((i for i in ids if "mrn" in i.system.lower()), None)
                      or next(iter(ids), None))
        if chosen is not None:
            return chosen.value
        return self.patient.removeprefix("Patient/")

    def matches(self, wanted: str) -> bool:
        """Is `wanted` this patient: its reference, FHIR id, or one of its identifier values (or system|value)?"""
        if wanted in (self.patient, self.patient.removeprefix("Patient/")):
            return True
        return any(wanted in (i.value, f"{i.system}|{i.value}") for i in self.identifiers if i.value)

    def rendered(self, key: str, render: Callable[[ScreeningResult], bytes]) -> bytes:
        """`render(self)`, for an output that depends on the result and on nothing `key` does not name (the
        format, the language, the id system). A result is immutable, so what it renders to under a key never
        changes: a result the patient store carries over returns what it rendered on an earlier night,
        without being read back whole (pipeline.incremental.StoredResult)."""
        return render(self)

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

    def to_dict(self, id_system: str | None = None, lang: str = "en") -> dict[str, Any]:
        """The JSON contract. Field names, codes, `reason` and `notes` are English whatever the language; a run in
        another language adds `lang`, `notes_localized` and each criterion's `reason_localized`."""
        out: dict[str, Any] = {
            "patient": self.patient,
            "status": self.status,
            "as_of": self.as_of.isoformat(),
            "d1": self.d1.isoformat(),
            "criteria": [c.to_dict(lang) for c in self.criteria],
            "notes": list(self.notes),
            "display_id": self.display_id(id_system),
        }
        if self.name is not None:
            out["name"] = self.name
        if lang != "en":
            out["lang"] = lang
            out["notes_localized"] = list(self.notes_in(lang))
        return out


def status_of(results: Iterable[CriterionResult]) -> str:
    """ineligible if any inclusion not-met or exclusion met; eligible if all pass; else candidate."""
    all_pass = True
    for r in results:
        if (r.kind == "inclusion" and r.result == NOT_MET) or (r.kind == "exclusion" and r.result == MET):
            return Status.INELIGIBLE.value
        passing = r.result == (MET if r.kind == "inclusion" else NOT_MET)
        all_pass = all_pass and passing
    return Status.ELIGIBLE.value if all_pass else Status.CANDIDATE.value
