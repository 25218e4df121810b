"""A refusal of the enrolment workflow: one sentence, nothing written (exit code EXIT_REFUSED).

Every refusal carries its message (`msg`, rendered in the reader's language where it is shown); str() is
its English. The state machine's `IllegalTransition`, an enrolment the latest screening does not allow,
and a record changed since it was read (`Conflict`) are all refusals.
"""
from __future__ import annotations

from fhir3t.errors import RefusedError
from fhir3t.messages import Msg, render


class Refused(RefusedError):
    def __init__(self, msg: Msg) -> None:
        super().__init__(render(msg))
        self.msg = msg

    def text(self, lang: str = "en") -> str:
        return render(self.msg, lang)


class Conflict(Refused):
    """The record changed since it was read (a version-aware write found a newer version): nothing written."""


__all__ = ["Conflict", "Refused"]
