"""FHIR resources for the study team's steps (no I/O; pipeline.enrolment writes them through a store).

- a contact attempt: `Communication` (category: fhir3t's `contact` step; subject and recipient the patient; about
  the ResearchSubject and the ResearchStudy; status `completed`, or `not-done` with an HL7 not-done reason;
  medium; note; sent = the day of the attempt);
- a consent: `Consent` (scope research, status active, dateTime = the day signed, the form's version in
  `policy.uri`, a permit provision naming the ResearchStudy), named by `ResearchSubject.consent`;
- the ResearchSubject's new state: status, period (start = D1, end = the day it ended), the subject number as
  an identifier (ID_SUBJECT_NUMBER), and a progress entry (R5 ResearchSubject.progress as a cross-version
  extension: the state, the coded reason, the day) for every change the team makes;
- a `Provenance` per step: its targets, who did it (the signed-in user, or `--by`) and fhir3t, when it happened
  (occurredDateTime) and was recorded, the step (activity), and the reason of an override.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir3t.canonical import (
    CS_ENROLMENT_ACTION,
    CS_ENROLMENT_REASON,
    EXT_PROGRESS,
    ID_RESEARCH_SUBJECT,
    ID_SUBJECT_NUMBER,
    PROFILE_PROVENANCE,
    SOFTWARE_SYSTEM,
    USER_SYSTEM,
)
from fhir3t.enrolment import Status
from fhir3t.enrolment.reasons import CONTACT_NOT_DONE_SYSTEM, MEDIA, MEDIUM_SYSTEM
from fhir3t.enrolment.records import FORM_PREFIX, PROGRESS_TYPE_SYSTEM, STATE_SYSTEM
from fhir3t.version import __version__

PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
#: LOINC "Patient Consent" (Consent.category), and HL7's consent scope
CONSENT_CATEGORY = {"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}
CONSENT_SCOPE = {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research", "display": "Research"}
#: FHIR types a Provenance agent may reference (a fhirUser of another type is kept as an identifier only)
AGENT_TYPES = ("Practitioner", "PractitionerRole", "RelatedPerson", "Patient", "Device", "Organization")


@dataclass(frozen=True)
class Who:
    """The person who did a step: `id` (a login, a fhirUser reference) and what to show (`name`)."""

    id: str
    name: str | None = None
    #: a FHIR reference to them (the SMART fhirUser: Practitioner/123 or its absolute URL)
    reference: str | None = None

    @property
    def shown(self) -> str:
        return self.name or self.id


def step_coding(step: str) -> dict[str, str]:
    return {"system": CS_ENROLMENT_ACTION, "code": step}


def _who(who: Who) -> dict[str, Any]:
    out: dict[str, Any] = {"identifier": {"system": USER_SYSTEM, "value": who.id}, "display": who.shown}
    if who.reference and who.reference.rstrip("/").split("/")[-2:][0] in AGENT_TYPES:
        out["reference"] = who.reference
    return out


def provenance(rid: str, targets: list[str], who: Who, recorded: str, day: date, step: str,
               override: str | None = None) -> dict[str, Any]:
    """Who did `step` to `targets` on `day` (recorded at `recorded`), with fhir3t as the assembler."""
    out: dict[str, Any] = {
        "resourceType": "Provenance", "id": rid, "meta": {"profile": [PROFILE_PROVENANCE]},
        "target": [{"reference": t} for t in targets],
        "occurredDateTime": day.isoformat(),
        "recorded": recorded,
        "activity": {"coding": [step_coding(step)], "text": step},
        "agent": [
            {"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]}, "who": _who(who)},
            {"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "assembler", "display": "Assembler"}]},
             "who": {"identifier": {"system": SOFTWARE_SYSTEM, "value": f"fhir3t {__version__}"},
                     "display": f"fhir3t {__version__}"}},
        ],
    }
    if override:
        out["reason"] = [{"coding": [{"system": CS_ENROLMENT_REASON, "code": "override"}], "text": override}]
    return out


def communication(rid: str, patient: str, about: list[str], day: date, *, reason: str | None = None,
                  medium: str | None = None, note: str | None = None) -> dict[str, Any]:
    """A contact attempt: completed, or not done with `reason` (an HL7 communication-not-done-reason code)."""
    out: dict[str, Any] = {
        "resourceType": "Communication", "id": rid,
        "status": "not-done" if reason else "completed",
        "category": [{"coding": [step_coding("contact")], "text": "trial recruitment contact"}],
        "subject": {"reference": patient},
        "about": [{"reference": a} for a in about],
        "recipient": [{"reference": patient}],
        "sent": day.isoformat(),
    }
    if reason:
        out["statusReason"] = {"coding": [{"system": CONTACT_NOT_DONE_SYSTEM, "code": reason}]}
    if medium:
        out["medium"] = [{"coding": [{"system": MEDIUM_SYSTEM, "code": MEDIA[medium]}], "text": medium}]
    if note:
        out["note"] = [{"text": note}]
    return out


def consent(rid: str, patient: str, study_ref: str, day: date, form: str, note: str | None = None) -> dict[str, Any]:
    """Informed consent to the study, signed on `day` on consent form version `form`."""
    out: dict[str, Any] = {
        "resourceType": "Consent", "id": rid, "status": "active",
        "scope": {"coding": [CONSENT_SCOPE]},
        "category": [{"coding": [CONSENT_CATEGORY, step_coding("consent")]}],
        "patient": {"reference": patient},
        "dateTime": day.isoformat(),
        "policy": [{"uri": FORM_PREFIX + form}],
        "provision": {"type": "permit", "period": {"start": day.isoformat()},
                      "data": [{"meaning": "related", "reference": {"reference": study_ref}}]},
    }
    if note:
        out["sourceAttachment"] = {"title": note}
    return out


def progress(state: Status, day: date, reason: str | None = None, *, ended: bool = False) -> dict[str, Any]:
    """One R5 ResearchSubject.progress entry (cross-version extension): the state entered on `day`, and why."""
    parts: list[dict[str, Any]] = [
        {"url": "type", "valueCodeableConcept": {"coding": [{"system": PROGRESS_TYPE_SYSTEM, "code": "state"}]}},
        {"url": "subjectState", "valueCodeableConcept": {"coding": [{"system": STATE_SYSTEM, "code": state.value}]}},
    ]
    if reason:
        parts.append({"url": "reason", "valueCodeableConcept": {"coding": [{"system": CS_ENROLMENT_REASON, "code": reason}]}})
    parts.append({"url": "endDate" if ended else "startDate", "valueDateTime": day.isoformat()})
    return {"url": EXT_PROGRESS, "extension": parts}


def new_subject(rid: str, patient: str, study_ref: str, study_value: str) -> dict[str, Any]:
    """A subject the team starts (the patient was never screened by fhir3t): no criterion results, so it does
    not claim fhir3t's screened-subject profile."""
    return {"resourceType": "ResearchSubject", "id": rid,
            "identifier": [{"system": ID_RESEARCH_SUBJECT, "value": rid}],
            "status": Status.SCREENING.value, "study": {"reference": study_ref, "display": study_value},
            "individual": {"reference": patient}}


def subject_after(current: dict[str, Any], status: Status | None, day: date, *, reason: str | None = None,
                  consent_ref: str | None = None, d1: date | None = None, end: date | None = None,
                  number: str | None = None) -> dict[str, Any]:
    """The subject with the team's change applied (a copy; everything else, criterion results included, kept)."""
    out = copy.deepcopy(current)
    out.pop("meta", None)  # versionId and lastUpdated are the store's to set
    if profiled(current):
        out["meta"] = {"profile": list(current["meta"]["profile"])}
    if status is not None:
        out["status"] = status.value
        ext = [e for e in out.get("extension") or [] if isinstance(e, dict)]
        ext.append(progress(status, day, reason, ended=end is not None))
        out["extension"] = ext
    if consent_ref:
        out["consent"] = {"reference": consent_ref}
    if d1 is not None or end is not None:
        period = dict(out.get("period") or {}) if isinstance(out.get("period"), dict) else {}
        if d1 is not None:
            period["start"] = d1.isoformat()
        if end is not None:
            period["end"] = end.isoformat()
        out["period"] = period
    if number:
        idents = [i for i in out.get("identifier") or [] if isinstance(i, dict) and i.get("system") != ID_SUBJECT_NUMBER]
        out["identifier"] = [*idents, {"system": ID_SUBJECT_NUMBER, "value": number}]
    return out


def profiled(res: dict[str, Any]) -> bool:
    """The resource claims a profile (meta.profile)."""
    meta = res.get("meta")
    return isinstance(meta, dict) and isinstance(meta.get("profile"), list) and bool(meta["profile"])


__all__ = ["AGENT_TYPES", "Who", "communication", "consent", "new_subject", "profiled", "progress", "provenance",
           "step_coding", "subject_after"]
