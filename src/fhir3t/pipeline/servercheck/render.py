"""A ServerReport for a terminal (one line a check, wrapped, server strings escaped) or as JSON.

The terminal form is in the reader's language (the status words too); the JSON form is the contract:
English, whatever the language.
"""
from __future__ import annotations

import json

from fhir3t.messages import Plural, render, table
from fhir3t.messages.cells import cells, wrap
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check, ServerReport
from fhir3t.transport.urls import clean

_COLOURS = {OK: "\x1b[32m", WARNING: "\x1b[33m", FAIL: "\x1b[31m"}
_RESET = "\x1b[0m"
STATUS_WIDTH = 8

STATUS_WORDS = table("check.status", {"ok": "ok", "warning": "warning", "fail": "fail"})
W = table("check.render", {
    "line": "{title}: {message}",
    "head": "fhir3t check-server {server}",
    "head-write": "fhir3t check-server {server} (with --write-test)",
    "stopped": "stopped",
    "summary": "{ok} ok, {warnings}, {fails} ({requests} to the server)",
})
WARNINGS = Plural("check.render.warnings", "{n} warning", "{n} warnings")
FAILS = Plural("check.render.fails", "{n} fail", "{n} fails")
REQUESTS = Plural("check.render.requests", "{n} request", "{n} requests")


def check_line(check: Check, width: int = 80, colour: bool = False, lang: str = "en") -> str:
    """`status  title: message`, wrapped under the message; every character a server chose is escaped
    (control and bidi characters replaced) before any colour is added."""
    body = render(W["line"](title=clean(check.title_in(lang), 120), message=clean(check.message_in(lang), 4000)), lang)
    indent = " " * (STATUS_WIDTH + 1)
    lines = wrap(body, max(40, width) - len(indent))
    word = render(STATUS_WORDS[check.status](), lang)
    status = word + " " * max(0, STATUS_WIDTH - cells(word))
    if colour:
        status = f"{_COLOURS[check.status]}{status}{_RESET}"
    return "\n".join([f"{status} {lines[0]}", *(indent + ln for ln in lines[1:])])


def summary(report: ServerReport, lang: str = "en") -> str:
    c = report.counts
    return render(W["summary"](ok=c[OK], warnings=WARNINGS(c[WARNING]), fails=FAILS(c[FAIL]),
                               requests=REQUESTS(report.requests)), lang)


def text(report: ServerReport, width: int = 80, colour: bool = False, lang: str = "en") -> str:
    head = W["head-write"] if report.write_test else W["head"]
    out = [render(head(server=clean(report.server, 300)), lang)]
    out += [check_line(c, width, colour, lang) for c in report.checks]
    if report.error:
        out.append(check_line(Check("stopped", W["stopped"](), FAIL, report.error), width, colour, lang))
    out.append(summary(report, lang))
    return "\n".join(out) + "\n"


def as_json(report: ServerReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
