"""`table`: one row per patient for a person at a terminal, readable at 80 columns.

Every string that comes from the input (patient ids, reasons) is escaped before rich renders it:
an id like `[b]p02` or `a[/x]` is shown as written, never as markup, and control characters
(ANSI escapes) are replaced.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fhir3t.criteria.model import STATUSES, ScreeningResult
from fhir3t.formats import Format, RunInfo

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STYLE = {"eligible": "green", "ineligible": "red", "candidate": "yellow"}


def safe(text: str) -> str:
    """Input text as rich shows it literally: markup escaped, control characters made visible."""
    return escape(_CONTROL.sub("\ufffd", text))


def short_patient(key: str, width: int = 28) -> str:
    """A patient key that fits a column: long urn:uuid ids keep their start and end."""
    if len(key) <= width:
        return key
    keep = (width - 1) // 2
    return f"{key[:keep]}…{key[-(width - 1 - keep):]}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s" if not word.endswith("y") else f"{n} {word[:-1]}ies"


def summary_line(counts: Counter[str], total: int) -> str:
    """'25 patients: 4 eligible, 18 ineligible, 3 candidates'."""
    parts = [f"{counts.get(s, 0)} {s}" if s != "candidate" else plural(counts.get(s, 0), s) for s in STATUSES]
    return f"{plural(total, 'patient')}: " + ", ".join(parts)


class TableFormat(Format):
    name = "table"
    help = "one row per patient: status, failing criteria, unknowns to resolve (default)"
    streaming = False

    def write(self, results: Iterable[ScreeningResult], out: IO[str], info: RunInfo) -> int:
        rows = list(results)
        tty = out.isatty()
        console = Console(file=out, width=None if tty else 100, no_color=not tty, highlight=False, emoji=False)
        title = f"{info.study or 'screening'}: as of {info.as_of}" + (f", D1 {info.d1}" if info.d1 != info.as_of else "")
        if not rows:
            console.print(f"{safe(title)}\nno patients to show", soft_wrap=True)
            return 0
        table = Table(title=safe(title), title_justify="left", expand=False)
        table.add_column("patient", overflow="fold", max_width=30)
        table.add_column("status", no_wrap=True)
        table.add_column("failing", overflow="fold")
        table.add_column("unknown (to resolve)", overflow="fold")
        for r in rows:
            table.add_row(safe(short_patient(r.patient)), f"[{_STYLE[r.status]}]{r.status}[/]",
                          safe(", ".join(r.failing)) or "-", safe(", ".join(r.unknown)) or "-")
        console.print(table)
        for r in rows:
            for note in r.notes:
                console.print(f"[bold]note[/] {safe(r.patient)}: {safe(note)}")
        console.print(summary_line(Counter(r.status for r in rows), len(rows)))
        return len(rows)
