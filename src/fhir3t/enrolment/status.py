"""ResearchSubject.status (R4): every code, and who owns it. The one place these codes are written.

R4's `research-subject-status` codes fall into two groups for fhir3t:

- **screening statuses** — what a screening run concludes and may write: `candidate`, `eligible`,
  `ineligible`, `potential-candidate`;
- **the study team's statuses** — what people decided: `screening` (someone is screening the patient
  by hand), `pending-on-study` (consented), `on-study`, `on-study-intervention`,
  `on-study-observation`, `follow-up`, `off-study`, `withdrawn`, `not-registered` (declined or not
  enrolled). A status fhir3t cannot read (missing, `On-Study`, a list) is treated as the team's: it
  might be any of them.

A screening run writes only screening statuses, and only over a subject that is itself in a screening
status (see `policy.py`). Everything that asks "is this patient already the team's?" — the screener's
notes, the CDS card's gate, the worklist, the push — asks here.
"""
from __future__ import annotations

from enum import StrEnum

from fhir3t.messages import Message, Msg


class Status(StrEnum):
    """R4 ResearchSubject.status (http://hl7.org/fhir/research-subject-status)."""

    CANDIDATE = "candidate"
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    POTENTIAL_CANDIDATE = "potential-candidate"
    SCREENING = "screening"
    PENDING_ON_STUDY = "pending-on-study"
    ON_STUDY = "on-study"
    ON_STUDY_INTERVENTION = "on-study-intervention"
    ON_STUDY_OBSERVATION = "on-study-observation"
    FOLLOW_UP = "follow-up"
    OFF_STUDY = "off-study"
    WITHDRAWN = "withdrawn"
    NOT_REGISTERED = "not-registered"


#: the three statuses a screening result can have (criteria/model.status_of), in the order they are shown; plain
#: strings, as they are written into JSON (as values and as keys)
RESULTS: tuple[str, ...] = (Status.ELIGIBLE.value, Status.CANDIDATE.value, Status.INELIGIBLE.value)
#: what a screening run may write, and may overwrite
SCREENING_STATUSES = frozenset({Status.CANDIDATE, Status.ELIGIBLE, Status.INELIGIBLE, Status.POTENTIAL_CANDIDATE})
#: everything else R4 defines: people decided it
TEAM_STATUSES = frozenset(Status) - SCREENING_STATUSES
#: consented or enrolled (now or before): the patient is, or was, in the study
IN_STUDY = frozenset({Status.PENDING_ON_STUDY, Status.ON_STUDY, Status.ON_STUDY_INTERVENTION, Status.ON_STUDY_OBSERVATION,
                      Status.FOLLOW_UP, Status.OFF_STUDY, Status.WITHDRAWN})
#: enrolled and followed: the subjects the safety analysis and the endpoints look at (with their D1)
ENROLLED = frozenset({Status.ON_STUDY, Status.ON_STUDY_INTERVENTION, Status.ON_STUDY_OBSERVATION, Status.FOLLOW_UP,
                      Status.OFF_STUDY, Status.WITHDRAWN})
#: a subject in one of these does not vouch for the consent it names (left, or never joined)
NOT_VOUCHING = frozenset({Status.WITHDRAWN, Status.INELIGIBLE, Status.NOT_REGISTERED})
#: statuses of another study's subject that mean it is treating the patient now (E4 reads them from the
#: criteria file; these are the defaults a reviewer compares against)
TREATING = frozenset({Status.ON_STUDY, Status.ON_STUDY_INTERVENTION, Status.PENDING_ON_STUDY})


#: what a person reads for each status in their language; the English is the code itself (what English output has
#: always shown, and what JSON, CSV codes and FHIR keep)
WORDS: dict[Status, Message] = {
    Status.CANDIDATE: Message("status.candidate", "candidate"),
    Status.ELIGIBLE: Message("status.eligible", "eligible"),
    Status.INELIGIBLE: Message("status.ineligible", "ineligible"),
    Status.POTENTIAL_CANDIDATE: Message("status.potential-candidate", "potential-candidate"),
    Status.SCREENING: Message("status.screening", "screening"),
    Status.PENDING_ON_STUDY: Message("status.pending-on-study", "pending-on-study"),
    Status.ON_STUDY: Message("status.on-study", "on-study"),
    Status.ON_STUDY_INTERVENTION: Message("status.on-study-intervention", "on-study-intervention"),
    Status.ON_STUDY_OBSERVATION: Message("status.on-study-observation", "on-study-observation"),
    Status.FOLLOW_UP: Message("status.follow-up", "follow-up"),
    Status.OFF_STUDY: Message("status.off-study", "off-study"),
    Status.WITHDRAWN: Message("status.withdrawn", "withdrawn"),
    Status.NOT_REGISTERED: Message("status.not-registered", "not-registered"),
}


def status_word(value: object) -> Msg | str:
    """A status as a person reads it (a message), or as written when it is not an R4 code."""
    status = parse(value)
    return WORDS[status]() if status is not None else str(value)


def parse(value: object) -> Status | None:
    """The status, or None when it is not an R4 code as written (case and spaces matter in FHIR)."""
    if isinstance(value, str):
        try:
            return Status(value)
        except ValueError:
            return None
    return None


def is_screening(value: object) -> bool:
    """A status a screening run may write over."""
    return parse(value) in SCREENING_STATUSES


def is_teams(value: object) -> bool:
    """The study team's status — or one fhir3t cannot read, which might be any of theirs."""
    return not is_screening(value)


def in_study(value: object) -> bool:
    return parse(value) in IN_STUDY


def vouches_for_consent(value: object) -> bool:
    """A subject of this study naming a consent vouches for it unless it left or never joined (or its
    status cannot be read)."""
    status = parse(value)
    return status is not None and status not in NOT_VOUCHING
