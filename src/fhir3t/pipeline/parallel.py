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
from fhir3t.pipeline.engine import Engine
from fhir3t.sources.files import Limits, expand_paths
from fhir3t.sources.grouping import GroupingSource, GroupStats, SharedIndex, foreign_unread, records_of
from fhir3t.sources.seen import SeenPatients
from fhir3t.sources.store import PARTITIONS, DiskStore, Group, partition_groups, work_dir

#: about how many patients' results one pass-2 task sends back at once
TASK_PATIENTS = 1000


@dataclass(frozen=True)
class EngineSpec:
    """How each process loads the same engine."""

    concept_maps: tuple[str, ...]
    criteria_file: str | None
    profiles: str | None
    names: bool = False  # put each Patient's name in its result (--show-names)


_ENGINE: Engine | None = None
_SHARED: tuple[str, SharedIndex] | None = None


def _init(spec: EngineSpec) -> None:
    global _ENGINE
    gcpolicy.relax()  # a worker lives for one run
    if spec.profiles:
        from fhir3t.profiles import use_profiles

        use_profiles(spec.profiles)
    _ENGINE = Engine.load(spec.concept_maps, spec.criteria_file)
    _ENGINE.screener.names = spec.names


def _collect(files: list[str], run_dir: str, limits: Limits) \
        -> tuple[str, list, list[InputProblem], GroupStats, list, SeenPatients]:
    """Pass 1 in a process: its files into a disk store of its own (kept for pass 2). Entries naming
    patients it has not seen are handed back: another process may have them."""
    assert _ENGINE is not None
    problems = Problems()
    src = GroupingSource(files, problems, _ENGINE.wants, limits=limits, store="disk", tmpdir=run_dir)
    store = src.collect(judge_foreign=False)  # judged by the caller, over every process's patients
    assert isinstance(store, DiskStore)
    store.flush()
    return str(store.dir), src.shared.entries(), problems.items, src.stats, src.foreign, src.seen


def _position(where: str, order: dict[str, int]) -> tuple[int, int]:
    """(input file's rank, line or entry number) of a location `path:line` or `path#entry[i]`."""
    path, sep, rest = where.rpartition("#entry[")
    if not sep:
        path, sep, rest = where.rpartition(":")
    number = rest.rstrip("]")
    return order.get(path, len(order)), int(number) if sep and number.isdigit() else 0


def _screen(parts: list[int], stores: list[str], shared_file: str, as_of: date, d1: date,
            order: dict[str, int]) -> tuple[list[ScreeningResult], list[InputProblem], list[str], int]:
    """Pass 2 in a process: the patients of some partitions, screened. Each patient's resources are
    put back in the order one process reads them (input file, then position), so that what depends
    on that order (the evidence listed for a same-day conflict) is as on one process."""
    global _SHARED
    assert _ENGINE is not None
    if _SHARED is None or _SHARED[0] != shared_file:
        entries = [tuple(e) for e in orjson.loads(Path(shared_file).read_bytes())]
        _SHARED = (shared_file, SharedIndex.from_entries(entries))
    shared = _SHARED[1]
    shared.adopted.clear()
    problems = Problems()
    _ENGINE.problems = problems
    _ENGINE.relevance.problems = problems
    _ENGINE.screener.learn_studies(shared.studies())
    results: list[ScreeningResult] = []
    _ENGINE.missing_parts = 0
    for p in parts:
        groups = partition_groups([Path(s) / f"{p:04d}.ndjson" for s in stores])
        results.extend(_ENGINE.screen_raw(records_of(_in_read_order(groups, order), shared, problems), as_of, d1))
    return results, problems.items, sorted(shared.adopted), _ENGINE.missing_parts


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


def screen_parallel(paths: Sequence[str | Path], spec: EngineSpec, as_of: date, d1: date, jobs: int,
                    problems: Problems, limits: Limits | None = None, tmpdir: str | None = None,
                    partitions: int = PARTITIONS) -> Iterator[ScreeningResult]:
    """Screen files on `jobs` processes (see the module doc); problems land in `problems`."""
    limits = limits or Limits()
    json_files, ndjson_files = expand_paths(paths, problems)
    files = [*json_files, *ndjson_files]
    order = {str(f): i for i, f in enumerate(files)}  # the order one process reads them in
    run_dir = str(work_dir("fhir3t-run-", tmpdir))
    try:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init, initargs=(spec,)) as pool:
            collected = list(pool.map(_collect, _split(files, jobs), [run_dir] * jobs, [limits] * jobs))
            stores, entries, unattributed = [], [], 0
            foreign: list = []
            patients = SeenPatients()
            for store, shared_entries, found, stats, their_foreign, their_patients in collected:
                stores.append(store)
                entries.extend(shared_entries)
                problems.items.extend(found)
                unattributed += stats.unattributed
                foreign.extend(their_foreign)
                patients.update(their_patients)  # hashed: ~12 bytes a patient
            extra = DiskStore(run_dir)
            for only, item, source in foreign_unread(foreign, patients, problems):
                extra.unread(only, item, source)
            extra.flush()
            stores.append(str(extra.dir))
            shared = SharedIndex.from_entries(entries)
            shared_file = os.path.join(run_dir, "shared.json")
            Path(shared_file).write_bytes(orjson.dumps(shared.entries()))
            # small tasks, few in flight: what a worker sends back at once, and what waits in the
            # parent to be written, stay about TASK_PATIENTS results a task whatever the number of
            # patients (8 partitions a task at 100 000 patients, 1 at a million)
            step = max(1, min(8, TASK_PATIENTS * partitions // max(len(patients), 1)))
            chunks = [list(range(p, min(p + step, partitions))) for p in range(0, partitions, step)]
            missing = 0
            pending: deque[Future] = deque()
            todo = iter(chunks)
            while True:
                while len(pending) < jobs + 1:
                    chunk = next(todo, None)
                    if chunk is None:
                        break
                    pending.append(pool.submit(_screen, chunk, stores, shared_file, as_of, d1, order))
                if not pending:
                    break
                results, found, adopted, missing_parts = pending.popleft().result()
                problems.items.extend(found)
                shared.adopted.update(adopted)
                missing += missing_parts
                yield from results
        if missing:
            problems.add("input", f"{missing} result(s) of reports the criteria read were referenced but are not in "
                                  "the input (not read)", skipped=False)
        for rtype, where in shared.unadopted():
            problems.add(where, f"{rtype} names no patient and no report or panel of a patient points at it; skipped")
            unattributed += 1
        if unattributed:
            problems.add("input", f"{unattributed} resource(s) that could decide a criterion name no patient fhir3t can "
                                  "find (see above): their patients' results may be incomplete")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
