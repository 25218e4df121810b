"""Log output of one CLI run: plain text for people, or JSON lines (`--log-format json`) for a service.

In JSON mode every line the run writes on stderr becomes one JSON object carrying the run id, so a
log collector parses all of it: log records, and the messages subcommands print (problems, notes,
summaries). The run id is `$FHIR3T_RUN_ID` when set, else systemd's `$INVOCATION_ID`, else random.
Messages are PHI-free by construction at INFO and WARNING (files, entries, elements and counts, never
names, identifiers or values); -vv (DEBUG) may show values and is not meant for production logs.

Levels mean something an operator can alert on: `error` for a failure (the run, or a step of a service,
did not do its job: exit codes 2, 4-7, 70), `warning` for a degraded result (input skipped, a server
that will not give what a criterion reads, a notification that could not be delivered), `info` for the
rest. Every JSON record carries an `event` name from EVENTS (stable: alert rules key on them), and the
last record of a run is `run-end` with the exit code and its `outcome` word (fhir3t.errors.OUTCOMES).
"""
from __future__ import annotations

import io
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from fhir3t.errors import EXIT_FINDINGS, EXIT_INPUT_SKIPPED, EXIT_INTERRUPTED, EXIT_OK, OUTCOMES

LEVELS = [logging.WARNING, logging.INFO, logging.DEBUG]
_RUN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PREFIX = re.compile(r"^fhir3t(?: [a-z-]+)?: (?:(?P<area>server check): )?(?:(?P<tag>skipped|note|warning|error|fail): )?")

#: event name -> what it means: the `event` of every JSON log record is one of these (stable names)
EVENTS: dict[str, str] = {
    "run-start": "a command started (version, config file)",
    "auth-off": "fhir3t serve started without client authentication (allowed on a loopback address only): a warning",
    "run-end": "a command ended: exit_code, outcome, seconds and the command's counts; level error when it failed, "
               "warning when its result is degraded (some input skipped, findings)",
    "run-failed": "the reason a command failed (the sentence it printed), with its exit code",
    "internal-error": "a bug in fhir3t (exit 70); rerun with -vv for the traceback",
    "input-skipped": "a file, entry or line was skipped (it names where, never what it held)",
    "server-check": "the quick server check before screen --server found something the server will not give",
    "note": "a note of the command's (a ConceptMap found among the input, a date choice, ...)",
    "warning": "a warning of the command's",
    "error": "an error the command reported and carried on after",
    "message": "any other line the command printed on stderr",
    "log": "a record of a module's logger without an event name of its own",
    "request": "an HTTP request to serve / watch: method, route template (never the path), status, ms; error for a 5xx",
    "cds-discovery": "the CDS Hooks discovery document was served",
    "cds-call": "a CDS Hooks call: service, prefetch counts, outcome (card / no-card and why); warning when data "
                "could not be fetched within the budget",
    "cds-feedback": "feedback on cards: counts",
    "explanation": "a card's explanation page was asked for: the status (200, or 404 for an unknown or expired link)",
    "notification": "a Subscription notification was received: how many items were queued",
    "watch-round": "one polling round of watch: counts of changes, patients, statuses and pushes",
    "watch-notified": "patients screened on a Subscription notification: the same counts",
    "watch-round-failed": "a watch round failed and will be retried (the error's type only)",
    "watch-status-change": "a watched patient's screening status changed: the ResearchSubject id (a pseudonym), "
                           "the new and the previous status; no names, identifiers or values",
    "notify-sent": "the --notify hook was given a newly eligible patient (how, and the ResearchSubject id)",
    "notify-failed": "the --notify hook failed (the command's exit code or the webhook's HTTP status)",
    "enrolment-step": "a study team's step was recorded (fhir3t subject, the coordinator's page): the action, the "
                      "status before and after, the ResearchSubject id (a pseudonym); no names, identifiers or notes",
    "enrolment-refused": "a study team's step was refused and nothing written: the action and why (transition, "
                         "screening, version)",
    "enrolment-override": "an enrolment against the latest screening, with an override reason (kept in the Provenance, "
                          "not in the log): a warning",
    "coordinator-page": "the coordinator's page served the worklist or a patient's timeline: route template (never the "
                        "path: it holds a patient id), status, ms, whether someone was signed in",
    "coordinator-step": "a step posted on the coordinator's page: the action, recorded or refused, how the user signed in",
    "coordinator-refused": "a POST to the coordinator's page refused before anything was read (not signed in, a missing "
                           "or old CSRF token, another site's origin, a malformed form)",
    "coordinator-signin": "a sign-in to the coordinator's page started, ended or failed (SMART App Launch), or a sign-out",
}

#: stderr tag -> (level, event) of the JSON record the line becomes
_TAGS = {"skipped": ("warning", "input-skipped"), "note": ("info", "note"), "warning": ("warning", "warning"),
         "error": ("error", "error")}


def outcome_level(exit_code: int) -> int:
    """The level of a run-end record: info when it did its job, warning when degraded, error when it failed."""
    if exit_code == EXIT_OK:
        return logging.INFO
    if exit_code in (EXIT_INPUT_SKIPPED, EXIT_FINDINGS, EXIT_INTERRUPTED):
        return logging.WARNING
    return logging.ERROR


def outcome(exit_code: int) -> str:
    return OUTCOMES.get(exit_code, "failed")


def new_run_id() -> str:
    """$FHIR3T_RUN_ID, else systemd's $INVOCATION_ID (journal and log then share the id), else random."""
    for name in ("FHIR3T_RUN_ID", "INVOCATION_ID"):
        given = os.environ.get(name, "")
        if _RUN_ID.match(given):
            return given
    return uuid.uuid4().hex


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, run_id, command, message (and `fields`)."""

    def __init__(self, run_id: str, command: str | None) -> None:
        super().__init__()
        self.run_id, self.command = run_id, command

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {"time": _now(), "level": record.levelname.lower(), "logger": record.name,
                               "run_id": self.run_id, "command": self.command, "event": "log",
                               "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            obj.update(fields)
        if record.exc_info and record.levelno <= logging.DEBUG:
            obj["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(obj, default=str).decode()


class JsonStderr(io.TextIOBase):
    """A stand-in for sys.stderr that turns each printed line into a JSON record of the run."""

    def __init__(self, target: IO[str], run_id: str, command: str | None) -> None:
        self.target, self.run_id, self.command = target, run_id, command
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:  # no progress bars or colours in a log
        return False

    def write(self, s: str) -> int:
        self._buffer += s
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._emit(line)
        return len(s)

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        m = _PREFIX.match(line)
        tag = m["tag"] if m else None
        if m and m["area"]:  # the quick server check: what the server will not give degrades the results
            level, event = ("warning", "server-check") if tag in ("warning", "fail") else ("info", "server-check")
        else:
            level, event = _TAGS.get(tag or "", ("info", "message"))
        obj = {"time": _now(), "level": level, "logger": "fhir3t.cli", "run_id": self.run_id,
               "command": self.command, "event": event, "message": line[m.end():] if m else line}
        self.target.write(orjson.dumps(obj).decode() + "\n")

    def flush(self) -> None:
        if self._buffer:
            line, self._buffer = self._buffer, ""
            self._emit(line)
        self.target.flush()


class RunLog:
    """The run's start and end records: always written in JSON mode (a service needs the exit code), at -v in text."""

    def __init__(self, logger: logging.Logger, handler: logging.Handler, fmt: str) -> None:
        self.logger, self.handler, self.fmt = logger, handler, fmt

    def event(self, message: str, level: int = logging.INFO, **fields: Any) -> None:
        if self.fmt != "json":  # in text the run's own records are -v detail: the failure was printed already
            self.logger.info(message)
            return
        record = self.logger.makeRecord(self.logger.name, level, "(run)", 0, message, (), None,
                                        extra={"fields": fields})
        self.handler.handle(record)

    def end(self, exit_code: int, seconds: float, **fields: Any) -> None:
        """The run-end record: exit code, outcome word, seconds, the command's counts; its level says how it went."""
        self.event(f"exit {exit_code} after {seconds:.1f} s", outcome_level(exit_code), event="run-end",
                   exit_code=exit_code, outcome=outcome(exit_code), seconds=seconds, **fields)

    def failed(self, line: str, exit_code: int, event: str = "run-failed") -> None:
        """A command's failure: the line it always printed, as an error record in JSON mode."""
        if self.fmt != "json":
            print(line, file=sys.stderr)
            return
        message = _PREFIX.sub("", line, count=1)
        record = self.logger.makeRecord(self.logger.name, logging.ERROR, "(run)", 0, message, (), None,
                                        extra={"fields": {"event": event, "exit_code": exit_code}})
        self.handler.handle(record)


@contextmanager
def run_logging(verbosity: int, fmt: str, command: str | None, run_id: str) -> Iterator[RunLog]:
    """Set up the `fhir3t` loggers (and, for JSON, stderr) for one run; undo it afterwards."""
    root = logging.getLogger("fhir3t")
    stream = sys.stderr
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(run_id, command))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    saved = (root.level, root.propagate)
    root.addHandler(handler)
    root.setLevel(LEVELS[min(max(verbosity, 0), 2)])
    root.propagate = False
    wrapper = JsonStderr(stream, run_id, command) if fmt == "json" else None
    if wrapper is not None:
        sys.stderr = wrapper
    try:
        yield RunLog(root, handler, fmt)
    finally:
        if wrapper is not None:
            wrapper.flush()
            sys.stderr = stream
        root.removeHandler(handler)
        root.setLevel(saved[0])
        root.propagate = saved[1]


class Timer:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def seconds(self) -> float:
        return round(time.monotonic() - self.start, 3)
