"""Screen Bundle files on several processes (screening is per patient: embarrassingly parallel).

Each worker loads the terminology and criteria once, then reads, groups and screens whole
files. A file whose patients are not complete inside it (resources of patients it has no
Patient for, or a Patient with nothing else) goes back to the single-process path, which
joins records across files, so results do not depend on the number of workers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

from fhir3t.criteria.model import ScreeningResult
from fhir3t.errors import InputProblem, Problems
from fhir3t.sources.files import FileSource, SharedIndex, expand_paths, load_file, read_bundle

_ENGINE = None


def _init(concept_maps: Sequence[str], criteria_file: str | None) -> None:
    global _ENGINE
    from fhir3t.api import Engine

    _ENGINE = Engine.load(concept_maps, criteria_file)


def _screen_file(path: Path, as_of: date, d1: date) -> tuple[Path, list[ScreeningResult], list[InputProblem], bool]:
    """(path, results, problems, done); done False means: redo this file in the main process."""
    engine = _ENGINE
    assert engine is not None
    problems = Problems()
    engine.problems = problems
    data = load_file(path, str(path), problems)
    if data is None:
        return path, [], problems.items, True
    shared = SharedIndex()
    complete, loose = read_bundle(data, str(path), problems, shared, engine.wants(shared))
    if loose or any(len(r.resources) == 1 for r in complete):
        return path, [], [], False
    results = list(engine.screen_raw(complete, as_of, d1, shared))
    return path, results, problems.items, True


def screen_parallel(
    paths: Sequence[str | Path], as_of: date, d1: date, *, jobs: int, concept_maps: Sequence[str | Path],
    criteria_file: str | Path | None, problems: Problems, on_file: Callable[[Path], None] | None = None,
) -> Iterator[ScreeningResult]:
    from fhir3t.api import Engine

    json_files, ndjson_files = expand_paths(paths)
    redo: list[Path] = []
    yielded: dict[str, str] = {}
    maps = [str(p) for p in concept_maps]
    crit = str(criteria_file) if criteria_file else None
    with ProcessPoolExecutor(jobs, initializer=_init, initargs=(maps, crit)) as pool:
        n = len(json_files)
        for path, results, found, done in pool.map(_screen_file, json_files, [as_of] * n, [d1] * n, chunksize=8):
            if not done:
                redo.append(path)
                continue
            problems.items.extend(found)
            for r in results:
                yielded.setdefault(r.patient, str(path))
                yield r
            if on_file:
                on_file(path)
    if redo or ndjson_files:
        engine = Engine.load(concept_maps, criteria_file, problems)
        shared = SharedIndex()
        source = FileSource([*redo, *ndjson_files], problems, wants=engine.wants(shared), on_file=on_file, shared=shared)
        source._yielded.update(yielded)
        yield from engine.screen_raw(source, as_of, d1, shared)
