"""FHIR resources for screening results: ResearchStudy, ResearchSubject, Provenance.

The ResearchSubject carries every criterion's result (id, kind, result, evidence, reason) in the
complex extension documented in profiles/StructureDefinition-criterion-result.json, so the FHIR
record holds the why, not only the verdict.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fhir3t.canonical import (
    EXT_CRITERION_RESULT,
    ID_RESEARCH_SUBJECT,
    PROFILE_RESEARCH_STUDY,
    PROFILE_RESEARCH_SUBJECT,
)
from fhir3t.criteria.load import CriteriaSet
from fhir3t.criteria.model import CriterionResult, ScreeningResult
from fhir3t.emit.bundle import TransactionBuilder
from fhir3t.emit.definition import enrollment_group
from fhir3t.emit.enrolment import progress
from fhir3t.emit.provenance import provenance
from fhir3t.enrolment import Status
from fhir3t.ids import stable_id, urn
from fhir3t.study import Study, load_study


def study_id(criteria: CriteriaSet) -> str:
    return stable_id("ResearchStudy", criteria.study_system, criteria.study_value)


def research_study(criteria: CriteriaSet, study: Study | None = None) -> dict[str, Any]:
    """The trial (from the study profile), with an enrollment Group generated from the criteria."""
    study = study or load_study()
    group = enrollment_group(criteria, f"{criteria.study_value} eligibility ({criteria.id} {criteria.version})")
    return {
        "resourceType": "ResearchStudy",
        "id": study_id(criteria),
        "meta": {"profile": [PROFILE_RESEARCH_STUDY]},
        "contained": [group],
        "identifier": [{"system": criteria.study_system, "value": criteria.study_value}],
        "title": study.title,
        "status": study.status,
        **({"phase": {"coding": [study.phase]}} if study.phase else {}),
        **({"condition": [study.condition]} if study.condition else {}),
        "enrollment": [{"reference": "#enrollment"}],
        **({"sponsor": {"display": study.sponsor}} if study.sponsor else {}),
        **({"site": [{"display": study.site}]} if study.site else {}),
        **({"description": study.summary} if study.summary else {}),
    }


def _criterion_extension(c: CriterionResult) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "id", "valueString": c.id},
        {"url": "kind", "valueCode": c.kind},
        {"url": "result", "valueCode": c.result},
    ]
    parts += [{"url": "evidence", "valueReference": {"reference": e}} for e in c.evidence]
    if c.reason:
        parts.append({"url": "reason", "valueString": c.reason})
    if c.requires_review:
        parts.append({"url": "requiresReview", "valueBoolean": True})
    return {"url": EXT_CRITERION_RESULT, "extension": parts}


def subject_id(criteria: CriteriaSet, patient: str) -> str:
    return stable_id("ResearchSubject", criteria.study_system, criteria.study_value, patient)


def research_subject(result: ScreeningResult, criteria: CriteriaSet, study_ref: str) -> dict[str, Any]:
    rid = subject_id(criteria, result.patient)
    return {
        "resourceType": "ResearchSubject",
        "id": rid,
        "meta": {"profile": [PROFILE_RESEARCH_SUBJECT]},
        # the results, and the screening status as a progress entry dated the day it screened as of (R5
        # ResearchSubject.progress, cross-version): what a timeline and the screening log date a screening by
        "extension": [*(_criterion_extension(c) for c in result.criteria), progress(Status(result.status), result.as_of)],
        "identifier": [{"system": ID_RESEARCH_SUBJECT, "value": rid}],
        "status": result.status,
        "study": {"reference": study_ref, "display": criteria.study_value},
        "individual": {"reference": result.patient},
    }


def screening_bundle(results: Sequence[ScreeningResult], criteria: CriteriaSet,
                     recorded: datetime | None = None, study: Study | None = None) -> tuple[dict[str, Any], list[str]]:
    """A transaction Bundle for a screening run, and notes on results that could not be emitted.

    ResearchStudy: conditional create on its identifier. ResearchSubject: PUT to an id derived from
    (study, patient), so re-sending updates. Provenance: PUT to an id derived from the run's content
    (criteria digest, dates, results), so sending the same Bundle twice leaves one Provenance.
    """
    tb = TransactionBuilder()
    study_res = research_study(criteria, study)
    study_url = tb.create_if_none_exist(study_res, urn(study_res["id"]),
                                        f"identifier={criteria.study_system}|{criteria.study_value}")
    notes: list[str] = []
    targets: list[str] = []
    evidence: dict[str, None] = {}
    run = hashlib.sha256(criteria.digest.encode())
    for r in results:
        if not r.patient.startswith("Patient/"):
            notes.append(f"{r.patient}: the Patient has no id, so no ResearchSubject can point at it; not emitted")
            continue
        subject = research_subject(r, criteria, study_url)
        targets.append(tb.put(subject))
        for c in r.criteria:
            for e in c.evidence:
                if not e.startswith("urn:"):
                    evidence.setdefault(e, None)
        run.update(f"{r.patient}|{r.status}|{r.as_of}|{r.d1}".encode())
        for c in r.criteria:
            run.update(f"|{c.id}={c.result}:{','.join(c.evidence)}".encode())
    when = (recorded or datetime.now(UTC)).replace(microsecond=0).isoformat()
    if targets:
        prov = provenance(stable_id("Provenance", run.hexdigest()), targets, evidence, when,
                          f"screening for {criteria.study_value} against {criteria.id} {criteria.version}",
                          f"urn:fhir3t:criteria:{criteria.id}:{criteria.version}:sha256:{criteria.digest}")
        tb.put(prov)
    return tb.build(), notes
