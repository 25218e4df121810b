"""The screening and enrolment log (ICH E6 essential documents: the subject screening log and the enrolment log):
one row per screened patient, and the flow counts screened -> eligible -> contacted -> consented -> enrolled with
the reasons patients stopped at each step (what a CONSORT diagram and the report's screening flow read).

Pure: built from `records.PatientRecords`. The flow is a chain: a patient counts at a step only if they reached
every step before it. Eligible = screened eligible at least once, or consented (the team completed the
checklist and judged them eligible); contacted = a contact attempt, or consented; consented = a consent, or a
status that needs one; enrolled = put on study (a D1 or an on-study state), whatever happened after (a
withdrawal after enrolment is counted apart). Where a patient stopped, the reason is the team's coded reason
(declined, not reachable, ...) when they gave one, else what the screening says (ineligible by the first
criterion that rules them out, or candidate: still unresolved), else `in-progress`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir3t.enrolment.reasons import label
from fhir3t.enrolment.records import PatientRecords
from fhir3t.enrolment.status import IN_STUDY, Status, parse
from fhir3t.messages import Message, Msg

#: the flow's steps (eligible is the screening status of that name)
STEPS = ("screened", Status.ELIGIBLE.value, "contacted", "consented", "enrolled")
_ON = frozenset({Status.ON_STUDY, Status.ON_STUDY_INTERVENTION, Status.ON_STUDY_OBSERVATION, Status.FOLLOW_UP})
_LEFT = frozenset({Status.WITHDRAWN, Status.OFF_STUDY})

REASON_WORDS = {
    "candidate": Message("log.reason.candidate", "candidate: criteria unresolved"),
    Status.INELIGIBLE.value: Message("log.reason.ineligible", "ineligible: {criterion}"),
    "not-contacted": Message("log.reason.not-contacted", "not contacted yet"),
    "in-progress": Message("log.reason.in-progress", "in progress"),
}


def reason_msg(code: str) -> Msg:
    """A flow reason's words: the team's coded reason, or what the screening says."""
    if code.startswith("ineligible:"):
        return REASON_WORDS[Status.INELIGIBLE](criterion=code.split(":", 1)[1])
    if code in REASON_WORDS:
        return REASON_WORDS[code]()
    return label(code)


@dataclass(frozen=True)
class Row:
    patient: str
    display_id: str
    first_screened: date | None
    last_screened: date | None
    screenings: int
    screening_status: str | None  # the latest screening's
    not_met: tuple[str, ...]  # criteria ruling the patient out at the latest screening
    unknown: tuple[str, ...]
    changed: bool  # the latest screening differs from the one before (status or a criterion)
    status: str | None  # the subject's status (the team's, or the screening push's)
    contact_attempts: int
    reached: bool
    last_contact: date | None
    consented: date | None
    consent_form: str | None
    enrolled: bool
    subject_number: str | None
    d1: date | None
    not_enrolled_reason: str | None
    left: date | None  # withdrawn / off study
    left_reason: str | None
    stage: str  # the last step of the flow reached
    stop_reason: str | None  # why they stopped there (None: enrolled)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            out[k] = v.isoformat() if isinstance(v, date) else list(v) if isinstance(v, tuple) else v
        return out

    @property
    def activity(self) -> date | None:
        """The latest day anything happened to the patient."""
        days = [d for d in (self.last_screened, self.last_contact, self.consented, self.left) if d is not None]
        return max(days, default=None)


def _ever_enrolled(r: PatientRecords) -> bool:
    s = r.subject
    if s is None:
        return False
    return s.d1 is not None or parse(s.status) in _ON or any(parse(p.state) in _ON for p in s.progress)


def row_of(r: PatientRecords) -> Row:
    latest = r.latest
    before = r.screenings[-2] if len(r.screenings) > 1 else None
    s = r.subject
    status = parse(s.status) if s is not None else None
    consent = r.consents[-1] if r.consents else None
    enrolled = _ever_enrolled(r)
    consented = consent is not None or status in IN_STUDY or enrolled
    not_registered = status == Status.NOT_REGISTERED
    left = status in _LEFT
    eligible = any(x.status == Status.ELIGIBLE for x in r.screenings) or consented
    contacted = bool(r.contacts) or consented
    reached = [bool(r.screenings), eligible, contacted, consented, enrolled]
    stage_i = 0
    while stage_i + 1 < len(reached) and reached[stage_i] and reached[stage_i + 1]:
        stage_i += 1
    if not reached[0]:
        stage, stop = "not-screened", None
    else:
        stage = STEPS[stage_i]
        team_reason = s.reason if s is not None and (not_registered or (left and not enrolled)) else None
        if enrolled:
            stop = None
        elif team_reason:
            stop = team_reason
        elif stage == "screened" and latest is not None:
            stop = f"ineligible:{latest.failing[0]}" if latest.failing else str(latest.status)
        elif stage == Status.ELIGIBLE:
            stop = "not-contacted"
        else:
            stop = "in-progress"
    reached_any = any(c.done for c in r.contacts)
    return Row(
        r.patient, r.display_id or (latest.display_id if latest and latest.display_id else r.patient.removeprefix("Patient/")),
        r.screenings[0].day if r.screenings else None, latest.day if latest else None, len(r.screenings),
        latest.status if latest else None, tuple(latest.failing) if latest else (), tuple(latest.unknown) if latest else (),
        bool(before is not None and latest is not None and (latest.status != before.status or latest.changes(before))),
        str(s.status) if s is not None and isinstance(s.status, str) else None,
        len(r.contacts), reached_any, max((c.day for c in r.contacts if c.day), default=None),
        consent.day if consent else None, consent.form if consent else None,
        enrolled, s.number if s is not None else None, s.d1 if s is not None else None,
        s.reason if s is not None and not_registered else None,
        s.end if s is not None and left else None, s.reason if s is not None and left else None,
        stage, stop,
    )


def _reason_key(order: Sequence[str]) -> Any:
    rank = {c: i for i, c in enumerate(order)}

    def key(item: tuple[str, int]) -> tuple[int, int, str]:
        reason, n = item
        if reason.startswith("ineligible:"):  # by the criteria's written order, as the report's flow
            return (1, rank.get(reason.split(":", 1)[1], len(rank)), reason)
        return (0, -n, reason)
    return key


def flow(rows: Sequence[Row], order: Sequence[str] = ()) -> dict[str, Any]:
    """The counts at each step and the reasons patients stopped there (stable JSON); `order`: the criteria's
    written order (ineligible reasons are listed in it)."""
    screened = [r for r in rows if r.stage != "not-screened"]
    counts = {step: sum(1 for r in screened if STEPS.index(r.stage) >= i) for i, step in enumerate(STEPS)}
    steps = []
    for i, step in enumerate(STEPS[:-1]):
        stopped = [r for r in screened if r.stage == step]
        reasons: dict[str, int] = {}
        for r in stopped:
            key = r.stop_reason or "in-progress"
            reasons[key] = reasons.get(key, 0) + 1
        steps.append({"from": step, "to": STEPS[i + 1], "stopped": len(stopped),
                      "reasons": [{"reason": k, "patients": n} for k, n in sorted(reasons.items(), key=_reason_key(order))]})
    withdrawn: dict[str, int] = {}
    for r in screened:
        if r.enrolled and r.left is not None:
            withdrawn[r.left_reason or "other"] = withdrawn.get(r.left_reason or "other", 0) + 1
    return {
        **counts,
        "steps": steps,
        "withdrawn_after_enrolment": sum(withdrawn.values()),
        "withdrawal_reasons": [{"reason": k, "patients": n} for k, n in sorted(withdrawn.items())],
        "not_screened": len(rows) - len(screened),
        "definition": "a chain: a patient counts at a step only if they reached every step before it; eligible = "
                      "screened eligible at least once, or consented; contacted = a contact attempt, or consented; "
                      "consented = a consent, or a status that needs one; enrolled = put on study (D1 or an on-study "
                      "status), withdrawals after enrolment counted apart",
    }


def build(records: Iterable[PatientRecords], since: date | None = None,
          order: Sequence[str] = ()) -> tuple[list[Row], dict[str, Any]]:
    """The log's rows (by display id) and flow; `since`: only patients with something on or after that day."""
    rows = sorted((row_of(r) for r in records), key=lambda x: (x.display_id, x.patient))
    if since is not None:
        rows = [r for r in rows if r.activity is not None and r.activity >= since]
    return rows, flow(rows, order)


__all__ = ["REASON_WORDS", "STEPS", "Row", "build", "flow", "reason_msg", "row_of"]
