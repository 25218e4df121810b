"""Small builders for FHIR resources in tests: only the fields a rule reads, valid R4 shapes."""
from __future__ import annotations

import itertools
from typing import Any

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10"
CM = "http://hl7.org/fhir/sid/icd-10-cm"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
CVX = "http://hl7.org/fhir/sid/cvx"
V3I = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CHECKLIST = "https://fhir3t.github.io/fhir/Questionnaire/3t-screening-checklist"

_ids = itertools.count(1)
PID = "p1"


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def cc(code: str, system: str, display: str | None = None) -> dict:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def patient(birth: str | None = "1980-01-01", gender: str | None = "female", pid: str = PID, **extra: Any) -> dict:
    r: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if birth is not None:
        r["birthDate"] = birth
    if gender is not None:
        r["gender"] = gender
    r.update(extra)
    return r


def obs(code: str, date: str | None, system: str = LOINC, status: str = "final", pid: str = PID, **value: Any) -> dict:
    r: dict[str, Any] = {"resourceType": "Observation", "id": _id("obs"), "status": status,
                         "code": cc(code, system), "subject": {"reference": f"Patient/{pid}"}}
    if date is not None:
        r["effectiveDateTime"] = date
    r.update(value)
    return r


def pos(code: str, date: str, **kw: Any) -> dict:
    return obs(code, date, valueCodeableConcept=cc("10828004", SCT, "Positive"), **kw)


def neg(code: str, date: str, **kw: Any) -> dict:
    return obs(code, date, valueCodeableConcept=cc("260385009", SCT, "Negative"), **kw)


def cond(code: str, system: str = CM, clinical: str | None = "active", verification: str | None = "confirmed",
         pid: str = PID, **dates: Any) -> dict:
    r: dict[str, Any] = {"resourceType": "Condition", "id": _id("cond"), "code": cc(code, system),
                         "subject": {"reference": f"Patient/{pid}"}}
    if clinical:
        r["clinicalStatus"] = cc(clinical, "http://terminology.hl7.org/CodeSystem/condition-clinical")
    if verification:
        r["verificationStatus"] = cc(verification, "http://terminology.hl7.org/CodeSystem/condition-ver-status")
    r.update(dates)
    return r


def med(code: str, system: str = RX, status: str = "completed", rtype: str = "MedicationStatement",
        start: str | None = None, end: str | None = None, reason: str | None = None, pid: str = PID, **extra: Any) -> dict:
    r: dict[str, Any] = {"resourceType": rtype, "id": _id("med"), "status": status,
                         "medicationCodeableConcept": cc(code, system), "subject": {"reference": f"Patient/{pid}"}}
    if start or end:
        period = {}
        if start:
            period["start"] = start
        if end:
            period["end"] = end
        r["effectivePeriod"] = period
    if reason:
        sr = cc(reason, SCT)
        r["statusReason"] = sr if rtype == "MedicationRequest" else [sr]
    r.update(extra)
    return r


def checklist(authored: str = "2026-06-10", status: str = "completed", pid: str = PID, **answers: bool) -> dict:
    items = [{"linkId": k.replace("_", "-"), "answer": [{"valueBoolean": v}]} for k, v in answers.items()]
    return {"resourceType": "QuestionnaireResponse", "id": _id("qr"), "status": status, "questionnaire": CHECKLIST,
            "subject": {"reference": f"Patient/{pid}"}, "authored": authored, "item": items}


def immunization(cvx: str, date: str, status: str = "completed", pid: str = PID) -> dict:
    return {"resourceType": "Immunization", "id": _id("imm"), "status": status, "vaccineCode": cc(cvx, CVX),
            "patient": {"reference": f"Patient/{pid}"}, "occurrenceDateTime": date}


def research_subject(study: dict, status: str = "on-study", start: str | None = "2026-01-01", end: str | None = None,
                     pid: str = PID, **extra: Any) -> dict:
    r: dict[str, Any] = {"resourceType": "ResearchSubject", "id": _id("rs"), "status": status, "study": study,
                         "individual": {"reference": f"Patient/{pid}"}}
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    if period:
        r["period"] = period
    r.update(extra)
    return r


def bundle(*resources: dict, btype: str = "collection") -> dict:
    entries = []
    for r in resources:
        e: dict[str, Any] = {"resource": r}
        if "id" in r:
            e["fullUrl"] = f"http://ehr.example.org/fhir/{r['resourceType']}/{r['id']}"
        entries.append(e)
    return {"resourceType": "Bundle", "type": btype, "entry": entries}
