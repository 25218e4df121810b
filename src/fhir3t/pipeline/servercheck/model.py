"""What a server check finds: one `Check` a line (ok / warning / fail), collected in a `ServerReport`.

The JSON form (`ServerReport.to_dict`) is a contract documented in README.md: fields may be added,
never removed or renamed. Messages name resource types, search parameters, URLs (through
`describe`) and resource ids; never patient data such as names, codes or values.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir3t.errors import EXIT_FINDINGS, EXIT_OK
from fhir3t.messages import Msg, render

OK, WARNING, FAIL = "ok", "warning", "fail"
STATUSES = (OK, WARNING, FAIL)


@dataclass(frozen=True)
class Check:
    """One finding. `id` is stable (scripts may key on it); several lines may share one. Its heading and what it
    says are messages (`title_in(lang)`, `message_in(lang)`); `title` and `message` are their English (the JSON
    form)."""

    id: str
    heading: str | Msg
    status: str
    said: str | Msg
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.title_in()

    @property
    def message(self) -> str:
        return self.message_in()

    def title_in(self, lang: str = "en") -> str:
        return render(self.heading, lang) if isinstance(self.heading, Msg) else self.heading

    def message_in(self, lang: str = "en") -> str:
        return render(self.said, lang) if isinstance(self.said, Msg) else self.said

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check status {self.status!r} is not one of {STATUSES}")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title_in(), "status": self.status, "message": self.message_in(),
                "details": dict(self.details)}


@dataclass
class ServerReport:
    """Every check of one run against one server, and the error that stopped it early, if any."""

    server: str
    checks: list[Check] = field(default_factory=list)
    #: a run-level failure (unreachable, auth, request budget): the checks after it did not run
    error: str | Msg | None = None
    error_code: int = 0
    requests: int = 0
    write_test: bool = False

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    @property
    def exit_code(self) -> int:
        """5 / 6 when the run was stopped by a server or auth error, 1 when a check failed, else 0."""
        if self.error_code:
            return self.error_code
        return EXIT_FINDINGS if any(c.status == FAIL for c in self.checks) else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "write_test": self.write_test, "checks": [c.to_dict() for c in self.checks],
                "counts": self.counts, "requests": self.requests,
                "error": render(self.error, "en") if isinstance(self.error, Msg) else self.error, "exit_code": self.exit_code}
