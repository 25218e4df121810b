"""Screening: files (or a server) -> grouped records -> results."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path

from fhir3t.criteria.model import ScreeningResult
from fhir3t.dates import parse_day, today_utc
from fhir3t.errors import Problems, UsageError
from fhir3t.pipeline.engine import Engine
from fhir3t.sources.files import Limits, with_discovered_maps
from fhir3t.sources.grouping import GroupingSource


def as_day(value: date | str | None, name: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return parse_day(value)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def screen_files(
    paths: Iterable[str | Path],
    *,
    as_of: date | str | None = None,
    d1: date | str | None = None,
    concept_maps: Iterable[str | Path] = (),
    problems: Problems | None = None,
    engine: Engine | None = None,
    on_file: Callable[[Path], None] | None = None,
    criteria_file: str | Path | None = None,
    discover_maps: bool = True,
    store: str = "auto",
    limits: Limits | None = None,
    documents: Iterable[tuple[str, object]] = (),
    jobs: int = 1,
) -> Iterator[ScreeningResult]:
    """Screen every patient found in Bundle / NDJSON files; yields one ScreeningResult each.

    Every input is grouped by patient first, so a patient's resources may be spread over any
    number of files. Input problems (bad JSON, entries without a patient, ...) are collected in
    `problems` (pass your own Problems() to read them) instead of raising. ConceptMap files among
    `paths` are applied like `concept_maps` unless `discover_maps` is off. `store` is "auto"
    (memory, moving to disk partitions for large inputs), "memory" or "disk".
    """
    as_of_day = as_day(as_of, "as_of") or today_utc()
    d1_day = as_day(d1, "d1") or as_of_day
    paths = list(paths)
    problems = problems if problems is not None else (engine.problems if engine is not None else Problems())
    if engine is None:
        maps = with_discovered_maps(paths, concept_maps, problems) if discover_maps else list(concept_maps)
        engine = Engine.load(maps, criteria_file, problems)
    engine.problems = problems
    engine.relevance.problems = problems
    source = GroupingSource(paths, problems, engine.wants, limits=limits, store=store, on_file=on_file,
                            documents=documents)
    yield from engine.screen_raw(source, as_of_day, d1_day, source.shared)
    if source.stats.unattributed:
        problems.add("input", f"{source.stats.unattributed} resource(s) that could decide a criterion name no patient "
                              "fhir3t can find (see above): their patients' results may be incomplete")
