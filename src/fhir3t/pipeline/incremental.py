"""Nightly incremental screening over a persistent patient store (`fhir3t screen --store-dir DIR`).

`screen_update(definition, run, state, delta)` merges a delta export into the store
(`sources.statestore`) and screens again only the patients whose result can change; the others keep
the result they were given. Which patients that is:

- every patient whose data changed since they were last screened (the store's dirty marks: new,
  replaced and deleted resources, on both the old and the new patient of a resource that moved);
- everyone, when a resource naming no patient changed (a Medication, an Organization: any patient
  may reference it), or when the *fingerprint* changed: the study definition (profiles, criteria,
  ConceptMaps), the as-of and D1 dates, the fhir3t version, whether names are shown. A moving as-of
  moves every dated window and every age, so a run at a new date re-screens everyone (from the store:
  no export is read again); deriving from each evaluation the date up to which its result holds was
  left for later (issue 28) — this rule is correct by construction, which comes first.

The patients to screen are written from the store to one NDJSON file and screened by `screen_files`,
the same path a full run takes, so an incremental result is the full run's result for that patient:
tests/test_incremental.py holds every night of a simulated month to that.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir3t.criteria.model import ScreeningResult
from fhir3t.pipeline.base import FileInputs
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.gcpolicy import fewer_collections
from fhir3t.pipeline.run import Run
from fhir3t.pipeline.screening import screen_files
from fhir3t.sources.statestore import EVERYONE, MergeStats, PatientState, state_file_mode
from fhir3t.version import __version__


@dataclass
class UpdateStats:
    """What one incremental run did (for the CLI's summary and the benchmarks)."""

    merge: MergeStats = field(default_factory=MergeStats)
    everyone: bool = False  # re-screened everyone (and why)
    why: str = ""
    screened: int = 0  # patients screened again
    kept: int = 0  # results carried over unchanged
    lines_screened: int = 0  # resources handed to the screening


def fingerprint(definition: Definition, run: Run) -> str:
    """What a stored result was computed under, beside the patient's own data (see the module doc)."""
    h = hashlib.sha256()
    h.update(f"{__version__}|{run.as_of.isoformat()}|{run.d1.isoformat()}|{run.names}".encode())
    files: list[Path] = [p for p in sorted(Path(definition.profiles.folder).rglob("*")) if p.is_file()]
    files += list(definition.concept_maps)
    if definition.criteria_file is not None:
        files.append(Path(definition.criteria_file))
    for p in files:
        h.update(str(p).encode() + b"\0")
        try:
            h.update(hashlib.sha256(p.read_bytes()).digest())
        except OSError:
            h.update(b"?")
    return h.hexdigest()


def screen_update(definition: Definition, run: Run, state: PatientState, delta: Iterable[str | Path] = (),
                  stats: UpdateStats | None = None) -> Iterator[ScreeningResult]:
    """Merge `delta` into the store, screen the patients whose result can change, and yield every
    patient's current result (screened or carried over), ordered by patient id."""
    with fewer_collections():  # every kept result is unpickled: ~100 objects each (see fhir3t.frozen)
        yield from _update(definition, run, state, delta, stats)


def _update(definition: Definition, run: Run, state: PatientState, delta: Iterable[str | Path],
            stats: UpdateStats | None) -> Iterator[ScreeningResult]:
    stats = stats if stats is not None else UpdateStats()
    stats.merge = state.merge(delta, run.problems)
    state_file_mode(state.folder)
    key = fingerprint(definition, run)
    dirty = state.dirty()
    if state.get("fingerprint") != key:
        stats.everyone, stats.why = True, "definition-or-dates"
    elif EVERYONE in dirty:
        stats.everyone, stats.why = True, "shared-resource"
    # a Patient that links to another record is screened with it (sources.statestore.linking_to)
    wanted: set[str] | None = None if stats.everyone else dirty | state.linking_to(dirty)
    fresh: list[ScreeningResult] = []
    if wanted is None or wanted:
        fd, name = tempfile.mkstemp(prefix="screen-", suffix=".ndjson", dir=state.folder)
        os.close(fd)
        target = Path(name)
        try:
            stats.lines_screened = state.write_ndjson(target, wanted)
            fresh = list(screen_files(definition, run, FileInputs((target,), store="auto")))
        finally:
            target.unlink(missing_ok=True)
        if wanted is not None and any(r.patient.removeprefix("Patient/") not in wanted for r in fresh):
            # a group fhir3t joined across patients (not by the id a resource names): screen everyone
            stats.everyone, stats.why = True, "joined-patients"
            yield from _update(definition, run, _forget(state), (), stats)
            return
        state.save_results(wanted, fresh, key)
    stats.screened = len(fresh)
    by_patient = {r.patient: r for r in fresh}
    changed: dict[str, StoredResult] = {}  # by patient: results that rendered something new since the last save
    # kept results handed out and not read back yet: those the caller still holds when the store closes (collected
    # to write several outputs, or to push) are read back whole then; a streamed result was written and dropped
    # (by patient, not a WeakSet: that would hash each result, which reads it back)
    lazy: weakref.WeakValueDictionary[str, StoredResult] = weakref.WeakValueDictionary()

    def read_back_held() -> None:
        for r in list(lazy.values()):
            r.read_back()

    state.before_close(read_back_held)

    def note(r: StoredResult) -> None:
        changed[r.patient] = r

    for row in state.results():
        new = by_patient.get(row.ref)
        if new is None:
            stats.kept += 1
            kept = StoredResult(row.ref, row.status, row.rendered, row.load, note)
            lazy[row.ref] = kept
            yield kept
        else:
            yield StoredResult.of(new, note)
        if len(changed) >= 200:
            state.save_rendered((r.patient, r.rendered_by_key) for r in changed.values())
            changed.clear()
    state.save_rendered((r.patient, r.rendered_by_key) for r in changed.values())
    changed.clear()


class StoredResult(ScreeningResult):
    """A result the patient store hands back: its patient and status are the store's columns, what it
    rendered on an earlier night (`ScreeningResult.rendered`: its JSON line, its part of the stale-results
    tally) comes back with it, and the rest is unpickled on first use, once.

    Why: a night that re-screens 1 % of the patients writes every patient's result. Unpickling each kept
    result and rendering it again was most of such a night (py-spy, 10 047 stored results: unpickling 23 %,
    `to_dict` 24 %). What a result newly renders is written back to the store (`changed`).
    """

    def __init__(self, ref: str, status: str, rendered: dict[str, bytes], load: Callable[[], ScreeningResult] | None,
                 changed: Callable[[StoredResult], None]) -> None:
        object.__setattr__(self, "patient", ref)
        object.__setattr__(self, "status", status)
        self.__dict__.update(_rendered=rendered, _load=load, _changed=changed)

    @classmethod
    def of(cls, result: ScreeningResult, changed: Callable[[StoredResult], None]) -> StoredResult:
        """A result screened in this run, recording what it renders."""
        out = cls(result.patient, result.status, {}, None, changed)
        for name in _FIELDS:
            object.__setattr__(out, name, getattr(result, name))
        return out

    def __getattr__(self, name: str) -> Any:  # a field not set yet: read the whole result back
        if name not in _FIELDS or self.__dict__.get("_load") is None:
            raise AttributeError(name)
        self.read_back()
        return getattr(self, name)

    def read_back(self) -> None:
        """Unpickle the whole result, if not done yet (needs the store open)."""
        load = self.__dict__.get("_load")
        if load is None:
            return
        full = load()
        self.__dict__["_load"] = None
        for field_name in _FIELDS:
            object.__setattr__(self, field_name, getattr(full, field_name))

    @property
    def rendered_by_key(self) -> dict[str, bytes]:
        return dict(self.__dict__["_rendered"])

    def rendered(self, key: str, render: Callable[[ScreeningResult], bytes]) -> bytes:
        known: dict[str, bytes] = self.__dict__["_rendered"]
        out = known.get(key)
        if out is None:
            out = known[key] = render(self)
            self.__dict__["_changed"](self)
        return out

    def plain(self) -> ScreeningResult:
        return ScreeningResult(*(getattr(self, name) for name in _FIELDS))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return ScreeningResult, tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StoredResult):
            other = other.plain()
        return self.plain() == other if isinstance(other, ScreeningResult) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.plain())


#: ScreeningResult's fields, in order (its slots)
_FIELDS: tuple[str, ...] = ScreeningResult.__slots__


def _forget(state: PatientState) -> PatientState:
    """The store with its fingerprint cleared, so the next screen covers everyone."""
    state.put("fingerprint", "")
    return state


__all__ = ["StoredResult", "UpdateStats", "fingerprint", "screen_update"]
