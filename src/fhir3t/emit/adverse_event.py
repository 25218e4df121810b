"""FHIR R4 AdverseEvent resources (and their transaction Bundle) from safety `Finding`s.

Ids are deterministic (uuid5 of patient, test or condition, episode start), written with PUT, so a
re-run updates the same AdverseEvent instead of creating another (R4 has no AdverseEvent
`identifier` search parameter for a conditional update). The ResearchStudy is a conditional create
on its NCT identifier; a Provenance names the run.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from fhir3t.canonical import EXT_CTCAE_GRADE, ID_ADVERSE_EVENT, PROFILE_ADVERSE_EVENT
from fhir3t.emit.bundle import TransactionBuilder
from fhir3t.emit.provenance import provenance
from fhir3t.ids import stable_id, urn
from fhir3t.messages import Msg, table
from fhir3t.safety.findings import CAUSALITY_SYSTEM, Finding

SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
#: what is said of a finding not emitted as an AdverseEvent (a note of `fhir3t safety --emit`)
N = table("safety.emit", {
    "no-patient-id": "{patient}: the Patient has no id, so no AdverseEvent can point at it; not emitted",
    "recorded": "{patient}: {term} on {onset} is recorded by an investigator ({recorded}); fhir3t's copy not emitted",
})

OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
SERIOUSNESS_DISPLAY = {
    "Non-serious": "Non-serious",
    "SeriousResultsInDeath": "Results in death",
    "SeriousIsLifeThreatening": "Is Life-threatening",
    "SeriousResultsInHospitalization": "Requires or prolongs inpatient hospitalization",
}
CAUSALITY_DISPLAY = {
    "Certain": "Certain", "Probably-Likely": "Probably/Likely", "Possible": "Possible",
    "Unlikely": "Unlikely", "Unassessable-Unclassifiable": "Unassessable/Unclassifiable",
}
#: Types R4 allows in AdverseEvent.subjectMedicalHistory.
HISTORY_TYPES = ("Condition", "Observation", "AllergyIntolerance", "FamilyMemberHistory", "Immunization",
                 "Procedure", "Media", "DocumentReference")


def _is_literal(ref: str, types: Iterable[str]) -> bool:
    head, _, tail = ref.partition("/")
    return head in tuple(types) and bool(tail) and "/" not in tail


def _study_identifier(study: dict[str, Any]) -> tuple[str, str]:
    """(system, value) of the ResearchStudy's registry identifier (the first one)."""
    idents = study.get("identifier") or [{}]
    ident = idents[0] if isinstance(idents, list) else idents
    return str(ident.get("system", "")), str(ident.get("value", ""))


def adverse_event(f: Finding, study_ref: str, recorded: str, study_label: str | None = None) -> dict[str, Any]:
    """One AdverseEvent conforming to profiles/StructureDefinition-fhir3t-adverse-event.json."""
    contained: list[dict[str, Any]] = []
    suspects = []
    for s in f.suspects:
        if s.instance:
            instance = {"reference": s.instance, "display": s.drug}
        else:
            mid = f"med-{s.drug}"
            contained.append({"resourceType": "Medication", "id": mid,
                              "code": {"coding": [dict(s.code)], "text": s.drug}})
            instance = {"reference": f"#{mid}", "display": s.drug}
        causality: dict[str, Any] = {"assessment": {"coding": [{"system": CAUSALITY_SYSTEM, "code": s.causality,
                                                                 "display": CAUSALITY_DISPLAY.get(s.causality, s.causality)}],
                                                     "text": f"{s.causality} ({s.drug})"}}
        if s.author is not None:  # an investigator's assessment read back: re-emitted as theirs, not overwritten
            causality["author"] = dict(s.author)
        suspects.append({"instance": instance, "causality": [causality]})
    ae: dict[str, Any] = {"resourceType": "AdverseEvent", "id": f.id, "meta": {"profile": [PROFILE_ADVERSE_EVENT]}}
    if contained:
        ae["contained"] = contained
    if f.grade is not None:
        ae["extension"] = [{"url": EXT_CTCAE_GRADE, "valueInteger": f.grade}]
    ae.update({
        "identifier": {"system": ID_ADVERSE_EVENT, "value": f.id},
        "actuality": "actual",
        "event": f.event,
        "subject": {"reference": f.patient},
        "date": f.onset.isoformat(),
        "recordedDate": recorded,
    })
    if f.kind == "condition":
        conds = [{"reference": e} for e in f.evidence if _is_literal(e, ("Condition",))]
        if conds:
            ae["resultingCondition"] = conds
    ae["seriousness"] = {"coding": [{"system": SERIOUSNESS, "code": f.seriousness,
                                     "display": SERIOUSNESS_DISPLAY.get(f.seriousness, f.seriousness)}]}
    if f.severity:
        ae["severity"] = {"coding": [{"system": SEVERITY, "code": f.severity}]}
    ae["outcome"] = {"coding": [{"system": OUTCOME, "code": f.outcome}]}
    history = [{"reference": e} for e in f.evidence if _is_literal(e, HISTORY_TYPES)]
    if history:
        ae["subjectMedicalHistory"] = history
    ae["study"] = [{"reference": study_ref, **({"display": study_label} if study_label else {})}]
    ae["suspectEntity"] = suspects
    return ae


def safety_bundle(findings: Sequence[Finding], study: dict[str, Any], digest: str,
                  recorded: datetime | None = None) -> tuple[dict[str, Any], list[Msg]]:
    """A transaction Bundle: ResearchStudy (conditional create), one PUT per AdverseEvent, a Provenance.

    `study` is the ResearchStudy resource (fhir3t.emit.screening.research_study); `digest` names the
    safety data the findings came from. Findings of id-less Patients cannot be emitted (noted); AEs an
    investigator recorded are theirs: fhir3t writes no copy of them (noted when fhir3t found the same AE).
    """
    when = (recorded or datetime.now(UTC)).replace(microsecond=0).isoformat()
    tb = TransactionBuilder()
    system, value = _study_identifier(study)
    study_url = tb.create_if_none_exist(study, urn(study["id"]), f"identifier={system}|{value}")
    notes: list[Msg] = []
    targets: list[str] = []
    sources: dict[str, None] = {}
    run = hashlib.sha256(digest.encode())
    for f in findings:
        if not f.patient.startswith("Patient/"):
            notes.append(N["no-patient-id"](patient=f.patient))
            continue
        if f.source != "fhir3t":
            if f.source == "both":
                notes.append(N["recorded"](patient=f.patient, term=f.table_term, onset=f.onset.isoformat(),
                                           recorded=", ".join(f.recorded)))
            continue
        targets.append(tb.put(adverse_event(f, study_url, when, value)))
        for e in f.evidence:
            if _is_literal(e, HISTORY_TYPES):
                sources.setdefault(e, None)
        run.update(f"{f.id}|{f.grade}|{f.outcome}|{f.end}|{','.join(f.evidence)}".encode())
    if targets:
        tb.put(provenance(stable_id("Provenance", "safety", run.hexdigest()), targets, sources, when,
                          f"adverse-event detection for {value} (CTCAE v5.0 labs, new conditions, deaths)",
                          f"urn:fhir3t:safety:sha256:{digest}"))
    return tb.build(), notes
