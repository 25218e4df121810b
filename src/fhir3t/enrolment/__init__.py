"""The one owner of the ResearchSubject lifecycle: status codes and who owns them (status.py), the
team's allowed transitions (transitions.py), and what a screening push may do (policy.py).

Screening, the CDS cards, the worklist, the push and the enrolment workflow all ask here; no other
module writes a ResearchSubject status code.
"""
from __future__ import annotations

from fhir3t.enrolment.policy import Decision, Existing, Verdict, decide
from fhir3t.enrolment.status import (
    ENROLLED,
    IN_STUDY,
    RESULTS,
    SCREENING_STATUSES,
    TEAM_STATUSES,
    WORDS,
    Status,
    in_study,
    is_screening,
    is_teams,
    parse,
    status_word,
    vouches_for_consent,
)
from fhir3t.enrolment.transitions import Action, IllegalTransition, Transition, allowed_actions, transition

__all__ = [
    "ENROLLED", "IN_STUDY", "RESULTS", "SCREENING_STATUSES", "TEAM_STATUSES", "WORDS", "Action", "Decision", "Existing",
    "IllegalTransition", "Status", "Transition", "Verdict", "allowed_actions", "decide", "in_study", "is_screening",
    "is_teams", "parse", "status_word", "transition", "vouches_for_consent",
]
