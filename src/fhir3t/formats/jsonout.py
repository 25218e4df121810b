"""`json` (an array) and `ndjson` (one object per line): the JSON contract of the README.

Field names, codes and `reason` are English in every language; a run in another language adds the
translated text beside them (`reason_localized`, `notes_localized`, `lang`): see screening-result.schema.json.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import IO

import orjson

from fhir3t.criteria.model import ScreeningResult
from fhir3t.formats import Format, RunInfo
from fhir3t.messages import table

W = table("json", {
    "help": "an array of result objects (the JSON contract; English fields, reason_localized added in another language)",
    "help-nd": "one result object per line (for big runs and other tools)",
})


def error_marker(exc: BaseException) -> dict[str, str]:
    """The last element/line of a run that failed part-way (never patient data)."""
    return {"fhir3t_error": f"the run did not complete ({type(exc).__name__}); results above are partial"}


def contract_line(r: ScreeningResult, info: RunInfo, *, indent: bool = False) -> bytes:
    """One result's JSON contract, on one line or indented (what a stored result keeps between nights: see
    ScreeningResult.rendered)."""
    option = orjson.OPT_INDENT_2 if indent else None
    return r.rendered(f"json{'-indented' if indent else ''}|{info.id_system or ''}|{info.lang}",
                      lambda r: orjson.dumps(r.to_dict(info.id_system, info.lang), option=option))


class Json(Format):
    name = "json"
    help = W["help"]

    def write(self, results: Iterable[ScreeningResult], out: IO[str], info: RunInfo) -> int:
        n = 0
        out.write("[")
        try:
            for r in results:
                out.write(("\n" if n == 0 else ",\n") + contract_line(r, info, indent=True).decode())
                n += 1
        except BaseException as exc:
            out.write(("\n" if n == 0 else ",\n") + orjson.dumps(error_marker(exc)).decode() + "\n]\n")
            raise
        out.write("\n]\n" if n else "]\n")
        return n


class Ndjson(Format):
    name = "ndjson"
    help = W["help-nd"]

    def write(self, results: Iterable[ScreeningResult], out: IO[str], info: RunInfo) -> int:
        n = 0
        try:
            for r in results:
                out.write(contract_line(r, info).decode() + "\n")
                n += 1
        except BaseException as exc:
            out.write(orjson.dumps(error_marker(exc)).decode() + "\n")
            raise
        return n
