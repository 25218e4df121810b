"""`csv` (one row per patient) and `csv-long` (one row per patient and criterion) for Excel.

UTF-8 with a byte-order mark, so Excel shows Chinese text as written, and CRLF rows. A cell from the
input that starts like a formula (= + - @, their full-width forms ＝ ＋ － ＠ which spreadsheets also read as
formulas, or whitespace before one: space, ideographic space, tab, CR, LF) gets a leading apostrophe, so
opening the file never runs what a record holds (CSV injection). Names appear only when the run asked for them.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO

from fhir3t.criteria.model import ScreeningResult
from fhir3t.formats import Format, RunInfo
from fhir3t.formats.jsonout import error_marker
from fhir3t.formats.summary import actions

_FORMULA = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20", " ", "\u3000", "\t", "\r", "\n")


def cell(text: str) -> str:
    """An input string as a CSV cell Excel shows as text, never evaluates."""
    return "'" + text if text.startswith(_FORMULA) else text


def _bom(out: IO[str]) -> None:
    if (getattr(out, "encoding", "") or "").lower().replace("_", "-") != "utf-8-sig":
        out.write("\ufeff")  # the stream's encoding does not add the mark (stdout): write it


class _Csv(Format):
    bom = True
    columns: tuple[str, ...] = ()

    def rows(self, r: ScreeningResult, info: RunInfo) -> Iterable[dict[str, str]]:
        raise NotImplementedError

    def write(self, results: Iterable[ScreeningResult], out: IO[str], info: RunInfo) -> int:
        _bom(out)
        columns = [c for c in self.columns if c != "name" or info.names]
        w = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
        w.writeheader()
        n = 0
        try:
            for r in results:
                for row in self.rows(r, info):
                    w.writerow(row)
                n += 1
        except BaseException as exc:
            out.write(f"{error_marker(exc)['fhir3t_error']}\r\n")
            raise
        return n


class CsvFormat(_Csv):
    name = "csv"
    help = "one row per patient for Excel (UTF-8 with BOM): id, display id, status, failing, unknown, what to do"
    columns = ("patient", "display_id", "name", "status", "failing", "unknown", "to_resolve", "notes", "as_of", "d1")

    def rows(self, r: ScreeningResult, info: RunInfo) -> Iterable[dict[str, str]]:
        todo: dict[str, None] = {}
        for c in r.criteria:
            if c.id in r.unknown:
                todo.update(dict.fromkeys(f"{c.id}: {a}" for a in actions(c)))
        yield {"patient": cell(r.patient), "display_id": cell(r.display_id(info.id_system)),
               "name": cell(r.name or ""), "status": r.status, "failing": " ".join(r.failing),
               "unknown": " ".join(r.unknown), "to_resolve": cell("; ".join(todo)),
               "notes": cell("; ".join(r.notes)), "as_of": r.as_of.isoformat(), "d1": r.d1.isoformat()}


class CsvLongFormat(_Csv):
    name = "csv-long"
    help = "one row per patient and criterion for Excel (UTF-8 with BOM): result, reason, evidence"
    columns = ("patient", "display_id", "name", "status", "criterion", "kind", "title", "result", "reason",
               "evidence", "requires_review", "as_of", "d1")

    def rows(self, r: ScreeningResult, info: RunInfo) -> Iterable[dict[str, str]]:
        base = {"patient": cell(r.patient), "display_id": cell(r.display_id(info.id_system)), "name": cell(r.name or ""),
                "status": r.status, "as_of": r.as_of.isoformat(), "d1": r.d1.isoformat()}
        for c in r.criteria:
            yield {**base, "criterion": c.id, "kind": c.kind, "title": info.title_of(c.id), "result": c.result,
                   "reason": cell(c.reason), "evidence": cell(" ".join(c.evidence)),
                   "requires_review": "yes" if c.requires_review else "no"}
