"""A ServerReport for a terminal (one line a check, wrapped, server strings escaped) or as JSON."""
from __future__ import annotations

import json
import textwrap

from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check, ServerReport
from fhir3t.transport.urls import clean

_COLOURS = {OK: "\x1b[32m", WARNING: "\x1b[33m", FAIL: "\x1b[31m"}
_RESET = "\x1b[0m"
STATUS_WIDTH = 8


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_line(check: Check, width: int = 80, colour: bool = False) -> str:
    """`status  title: message`, wrapped under the message; every character a server chose is escaped
    (control and bidi characters replaced) before any colour is added."""
    body = f"{clean(check.title, 120)}: {clean(check.message, 4000)}"
    indent = " " * (STATUS_WIDTH + 1)
    lines = textwrap.wrap(body, width=max(40, width) - len(indent), break_on_hyphens=False, break_long_words=True) or [""]
    status = f"{check.status:<{STATUS_WIDTH}}"
    if colour:
        status = f"{_COLOURS[check.status]}{status}{_RESET}"
    return "\n".join([f"{status} {lines[0]}", *(indent + ln for ln in lines[1:])])


def summary(report: ServerReport) -> str:
    c = report.counts
    return (f"{c[OK]} ok, {_plural(c[WARNING], 'warning')}, {_plural(c[FAIL], 'fail')} "
            f"({_plural(report.requests, 'request')} to the server)")


def text(report: ServerReport, width: int = 80, colour: bool = False) -> str:
    out = [f"fhir3t check-server {clean(report.server, 300)}" + (" (with --write-test)" if report.write_test else "")]
    out += [check_line(c, width, colour) for c in report.checks]
    if report.error:
        out.append(check_line(Check("stopped", "stopped", FAIL, report.error), width, colour))
    out.append(summary(report))
    return "\n".join(out) + "\n"


def as_json(report: ServerReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
