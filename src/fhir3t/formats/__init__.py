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
from datetime import date
from typing import IO, ClassVar

from fhir3t.criteria.model import ScreeningResult


@dataclass(frozen=True)
class RunInfo:
    """What a reader of the output must know besides the results."""

    as_of: date
    d1: date
    as_of_defaulted: bool = False  # --as-of not given: today (UTC)
    study: str = ""  # short title of the study
    criteria: str = ""  # criteria id and version
    digest: str = ""  # sha256 of the criteria + value sets
    inputs: str = ""  # e.g. "24 files" or "https://ehr.example.org/fhir"
    notes: tuple[str, ...] = field(default=())


class Format(ABC):
    """One output format."""

    name: ClassVar[str]
    help: ClassVar[str]
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
            if isinstance(obj, type) and issubclass(obj, Format) and obj is not Format and obj.__module__ == module.__name__:
                found[obj.name] = obj
    return found


FORMATS: dict[str, type[Format]] = _discover()


def get_format(name: str) -> Format:
    return FORMATS[name]()


__all__ = ["FORMATS", "Format", "RunInfo", "get_format"]
