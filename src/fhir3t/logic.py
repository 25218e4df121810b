"""Three-valued (Kleene) logic for criteria: met / not-met / unknown."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from fhir3t.messages import Message, Msg

Tri = Literal["met", "not-met", "unknown"]
MET: Tri = "met"
NOT_MET: Tri = "not-met"
UNKNOWN: Tri = "unknown"
#: a criterion's result as a person reads it
RESULT_WORDS: dict[str, Message] = {MET: Message("result.met", "met"), NOT_MET: Message("result.not-met", "not met"),
                                    UNKNOWN: Message("result.unknown", "unknown")}


def result_word(value: object) -> Msg | str:
    """A result as a person reads it (a message), or as written when it is not one of the three."""
    m = RESULT_WORDS.get(value) if isinstance(value, str) else None
    return m() if m is not None else str(value)
RESULTS: tuple[Tri, ...] = (MET, NOT_MET, UNKNOWN)


def k_and(values: Iterable[Tri]) -> Tri:
    """not-met if any part is not-met, met if all are met, else unknown."""
    out: Tri = MET
    for v in values:
        if v == NOT_MET:
            return NOT_MET
        if v == UNKNOWN:
            out = UNKNOWN
    return out


def k_or(values: Iterable[Tri]) -> Tri:
    """met if any part is met, not-met if all are not-met, else unknown."""
    out: Tri = NOT_MET
    for v in values:
        if v == MET:
            return MET
        if v == UNKNOWN:
            out = UNKNOWN
    return out


def k_not(value: Tri) -> Tri:
    return NOT_MET if value == MET else MET if value == NOT_MET else UNKNOWN


def k_either(values: Iterable[Tri]) -> Tri:
    """Alternative tests for one question: any met decides met, else any not-met decides not-met.

    Used where one decided test settles the question even if the others are missing
    (a negative IGRA rules out TB without a TST).
    """
    vals = list(values)
    if MET in vals:
        return MET
    if NOT_MET in vals:
        return NOT_MET
    return UNKNOWN
