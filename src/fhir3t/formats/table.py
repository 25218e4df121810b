"""`table`: one row per patient for a person at a terminal, readable at 80 columns.

Every string that comes from the input (patient ids, reasons) is escaped before rich renders it:
an id like `[b]p02` or `a[/x]` is shown as written, never as markup, and control characters
(ANSI escapes) are replaced. Narrower than 120 columns (and always when not a terminal: 80), criteria
are shown by their short code (`E7`) with a legend of the codes used under the table; long patient
ids (urn:uuid) keep their start and end.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fhir3t.criteria.model import ScreeningResult
from fhir3t.enrolment import Status
from fhir3t.formats import Format, RunInfo
from fhir3t.formats.summary import plural, status_word, summary_line, summary_msg
from fhir3t.messages import table
from fhir3t.messages.cells import wrap

__all__ = ["TableFormat", "plural", "safe", "short_patient", "summary_line"]

W = table("table", {
    "help": "one row per patient: status, failing criteria, unknowns to resolve (default)",
    "title": "{study}: as of {as_of}, D1 {d1}",
    "title-note": "{study}: as of {as_of} ({note}), D1 {d1}",
    "screening": "screening",
    "empty": "no patients found in the input",
    "col.patient": "patient",
    "col.status": "status",
    "col.failing": "failing",
    "col.unknown": "unknown (to resolve)",
    "legend": "criteria: {ids}",
    "note": "note {patient}: {note}",
    "end": "{summary} (as of {as_of}, D1 {d1})",
})

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STYLE: dict[str, str] = {Status.ELIGIBLE: "green", Status.INELIGIBLE: "red", Status.CANDIDATE: "yellow"}
#: below this width criteria are shown by code (E7) with a legend
WIDE = 120


def safe(text: str) -> str:
    """Input text as rich shows it literally: markup escaped, control characters made visible."""
    return escape(_CONTROL.sub("\ufffd", text))


def short_patient(key: str, width: int = 28) -> str:
    """A patient key that fits a column: the id of a long key keeps its start and end, and the
    `Patient/` or `urn:uuid:` prefix is dropped first (`9c37c76c…e7215a194c98`)."""
    if len(key) <= width:
        return key
    for prefix in ("urn:uuid:", "Patient/"):
        if key.startswith(prefix) and len(key) - len(prefix) <= width:
            return key[len(prefix):]
    ident = key.removeprefix("urn:uuid:").removeprefix("Patient/")
    keep = (width - 1) // 2
    return f"{ident[:keep]}…{ident[-(width - 1 - keep):]}"


def code(criterion_id: str) -> str:
    """'E7-hbv' -> 'E7' (the spec's numbering)."""
    return criterion_id.split("-", 1)[0]


def prose(console: Console, text: str) -> None:
    """A sentence wrapped to the console by display cells (Chinese breaks between characters; messages.cells)."""
    for line in wrap(text, console.width):
        console.print(safe(line), soft_wrap=True)


def run_title(info: RunInfo) -> str:
    study = info.study or info.say(W["screening"]())
    if info.as_of_note:
        return info.say(W["title-note"](study=study, as_of=str(info.as_of), note=info.as_of_note, d1=str(info.d1)))
    return info.say(W["title"](study=study, as_of=str(info.as_of), d1=str(info.d1)))


class TableFormat(Format):
    name = "table"
    help = W["help"]
    streaming = False

    def write(self, results: Iterable[ScreeningResult], out: IO[str], info: RunInfo) -> int:
        rows = list(results)
        tty = out.isatty()
        console = Console(file=out, width=None if tty else 80, no_color=not tty, highlight=False, emoji=False)
        title = run_title(info)
        if not rows:
            console.print(f"{safe(title)}\n{safe(info.say(W['empty']()))}", soft_wrap=True)
            return 0
        narrow = console.width < WIDE
        codes = narrow and len({code(c.id) for c in rows[0].criteria}) == len(rows[0].criteria)
        show = code if codes else (lambda cid: cid)
        pwidth = max(14, min(30, console.width // 4))
        prose(console, title)
        table = Table(expand=False)
        table.add_column(safe(info.say(W["col.patient"]())), overflow="fold", max_width=pwidth)
        table.add_column(safe(info.say(W["col.status"]())), no_wrap=True)
        table.add_column(safe(info.say(W["col.failing"]())), overflow="fold", ratio=1)
        table.add_column(safe(info.say(W["col.unknown"]())), overflow="fold", ratio=2)
        used: dict[str, None] = {}
        for r in rows:
            failing, unknown = r.failing, r.unknown
            used.update(dict.fromkeys(failing + unknown))
            table.add_row(safe(short_patient(r.patient, pwidth)), f"[{_STYLE[r.status]}]{safe(status_word(r.status, info.lang))}[/]",
                          safe(", ".join(map(show, failing))) or "-", safe(", ".join(map(show, unknown))) or "-")
        console.print(table)
        if codes and used:
            order = [c.id for c in rows[0].criteria]
            prose(console, info.say(W["legend"](ids=", ".join(cid for cid in order if cid in used))))
        for r in rows:
            for note in r.remarks:
                prose(console, info.say(W["note"](patient=r.patient, note=note)))
        end = W["end"](summary=summary_msg(Counter(r.status for r in rows), len(rows)), as_of=str(info.as_of),
                       d1=str(info.d1))
        console.print(safe(info.say(end)), soft_wrap=True)
        return len(rows)
