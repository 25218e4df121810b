"""The service's one exception map: every failure a request can meet, and the answer it gets.

A route handler never decides a status itself: whatever its work raises goes through `answer_for`,
which gives the HTTP status and the one-sentence JSON error. A malformed body is a 400 naming the
field, a failed JWT a 401 naming the check, a body too large a 413, a body too slow a 408, a service
too busy a 503. Only what no entry of the map names is a 500, answered with a fixed sentence (the
exception's type goes to the log, never its text, which could quote a request).
"""
from __future__ import annotations

from collections.abc import Callable

from fhir3t.errors import AuthError, InputError
from fhir3t.service.orders import OrderError
from fhir3t.service.prefetch import PrefetchError
from fhir3t.shapecheck import ShapeError

#: id -> English template of an HTTP error body: JSON for the calling program (an EHR), English whatever the
#: language (tests/test_i18n.py lists HTTP_ERRORS as machine text)
HTTP_ERRORS = {
    "too-large": "the request body is larger than {limit}",
    "too-slow": "the request body did not arrive within {seconds:g} s",
    "busy": "the service is busy with {what}; try again in a moment",
    "too-deep": "the request is nested too deeply to be read",
    "internal": "internal error in the CDS service",
    "not-json": "the request body is not valid JSON",
}


class HookError(Exception):
    """A request the service answers with an HTTP error and a JSON body {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TooLarge(HookError):
    def __init__(self, limit: int) -> None:
        size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{max(1, limit // 1024)} KB"
        super().__init__(413, HTTP_ERRORS["too-large"].format(limit=size))


class TooSlow(HookError):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, HTTP_ERRORS["too-slow"].format(seconds=seconds))


class Busy(HookError):
    def __init__(self, what: str) -> None:
        super().__init__(503, HTTP_ERRORS["busy"].format(what=what))


#: (exception class, status, message) in order; the first that matches answers
EXCEPTION_MAP: tuple[tuple[type[BaseException], int | None, Callable[[BaseException], str]], ...] = (
    (HookError, None, lambda e: e.message),  # type: ignore[attr-defined]
    (ShapeError, 400, str),
    (PrefetchError, 400, str),
    (OrderError, 400, str),
    (AuthError, 401, str),
    (InputError, 400, str),
    (RecursionError, 400, lambda e: HTTP_ERRORS["too-deep"]),
)


def answer_for(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, one-sentence error) for a failure; 500 only for what the map does not name."""
    for cls, status, text in EXCEPTION_MAP:
        if isinstance(exc, cls):
            return (exc.status if status is None else status), text(exc)  # type: ignore[attr-defined]
    return 500, HTTP_ERRORS["internal"]


__all__ = ["EXCEPTION_MAP", "HTTP_ERRORS", "Busy", "HookError", "TooLarge", "TooSlow", "answer_for"]
