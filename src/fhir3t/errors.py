"""One place for fhir3t's error types and process exit codes.

Each failure class maps to its own exit code so that a hospital's scheduler can tell
"some input was bad" from "the server is down" without parsing stderr.
"""
from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FINDINGS = 1  # the check found problems: validate (errors in the Bundles), check-server (a check failed)
EXIT_USAGE = 2  # bad command line (argparse uses 2 as well)
EXIT_INPUT_SKIPPED = 3  # results produced, but some input was unreadable and skipped
EXIT_INPUT_FATAL = 4  # nothing usable: missing path, no patients at all, bad concept map
EXIT_SERVER = 5  # FHIR server unreachable or answered with an error
EXIT_AUTH = 6  # authentication / authorization failed
EXIT_PUSH_PARTIAL = 7  # some entries of a pushed Bundle failed
EXIT_REFUSED = 8  # the enrolment workflow refused an action (state machine, eligibility, a newer version): nothing written
EXIT_INTERNAL = 70  # a bug in fhir3t (EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

#: exit code -> what it means, for people (the top-level --help and the CLI reference are generated from it)
EXIT_MEANINGS = {EXIT_OK: "ok", EXIT_FINDINGS: "validation errors found (validate), a check failed (check-server)",
                 EXIT_USAGE: "usage error, or an extra the command needs is not installed",
                 EXIT_INPUT_SKIPPED: "some input skipped (each skipped file / entry / line is named on stderr)",
                 EXIT_INPUT_FATAL: "no usable input or bad configuration data", EXIT_SERVER: "FHIR server error",
                 EXIT_AUTH: "authentication error", EXIT_PUSH_PARTIAL: "push partly failed",
                 EXIT_REFUSED: "refused, nothing written (a transition the enrolment state machine forbids, an ineligible "
                               "patient without an override, a record changed since it was read)",
                 EXIT_INTERNAL: "internal error (a bug in fhir3t)", EXIT_INTERRUPTED: "interrupted (Ctrl-C)"}

#: exit code -> the `outcome` word of the run-end log record (stable: operators alert on it)
OUTCOMES = {EXIT_OK: "ok", EXIT_FINDINGS: "findings", EXIT_USAGE: "usage-error", EXIT_INPUT_SKIPPED: "input-skipped",
            EXIT_INPUT_FATAL: "no-usable-input", EXIT_SERVER: "server-error", EXIT_AUTH: "auth-error",
            EXIT_PUSH_PARTIAL: "push-partial", EXIT_REFUSED: "refused", EXIT_INTERNAL: "internal-error", EXIT_INTERRUPTED: "interrupted"}


class Fhir3tError(Exception):
    """Base class: carries the exit code the CLI should end with."""

    exit_code = EXIT_INTERNAL


class UsageError(Fhir3tError):
    exit_code = EXIT_USAGE


class InputError(Fhir3tError):
    """Input that cannot be used at all (as opposed to a skipped entry)."""

    exit_code = EXIT_INPUT_FATAL


class ConfigError(Fhir3tError):
    """Criteria, value-set or concept-map data that does not load."""

    exit_code = EXIT_INPUT_FATAL


class ServerError(Fhir3tError):
    exit_code = EXIT_SERVER


class AuthError(Fhir3tError):
    exit_code = EXIT_AUTH


class RefusedError(Fhir3tError):
    """The enrolment workflow refused an action and wrote nothing (fhir3t.enrolment.Refused carries the message)."""

    exit_code = EXIT_REFUSED


@dataclass(frozen=True)
class InputProblem:
    """A piece of input that was skipped or only partly used, with where it came from.

    `where` names the file and the entry index or NDJSON line, never patient data.
    """

    where: str
    message: str
    skipped: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class Problems:
    """Collects InputProblems during a run; the CLI prints them and picks the exit code."""

    def __init__(self) -> None:
        self.items: list[InputProblem] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, where: str, message: str, *, skipped: bool = True) -> None:
        self.items.append(InputProblem(where, message, skipped))

    def once(self, key: str, where: str, message: str, *, skipped: bool = True) -> None:
        """Report a problem only the first time `key` is seen (e.g. one unknown code system)."""
        k = (key, message)
        if k in self._seen:
            return
        self._seen.add(k)
        self.add(where, message, skipped=skipped)

    @property
    def any_skipped(self) -> bool:
        return any(p.skipped for p in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:  # an empty collector is still a collector: `problems or Problems()` must keep it
        return True

    def __iter__(self):
        return iter(self.items)
