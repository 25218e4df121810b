"""The study team's workflow as tasks over one store (state.Store: the FHIR server, or the SQLite state file):

- `act(definition, run, store, step)`: one step (contact, consent, enrol, decline, withdraw) through the
  enrolment state machine, written as one transaction with a Provenance naming who and when; a step the
  state machine forbids, an enrolment the latest screening does not allow (unless overridden with a reason),
  or a record changed since it was read is refused in one sentence and nothing is written;
- `patient_records(definition, run, store, patient)`: everything known of one patient (the timeline's input);
- `log(definition, run, store)`: the screening and enrolment log, with the flow counts;
- `record_screening(definition, run, state, results)`: a screening run kept in the state file (the results,
  and the ResearchSubjects the push policy allows: a team status is never overwritten);
- `push_state(definition, run, state, client)`: the state file's resources sent to a FHIR server (PUT to their
  ids and a conditional create of the study: sent twice, nothing duplicated; a subject the server holds in
  another team status, or a subject number the server gives another subject, is not overwritten).
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from fhir3t.canonical import EXT_LAST_SUBJECT_NUMBER, ID_SUBJECT_NUMBER
from fhir3t.criteria.model import ScreeningResult
from fhir3t.emit.enrolment import Who, communication, consent, new_subject, profiled, provenance, subject_after
from fhir3t.emit.screening import research_study, screening_bundle, study_id, subject_id
from fhir3t.enrolment import Action, Existing, IllegalTransition, Status, Verdict, decide, is_teams, transition
from fhir3t.enrolment.log import Row, build
from fhir3t.enrolment.numbers import SubjectNumbers
from fhir3t.enrolment.reasons import CONTACT_NOT_DONE, MEDIA, NOT_ENROLLED_REASONS, WITHDRAWAL_REASONS, label
from fhir3t.enrolment.records import (
    PatientRecords,
    Screening,
    act_of,
    consent_of,
    contact_of,
    is_team_record,
    subject_facts,
)
from fhir3t.enrolment.refused import Conflict, Refused
from fhir3t.errors import UsageError
from fhir3t.jsonshape import child, child_text, objs, text
from fhir3t.messages import Message, Msg, many, render
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.run import Run
from fhir3t.state.base import CHANGED, Entry, Store, Versioned, Written, relink
from fhir3t.state.sqlite import StateFile, now_instant

if TYPE_CHECKING:
    from fhir3t.transport.http import FhirClient

log = logging.getLogger("fhir3t.enrolment")

# ---- what a person reads ------------------------------------------------------------------------------------
NEEDS_REASON = Message("enrol.needs-reason", "{action} needs --reason, one of {codes}")
BAD_REASON = Message("enrol.bad-reason", "{action} --reason {reason} is not one of {codes}")
BAD_MEDIUM = Message("enrol.bad-medium", "contact --medium {medium} is not one of {codes}")
NEEDS_D1 = Message("enrol.needs-d1", "enrol needs --d1 DATE, the day of the first dose")
END_BEFORE_D1 = Message("enrol.end-before-d1", "the withdrawal day is before the subject's D1: give --date on or after D1")
NO_SCREENING = Message("enrol.no-screening", "the patient has no recorded screening, so fhir3t cannot tell that they are "
                                             "eligible: not enrolled; screen them first, or enrol with --override REASON")
NOT_ELIGIBLE = Message("enrol.not-eligible", "the patient's latest screening is {status}{why}: not enrolled; enrol with "
                                             "--override REASON if the investigator decided otherwise")
WHY_FAILING = Message("enrol.why-failing", ", not met: {ids}")
WHY_UNKNOWN = Message("enrol.why-unknown", ", unresolved: {ids}")
CHECKLIST_OPEN = Message("enrol.checklist-open", "the patient's screening checklist is not complete ({ids}): not enrolled; "
                                                 "complete it and screen again, or enrol with --override REASON")
DONE_CONTACT = Message("enrol.done-contact", "{patient}: contact attempt recorded ({how})")
DONE_CONSENT = Message("enrol.done-consent", "{patient}: consent recorded (form {form}); status {status}")
DONE_ENROL = Message("enrol.done-enrol", "{patient}: enrolled as {number}, D1 {d1}; status {status}")
DONE_DECLINE = Message("enrol.done-decline", "{patient}: not enrolled ({reason}); status {status}")
DONE_WITHDRAW = Message("enrol.done-withdraw", "{patient}: {status} on {day} ({reason})")
DONE_STATUS = Message("enrol.done-status", "{patient}: {action} recorded; status {status}")
REACHED = Message("enrol.reached", "reached")
NOT_REACHED = Message("enrol.not-reached", "not reached: {reason}")
OVERRIDDEN = Message("enrol.overridden", "enrolled against the latest screening ({why}); override: {reason}")
NUMBER_TAKEN = Message("enrol.number-taken", "subject number {number} is given to another subject on {where}: "
                                             "ResearchSubject/{subject} not pushed; correct one of them")
TEAM_DIFFERS = Message("enrol.team-differs", "ResearchSubject/{subject} is {theirs} on {where} but {ours} in the state "
                                             "file: not overwritten; record the step where it is missing by hand")


# ---- one step -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """What the coordinator asks for one patient."""

    patient: str  # Patient/<id>
    action: Action
    day: date  # when it happened (the contact, the signature, the decision)
    who: Who
    reason: str | None = None  # decline / withdraw: a coded reason; contact: why not reached
    note: str | None = None
    d1: date | None = None  # enrol
    status: Status | None = None  # the other status the action may lead to (on-study-intervention, off-study)
    override: str | None = None  # enrol against the latest screening: why
    form: str | None = None  # consent form version
    medium: str | None = None  # contact: phone, in-person, ...
    expected: str | None = None  # the subject's version the person saw (the form's If-Match); None: as read now
    shown: str | None = None  # how messages name the patient (an MRN); default: the reference


@dataclass(frozen=True)
class Done:
    """What a step wrote."""

    step: Step
    before: Status | None
    after: Status | None
    subject: str | None
    version: str | None
    number: str | None
    written: tuple[Written, ...]
    message: Msg
    #: the enrolment went against the latest screening: why it did not allow it, and the override's reason
    overridden: Msg | None = None


@dataclass(frozen=True)
class Settings:
    """The site's enrolment settings (study.json `enrolment`, config [enrolment])."""

    numbers: SubjectNumbers
    consent_form: str

    @classmethod
    def of(cls, definition: Definition, subject_number: str | None = None, consent_form: str | None = None) -> Settings:
        return cls(SubjectNumbers(subject_number or definition.study.subject_number),
                   consent_form or definition.study.consent_form)


def _codes(codes: Sequence[str]) -> str:
    return " | ".join(codes)


def check_step(step: Step) -> None:
    """Usage errors of a step, before anything is read (one sentence each)."""
    a = step.action.value
    if step.action in (Action.DECLINE, Action.WITHDRAW):
        codes = NOT_ENROLLED_REASONS if step.action is Action.DECLINE else WITHDRAWAL_REASONS
        if not step.reason:
            raise UsageError(render(NEEDS_REASON(action=a, codes=_codes(codes))))
        if step.reason not in codes:
            raise UsageError(render(BAD_REASON(action=a, reason=step.reason, codes=_codes(codes))))
    if step.action is Action.CONTACT:
        if step.reason and step.reason not in CONTACT_NOT_DONE:
            raise UsageError(render(BAD_REASON(action=a, reason=step.reason, codes=_codes(CONTACT_NOT_DONE))))
        if step.medium and step.medium not in MEDIA:
            raise UsageError(render(BAD_MEDIUM(medium=step.medium, codes=_codes(list(MEDIA)))))
    if step.action is Action.ENROL and step.d1 is None:
        raise UsageError(render(NEEDS_D1()))


def _eligibility(step: Step, latest: Screening | None) -> Msg | None:
    """Why the latest screening does not allow enrolling (None: it does)."""
    if latest is None:
        return NO_SCREENING()
    if latest.status == Status.ELIGIBLE:
        return None
    open_items = latest.checklist_open
    if not latest.failing and open_items and set(latest.unknown) <= set(open_items):
        return CHECKLIST_OPEN(ids=many(open_items, "and"))
    why = WHY_FAILING(ids=many(latest.failing)) if latest.failing else WHY_UNKNOWN(ids=many(latest.unknown))
    return NOT_ELIGIBLE(status=latest.status, why=why)


@dataclass
class _Plan:
    entries: list[Entry] = field(default_factory=list)
    subject: dict[str, Any] | None = None
    number: str | None = None


def act(definition: Definition, run: Run, store: Store, step: Step, *, settings: Settings | None = None,
        screen_now: Callable[[Step], Screening | None] | None = None, recorded: str | None = None) -> Done:
    """Record one step (see the module doc). `screen_now`: screens the patient now for an enrolment (a server,
    where the record is); without it the latest recorded screening decides."""
    check_step(step)
    settings = settings or Settings.of(definition)
    study_sys, study_val = definition.study.system, definition.study.value
    study = store.study(study_sys, study_val)
    sid = subject_id(definition.criteria, step.patient)
    study_ref = study.ref if study is not None else f"ResearchStudy/{study_id(definition.criteria)}"
    current = store.subject(step.patient, sid, study_ref)
    if step.expected is not None and (current.version if current else "0") != step.expected:
        # the person acted on what they saw at another version: someone else changed it since (said before the
        # state machine's verdict on the new status, which they have not seen)
        log.info("enrolment step refused", extra={"fields": {"event": "enrolment-refused", "action": step.action.value,
                                                             "why": "version"}})
        raise Conflict(CHANGED(ref=current.ref if current else f"ResearchSubject/{sid}", expected=step.expected,
                               now=current.version if current else "0"))
    try:
        t = transition(step.action, current.resource.get("status") if current else None, exists=current is not None,
                       to=step.status)
    except IllegalTransition as exc:
        log.info("enrolment step refused", extra={"fields": {"event": "enrolment-refused", "action": step.action.value,
                                                             "why": "transition"}})
        raise exc from None
    shown = step.shown or step.patient
    recorded = recorded or now_instant()
    plan = _Plan()
    # the study: found, or created with the step (a conditional create, as the screening push does)
    study_url = study_ref
    if study is None:
        res = research_study(definition.criteria, definition.study)
        study_url = f"urn:uuid:{res['id']}"
        plan.entries.append(Entry(res, if_none_exist=f"identifier={study_sys}|{study_val}", full_url=study_url))
    expected = step.expected if step.expected is not None else (current.version if current else None)
    base = current.resource if current is not None else None
    targets: list[str] = []
    override_used: str | None = None
    overridden: Msg | None = None
    if step.action is Action.CONTACT:
        about = [x for x in (current.ref if current else None, study_url) if x]
        rid = str(uuid.uuid4())
        plan.entries.append(Entry(communication(rid, step.patient, about, step.day, reason=step.reason, medium=step.medium,
                                                note=step.note)))
        targets.append(f"Communication/{rid}")
        if current is not None:
            targets.append(current.ref)
        how: Msg = NOT_REACHED(reason=label(step.reason)) if step.reason else REACHED()
        message = DONE_CONTACT(patient=shown, how=how)
    else:
        if base is None:
            base = new_subject(sid, step.patient, study_url, study_val)
        after = t.after
        assert after is not None
        kw: dict[str, Any] = {}
        if step.action is Action.CONSENT:
            cid = str(uuid.uuid4())
            form = step.form or settings.consent_form
            plan.entries.append(Entry(consent(cid, step.patient, study_url, step.day, form, step.note)))
            targets.append(f"Consent/{cid}")
            kw["consent_ref"] = f"Consent/{cid}"
            message = DONE_CONSENT(patient=shown, form=form, status=after.value)
        elif step.action is Action.ENROL:
            latest = screen_now(step) if screen_now is not None else _latest(store, study_ref, step.patient)
            why = _eligibility(step, latest)
            if why is not None:
                if not step.override:
                    log.info("enrolment step refused", extra={"fields": {"event": "enrolment-refused", "action": "enrol",
                                                                         "why": "screening"}})
                    raise Refused(why)
                override_used = step.override
                overridden = OVERRIDDEN(why=why, reason=step.override)
                log.warning("enrolment against the latest screening (override given)",
                            extra={"fields": {"event": "enrolment-override", "subject": sid}})
            number = subject_number_of(base) or _next_number(store, study, study_ref, settings.numbers)
            plan.number = number
            kw.update(d1=step.d1, number=number)
            if study is not None:  # the study's version serialises enrolments: one number, one subject
                bumped = {**study.resource, "extension": [
                    *[e for e in objs(study.resource.get("extension")) if e.get("url") != EXT_LAST_SUBJECT_NUMBER],
                    {"url": EXT_LAST_SUBJECT_NUMBER, "valueString": number}]}
                bumped.pop("meta", None)
                plan.entries.append(Entry(bumped, if_match=study.version))
            message = DONE_ENROL(patient=shown, number=number, d1=step.d1.isoformat() if step.d1 else "-",
                                 status=after.value)
        elif step.action is Action.DECLINE:
            message = DONE_DECLINE(patient=shown, reason=label(step.reason or "other"), status=after.value)
        elif step.action is Action.WITHDRAW:
            facts = subject_facts(base)
            d1 = facts.d1 if facts is not None else None
            if d1 is not None and step.day < d1:
                raise UsageError(render(END_BEFORE_D1()))
            kw["end"] = step.day
            message = DONE_WITHDRAW(patient=shown, status=after.value, day=step.day.isoformat(),
                                    reason=label(step.reason or "other"))
        else:
            message = DONE_STATUS(patient=shown, action=step.action.value, status=after.value)
        reason = step.reason if step.action in (Action.DECLINE, Action.WITHDRAW) else None
        subject = subject_after(base, after, step.day, reason=reason, **kw)
        plan.subject = subject
        plan.entries.append(Entry(subject, if_match=expected if current is not None else None))
        targets.insert(0, f"ResearchSubject/{sid if current is None else current.resource['id']}")
    pid = str(uuid.uuid4())
    plan.entries.append(Entry(provenance(pid, targets, step.who, recorded, step.day, step.action.value, override_used)))
    written = store.commit(plan.entries)
    subject_written = next((w for w in written if w.ref.startswith("ResearchSubject/")), None)
    log.info("enrolment step recorded", extra={"fields": {
        "event": "enrolment-step", "action": step.action.value, "before": t.before.value if t.before else None,
        "after": t.after.value if t.after else None, "subject": sid}})
    return Done(step, t.before, t.after, subject_written.ref if subject_written else (current.ref if current else None),
                subject_written.version if subject_written else (current.version if current else None), plan.number,
                tuple(written), message, overridden)


def server_screener(definition: Definition, client: FhirClient) -> Callable[[Step], Screening | None]:
    """An enrolment's screening on a FHIR server: the patient screened there now, as of the enrolment's day with the
    D1 given (what a nightly run would say with that D1: washout windows end on D1). The state file holds no record,
    so there the latest recorded screening decides."""
    from fhir3t.enrolment.records import screening_of_result
    from fhir3t.pipeline.base import ServerQuery
    from fhir3t.pipeline.screening import screen_server

    def screen(step: Step) -> Screening | None:
        r = Run.start(definition, as_of=step.day, d1=step.d1)
        found = next(iter(screen_server(definition, r, client, ServerQuery((step.patient.removeprefix("Patient/"),)))),
                     None)
        return screening_of_result(found.to_dict(), r.as_of.isoformat()) if found is not None else None
    return screen


def subject_number_of(res: dict) -> str | None:
    return next((str(i["value"]) for i in objs(res.get("identifier"))
                 if i.get("system") == ID_SUBJECT_NUMBER and text(i.get("value"))), None)


def _next_number(store: Store, study: Versioned | None, study_ref: str, numbers: SubjectNumbers) -> str:
    given: list[object] = [subject_number_of(v.resource) for v in store.subjects(study_ref)]
    if study is not None:
        given += [e.get("valueString") for e in objs(study.resource.get("extension")) if e.get("url") == EXT_LAST_SUBJECT_NUMBER]
    return numbers.next(given)


def _latest(store: Store, study_ref: str, patient: str) -> Screening | None:
    found = store.screenings(study_ref, patient)
    return found[-1] if found else None


# ---- reading ------------------------------------------------------------------------------------------------
def _study_ref(definition: Definition, store: Store) -> str:
    study = store.study(definition.study.system, definition.study.value)
    return study.ref if study is not None else f"ResearchStudy/{study_id(definition.criteria)}"


def _fill(records: PatientRecords, team: Sequence[dict]) -> None:
    for res in team:
        rtype = res.get("resourceType")
        if rtype == "Communication" and is_team_record(res, "contact"):
            c = contact_of(res)
            if c is not None:
                records.contacts.append(c)
        elif rtype == "Consent" and is_team_record(res, "consent"):
            k = consent_of(res)
            if k is not None:
                records.consents.append(k)
        elif rtype == "Provenance":
            a = act_of(res)
            if a is not None and a.step is not None:
                records.acts.append(a)
    records.contacts.sort(key=lambda c: c.day or date.min)
    records.consents.sort(key=lambda c: c.day or date.min)
    records.acts.sort(key=lambda a: a.recorded)


def patient_records(definition: Definition, run: Run, store: Store, patient: str) -> PatientRecords:
    """Everything the store holds of one patient's screening and enrolment."""
    study_ref = _study_ref(definition, store)
    current = store.subject(patient, subject_id(definition.criteria, patient), study_ref)
    out = PatientRecords(patient)
    out.subject = subject_facts(current.resource) if current else None
    out.screenings = store.screenings(study_ref, patient)
    _fill(out, store.team_records(study_ref, patient, current.ref if current else None))
    out.display_id = store.display_ids([patient]).get(patient) or (out.latest.display_id if out.latest else None)
    return out


def all_records(definition: Definition, run: Run, store: Store) -> list[PatientRecords]:
    """Every patient the store knows for the study: screened, or with a subject or team records."""
    study_ref = _study_ref(definition, store)
    by: dict[str, PatientRecords] = {}

    def rec(p: str) -> PatientRecords:
        return by.setdefault(p, PatientRecords(p))
    for s in store.screenings(study_ref):
        rec(s.patient).screenings.append(s)
    for v in store.subjects(study_ref):
        facts = subject_facts(v.resource)
        if facts is not None and facts.patient.startswith("Patient/"):
            rec(facts.patient).subject = facts
    team: dict[str, list[dict]] = {}
    for res in store.team_records(study_ref):
        p = child_text(child(res, "subject" if res.get("resourceType") == "Communication" else "patient"), "reference")
        if p and p in by:
            team.setdefault(p, []).append(res)
        elif p and p.startswith("Patient/"):
            team.setdefault(p, []).append(res)
            rec(p)
    for p, r in by.items():
        _fill(r, team.get(p, []))
    shown = store.display_ids(by)
    for p, r in by.items():
        r.display_id = shown.get(p) or next((s.display_id for s in reversed(r.screenings) if s.display_id), None)
    return list(by.values())


def log_rows(definition: Definition, run: Run, store: Store, since: date | None = None) -> tuple[list[Row], dict[str, Any]]:
    """The screening and enrolment log (rows and flow), see enrolment.log."""
    return build(all_records(definition, run, store), since, [c.id for c in definition.criteria.criteria])


def changed_since_last(records: Sequence[PatientRecords]) -> list[PatientRecords]:
    """Patients whose latest screening is new (their first) or differs from the one before; the latest run
    first (what the coordinator's day starts with)."""
    out = []
    last_at = max((r.latest.at for r in records if r.latest), default="")
    for r in records:
        latest = r.latest
        if latest is None:
            continue
        before = r.screenings[-2] if len(r.screenings) > 1 else None
        new = before is None or latest.status != before.status or bool(latest.changes(before))
        if new and latest.at[:10] == last_at[:10]:
            out.append(r)
    return out


# ---- screening runs into the state file --------------------------------------------------------------------
@dataclass
class Recorded:
    run: int
    written: int
    kept: list[tuple[str, str, str]] = field(default_factory=list)  # (patient, team status, today's screening)


def record_screening(definition: Definition, run: Run, state: StateFile, results: Sequence[ScreeningResult],
                     id_system: str | None = None) -> Recorded:
    """Keep a screening run in the state file: every result, and the FHIR resources the push policy allows (a
    subject in the team's status is kept as it is, with today's screening said beside it)."""
    bundle, _notes = screening_bundle(list(results), definition.criteria, study=definition.study)
    entries: list[Entry] = []
    kept: list[tuple[str, str, str]] = []
    dropped: set[str] = set()
    for e in bundle["entry"]:
        res, req = e["resource"], e["request"]
        if res["resourceType"] == "ResearchSubject":
            cur = state.get("ResearchSubject", res["id"])
            existing = [Existing(res["id"], cur.resource.get("status"), True)] if cur else []
            d = decide(str(res.get("status")), res["id"], existing)
            if d.verdict is not Verdict.WRITE:
                kept.append((child_text(child(res, "individual"), "reference") or "", str(d.current), str(res.get("status"))))
                dropped.add(e["fullUrl"])
                continue
            if cur is not None:  # written over a screening status: the team's other elements are kept
                res = {**cur.resource, **res}
            entries.append(Entry(res, full_url=e["fullUrl"]))
        elif res["resourceType"] == "ResearchStudy":
            entries.append(Entry(res, if_none_exist=req.get("ifNoneExist"), full_url=e["fullUrl"]))
        elif res["resourceType"] == "Provenance":
            targets = [t for t in res.get("target", []) if t.get("reference") not in dropped]
            if targets:
                entries.append(Entry({**res, "target": targets}, full_url=e["fullUrl"]))
        else:
            entries.append(Entry(res, full_url=e.get("fullUrl")))
    rows = [r.to_dict(id_system) for r in results]
    recorded = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    n = state.record_run(recorded, run.as_of.isoformat(), run.d1.isoformat(), definition.criteria.digest, rows, entries)
    return Recorded(n, sum(1 for e in entries if e.resource["resourceType"] == "ResearchSubject"), kept)


# ---- the state file to a server ------------------------------------------------------------------------------
@dataclass
class StatePush:
    bundle: dict[str, Any]
    notes: list[Msg] = field(default_factory=list)


def state_bundle(definition: Definition, run: Run, state: StateFile, server: Store) -> StatePush:
    """The transaction that sends the state file's resources to `server` (see the module doc)."""
    sid = study_id(definition.criteria)
    local_ref = f"ResearchStudy/{sid}"
    study_urn = f"urn:uuid:{sid}"
    out = StatePush({"resourceType": "Bundle", "type": "transaction", "entry": []})
    remote_study = server.study(definition.study.system, definition.study.value)
    remote_ref = remote_study.ref if remote_study is not None else None
    mine = state.study(definition.study.system, definition.study.value)
    study_res = dict(mine.resource) if mine is not None else research_study(definition.criteria, definition.study)
    study_res.pop("meta", None)
    study_res["id"] = sid
    out.bundle["entry"].append({"fullUrl": study_urn, "resource": study_res, "request": {
        "method": "POST", "url": "ResearchStudy",
        "ifNoneExist": f"identifier={definition.study.system}|{definition.study.value}"}})
    numbers_there: dict[str, str] = {}
    subjects_there: dict[str, Versioned] = {}
    if remote_ref is not None:
        for v in server.subjects(remote_ref):
            n = subject_number_of(v.resource)
            if n:
                numbers_there[n] = v.resource["id"]
        for res in state.resources("ResearchSubject"):
            patient = child_text(child(res, "individual"), "reference") or ""
            found = server.subject(patient, res["id"], remote_ref) if patient.startswith("Patient/") else None
            if found is not None:
                subjects_there[patient] = found
    skipped: set[str] = set()
    where = server.label
    # a subject the server holds for the patient under another id is written in place (one subject per patient and
    # study), and what refers to ours refers to it
    relinked = {local_ref: study_urn}
    for res in state.resources("ResearchSubject"):
        there = subjects_there.get(child_text(child(res, "individual"), "reference") or "")
        if there is not None and there.resource["id"] != res["id"]:
            relinked[f"ResearchSubject/{res['id']}"] = there.ref
    for res in state.resources():
        rtype = res.get("resourceType")
        if rtype == "ResearchStudy":
            continue
        ref = f"{rtype}/{res['id']}"
        if rtype == "ResearchSubject":
            patient = child_text(child(res, "individual"), "reference") or ""
            there = subjects_there.get(patient)
            number = subject_number_of(res)
            if number and numbers_there.get(number, there.resource["id"] if there else res["id"]) not in \
                    (res["id"], there.resource["id"] if there else res["id"]):
                out.notes.append(NUMBER_TAKEN(number=number, where=where, subject=res["id"]))
                skipped.add(ref)
                continue
            if there is not None and is_teams(res.get("status")) and is_teams(there.resource.get("status")) \
                    and there.resource.get("status") != res.get("status") and not _moves_on(there, res):
                out.notes.append(TEAM_DIFFERS(subject=there.resource["id"], where=where,
                                              theirs=str(there.resource.get("status")), ours=str(res.get("status"))))
                skipped.add(ref)
                continue
        body = relink(res, relinked)
        body.pop("meta", None)  # versionId and lastUpdated are the server's
        if profiled(res):
            body["meta"] = {"profile": list(res["meta"]["profile"])}
        if ref in relinked:
            body["id"] = relinked[ref].split("/", 1)[1]
            ref = relinked[ref]
        out.bundle["entry"].append({"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, ref)}", "resource": body,
                                    "request": {"method": "PUT", "url": ref}})
    if skipped:
        for e in out.bundle["entry"]:
            r = e["resource"]
            if r["resourceType"] == "Provenance":
                gone = skipped | {relinked[x] for x in skipped if x in relinked}
                r["target"] = [t for t in r.get("target", []) if t.get("reference") not in gone]
        out.bundle["entry"] = [e for e in out.bundle["entry"]
                               if e["resource"]["resourceType"] != "Provenance" or e["resource"]["target"]]
    return out


def _moves_on(there: Versioned, ours: dict) -> bool:
    """The state file's subject is a later step of the server's (the server's status is one of its progress
    states): sending it moves the server on, it does not undo anyone's step."""
    facts = subject_facts(ours)
    states = {p.state for p in (facts.progress if facts is not None else ())}
    return str(there.resource.get("status")) in states


__all__ = ["Done", "Recorded", "Settings", "StatePush", "Step", "act", "all_records", "changed_since_last", "check_step",
           "log_rows", "patient_records", "record_screening", "server_screener", "state_bundle", "subject_number_of"]
