"""Output formats for screening results: one module each, registered by name.

A format writes ScreeningResults to a text stream. Streaming formats (json, ndjson, csv) write each
result as it arrives, so a million patients never sit in memory; the others (table, html) collect.
If the run fails part-way, a streaming format ends with an error marker, so a failed run never looks
like a complete one (a file given with --out is written atomically: it is there whole, or not at all).
Adding a format: a module here defining a `Format` subclass, plus its tests.
"""
from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, tzinfo
from typing import IO, ClassVar

from fhir3t.criteria.model import ScreeningResult
from fhir3t.dates import local_time, zone_name
from fhir3t.messages import Message, Msg, Text, render

AS_OF_SAMPLES = Message("run.as-of-samples", "the date the sample files were written for")
AS_OF_TODAY = Message("run.as-of-today", "today, {zone}")


@dataclass(frozen=True)
class RunInfo:
    """What a reader of the output must know besides the results."""

    as_of: date
    d1: date
    as_of_defaulted: bool = False  # --as-of not given: today (in the site's time zone)
    study: str = ""  # short title of the study
    criteria: str = ""  # criteria id and version
    digest: str = ""  # sha256 of the criteria + value sets
    inputs: str = ""  # e.g. "24 files" or "https://ehr.example.org/fhir"
    notes: tuple[str, ...] = field(default=())
    #: where the as-of date came from: "given" (--as-of), "today" (the site's), "samples" (the input's sample tag)
    as_of_from: str = ""
    #: (id, kind, title in every language) of every criterion, in the criteria's order (headers, filters, legends)
    criteria_titles: tuple[tuple[str, str, Text], ...] = ()
    #: Patient.identifier system of the display id (--id-system); None: the MRN
    id_system: str | None = None
    names: bool = False  # the run asked for names (--show-names): results carry them
    run_id: str = ""
    generated_at: str = ""  # ISO time the run wrote its output (UTC)
    #: the language of everything a person reads in the output (JSON fields stay English), the site's time zone
    lang: str = "en"
    tz: tzinfo = UTC

    @property
    def as_of_msg(self) -> Msg | None:
        """Why this as-of: 'today in Asia/Shanghai' / 'the date the sample files were written for' / None."""
        if self.as_of_from == "samples":
            return AS_OF_SAMPLES()
        if self.as_of_from == "today" or (self.as_of_defaulted and not self.as_of_from):
            return AS_OF_TODAY(zone=zone_name(self.tz))
        return None

    @property
    def as_of_note(self) -> str:
        """as_of_msg in the output's language ('' when the date was given)."""
        m = self.as_of_msg
        return render(m, self.lang) if m is not None else ""

    @property
    def written_at(self) -> str:
        """When the output was written, in the site's time zone with its offset."""
        return local_time(self.generated_at, self.tz) if self.generated_at else ""

    def say(self, msg: Msg) -> str:
        return render(msg, self.lang)

    def title_of(self, criterion_id: str) -> str:
        """The criterion's title in the output's language."""
        t = next((t for i, _k, t in self.criteria_titles if i == criterion_id), None)
        return t.get(self.lang) if t is not None else ""


class Format(ABC):
    """One output format."""

    name: ClassVar[str]
    help: ClassVar[Message]
    streaming: ClassVar[bool] = True
    #: the file is binary-safe text needing a byte-order mark (Excel reads UTF-8 CSV with one)
    bom: ClassVar[bool] = False

    @abstractmethod
    def write(self, results: Iterable[ScreeningResult], out: IO[str], info: RunInfo) -> int:
        """Write every result; return how many were written. Raise through on failure (after marking
        the output as incomplete where the format can)."""


def _discover() -> dict[str, type[Format]]:
    found: dict[str, type[Format]] = {}
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{m.name}")
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, Format) and obj.__module__ == module.__name__
                    and isinstance(getattr(obj, "name", None), str)):  # a shared base class has no name
                found[obj.name] = obj
    return found


FORMATS: dict[str, type[Format]] = _discover()


def get_format(name: str) -> Format:
    return FORMATS[name]()


__all__ = ["FORMATS", "Format", "RunInfo", "get_format"]
