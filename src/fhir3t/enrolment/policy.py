"""The push policy: what a screening run may do to the ResearchSubjects already on a server.

Pure: the sink reads the server (current subjects, which study they belong to) and asks `decide`
what to do with each screening subject it is about to write. The rule (design.md, "Contracts"):

- a screening run writes only screening statuses, and only over a subject in a screening status;
- a subject of this study in a team status (or one fhir3t cannot read) is kept as it is, and the
  screening result is reported beside it: a consented patient who has since become ineligible is a
  finding for the coordinator, said per patient, never a silent overwrite;
- a subject whose study cannot be told apart from this one, in a team status, is kept too, and no
  second subject is added next to it;
- another study's subject (its study is known to be another) never blocks anything;
- one subject per patient and study: a subject of this study under another id is updated in place.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from fhir3t.enrolment.status import is_screening, is_teams


@dataclass(frozen=True)
class Existing:
    """A ResearchSubject on the server for the patient being pushed."""

    id: str | None  # a usable FHIR id, or None
    status: object  # as written
    same_study: bool | None  # True: this study's; False: another study's; None: cannot tell


class Verdict(StrEnum):
    WRITE = "write"  # write the screening subject as built
    UPDATE = "update"  # write it over the existing subject of this study `target` (its other elements kept)
    KEEP = "keep"  # a team status is there: write nothing, report the screening result beside it
    BLOCK = "block"  # a subject that may be this study's is in a team status, or has no usable id: write nothing


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    #: the existing subject the decision is about (UPDATE, KEEP, BLOCK)
    target: str | None = None
    #: its status as written (KEEP, BLOCK)
    current: object = None


def decide(new_status: str, our_id: str, existing: Sequence[Existing]) -> Decision:
    """What to do with a screening subject (`our_id`, `new_status`) given the patient's current subjects."""
    if not is_screening(new_status):  # not a screening write: the team's own (see pipeline.enrolment)
        return Decision(Verdict.WRITE)
    mine = [e for e in existing if (e.id is not None and e.id == our_id) or e.same_study is True]
    unsure = [e for e in existing if e not in mine and e.same_study is None]
    teams = [e for e in mine if is_teams(e.status)]
    if teams:
        return Decision(Verdict.KEEP, teams[0].id, teams[0].status)
    unsure_teams = [e for e in unsure if is_teams(e.status)]
    if unsure_teams:
        return Decision(Verdict.BLOCK, unsure_teams[0].id, unsure_teams[0].status)
    if mine and not any(e.id == our_id for e in mine):
        target = next((e for e in mine if e.id is not None), None)
        if target is None:
            return Decision(Verdict.BLOCK, None, mine[0].status)
        return Decision(Verdict.UPDATE, target.id, target.status)
    return Decision(Verdict.WRITE)
