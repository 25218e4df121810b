"""Reading the study team's FHIR records back: screenings (ResearchSubject versions with criterion results, or
a state file's screening rows), contact attempts (Communication), consents (Consent), the subject's status,
number, D1 and progress, and who did what (Provenance).

Pure: FHIR JSON in, small typed facts out. Every value is untrusted (a hand-edited resource, another tool's):
what cannot be read is left out of the facts, never guessed.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from fhir3t.canonical import (
    CS_ENROLMENT_ACTION,
    CS_ENROLMENT_REASON,
    EXT_CRITERION_RESULT,
    EXT_PROGRESS,
    ID_SUBJECT_NUMBER,
    USER_SYSTEM,
)
from fhir3t.dates import parse_date
from fhir3t.enrolment.reasons import CONTACT_NOT_DONE_SYSTEM, MEDIUM_SYSTEM, medium_of
from fhir3t.enrolment.status import SCREENING_STATUSES, Status, parse
from fhir3t.jsonshape import child, child_text, items, objs, text
from fhir3t.logic import MET, NOT_MET, UNKNOWN

#: ResearchSubject.progress.subjectState (R5 research-subject-state: the same codes as R4's statuses)
STATE_SYSTEM = "http://hl7.org/fhir/research-subject-state"
#: R5 research-subject-progress: a progress entry is a change of state
PROGRESS_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/research-subject-progress"


def day_of(value: object) -> date | None:
    """The calendar day a FHIR date, dateTime or instant names as written (None: not a full, readable day)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        parse_date(value)
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class Criterion:
    id: str
    kind: str  # inclusion | exclusion
    result: str  # met | not-met | unknown
    review: bool = False  # decided by the study team (the screening checklist)
    reason: str = ""

    @property
    def rules_out(self) -> bool:
        return (self.kind, self.result) in (("inclusion", NOT_MET), ("exclusion", MET))

    @property
    def passes(self) -> bool:
        return self.result == (MET if self.kind == "inclusion" else NOT_MET)


def status_of(criteria: Sequence[Criterion]) -> str:
    """The screening status the results give (the rule of criteria.model.status_of, on recorded results)."""
    if any(c.rules_out for c in criteria):
        return Status.INELIGIBLE.value
    if criteria and all(c.passes for c in criteria):
        return Status.ELIGIBLE.value
    return Status.CANDIDATE.value


@dataclass(frozen=True)
class Screening:
    """One recorded screening of a patient."""

    patient: str  # Patient/<id>
    at: str  # when it was recorded (an instant as written: lastUpdated, or the run's time)
    status: str  # eligible | ineligible | candidate
    criteria: tuple[Criterion, ...]
    as_of: date | None = None
    display_id: str | None = None
    run: str = ""  # the run it belongs to (state file), or the subject version (server)

    @property
    def day(self) -> date | None:
        """The screening's day: the day it screened as of (where recorded), else the day it was recorded."""
        return self.as_of or day_of(self.at)

    @property
    def failing(self) -> list[str]:
        return [c.id for c in self.criteria if c.rules_out]

    @property
    def unknown(self) -> list[str]:
        return [c.id for c in self.criteria if c.result == UNKNOWN]

    @property
    def checklist_open(self) -> list[str]:
        """Checklist criteria (decided by the team) that do not pass yet."""
        return [c.id for c in self.criteria if c.review and not c.passes]

    def changes(self, before: Screening | None) -> list[tuple[str, str, str]]:
        """(criterion, was, now) for every criterion whose result differs from `before` (all, when new)."""
        if before is None:
            return []
        was = {c.id: c.result for c in before.criteria}
        return [(c.id, was.get(c.id, ""), c.result) for c in self.criteria if was.get(c.id) != c.result]


def _criteria_of_extensions(res: dict) -> tuple[Criterion, ...]:
    out = []
    for ext in objs(res.get("extension")):
        if ext.get("url") != EXT_CRITERION_RESULT:
            continue
        parts = {text(p.get("url")): p for p in objs(ext.get("extension"))}
        cid = child_text(parts.get("id"), "valueString")
        kind = child_text(parts.get("kind"), "valueCode")
        result = child_text(parts.get("result"), "valueCode")
        if not cid or kind not in ("inclusion", "exclusion") or result not in (MET, NOT_MET, UNKNOWN):
            continue
        review = parts.get("requiresReview", {}).get("valueBoolean") is True
        out.append(Criterion(cid, kind, result, review, child_text(parts.get("reason"), "valueString") or ""))
    return tuple(out)


def screening_of_subject(res: dict, at: str | None = None) -> Screening | None:
    """A ResearchSubject version the screening push wrote, as a screening (None: a version in the team's status,
    which carries the results of an earlier screening, or one without criterion results)."""
    patient = child_text(child(res, "individual"), "reference")
    criteria = _criteria_of_extensions(res)
    status = res.get("status")
    if not patient or not criteria or parse(status) not in SCREENING_STATUSES:
        return None
    shown = status if status != Status.POTENTIAL_CANDIDATE else status_of(criteria)
    when = at or child_text(child(res, "meta"), "lastUpdated") or ""
    version = child_text(child(res, "meta"), "versionId") or ""
    as_of = next((p.start for p in reversed(progress_of(res)) if p.state == status), None)
    return Screening(patient, when, str(shown), criteria, as_of, run=f"ResearchSubject/{res.get('id')}/_history/{version}")


def screening_of_result(result: dict, at: str, run: str = "") -> Screening | None:
    """A screening result as fhir3t writes it (the JSON contract) as a screening."""
    patient, status = text(result.get("patient")), text(result.get("status"))
    if not patient or status not in (Status.ELIGIBLE, Status.INELIGIBLE, Status.CANDIDATE):
        return None
    criteria = tuple(Criterion(str(c.get("id")), str(c.get("kind")), str(c.get("result")), c.get("requires_review") is True,
                               text(c.get("reason")) or "")
                     for c in objs(result.get("criteria")) if text(c.get("id")))
    as_of = day_of(result.get("as_of"))
    return Screening(patient, at, status, criteria, as_of, text(result.get("display_id")), run)


# ---- the team's records ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    state: str | None
    reason: str | None
    start: date | None
    end: date | None


@dataclass(frozen=True)
class SubjectFacts:
    """What the current ResearchSubject says."""

    id: str
    version: str | None
    status: object  # as written
    patient: str
    number: str | None
    d1: date | None  # period.start
    end: date | None  # period.end
    consent: str | None  # Consent/<id> it names
    progress: tuple[Progress, ...] = ()

    @property
    def reason(self) -> str | None:
        """The reason of the latest progress entry that gives one (why not enrolled, why withdrawn)."""
        return next((p.reason for p in reversed(self.progress) if p.reason), None)


def subject_number(res: dict) -> str | None:
    for ident in objs(res.get("identifier")):
        if ident.get("system") == ID_SUBJECT_NUMBER and text(ident.get("value")):
            return str(ident["value"]).strip()
    return None


def _code(part: object) -> str | None:
    """The first code of a sub-extension's valueCodeableConcept."""
    return next((text(c.get("code")) for c in objs(child(part, "valueCodeableConcept").get("coding"))
                 if text(c.get("code"))), None)


def progress_of(res: dict) -> tuple[Progress, ...]:
    out = []
    for ext in objs(res.get("extension")):
        if ext.get("url") != EXT_PROGRESS:
            continue
        parts = {text(p.get("url")): p for p in objs(ext.get("extension"))}
        out.append(Progress(_code(parts.get("subjectState")), _code(parts.get("reason")),
                            day_of(child_text(parts.get("startDate"), "valueDateTime")),
                            day_of(child_text(parts.get("endDate"), "valueDateTime"))))
    return tuple(out)


def subject_facts(res: dict) -> SubjectFacts | None:
    rid, patient = text(res.get("id")), child_text(child(res, "individual"), "reference")
    if not rid or not patient:
        return None
    period = child(res, "period")
    consent = child_text(child(res, "consent"), "reference")
    return SubjectFacts(rid, child_text(child(res, "meta"), "versionId"), res.get("status"), patient, subject_number(res),
                        day_of(period.get("start")), day_of(period.get("end")),
                        "/".join(consent.rstrip("/").split("/")[-2:]) if consent else None, progress_of(res))


@dataclass(frozen=True)
class Contact:
    id: str
    day: date | None
    done: bool
    reason: str | None  # why not done
    medium: str | None  # the coordinator's word (phone, in-person, ...)
    note: str | None


def is_team_record(res: dict, step: str) -> bool:
    """Written by fhir3t's enrolment workflow for this step (its category carries the step's code)."""
    return any(c.get("system") == CS_ENROLMENT_ACTION and c.get("code") == step
               for cat in objs(res.get("category")) for c in objs(cat.get("coding")))


def contact_of(res: dict) -> Contact | None:
    rid = text(res.get("id"))
    if res.get("resourceType") != "Communication" or not rid:
        return None
    reason = next((text(c.get("code")) for c in objs(child(res, "statusReason").get("coding"))
                   if c.get("system") == CONTACT_NOT_DONE_SYSTEM), None)
    medium = next((medium_of(str(c.get("code"))) for m in objs(res.get("medium")) for c in objs(m.get("coding"))
                   if c.get("system") == MEDIUM_SYSTEM), None)
    note = next((text(n.get("text")) for n in objs(res.get("note")) if text(n.get("text"))), None)
    return Contact(rid, day_of(res.get("sent")), res.get("status") == "completed", reason, medium, note)


@dataclass(frozen=True)
class ConsentFacts:
    id: str
    day: date | None
    active: bool
    form: str | None


def consent_of(res: dict) -> ConsentFacts | None:
    rid = text(res.get("id"))
    if res.get("resourceType") != "Consent" or not rid:
        return None
    form = next((text(p.get("uri")) for p in objs(res.get("policy")) if text(p.get("uri"))), None)
    return ConsentFacts(rid, day_of(res.get("dateTime")), res.get("status") == "active", form_version(form))


#: Consent.policy.uri of the consent form fhir3t records: this prefix, then the form's version
FORM_PREFIX = "urn:fhir3t:consent-form:"


def form_version(uri: str | None) -> str | None:
    return uri[len(FORM_PREFIX):] if uri and uri.startswith(FORM_PREFIX) else uri


@dataclass(frozen=True)
class Act:
    """A Provenance of the team: who did which step, when, and the override reason it records."""

    targets: tuple[str, ...]
    who: str | None
    recorded: str
    day: date | None  # when it happened (occurredDateTime), else recorded
    step: str | None
    override: str | None


def act_of(res: dict) -> Act | None:
    if res.get("resourceType") != "Provenance":
        return None
    step = next((text(c.get("code")) for c in objs(child(res, "activity").get("coding"))
                 if c.get("system") == CS_ENROLMENT_ACTION), None)
    who = None
    for a in objs(res.get("agent")):
        w = child(a, "who")
        ident = child(w, "identifier")
        if ident.get("system") == USER_SYSTEM or (w.get("reference") and "Device" not in str(w.get("reference"))):
            who = text(w.get("display")) or text(ident.get("value")) or text(w.get("reference"))
            break
    override = next((text(r.get("text")) for r in objs(res.get("reason")) if any(
        c.get("system") == CS_ENROLMENT_REASON and c.get("code") == "override" for c in objs(r.get("coding")))), None)
    targets = tuple(t for t in (child_text(x, "reference") for x in items(res.get("target"))) if t)
    recorded = text(res.get("recorded")) or ""
    return Act(targets, who, recorded, day_of(res.get("occurredDateTime")) or day_of(recorded), step, override)


@dataclass
class PatientRecords:
    """Everything the workflow knows of one patient (what a timeline and a log row are made of)."""

    patient: str
    display_id: str | None = None
    subject: SubjectFacts | None = None
    screenings: list[Screening] = field(default_factory=list)  # oldest first
    contacts: list[Contact] = field(default_factory=list)
    consents: list[ConsentFacts] = field(default_factory=list)
    acts: list[Act] = field(default_factory=list)

    @property
    def latest(self) -> Screening | None:
        return self.screenings[-1] if self.screenings else None

    def act_for(self, ref: str, step: str | None = None) -> Act | None:
        """The Provenance naming `ref` (for `step`), the latest one."""
        found = [a for a in self.acts if ref in a.targets and (step is None or a.step == step)]
        return found[-1] if found else None


def sorted_screenings(items_: Iterable[Screening]) -> list[Screening]:
    return sorted(items_, key=lambda s: s.at)


__all__ = ["FORM_PREFIX", "PROGRESS_TYPE_SYSTEM", "STATE_SYSTEM", "Act", "ConsentFacts", "Contact", "Criterion",
           "PatientRecords", "Progress", "Screening", "SubjectFacts", "act_of", "consent_of", "contact_of", "day_of",
           "form_version", "is_team_record", "progress_of", "screening_of_result", "screening_of_subject",
           "sorted_screenings", "status_of", "subject_facts", "subject_number"]
