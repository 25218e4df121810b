"""Screening: files (or a server) -> grouped records -> results."""
from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from fhir3t.criteria.model import ScreeningResult
from fhir3t.criteria.screener import patient_ids
from fhir3t.dates import FIRST_DAY, LAST_DAY, parse_day, today_utc
from fhir3t.emit import screening_bundle
from fhir3t.errors import Fhir3tError, Problems, UsageError
from fhir3t.formats import Format, RunInfo, get_format
from fhir3t.formats.summary import StaleTally
from fhir3t.pipeline.engine import Engine
from fhir3t.pipeline.gcpolicy import fewer_collections
from fhir3t.sinks import FileSink, atomic_text
from fhir3t.sources.base import RawRecord
from fhir3t.sources.files import Limits, expand_paths, with_discovered_maps
from fhir3t.sources.grouping import GroupingSource, SharedIndex

if TYPE_CHECKING:
    from fhir3t.transport.http import FhirClient


def as_day(value: date | str | None, name: str) -> date | None:
    if isinstance(value, date) and not FIRST_DAY <= value <= LAST_DAY:
        raise UsageError(f"{name}: {value} is outside {FIRST_DAY.year}-{LAST_DAY.year}")
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
    patients: Sequence[str] = (),
    names: bool = False,
) -> Iterator[ScreeningResult]:
    """Screen every patient found in Bundle / NDJSON files; yields one ScreeningResult each.

    Every input is grouped by patient first, so a patient's resources may be spread over any
    number of files. Input problems (bad JSON, entries without a patient, ...) are collected in
    `problems` (pass your own Problems() to read them) instead of raising. ConceptMap files among
    `paths` are applied like `concept_maps` unless `discover_maps` is off. `store` is "auto"
    (memory, moving to disk partitions for large inputs), "memory" or "disk". `patients` keeps only
    these patients (reference, FHIR id or identifier value, e.g. an MRN); `names` puts each Patient's
    name into its result (off by default: results travel, names should not unless asked).
    """
    as_of_day = as_day(as_of, "as_of") or today_utc()
    d1_day = as_day(d1, "d1") or as_of_day
    paths = list(paths)
    problems = problems if problems is not None else (engine.problems if engine is not None else Problems())
    if engine is None:
        maps = with_discovered_maps(paths, concept_maps, problems) if discover_maps else list(concept_maps)
        engine = Engine.load(maps, criteria_file, problems)
    if jobs > 1 and not documents and not patients:
        from fhir3t.pipeline.parallel import EngineSpec, screen_parallel
        from fhir3t.profiles import selected_profiles

        spec = EngineSpec(tuple(str(p) for p in engine.concept_maps), str(engine.criteria.path), selected_profiles(),
                          names)
        yield from screen_parallel(paths, spec, as_of_day, d1_day, jobs, problems, limits)
        return
    engine.problems = problems
    engine.relevance.problems = problems
    engine.screener.names = names
    source = GroupingSource(paths, problems, engine.wants, limits=limits, store=store, on_file=on_file,
                            documents=documents)
    engine.missing_parts = 0
    raws: Iterable[RawRecord] = only_patients(source, patients) if patients else source
    with fewer_collections():
        yield from engine.screen_raw(raws, as_of_day, d1_day, source.shared)
    engine.summary_problems(problems)
    if source.stats.unattributed:
        problems.add("input", f"{source.stats.unattributed} resource(s) that could decide a criterion name no patient "
                              "fhir3t can find (see above): their patients' results may be incomplete")


def screen_server(
    client: FhirClient,
    engine: Engine,
    *,
    as_of: date | str | None = None,
    d1: date | str | None = None,
    patients: Sequence[str] = (),
    group: str | None = None,
    since: date | None = None,
    strategy: str | None = None,
    problems: Problems | None = None,
    on_candidates: Callable[[int], None] | None = None,
    names: bool = False,
) -> Iterator[ScreeningResult]:
    """Screen patients pulled from a FHIR server (candidates by the study's anchor condition, or the
    given patients / Group) through the same engine as files."""
    from fhir3t.sources.rest import RestSource

    as_of_day = as_day(as_of, "as_of") or today_utc()
    d1_day = as_day(d1, "d1") or as_of_day
    if problems is not None:
        engine.problems = problems
        engine.relevance.problems = problems
    engine.screener.names = names
    shared = SharedIndex()
    source = RestSource(client, engine.tx, sorted(engine.screener.types), engine.problems, shared,
                        anchor=(engine.study.candidate_type, engine.study.candidate_valueset),
                        patients=patients, group=group, since=since, strategy=strategy, on_candidates=on_candidates)
    yield from engine.screen_raw(source, as_of_day, d1_day, shared)


def raw_matches(raw: RawRecord, wanted: Iterable[str]) -> bool:
    """Is this record one of the wanted patients (reference, FHIR id, identifier value or system|value)?"""
    keys = {raw.key, raw.key.removeprefix("Patient/")}
    patient = next((res for res, _ in raw.resources if res.get("resourceType") == "Patient"), None)
    for i in patient_ids(patient):
        keys.update((i.value, f"{i.system}|{i.value}"))
    return any(w in keys for w in wanted)


def only_patients(raws: Iterable[RawRecord], wanted: Sequence[str]) -> Iterator[RawRecord]:
    """The records of the wanted patients only (the others are never screened)."""
    for raw in raws:
        if raw_matches(raw, wanted):
            yield raw


#: Bundle.meta.tag system of the samples: the code is the as-of date they were written for
SAMPLE_AS_OF = "https://fhir3t.github.io/fhir/CodeSystem/sample-as-of"
_TAG = re.compile(rb'\{[^{}]*"' + re.escape(SAMPLE_AS_OF.encode()) + rb'"[^{}]*\}')
_CODE = re.compile(rb'"code"\s*:\s*"(\d{4}-\d{2}-\d{2})"')
_XML_TAG = re.compile(rb'<system\s+value="' + re.escape(SAMPLE_AS_OF.encode()) + rb'"\s*/>\s*<code\s+value="(\d{4}-\d{2}-\d{2})"')


def sample_as_of(paths: Iterable[str | Path], head: int = 2048) -> tuple[date | None, list[str]]:
    """The as-of date the sample files among `paths` were written for (Bundle.meta.tag), and the dates
    found when they disagree (then None). Reads only the first bytes of each .json file, as the
    ConceptMap discovery does; NDJSON (real exports) is never looked at."""
    found: set[str] = set()
    try:
        json_files, _ = expand_paths(paths, Problems())
    except Fhir3tError:
        return None, []
    for path in json_files:
        try:
            with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")) as fh:
                data = fh.read(head)
        except (OSError, EOFError, zlib.error):
            continue
        xml_tag = _XML_TAG.search(data)
        if xml_tag is not None:
            found.add(xml_tag.group(1).decode())
        tag = _TAG.search(data)
        if tag is not None:
            m = _CODE.search(tag.group(0))
            if m is not None:
                found.add(m.group(1).decode())
    if len(found) == 1:
        try:
            return parse_day(found.pop()), []
        except ValueError:
            return None, []
    return None, sorted(found)


@dataclass(frozen=True)
class Output:
    """One place results go: a format, and a file (None: the given stream, stdout for the CLI)."""

    format: str
    path: str | None = None


@dataclass
class ScreenRun:
    """What a screening run produced, for the caller to report and turn into an exit code."""

    counts: Counter[str] = field(default_factory=Counter)
    written: dict[str, int] = field(default_factory=dict)
    results: list[ScreeningResult] = field(default_factory=list)  # kept when emitting, pushing or collecting
    bundle: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: unknowns left unknown only by results older than their window (see formats.summary)
    stale: StaleTally = field(default_factory=StaleTally)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def deliver(stream: Iterable[ScreeningResult], engine: Engine, info: RunInfo, outputs: Sequence[Output], *,
            stdout: IO[str], keep: bool = False, emit: str | None = None) -> ScreenRun:
    """Write results to every output; build (and write, with `emit`) the FHIR Bundle.

    One streaming output and nothing else to do: results are written as they come (memory stays flat).
    Otherwise they are collected once and each output is written from the list. Files are written
    atomically; a failure part-way leaves a marker on a streamed stdout and no partial file.
    """
    run = ScreenRun()

    def tally(it: Iterable[ScreeningResult]) -> Iterator[ScreeningResult]:
        for r in it:
            run.counts[r.status] += 1
            run.stale.add(r)
            yield r

    stream = tally(stream)
    formats = [(o, get_format(o.format)) for o in outputs]
    collect = keep or emit is not None or len(formats) != 1 or not formats[0][1].streaming
    if collect:
        run.results = list(stream)
        source: Iterable[ScreeningResult] = run.results
        for o, fmt in formats:
            run.written[o.format] = _write_one(fmt, source, o.path, stdout, info)
    else:
        o, fmt = formats[0]
        run.written[o.format] = _write_one(fmt, stream, o.path, stdout, info)
    if emit is not None or keep:
        run.bundle, run.notes = screening_bundle(run.results, engine.criteria, study=engine.study)
        if emit is not None:
            try:
                FileSink(emit).send(run.bundle)
            except OSError as exc:
                raise UsageError(f"cannot write {emit}: {exc.strerror}") from None
    return run


def _write_one(fmt: Format, results: Iterable[ScreeningResult], path: str | None, stdout: IO[str], info: RunInfo) -> int:
    if path is None or path == "-":
        return fmt.write(results, stdout, info)
    try:
        with atomic_text(path, bom=fmt.bom) as fh:
            return fmt.write(results, fh, info)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
