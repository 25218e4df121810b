"""Builders for safety tests: enrolled subjects, graded labs, run the engine on one Bundle."""
from __future__ import annotations

from datetime import date
from typing import Any

from factory import LOINC, RX, bundle, patient, research_subject
from fhir3t.dates import parse_day
from fhir3t.errors import Problems
from fhir3t.safety import SafetyDefinition, SafetyEngine, SubjectOutcome
from fhir3t.sources.grouping import SharedIndex, group_documents

STUDY = {"identifier": {"system": "http://clinicaltrials.gov", "value": "NCT06438679"}}
D1 = "2026-01-05"
AS_OF = "2026-06-30"
_n = [0]


def enrolled(start: str | None = D1, status: str = "on-study", end: str | None = None, pid: str = "p1") -> dict:
    return research_subject(STUDY, status=status, start=start, end=end, pid=pid)


def lab(code: str, day: str | None, value: Any, unit: str | None = "U/L", low: Any = None, high: Any = None,
        pid: str = "p1", ucum: bool = True, **extra: Any) -> dict:
    _n[0] += 1
    q: dict[str, Any] = {"value": value}
    if unit is not None:
        q["unit"] = unit
        if ucum:
            q.update(system="http://unitsofmeasure.org", code=unit)
    r: dict[str, Any] = {"resourceType": "Observation", "id": f"lab-{_n[0]}", "status": "final",
                         "code": {"coding": [{"system": LOINC, "code": code}]},
                         "subject": {"reference": f"Patient/{pid}"}, "valueQuantity": q}
    if day is not None:
        r["effectiveDateTime"] = day
    rr = {}
    if low is not None:
        rr["low"] = {"value": low, "unit": unit} if unit else {"value": low}
    if high is not None:
        rr["high"] = {"value": high, "unit": unit} if unit else {"value": high}
    if rr:
        r["referenceRange"] = [rr]
    r.update(extra)
    return r


def drug(name: str, pid: str = "p1", rtype: str = "MedicationStatement") -> dict:
    codes = {"tofacitinib": "1357536", "tacrolimus": "42316", "thalidomide": "10432"}
    _n[0] += 1
    r = {"resourceType": rtype, "id": f"{name}-{_n[0]}", "status": "active",
         "medicationCodeableConcept": {"coding": [{"system": RX, "code": codes[name]}]},
         "subject": {"reference": f"Patient/{pid}"}}
    if rtype == "MedicationRequest":
        r.update(intent="order", authoredOn=D1)
    else:
        r["effectivePeriod"] = {"start": D1}
    return r


_definition: list[SafetyDefinition] = []


def safety_definition() -> SafetyDefinition:
    """The study's safety rules, loaded once for the test session (shared, never changed)."""
    if not _definition:
        _definition.append(SafetyDefinition.load())
    return _definition[0]


def safety_engine(problems: Problems | None = None) -> SafetyEngine:
    """A run of its own over the shared definition."""
    return SafetyEngine.for_run(safety_definition(), problems if problems is not None else Problems())


def run(*resources: dict, as_of: str = AS_OF, d1: dict[str, date] | None = None, problems: Problems | None = None,
        with_subject: bool = True, pat: dict | None = None, definition: SafetyDefinition | None = None
        ) -> list[SubjectOutcome]:
    eng = SafetyEngine.for_run(definition or safety_definition(), problems if problems is not None else Problems())
    res = list(resources)
    if with_subject and not any(r["resourceType"] == "ResearchSubject" for r in res):
        res.append(enrolled())
    if not any(r["resourceType"] == "Patient" for r in res):
        res.insert(0, pat or patient())
    shared = SharedIndex()
    records = group_documents([("test.json", bundle(*res))], eng.problems, shared)
    return list(eng.analyse_raw(records, parse_day(as_of), d1, shared))


def one(*resources: dict, **kw: Any) -> SubjectOutcome:
    outs = run(*resources, **kw)
    assert len(outs) == 1, outs
    return outs[0]
