"""A patient's timeline: every screening with its status and what changed since the one before, every contact
attempt, the consent, the enrolment (subject number, D1), a decline or a withdrawal with its reason, and who did
each step. Pure: built from `records.PatientRecords`; each event's words are a message.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fhir3t.enrolment.reasons import label
from fhir3t.enrolment.records import PatientRecords, Progress
from fhir3t.enrolment.status import SCREENING_STATUSES, Status, parse
from fhir3t.messages import Message, Msg, many

SCREENED_FIRST = Message("timeline.screened-first", "screened{as_of}: {status}{failing}")
SCREENED = Message("timeline.screened", "screened{as_of}: {status}, unchanged")
SCREENED_CHANGED = Message("timeline.screened-changed", "screened{as_of}: {status} (was {was}); changed: {changes}")
SCREENED_SAME_STATUS = Message("timeline.screened-same-status", "screened{as_of}: {status}; changed: {changes}")
CHANGE = Message("timeline.change", "{criterion} {was} -> {now}")
FAILING = Message("timeline.failing", "; not met: {ids}")
AS_OF = Message("timeline.as-of", " (as of {day})")
CONTACT_DONE = Message("timeline.contact", "contacted {medium}{note}")
CONTACT_NOT_DONE = Message("timeline.contact-not-done", "contact attempt {medium}: not reached ({reason}){note}")
NOTE = Message("timeline.note", ": {note}")
CONSENTED = Message("timeline.consented", "consent signed (form {form})")
ENROLLED = Message("timeline.enrolled", "enrolled as {number} ({status}), D1 {d1}{override}")
DECLINED = Message("timeline.declined", "not enrolled: {reason}")
WITHDRAWN = Message("timeline.withdrawn", "{status}: {reason}")
STATE = Message("timeline.state", "{status}")
OVERRIDE = Message("timeline.override", " (enrolled against the latest screening: {reason})")
BY = Message("timeline.by", "by {who}")


@dataclass(frozen=True)
class Event:
    day: date | None
    kind: str  # screening | contact | consent | enrolment | decline | withdrawal | status
    text: Msg
    who: str | None = None
    order: str = ""  # the instant it was recorded, to order events of the same day


def _progress_event(p: Progress, records: PatientRecords) -> Event | None:
    state = parse(p.state)
    s = records.subject
    if state is None or s is None or state in SCREENING_STATUSES:  # a screening's own entry: its event says it
        return None
    act = records.act_for(f"ResearchSubject/{s.id}", _STEP.get(state))
    who = act.who if act else None
    recorded = act.recorded if act else ""
    if state in (Status.ON_STUDY, Status.ON_STUDY_INTERVENTION):
        override = OVERRIDE(reason=act.override) if act and act.override else ""
        return Event(p.start, "enrolment", ENROLLED(number=s.number or "-", status=state.value,
                                                    d1=s.d1.isoformat() if s.d1 else "-", override=override), who, recorded)
    if state == Status.NOT_REGISTERED:
        return Event(p.start, "decline", DECLINED(reason=label(p.reason) if p.reason else "-"), who, recorded)
    if state in (Status.WITHDRAWN, Status.OFF_STUDY):
        return Event(p.end or p.start, "withdrawal", WITHDRAWN(status=state.value, reason=label(p.reason) if p.reason else "-"),
                     who, recorded)
    if state == Status.PENDING_ON_STUDY:
        return None  # the consent's own event says it
    return Event(p.start, "status", STATE(status=state.value), who, recorded)


_STEP = {Status.ON_STUDY: "enrol", Status.ON_STUDY_INTERVENTION: "enrol", Status.NOT_REGISTERED: "decline",
         Status.WITHDRAWN: "withdraw", Status.OFF_STUDY: "withdraw", Status.PENDING_ON_STUDY: "consent"}


def events(records: PatientRecords) -> list[Event]:
    """The patient's events, oldest first."""
    out: list[Event] = []
    before = None
    for s in records.screenings:
        failing = FAILING(ids=many(s.failing)) if s.failing else ""
        as_of = AS_OF(day=s.as_of) if s.as_of is not None and s.as_of != s.day else ""
        changes = s.changes(before)
        changed = many(CHANGE(criterion=c, was=w or "-", now=n) for c, w, n in changes)
        if before is None:
            text = SCREENED_FIRST(status=s.status, failing=failing, as_of=as_of)
        elif not changes and before.status == s.status:
            text = SCREENED(status=s.status, as_of=as_of)
        elif before.status != s.status:
            text = SCREENED_CHANGED(status=s.status, was=before.status, changes=changed, as_of=as_of)
        else:
            text = SCREENED_SAME_STATUS(status=s.status, changes=changed, as_of=as_of)
        out.append(Event(s.day, "screening", text, None, s.at))
        before = s
    for c in records.contacts:
        act = records.act_for(f"Communication/{c.id}")
        note = NOTE(note=c.note) if c.note else ""
        medium = label(c.medium) if c.medium else ""
        text = CONTACT_DONE(medium=medium, note=note) if c.done else \
            CONTACT_NOT_DONE(medium=medium, reason=label(c.reason) if c.reason else "-", note=note)
        out.append(Event(c.day, "contact", text, act.who if act else None, act.recorded if act else ""))
    for k in records.consents:
        act = records.act_for(f"Consent/{k.id}")
        out.append(Event(k.day, "consent", CONSENTED(form=k.form or "-"), act.who if act else None,
                         act.recorded if act else ""))
    if records.subject is not None:
        for p in records.subject.progress:
            e = _progress_event(p, records)
            if e is not None:
                out.append(e)
    return sorted(out, key=lambda e: (e.day or date.min, e.order))


__all__ = ["BY", "Event", "events"]
