"""The Python API: what `fhir3t screen` does, for a hospital's own scripts.

    import fhir3t
    for result in fhir3t.screen(["samples/"], as_of="2026-11-16"):
        print(result.patient, result.status, result.unknown)

`screen` loads the study's Definition and starts a Run with the same as-of policy as the CLI (the
date given, else the samples' tag, else today); a script that screens many times loads one
`Definition` and calls `fhir3t.pipeline.screen_files(definition, Run.start(definition, ...), inputs)`.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path

from fhir3t.criteria.model import ScreeningResult
from fhir3t.errors import Problems
from fhir3t.pipeline import Definition, FileInputs, Run, screen_files, with_discovered_maps
from fhir3t.sources.files import Limits


def screen(paths: Iterable[str | Path], *, as_of: date | str | None = None, d1: date | str | None = None,
           concept_maps: Iterable[str | Path] = (), problems: Problems | None = None,
           definition: Definition | None = None, profiles: str | Path | None = None,
           criteria_file: str | Path | None = None, discover_maps: bool = True, store: str = "auto",
           limits: Limits | None = None, jobs: int = 1, patients: Sequence[str] = (),
           names: bool = False, documents: Iterable[tuple[str, object]] = (),
           native: str = "auto") -> Iterator[ScreeningResult]:
    """Screen every patient found in Bundle / NDJSON files; yields one ScreeningResult each.

    Input problems (bad JSON, entries without a patient, ...) are collected in `problems` (pass your
    own Problems() to read them). ConceptMap files among `paths` are applied like `concept_maps` unless
    `discover_maps` is off. `patients` keeps only these patients (reference, FHIR id, identifier value,
    e.g. an MRN); `names` puts each Patient's name into its result (off by default); `documents` are
    parsed Bundles or resources given in memory, grouped with the files; `native` ("auto", "on", "off")
    reads NDJSON through DuckDB first (the `native` extra; same results).
    """
    paths = list(paths)
    problems = problems if problems is not None else Problems()
    if definition is None:
        maps = with_discovered_maps(paths, concept_maps, problems) if discover_maps else list(concept_maps)
        definition = Definition.load(profiles, maps, criteria_file)
    run = Run.start(definition, as_of=as_of, d1=d1, paths=paths, problems=problems, names=names)
    yield from screen_files(definition, run, FileInputs(tuple(paths), store=store, limits=limits, jobs=jobs,
                                                        patients=tuple(patients), documents=tuple(documents),
                                                        native=native))


__all__ = ["Definition", "Run", "screen", "with_discovered_maps"]
