"""Screening files on several processes (screening is per patient: embarrassingly parallel).

Pass 1 splits the input files over the processes: each reads its files, keeps what the criteria
read and files it into hash partitions of its own on disk. Pass 2 splits the partitions: each
process reads partition p of every pass-1 store (so a patient whose records were read by different
processes is whole again), screens its patients and sends the results back. Results and problems
are the same as on one process; only their order follows the partitions.
"""
from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import orjson

from fhir3t.criteria.model import ScreeningResult
from fhir3t.errors import InputProblem, Problems
from fhir3t.pipeline import gcpolicy
from fhir3t.pipeline.base import FileInputs, only_patients, screen_records
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.run import Run
from fhir3t.sources.base import RawRecord
from fhir3t.sources.files import Limits, expand_paths
from fhir3t.sources.grouping import (
    GroupingSource,
    GroupStats,
    Pending,
    SharedIndex,
    foreign_unread,
    records_of,
    resolve_pending,
    unfollowed_pages,
)
from fhir3t.sources.grouping import P as GROUPING_P
from fhir3t.sources.seen import IdentLog, SeenPatients, resolve_identifiers
from fhir3t.sources.store import PARTITIONS, DiskStore, Group, partition_groups, work_dir

#: about how many patients' results one pass-2 task sends back at once
TASK_PATIENTS = 1000


@dataclass(frozen=True)
class RunSpec:
    """What each process needs to load the same definition and run the same way (picklable)."""

    profiles: str
    concept_maps: tuple[str, ...]
    criteria_file: str | None
    as_of: date
    d1: date
    names: bool = False  # put each Patient's name in its result (--show-names)
    patients: tuple[str, ...] = ()  # screen only these
    native: bool = False  # pass 1 reads NDJSON through the native first pass

    @classmethod
    def of(cls, definition: Definition, run: Run, patients: Sequence[str] = (), native: bool = False) -> RunSpec:
        return cls(str(definition.profiles.folder), tuple(str(p) for p in definition.concept_maps),
                   str(definition.criteria_file) if definition.criteria_file else None, run.as_of, run.d1, run.names,
                   tuple(patients), native)

    def run(self, definition: Definition, problems: Problems) -> Run:
        return Run.start(definition, as_of=self.as_of, d1=self.d1, problems=problems, names=self.names)


_DEFINITION: Definition | None = None
_SPEC: RunSpec | None = None
_SHARED: tuple[str, SharedIndex] | None = None


def _init(spec: RunSpec) -> None:
    global _DEFINITION, _SPEC
    gcpolicy.relax()  # a worker lives for one run
    _DEFINITION = Definition.load(spec.profiles, spec.concept_maps, spec.criteria_file)
    _SPEC = spec


def _collect(files: list[str], run_dir: str, limits: Limits) \
        -> tuple[str, dict, list[InputProblem], GroupStats, list, SeenPatients, list[Pending], IdentLog]:
    """Pass 1 in a process: its files into a disk store of its own (kept for pass 2). Entries naming
    patients it has not seen are handed back: another process may have them."""
    assert _DEFINITION is not None
    problems = Problems()
    assert _SPEC is not None
    src = GroupingSource(files, problems, _DEFINITION.relevance.for_run(problems), limits=limits, store="disk",
                         tmpdir=run_dir, native=_SPEC.native)
    store = src.collect(judge_foreign=False)  # judged by the caller, over every process's patients
    assert isinstance(store, DiskStore)
    store.flush()
    return str(store.dir), src.shared.state(), problems.items, src.stats, src.foreign, src.seen, src.pending, src.idents


def _position(where: str, order: dict[str, int]) -> tuple[int, int]:
    """(input file's rank, line or entry number) of a location `path:line` or `path#entry[i]` (an entry of a
    Bundle inside it, `path#entry[i].resource.entry[j]`, by its outer entry's number)."""
    path, sep, rest = where.partition("#entry[")
    if not sep:
        path, sep, rest = where.rpartition(":")
    number = rest.partition("]")[0]
    return order.get(path, len(order)), int(number) if sep and number.isdigit() else 0


def _screen(parts: list[int], stores: list[str], shared_file: str,
            order: dict[str, int]) -> tuple[list[ScreeningResult], list[InputProblem], list[str], list[str], int]:
    """Pass 2 in a process: the patients of some partitions, screened. Each patient's resources are
    put back in the order one process reads them (input file, then position), so that what depends
    on that order (the evidence listed for a same-day conflict) is as on one process."""
    global _SHARED
    assert _DEFINITION is not None and _SPEC is not None
    if _SHARED is None or _SHARED[0] != shared_file:
        _SHARED = (shared_file, SharedIndex.from_states([orjson.loads(Path(shared_file).read_bytes())]))
    shared = _SHARED[1]
    shared.adopted.clear()
    shared.claimed.clear()
    problems = Problems()
    run = _SPEC.run(_DEFINITION, problems)
    run.studies.learn(shared.studies())
    results: list[ScreeningResult] = []
    for p in parts:
        groups = partition_groups([Path(s) / f"{p:04d}.ndjson" for s in stores])
        raws: Iterable[RawRecord] = records_of(_in_read_order(groups, order), shared, problems)
        if _SPEC.patients:
            raws = only_patients(raws, _SPEC.patients)
        results.extend(screen_records(_DEFINITION, run, raws))
    return results, problems.items, sorted(shared.adopted), sorted(shared.claimed), run.stats.missing_parts


def _in_read_order(groups: Iterable[tuple[str, Group]], order: dict[str, int]) -> Iterator[tuple[str, Group]]:
    for key, g in groups:
        g.resources.sort(key=lambda rw: _position(rw[1], order))
        yield key, g


def _split(files: Sequence[Path], n: int) -> list[list[str]]:
    """Files over n processes, biggest first to whoever has least (sizes balance the work)."""
    sized = sorted(((f.stat().st_size, str(f)) for f in files), reverse=True)
    buckets: list[tuple[int, list[str]]] = [(0, []) for _ in range(n)]
    for size, f in sized:
        i = min(range(n), key=lambda k: buckets[k][0])
        buckets[i] = (buckets[i][0] + size, [*buckets[i][1], f])
    return [b for _, b in buckets if b]


def screen_parallel(definition: Definition, run: Run, inputs: FileInputs, spec: RunSpec, tmpdir: str | None = None,
                    partitions: int = PARTITIONS) -> Iterator[ScreeningResult]:
    """Screen files on `inputs.jobs` processes (see the module doc); problems land in `run.problems`."""
    problems, jobs = run.problems, inputs.jobs
    limits = inputs.limits or Limits()
    json_files, ndjson_files = expand_paths(inputs.paths, problems)
    files = [*json_files, *ndjson_files]
    order = {str(f): i for i, f in enumerate(files)}  # the order one process reads them in
    run_dir = str(work_dir("fhir3t-run-", tmpdir))
    try:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init, initargs=(spec,)) as pool:
            collected = list(pool.map(_collect, _split(files, jobs), [run_dir] * jobs, [limits] * jobs))
            stores: list[str] = []
            states: list[dict] = []
            unattributed = 0
            foreign: list = []
            patients = SeenPatients()
            pending: list[Pending] = []
            logs: list[IdentLog] = []
            for store, state, found, stats, their_foreign, their_patients, their_pending, their_idents in collected:
                pending.extend(their_pending)
                logs.append(their_idents)
                stores.append(store)
                states.append(state)
                problems.items.extend(found)
                unattributed += stats.unattributed
                foreign.extend(their_foreign)
                patients.update(their_patients)  # hashed: ~12 bytes a patient
            shared = SharedIndex.from_states(states)
            extra = DiskStore(run_dir)
            for only, item, source in foreign_unread(foreign, patients, problems):
                extra.unread(only, item, source)
            tally = GroupStats()
            carried = resolve_identifiers(logs, (p.key for p in pending))
            for log in logs:
                log.close()
            for only, item, source in resolve_pending(pending, carried, problems, shared, tally):
                extra.unread(only, item, source)
            for only, item, source in unfollowed_pages(shared, problems):
                extra.unread(only, item, source)
            unattributed += tally.unattributed
            extra.flush()
            stores.append(str(extra.dir))
            shared_file = os.path.join(run_dir, "shared.json")
            Path(shared_file).write_bytes(orjson.dumps(shared.state()))
            # small tasks, few in flight: what a worker sends back at once, and what waits in the
            # parent to be written, stay about TASK_PATIENTS results a task whatever the number of
            # patients (8 partitions a task at 100 000 patients, 1 at a million)
            step = max(1, min(8, TASK_PATIENTS * partitions // max(len(patients), 1)))
            chunks = [list(range(p, min(p + step, partitions))) for p in range(0, partitions, step)]
            missing = 0
            inflight: deque[Future] = deque()
            todo = iter(chunks)
            while True:
                while len(inflight) < jobs + 1:
                    chunk = next(todo, None)
                    if chunk is None:
                        break
                    inflight.append(pool.submit(_screen, chunk, stores, shared_file, order))
                if not inflight:
                    break
                results, found, adopted, claimed, missing_parts = inflight.popleft().result()
                problems.items.extend(found)
                shared.adopted.update(adopted)
                shared.claimed.update(claimed)
                missing += missing_parts
                yield from results
        for rtype, where in shared.unadopted():
            problems.add(where, GROUPING_P["orphan"](type=rtype))
            unattributed += 1
        for where in shared.unclaimed():
            problems.add(where, GROUPING_P["ident-unclaimed"]())
            unattributed += 1
        run.stats.missing_parts += missing
        run.stats.unattributed += unattributed
        run.summary_problems()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
