"""Screening tasks: `task(definition, run, ...)` for files, a FHIR server and documents in memory.

Every way of running fhir3t (the CLI, the Python API, the CDS service, the watcher, check-server,
Spark partitions) screens through `pipeline.base.screen_records`, the per-patient function. Sources
come from one factory (`pipeline.base.open_source`), chosen by the kind of input.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from fhir3t.criteria.model import ScreeningResult
from fhir3t.emit import screening_bundle
from fhir3t.errors import UsageError
from fhir3t.formats import Format, RunInfo, get_format
from fhir3t.formats.summary import StaleTally
from fhir3t.messages import Message, Msg
from fhir3t.pipeline.base import FileInputs, ServerQuery, only_patients, open_source, screen_records, use_native
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.gcpolicy import fewer_collections
from fhir3t.pipeline.run import Run
from fhir3t.sinks import FileSink, atomic_text
from fhir3t.sources.base import RawRecord
from fhir3t.sources.grouping import GroupingSource, SharedIndex, group_documents

if TYPE_CHECKING:
    from fhir3t.transport.http import FhirClient

CANNOT_WRITE = Message("output.cannot-write", "cannot write {path}: {why}")


# ---- tasks -------------------------------------------------------------------------------
def screen_files(definition: Definition, run: Run, inputs: FileInputs) -> Iterator[ScreeningResult]:
    """Screen every patient found in the files; one ScreeningResult each.

    Every input is grouped by patient first, so a patient's resources may be spread over any number of
    files. Input problems (bad JSON, entries without a patient, ...) land in `run.problems`.
    """
    if inputs.jobs > 1:
        from fhir3t.pipeline.parallel import RunSpec, screen_parallel

        yield from screen_parallel(definition, run, inputs, RunSpec.of(definition, run, inputs.patients,
                                                                       use_native(inputs.native, inputs.paths)))
        return
    source = open_source(definition, run, inputs)
    assert isinstance(source, GroupingSource)
    raws: Iterable[RawRecord] = only_patients(source, inputs.patients) if inputs.patients else source
    with fewer_collections():
        yield from screen_records(definition, run, raws, source.shared)
    run.stats.unattributed += source.stats.unattributed
    run.summary_problems()


def screen_server(definition: Definition, run: Run, client: FhirClient, query: ServerQuery) -> Iterator[ScreeningResult]:
    """Screen patients pulled from a FHIR server through the same per-patient function as files."""
    source = open_source(definition, run, query, client=client)
    yield from screen_records(definition, run, source, source.shared)


def screen_documents(definition: Definition, run: Run, documents: Iterable[tuple[str, object]],
                     patient: str) -> ScreeningResult | None:
    """Screen `patient` ("Patient/<id>") from parsed Bundles / resources (a CDS call's prefetch and
    fetches), grouped exactly as files are.

    Only that patient is screened (picked by reference, never by an identifier another patient could
    share); None when the documents hold nothing of theirs. Every document is taken as that patient's
    (searches scoped to them): an entry whose patient reference or resource type cannot be read stays
    theirs, unread, exactly as it would in a file holding their record. Safe to call from many threads
    at once with one Definition: each call has its own Run.
    """
    shared = SharedIndex()
    raw = next((r for r in group_documents(documents, run.problems, shared, run.filter, scope=patient)
                if r.key == patient), None)
    if raw is None:
        return None
    return next(iter(screen_records(definition, run, [raw], shared)), None)


# ---- delivering results ------------------------------------------------------------------
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
    notes: list[Msg] = field(default_factory=list)
    #: unknowns left unknown only by results older than their window (see formats.summary)
    stale: StaleTally = field(default_factory=StaleTally)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def deliver(stream: Iterable[ScreeningResult], definition: Definition, info: RunInfo, outputs: Sequence[Output], *,
            stdout: IO[str], keep: bool = False, emit: str | None = None) -> ScreenRun:
    """Write results to every output; build (and write, with `emit`) the FHIR Bundle.

    One streaming output and nothing else to do: results are written as they come (memory stays flat).
    Otherwise they are collected once and each output is written from the list. Files are written
    atomically; a failure part-way leaves a marker on a streamed stdout and no partial file.
    """
    out = ScreenRun()

    def tally(it: Iterable[ScreeningResult]) -> Iterator[ScreeningResult]:
        for r in it:
            out.counts[r.status] += 1
            out.stale.add(r)
            yield r

    stream = tally(stream)
    formats = [(o, get_format(o.format)) for o in outputs]
    collect = keep or emit is not None or len(formats) != 1 or not formats[0][1].streaming
    if collect:
        out.results = list(stream)
        source: Iterable[ScreeningResult] = out.results
        for o, fmt in formats:
            out.written[o.format] = _write_one(fmt, source, o.path, stdout, info)
    else:
        o, fmt = formats[0]
        out.written[o.format] = _write_one(fmt, stream, o.path, stdout, info)
    if emit is not None or keep:
        out.bundle, out.notes = screening_bundle(out.results, definition.criteria, study=definition.study)
        if emit is not None:
            try:
                FileSink(emit).send(out.bundle)
            except OSError as exc:
                raise UsageError(CANNOT_WRITE(path=emit, why=exc.strerror or "")) from None
    return out


def _write_one(fmt: Format, results: Iterable[ScreeningResult], path: str | None, stdout: IO[str], info: RunInfo) -> int:
    if path is None or path == "-":
        return fmt.write(results, stdout, info)
    try:
        with atomic_text(path, bom=fmt.bom) as fh:
            return fmt.write(results, fh, info)
    except OSError as exc:
        raise UsageError(CANNOT_WRITE(path=path, why=exc.strerror or "")) from None


__all__ = ["Output", "ScreenRun", "deliver", "screen_documents", "screen_files", "screen_server"]
