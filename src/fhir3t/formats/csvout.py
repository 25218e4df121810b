"""`csv` (one row per patient) and `csv-long` (one row per patient and criterion) for Excel.

`csv` is for a person: its header row, status words, what to resolve and the notes are in the run's
language (`--lang`). `csv-long` is the machine form: its header row is the same column names in every
language, and its codes (`status`, `result`, `kind`), `title` and `reason` stay English; a run in another
language adds two columns at the end, `title_localized` and `reason_localized`.

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
from fhir3t.formats.summary import actions, status_word
from fhir3t.messages import table

W = table("csv", {
    "help": "one row per patient for Excel (UTF-8 with BOM), in the run's language: id, display id, status, "
            "failing, unknown, what to do",
    "help-long": "one row per patient and criterion for Excel and programs (UTF-8 with BOM): result, reason, "
                 "evidence; column names and codes in English in every language",
    "col.patient": "patient",
    "col.display_id": "display_id",
    "col.name": "name",
    "col.status": "status",
    "col.failing": "failing",
    "col.unknown": "unknown",
    "col.to_resolve": "to_resolve",
    "col.notes": "notes",
    "col.as_of": "as_of",
    "col.d1": "d1",
    "todo": "{criterion}: {action}",
})

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
    #: the header row is the columns' names in the run's language (else the column keys as they are)
    localized_header = False

    def rows(self, r: ScreeningResult, info: RunInfo) -> Iterable[dict[str, str]]:
        raise NotImplementedError

    def columns_for(self, info: RunInfo) -> list[str]:
        return [c for c in self.columns if c != "name" or info.names]

    def write(self, results: Iterable[ScreeningResult], out: IO[str], info: RunInfo) -> int:
        _bom(out)
        columns = self.columns_for(info)
        w = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
        if self.localized_header:
            w.writerow({c: info.say(W[f"col.{c}"]()) for c in columns})
        else:
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
    help = W["help"]
    columns = ("patient", "display_id", "name", "status", "failing", "unknown", "to_resolve", "notes", "as_of", "d1")
    localized_header = True

    def rows(self, r: ScreeningResult, info: RunInfo) -> Iterable[dict[str, str]]:
        lang = info.lang
        todo: dict[str, None] = {}
        for c in r.criteria:
            if c.id in r.unknown:
                todo.update(dict.fromkeys(info.say(W["todo"](criterion=c.id, action=a)) for a in actions(c, lang)))
        sep = "；" if lang != "en" else "; "
        yield {"patient": cell(r.patient), "display_id": cell(r.display_id(info.id_system)),
               "name": cell(r.name or ""), "status": status_word(r.status, lang), "failing": " ".join(r.failing),
               "unknown": " ".join(r.unknown), "to_resolve": cell(sep.join(todo)),
               "notes": cell(sep.join(r.notes_in(lang))), "as_of": r.as_of.isoformat(), "d1": r.d1.isoformat()}


class CsvLongFormat(_Csv):
    name = "csv-long"
    help = W["help-long"]
    columns = ("patient", "display_id", "name", "status", "criterion", "kind", "title", "result", "reason",
               "evidence", "requires_review", "as_of", "d1")
    #: added at the end in a run in another language than English
    localized = ("title_localized", "reason_localized")

    def columns_for(self, info: RunInfo) -> list[str]:
        return super().columns_for(info) + (list(self.localized) if info.lang != "en" else [])

    def rows(self, r: ScreeningResult, info: RunInfo) -> Iterable[dict[str, str]]:
        base = {"patient": cell(r.patient), "display_id": cell(r.display_id(info.id_system)), "name": cell(r.name or ""),
                "status": r.status, "as_of": r.as_of.isoformat(), "d1": r.d1.isoformat()}
        english = {i: t.en for i, _k, t in info.criteria_titles}
        for c in r.criteria:
            row = {**base, "criterion": c.id, "kind": c.kind, "title": english.get(c.id, ""), "result": c.result,
                   "reason": cell(c.reason), "evidence": cell(" ".join(c.evidence)),
                   "requires_review": "yes" if c.requires_review else "no"}
            if info.lang != "en":
                row.update(title_localized=info.title_of(c.id), reason_localized=cell(c.reason_in(info.lang)))
            yield row
