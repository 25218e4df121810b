"""The enrolment state machine: what the study team may do to a subject, from which status.

Actions (the coordinator's verbs) and the status each leads to:

| action   | from                                                         | to                       |
|----------|--------------------------------------------------------------|--------------------------|
| contact  | no subject, a screening status, `screening`, `pending-on-study` | (unchanged)           |
| consent  | no subject, a screening status, `screening`                  | `pending-on-study`       |
| enrol    | `pending-on-study`                                           | `on-study` (or `on-study-intervention`) |
| decline  | no subject, a screening status, `screening`, `pending-on-study` | `not-registered`      |
| withdraw | `pending-on-study`, `on-study*`, `follow-up`                 | `withdrawn` (or `off-study`) |
| complete | `on-study*`, `follow-up`                                     | `off-study`              |
| follow   | `on-study*`                                                  | `follow-up`              |

A screening run is not an action: it never changes a team status (see policy.py). Enrolment also has
conditions outside the status (the latest screening is eligible, the checklist complete); those are
checked where the data is (pipeline.enrolment), with an override that must carry a reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fhir3t.enrolment.refused import Refused
from fhir3t.enrolment.status import SCREENING_STATUSES, Status, parse
from fhir3t.messages import Message


class Action(StrEnum):
    CONTACT = "contact"
    CONSENT = "consent"
    ENROL = "enrol"
    DECLINE = "decline"
    WITHDRAW = "withdraw"
    COMPLETE = "complete"
    FOLLOW = "follow"


_BEFORE = frozenset({None, *SCREENING_STATUSES, Status.SCREENING})
_ON = frozenset({Status.ON_STUDY, Status.ON_STUDY_INTERVENTION, Status.ON_STUDY_OBSERVATION})

#: action -> (statuses it may start from (None: no subject yet), the status it leads to (None: unchanged))
TRANSITIONS: dict[Action, tuple[frozenset[Status | None], Status | None]] = {
    Action.CONTACT: (_BEFORE | {Status.PENDING_ON_STUDY}, None),
    Action.CONSENT: (_BEFORE, Status.PENDING_ON_STUDY),
    Action.ENROL: (frozenset({Status.PENDING_ON_STUDY}), Status.ON_STUDY),
    Action.DECLINE: (_BEFORE | {Status.PENDING_ON_STUDY}, Status.NOT_REGISTERED),
    Action.WITHDRAW: (frozenset({Status.PENDING_ON_STUDY, *_ON, Status.FOLLOW_UP}), Status.WITHDRAWN),
    Action.COMPLETE: (frozenset({*_ON, Status.FOLLOW_UP}), Status.OFF_STUDY),
    Action.FOLLOW: (frozenset(_ON), Status.FOLLOW_UP),
}

#: the other status an action may lead to when the team says so (`enrol` into the intervention phase, a
#: withdrawal recorded as `off-study`); the state machine's `from` is the same
ALTERNATIVES: dict[Action, frozenset[Status]] = {
    Action.ENROL: frozenset({Status.ON_STUDY_INTERVENTION}),
    Action.WITHDRAW: frozenset({Status.OFF_STUDY}),
}

#: the coded reasons a patient is not enrolled (ResearchSubject `progress` reason, R5 cross-version)
NOT_ENROLLED_REASONS = ("patient-declined", "not-reachable", "investigator-decision", "screen-failure", "other")

UNREADABLE = Message("enrolment.status-unreadable",
                     "the subject's status {status} is not an R4 code: correct it before {action}")
FORBIDDEN = Message("enrolment.forbidden", "cannot {action} a subject who is {status}")
FORBIDDEN_NEW = Message("enrolment.forbidden-new", "cannot {action} a patient who is not a subject of the study yet")
NOT_AN_OUTCOME = Message("enrolment.not-an-outcome", "{action} cannot lead to {status} (it leads to {allowed})")


@dataclass(frozen=True)
class Transition:
    action: Action
    before: Status | None
    after: Status | None  # None: the status does not change


class IllegalTransition(Refused, ValueError):
    """An action the state machine forbids from the subject's status (nothing is written); `msg` is the one
    sentence to show, in the reader's language (str() is its English)."""


def transition(action: Action, current: object, *, exists: bool = True, to: Status | None = None) -> Transition:
    """The transition `action` makes from the subject's current status (`exists=False`: no subject yet);
    `to`: the other status the action may lead to (ALTERNATIVES), when the team asks for it.

    A status fhir3t cannot read allows nothing: a person must look at it first."""
    allowed, after = TRANSITIONS[action]
    before = parse(current) if exists else None
    if exists and before is None:
        raise IllegalTransition(UNREADABLE(status=repr(current)[:60], action=action.value))
    if before not in allowed:
        if before is None:
            raise IllegalTransition(FORBIDDEN_NEW(action=action.value))
        raise IllegalTransition(FORBIDDEN(action=action.value, status=before.value))
    if to is not None and to != after:
        if to not in ALTERNATIVES.get(action, frozenset()):
            options = [s.value for s in (after, *sorted(ALTERNATIVES.get(action, ()))) if s is not None]
            raise IllegalTransition(NOT_AN_OUTCOME(action=action.value, status=to.value,
                                                   allowed=" | ".join(options) or "no status change"))
        after = to
    return Transition(action, before, after)


def allowed_actions(current: object, *, exists: bool = True) -> list[Action]:
    """The actions the state machine allows from this status (what a form offers)."""
    out = []
    for action in Action:
        try:
            transition(action, current, exists=exists)
        except IllegalTransition:
            continue
        out.append(action)
    return out
