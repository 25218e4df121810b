"""The enrolment state machine: what the study team may do to a subject, from which status.

Actions (the coordinator's verbs) and the status each leads to:

| action   | from                                                         | to                       |
|----------|--------------------------------------------------------------|--------------------------|
| contact  | no subject, a screening status, `screening`, `pending-on-study` | (unchanged)           |
| consent  | no subject, a screening status, `screening`                  | `pending-on-study`       |
| enrol    | `pending-on-study`                                           | `on-study` (or `on-study-intervention`) |
| decline  | no subject, a screening status, `screening`, `pending-on-study` | `not-registered`      |
| withdraw | `pending-on-study`, `on-study*`, `follow-up`                 | `withdrawn`              |
| complete | `on-study*`, `follow-up`                                     | `off-study`              |
| follow   | `on-study*`                                                  | `follow-up`              |

A screening run is not an action: it never changes a team status (see policy.py). Enrolment also has
conditions outside the status (the latest screening is eligible, the checklist complete); those are
checked where the data is (pipeline.enrolment), with an override that must carry a reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fhir3t.enrolment.status import SCREENING_STATUSES, Status, parse


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

#: the coded reasons a patient is not enrolled (ResearchSubject `progress` reason, R5 cross-version)
NOT_ENROLLED_REASONS = ("patient-declined", "not-reachable", "investigator-decision", "screen-failure", "other")


@dataclass(frozen=True)
class Transition:
    action: Action
    before: Status | None
    after: Status | None  # None: the status does not change


class IllegalTransition(ValueError):
    """An action the state machine forbids from the subject's status (nothing is written)."""


def transition(action: Action, current: object, *, exists: bool = True) -> Transition:
    """The transition `action` makes from the subject's current status (`exists=False`: no subject yet).

    A status fhir3t cannot read allows nothing: a person must look at it first."""
    allowed, after = TRANSITIONS[action]
    before = parse(current) if exists else None
    if exists and before is None:
        raise IllegalTransition(f"the subject's status {current!r} is not an R4 code: correct it before '{action}'")
    if before not in allowed:
        shown = before.value if before is not None else "no subject"
        raise IllegalTransition(f"cannot {action} a subject who is {shown}")
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
