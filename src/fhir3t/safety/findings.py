"""The AE finding: what safety found, in a shape the emitter (FHIR) and the report both read.

No FHIR is built here; `Finding` holds plain values plus the references of the evidence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from fhir3t.ids import stable_id
from fhir3t.messages import render, table
from fhir3t.safety.terms import AeTerm
from fhir3t.terminology import Code

#: lab, condition and death are found by fhir3t in the data; recorded is an investigator's AdverseEvent.
Kind = Literal["lab", "condition", "death", "recorded"]
CAUSALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
POSSIBLE = "Possible"
UNASSESSABLE = "Unassessable-Unclassifiable"
#: The default of profiles/safety/study.json `related_causality` (the engine passes the configured set).
RELATED = frozenset({"Certain", "Probably-Likely", "Possible"})
#: The default of study.json `conservative_causality`: also counted as related by the sensitivity line.
CONSERVATIVE = frozenset({"Unassessable-Unclassifiable", "Conditional-Classified"})
#: Who assessed a causality: fhir3t from known-reaction data, an investigator, or nobody (drug not named).
BY_FHIR3T, BY_INVESTIGATOR, NOT_ASSESSED = "fhir3t", "investigator", "not-assessed"
#: Where an AE came from: found by fhir3t, recorded by an investigator, or both (the same event).
SOURCES = ("fhir3t", "investigator", "both")

SERIOUS_DEATH = "SeriousResultsInDeath"
SERIOUS_LIFE = "SeriousIsLifeThreatening"
SERIOUS_HOSPITAL = "SeriousResultsInHospitalization"
NON_SERIOUS = "Non-serious"
#: Seriousness in words (ICH E2A criteria), by the code of the R4 adverse-event-seriousness system: what a
#: person reads instead of the code (messages `safety.seriousness.<code>`).
SERIOUSNESS = table("safety.seriousness", {
    "Non-serious": "not serious",
    "Serious": "serious (criterion not recorded)",
    "SeriousResultsInDeath": "results in death",
    "SeriousIsLifeThreatening": "is life-threatening",
    "SeriousResultsInHospitalization": "requires or prolongs inpatient hospitalization",
    "SeriousResultsInDisability": "results in persistent or significant disability / incapacity",
    "SeriousResultsInCongenitalAnomaly": "is a congenital anomaly / birth defect",
    "SeriousRequiresPreventImpairment": "requires intervention to prevent permanent impairment",
    "not recorded": "seriousness not recorded",
})
SERIOUSNESS_TEXT = {code: m.en for code, m in SERIOUSNESS.items()}


def seriousness_text(code: str, lang: str = "en") -> str:
    m = SERIOUSNESS.get(code)
    return render(m(), lang) if m is not None else code


@dataclass(frozen=True)
class Suspect:
    """One 3T drug's assessment; `instance` is the patient's own medication record ("Type/id") if any."""

    drug: str
    causality: str
    instance: str | None = None
    code: dict[str, str] = field(default_factory=dict)  # coding for a contained Medication when instance is None
    assessor: str = BY_FHIR3T  # BY_FHIR3T | BY_INVESTIGATOR | NOT_ASSESSED
    author: dict[str, Any] | None = None  # the investigator's causality.author reference, kept when re-emitted


def severity_of(grade: int | None) -> str | None:
    """CTCAE grade → AdverseEvent.severity (1 mild, 2 moderate, >= 3 severe); None when ungraded."""
    if grade is None:
        return None
    return "mild" if grade <= 1 else "moderate" if grade == 2 else "severe"


def seriousness_of(grade: int | None, hospitalised: bool) -> str:
    """Spec §4: grade 5 death, grade 4 life-threatening, an overlapping inpatient stay hospitalisation."""
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
    ctcae: AeTerm | None = None  # the CTCAE v5.0 term (with its MedDRA code) the AE is counted under
    grade_source: str | None = None  # how the grade was found (None: ungraded)
    source: str = "fhir3t"  # one of SOURCES
    recorded: tuple[str, ...] = ()  # investigator AdverseEvents ("AdverseEvent/<id>") this AE is, or merged
    related_set: frozenset[str] = field(default=RELATED, compare=False, repr=False)
    grade_rule: str | None = None  # the clinical-grading rule that derived the grade (None: recorded or lab)
    codes: tuple[Code, ...] = field(default=(), compare=False, repr=False)  # every code the AE's records carry
    aesi: tuple[str, ...] = ()  # ids of the adverse events of special interest it is (profiles/safety/aesi.json)
    unexpected_for: tuple[str, ...] = ()  # drugs whose reference safety information does not list it
    conservative_set: frozenset[str] = field(default=CONSERVATIVE, compare=False, repr=False)

    @property
    def id(self) -> str:
        """Deterministic logical id from (patient, test or condition, episode start); an investigator's own id."""
        if self.kind == "recorded" and self.recorded:
            return self.recorded[0].split("/", 1)[1]
        onset = "" if self.kind == "death" else self.onset.isoformat()
        return stable_id("AdverseEvent", self.patient, self.kind, self.key, onset)

    @property
    def table_term(self) -> str:
        """The term the safety table counts the AE under: its CTCAE term, else its own."""
        return self.ctcae.name if self.ctcae else self.term

    @property
    def serious(self) -> bool:
        return self.seriousness.startswith("Serious")

    @property
    def severity(self) -> str | None:
        return severity_of(self.grade)

    @property
    def treatment_related(self) -> bool:
        return any(s.causality in self.related_set for s in self.suspects)

    def related_to(self, drug: str) -> bool:
        return any(s.drug == drug and s.causality in self.related_set for s in self.suspects)

    @property
    def conservative_related(self) -> bool:
        """The sensitivity line: also related when causality is unassessable or conditional for a drug (by
        the investigator, or not yet assessed)."""
        return any(s.causality in self.related_set or s.causality in self.conservative_set for s in self.suspects)

    @property
    def needs_assessment(self) -> bool:
        """A death or serious AE that only the conservative line counts as related: flagged for the investigator."""
        return self.serious and not self.treatment_related and self.conservative_related

    @property
    def susar(self) -> bool:
        """Serious, suspected (related) for a drug whose reference safety information does not list it."""
        return self.serious and any(s.drug in self.unexpected_for and s.causality in self.related_set
                                    for s in self.suspects)

    @property
    def pending(self) -> tuple[str, ...]:
        """Drugs whose causality is unassessable or conditional (investigator) or not yet assessed."""
        return tuple(s.drug for s in self.suspects if s.causality in self.conservative_set)

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
            "ctcae": self.ctcae.to_dict() if self.ctcae else None,
            "grade_source": self.grade_source,
            "source": self.source,
            "recorded": list(self.recorded),
            "causality_by": {s.drug: s.assessor for s in self.suspects},
            "hospitalisations": list(self.hospitalisations),
            "ae_term": self.table_term,
            "seriousness_text": seriousness_text(self.seriousness),
            "grade_rule": self.grade_rule,
            "conservative_related": self.conservative_related,
            "needs_assessment": self.needs_assessment,
            "causality_pending": list(self.pending),
            "aesi": list(self.aesi),
            "unexpected_for": list(self.unexpected_for),
            "susar": self.susar,
        }
