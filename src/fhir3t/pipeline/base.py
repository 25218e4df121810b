"""What every screening task is made of: the inputs (files, a server query), the one source factory,
and the per-patient function `screen_records` (RawRecords in, ScreeningResults out)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from fhir3t.criteria.model import ScreeningResult
from fhir3t.criteria.screener import patient_ids
from fhir3t.errors import Problems, UsageError
from fhir3t.messages import Message, table
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.run import Run
from fhir3t.records.build import RecordBuilder
from fhir3t.sources.base import RawRecord
from fhir3t.sources.files import Limits, expand_paths
from fhir3t.sources.grouping import GroupingSource, SharedIndex

#: a run asked for with inputs that cannot be combined (the caller's error: the CLI's line, or a program's exception)
E = table("run.inputs", {
    "store": "store must be auto, memory or disk, not {value}",
    "native": "native must be auto, on or off, not {value}",
    "jobs": "jobs needs a number of processes, 1 or more",
    "documents-jobs": "documents held in memory are screened in one process: give jobs=1",
    "no-client": "a server query needs a FHIR client",
})
NOT_SCREENED = Message("input.not-screened", "{key}: not screened: a resource has an unexpected structure ({kind}); "
                       "check it with 'fhir3t validate'")

if TYPE_CHECKING:
    from fhir3t.sources.rest import RestSource
    from fhir3t.transport.http import FhirClient

#: what a malformed resource can raise inside a rule; it costs that patient, never the run
RECORD_ERRORS = (TypeError, AttributeError, ValueError, KeyError, ArithmeticError, RecursionError, IndexError)


# ---- what to read ------------------------------------------------------------------------
@dataclass(frozen=True)
class FileInputs:
    """Files to screen: Bundles, resources, NDJSON (plain or .gz), folders of them, in any mix.

    `store`: where records are grouped by patient ("auto": memory, moving to disk partitions for large
    inputs; "memory"; "disk"). `jobs`: processes (pass 1 splits the files, pass 2 the partitions).
    `patients`: screen only these (reference, FHIR id, identifier value or system|value).
    `documents`: parsed Bundles/resources given in memory besides the files (one process only).
    `native`: read NDJSON through the native first pass (sources.native, the `native` extra): "on",
    "off", or "auto" (on when DuckDB is installed and the NDJSON inputs are big enough to repay it).
    """

    paths: tuple[str | Path, ...] = ()
    store: str = "auto"
    native: str = "auto"
    limits: Limits | None = None
    jobs: int = 1
    patients: tuple[str, ...] = ()
    documents: tuple[tuple[str, object], ...] = ()
    on_file: Callable[[Path], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.store not in ("auto", "memory", "disk"):
            raise UsageError(E["store"](value=repr(self.store)))
        if self.native not in ("auto", "on", "off"):
            raise UsageError(E["native"](value=repr(self.native)))
        if self.jobs < 1:
            raise UsageError(E["jobs"]())
        if self.jobs > 1 and self.documents:
            raise UsageError(E["documents-jobs"]())


@dataclass(frozen=True)
class ServerQuery:
    """Patients to pull from a FHIR server: candidates by the study's anchor condition, or the given
    patients / Group; `since`: only patients with data changed since then; `strategy`: how to pull."""

    patients: tuple[str, ...] = ()
    group: str | None = None
    since: date | None = None
    strategy: str | None = None
    on_candidates: Callable[[int], None] | None = field(default=None, compare=False)


def open_source(definition: Definition, run: Run, inputs: FileInputs | ServerQuery, *,
                client: FhirClient | None = None) -> GroupingSource | RestSource:
    """The one source factory: files (and documents) group through GroupingSource, a server through
    RestSource. Both yield RawRecords grouped by patient, with shared resources in `.shared`."""
    if isinstance(inputs, ServerQuery):
        from fhir3t.sources.rest import RestSource

        if client is None:
            raise UsageError(E["no-client"]())
        study = definition.study
        return RestSource(client, definition.tx, sorted(definition.screener.types), run.problems, SharedIndex(),
                          anchor=(study.candidate_type, study.candidate_valueset), patients=list(inputs.patients),
                          group=inputs.group, since=inputs.since, strategy=inputs.strategy,
                          on_candidates=inputs.on_candidates)
    return GroupingSource(inputs.paths, run.problems, run.filter, limits=inputs.limits, store=inputs.store,
                          on_file=inputs.on_file, documents=inputs.documents,
                          native=use_native(inputs.native, inputs.paths))


NEEDS_DUCKDB = Message("input.needs-duckdb", 'the native first pass needs DuckDB, which is not installed: pip install '
                                              '"fhir3t[native]"')
#: NDJSON input below this is read by Python under native="auto" (DuckDB's start-up is not repaid)
NATIVE_AUTO_BYTES = 64 * 1024 * 1024


def use_native(mode: str, paths: Iterable[str | Path]) -> bool:
    """Whether to read NDJSON through the native first pass (see FileInputs.native)."""
    from fhir3t.sources import native

    if mode == "off":
        return False
    if mode == "on":
        if not native.available():
            raise UsageError(NEEDS_DUCKDB())
        return True
    if not native.available():
        return False
    _, ndjson = expand_paths(paths, Problems())
    total = 0
    for f in ndjson:
        try:
            total += f.stat().st_size
        except OSError:
            continue
        if total >= NATIVE_AUTO_BYTES:
            return True
    return False


# ---- the per-patient function ------------------------------------------------------------
def screen_records(definition: Definition, run: Run, raws: Iterable[RawRecord],
                   shared: SharedIndex | None = None) -> Iterator[ScreeningResult]:
    """Screen each record; a record no rule can digest is reported and skipped, the run goes on."""
    builder = RecordBuilder(run.filter, run.problems)
    screener = definition.screener
    learned = -1
    try:
        for raw in raws:
            if shared is not None and len(shared.by_ref) != learned:
                run.studies.learn(shared.studies())
                learned = len(shared.by_ref)
            try:
                result = screener.screen(builder.build(raw), run.as_of, run.d1, studies=run.studies, names=run.names)
            except RECORD_ERRORS as exc:
                run.problems.add(raw.source, NOT_SCREENED(key=raw.key, kind=type(exc).__name__))
                continue
            yield result
    finally:
        run.stats.missing_parts += builder.stats.missing_parts


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


__all__ = ["RECORD_ERRORS", "FileInputs", "ServerQuery", "only_patients", "open_source", "raw_matches",
           "screen_records"]
