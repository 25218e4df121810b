"""Log output of one CLI run: plain text for people, or JSON lines (`--log-format json`) for a service.

In JSON mode every line the run writes on stderr becomes one JSON object carrying the run id, so a
log collector parses all of it: log records, and the messages subcommands print (problems, notes,
summaries). The run id is `$FHIR3T_RUN_ID` when set, else systemd's `$INVOCATION_ID`, else random.
Messages are PHI-free by construction at INFO and WARNING (files, entries, elements and counts, never
names, identifiers or values); -vv (DEBUG) may show values and is not meant for production logs.
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

LEVELS = [logging.WARNING, logging.INFO, logging.DEBUG]
_RUN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PREFIX = re.compile(r"^fhir3t(?: [a-z-]+)?: (?:(?P<tag>skipped|note|warning|error): )?")


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
                               "run_id": self.run_id, "command": self.command, "message": record.getMessage()}
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
        level = {"skipped": "warning", "warning": "warning", "error": "error"}.get(tag or "", "info")
        obj = {"time": _now(), "level": level, "logger": "fhir3t.cli", "run_id": self.run_id,
               "command": self.command, "message": line[m.end():] if m else line}
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

    def event(self, message: str, **fields: Any) -> None:
        if self.fmt != "json":
            self.logger.info(message)
            return
        record = self.logger.makeRecord(self.logger.name, logging.INFO, "(run)", 0, message, (), None,
                                        extra={"fields": fields})
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
