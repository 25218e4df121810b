"""The AE finding: what safety found, in a shape the emitter (FHIR) and the report both read.

No FHIR is built here; `Finding` holds plain values plus the references of the evidence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from fhir3t.ids import stable_id

Kind = Literal["lab", "condition", "death"]
CAUSALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
POSSIBLE = "Possible"
UNASSESSABLE = "Unassessable-Unclassifiable"
RELATED = frozenset({"Certain", "Probably-Likely", "Possible"})

SERIOUS_DEATH = "SeriousResultsInDeath"
SERIOUS_LIFE = "SeriousIsLifeThreatening"
SERIOUS_HOSPITAL = "SeriousResultsInHospitalization"
NON_SERIOUS = "Non-serious"


@dataclass(frozen=True)
class Suspect:
    """One 3T drug's assessment; `instance` is the patient's own medication record ("Type/id") if any."""

    drug: str
    causality: str
    instance: str | None = None
    code: dict[str, str] = field(default_factory=dict)  # coding for a contained Medication when instance is None


def severity_of(grade: int | None) -> str | None:
    """CTCAE grade → AdverseEvent.severity (1 mild, 2 moderate, >= 3 severe); None when ungraded."""
    if grade is None:
        return None
    return "mild" if grade <= 1 else "moderate" if grade == 2 else "severe"


def seriousness_of(grade: int | None, hospitalised: bool) -> str:
    if grade == 5:
        return SERIOUS_DEATH
    if grade == 4:
        return SERIOUS_LIFE
    if hospitalised:
        return SERIOUS_HOSPITAL
    return NON_SERIOUS


@dataclass(frozen=True)
class Finding:
    kind: Kind
    patient: str  # "Patient/<id>" (or the urn of an id-less Patient)
    key: str  # lab test id, condition reference/code, or "death": with onset, names the AE for ever
    term: str
    event: dict[str, Any]  # CodeableConcept of the event
    grade: int | None
    onset: date
    end: date | None
    outcome: str  # resolved | recovering | ongoing | fatal
    seriousness: str
    suspects: tuple[Suspect, ...]
    evidence: tuple[str, ...]  # references of the Observations / Condition that made the AE
    detail: str = ""  # e.g. the worst value and the limit it was graded against
    hospitalisations: tuple[str, ...] = ()  # inpatient Encounters overlapping the AE

    @property
    def id(self) -> str:
        """Deterministic logical id from (patient, test or condition, episode start)."""
        onset = "" if self.kind == "death" else self.onset.isoformat()
        return stable_id("AdverseEvent", self.patient, self.kind, self.key, onset)

    @property
    def severity(self) -> str | None:
        return severity_of(self.grade)

    @property
    def treatment_related(self) -> bool:
        return any(s.causality in RELATED for s in self.suspects)

    def related_to(self, drug: str) -> bool:
        return any(s.drug == drug and s.causality in RELATED for s in self.suspects)

    @property
    def code(self) -> dict[str, str] | None:
        for c in self.event.get("coding") or ():
            if isinstance(c, dict) and "code" in c:
                return {k: c[k] for k in ("system", "code", "display") if k in c}
        return None

    def to_dict(self) -> dict[str, Any]:
        """The `fhir3t safety --format json` object (a public contract)."""
        return {
            "id": self.id,
            "patient": self.patient,
            "kind": self.kind,
            "term": self.term,
            "code": self.code,
            "grade": self.grade,
            "severity": self.severity,
            "onset": self.onset.isoformat(),
            "end": self.end.isoformat() if self.end else None,
            "outcome": self.outcome,
            "seriousness": self.seriousness,
            "treatment_related": self.treatment_related,
            "suspects": {s.drug: s.causality for s in self.suspects},
            "evidence": list(self.evidence),
            "detail": self.detail,
        }
