"""A persistent patient store for nightly incremental runs (`fhir3t screen --store-dir DIR`).

One SQLite file (stdlib `sqlite3`: transactions, an index by patient and crash safety without a
server) in the state folder holds:

- `res`: every resource read so far, raw as it came (never the read filter's subset: a new study
  definition or terminology must be able to re-read everything), keyed by (type, id), with the id of
  the patient it names (`fhirutil.patient_id`; '' for a resource naming none: Medication,
  Organization, ..., or a link fhir3t cannot read) and its place in arrival order (`seq`, kept when a
  newer version replaces it): a patient's resources are handed to screening in the order a full run
  over the merged exports reads them, because among records alike in what a criterion orders by,
  evidence and reasons follow input order;
- `dirty`: the patients whose data changed since they were last screened (kept across runs, so an
  export merged tonight is screened by whichever run comes next, and a run killed half-way loses
  nothing);
- `results`: each patient's last ScreeningResult (its reference and status as columns), with the
  fingerprint it was computed under, and what it rendered by key (`ScreeningResult.rendered`: its
  JSON line in a language, its part of a tally), so a night writes a kept result without reading it
  back whole (pipeline.incremental.StoredResult);
- `meta`: the export transaction time to ask the next `_since` from, the fingerprint, counts.

Merging a delta (`merge`): a resource replaces the stored one of its (type, id) unless the stored one
is provably newer (a larger numeric versionId, else a later lastUpdated: the Bulk Data `_since`
export may repeat a version already held, and files can be merged out of order); when equal or
undecidable, the delta wins (it was exported later). A deletion — a Bundle line whose entries are
`DELETE Type/id` requests, the shape Bulk Data gives deleted resources in — removes the resource.
Both mark the old and the new patient dirty; a change to a resource naming no patient marks the
store `everyone` (any patient may reference it).

Results are pickled: they are our own frozen dataclasses written by this process into a folder only
its user can read (0700), the same trust as the code that reads them; JSON would need a second,
hand-kept decoder for every result field. A value many results share (`fhir3t.frozen.Shared`: a
criterion's result) is pickled once into `parts`, keyed by the digest of its pickle, and a result points
at it: a night that re-screens 1 % of the patients unpickles every kept result, and most of a result is
criterion results other patients have too (10 035 results: 220 770 criterion results, 27 146 distinct;
reading them back took 4.6 s with the collector relaxed, see fhir3t.frozen).
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from fhir3t.errors import Problems, UsageError
from fhir3t.fhirutil import patient_id
from fhir3t.frozen import Shared
from fhir3t.messages import table
from fhir3t.sources.files import expand_paths, line_patient_reference, ndjson_batches
from fhir3t.sources.grouping import linked_records

DB_NAME = "fhir3t-state.sqlite"
#: why the store cannot be used (a usage error, said in the reader's language)
E = table("store.error", {
    "cannot-create": "the state folder {folder} cannot be created: {why}",
    "not-folder": "{folder} is not a folder",
    "other-layout": "{folder} holds a store of another fhir3t version (layout {layout}); use a new --store-dir",
    "missing-part": "{folder}: a stored result names a part the store does not hold; use a new --store-dir",
})
#: what is said about a file or line the store does not take
P = table("input.store", {
    "not-ndjson": "not merged into the store: the store reads Bulk NDJSON exports only",
    "bad-json-kept": "not valid JSON: kept as written, and read as a full run reads it when its patient is screened",
    "not-fhir-kept": "not a FHIR resource: kept as written, and read as a full run reads it when its patient is screened",
})
#: how sources.bulk names the deleted-resource files of an export
DELETED_GLOB = "*.deleted-ndjson"
#: bumped when the layout changes; an older store is refused, never half-read, except layouts 1 and 2, whose
#: results (without shared parts, without what they rendered) are dropped: the next run screens everyone again
#: from the store
LAYOUT = "3"
_RESULTS_OF = ("1", "2")
_META = "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS res (type TEXT, id TEXT, patient TEXT, vid TEXT, lu TEXT, seq INTEGER, body BLOB,
                                PRIMARY KEY (type, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS res_patient ON res (patient, seq);
CREATE TABLE IF NOT EXISTS dirty (patient TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (patient TEXT PRIMARY KEY, ref TEXT, status TEXT, result BLOB, rendered BLOB)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parts (digest BLOB PRIMARY KEY, body BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS links (source TEXT, target TEXT, PRIMARY KEY (source, target)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_target ON links (target);
"""
#: shared parts kept unpickled while results are read, least recently used first out (a bound on memory:
#: a patient's own parts (its age, with the Patient as evidence) are read once and pushed out)
PART_CACHE = 20_000
#: the `dirty` entry that means "every patient" (a shared resource changed)
EVERYONE = "*"
#: results read back at a time (a read is finished before what they rendered is written back)
RESULT_BATCH = 500


@dataclass
class MergeStats:
    """What one merge did, for the report and the benchmarks."""

    lines: int = 0  # resources and deletions read from the delta
    added: int = 0
    replaced: int = 0
    stale: int = 0  # older than the stored version: kept the stored one
    deleted: int = 0
    patients: set[str] = field(default_factory=set)  # patients marked dirty by this merge


def _vid_newer(old: str, new: str) -> bool | None:
    """Is the stored version provably newer than the incoming one? None when the ids do not say."""
    if old.isdigit() and new.isdigit():
        return int(old) > int(new)
    return None


def stored_is_newer(old_vid: str, old_lu: str, new_vid: str, new_lu: str) -> bool:
    """The versions rule for a resource read twice: keep the stored copy only when it is provably
    newer (numeric versionId, else lastUpdated); otherwise the later-exported copy wins."""
    by_vid = _vid_newer(old_vid, new_vid)
    if by_vid is not None:
        return by_vid
    return bool(old_lu and new_lu and old_lu > new_lu)


class PatientState:
    """The store in one state folder (see the module doc). Not shared between threads."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._seq = 0
        self._before_close: list[Callable[[], object]] = []
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UsageError(E["cannot-create"](folder=str(self.folder), why=exc.strerror or "")) from exc
        if not self.folder.is_dir():
            raise UsageError(E["not-folder"](folder=str(self.folder)))
        self.db = sqlite3.connect(self.folder / DB_NAME, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_META)
        layout = self.get("layout")
        if layout in _RESULTS_OF:
            self.db.executescript("DROP TABLE IF EXISTS results; DROP TABLE IF EXISTS parts;")
            self.put("fingerprint", "")
            layout = None
        self.db.executescript(_SCHEMA)
        if layout is None:
            self.put("layout", LAYOUT)
        elif layout != LAYOUT:
            raise UsageError(E["other-layout"](folder=str(self.folder), layout=layout))
        if self.get("links") != "1":  # a store written before the links were kept: index its Patients' links once
            self.db.execute("BEGIN")
            for rid, body in self.db.execute("SELECT id, body FROM res WHERE type = 'Patient' AND instr(body, '\"link\"')"):
                res = orjson.loads(body)
                self._relink(rid, res if isinstance(res, dict) else {}, MergeStats())
            self.put("links", "1")
            self.db.execute("COMMIT")

    def before_close(self, call: Callable[[], object]) -> None:
        """Run `call` when the store closes, before it does (what still reads from it: results not read back)."""
        self._before_close.append(call)

    def close(self) -> None:
        try:
            for call in self._before_close:
                call()
        finally:
            self._before_close.clear()
            self.db.close()

    # ---- meta -------------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ---- merging a delta ----------------------------------------------------------------------
    def merge(self, paths: Iterable[str | Path], problems: Problems, deleted: Iterable[Path] = ()) -> MergeStats:
        """Merge NDJSON files (a full export, or a `_since` delta) into the store, in one transaction;
        `deleted`: an export's deleted-resource files (NDJSON of Bundles, whatever their name)."""
        stats = MergeStats()
        self._seq = int(self.db.execute("SELECT coalesce(max(seq), 0) FROM res").fetchone()[0])
        given = [Path(p) for p in paths]
        json_files, ndjson_files = expand_paths(given, problems)
        # an export folder's deleted-resource files (sources.bulk names them so `screen OUT_DIR` skips them)
        deleted = [*deleted, *(f for p in given if p.is_dir() for f in sorted(p.rglob(DELETED_GLOB)))]
        for f in json_files:
            problems.add(str(f), P["not-ndjson"]())
        self.db.execute("BEGIN")
        try:
            for f in [*ndjson_files, *deleted]:
                for first, lines, _ in ndjson_batches(f, problems):
                    for lineno, line in enumerate(lines, first):
                        self._line(line, f"{f}:{lineno}", problems, stats)
            self.db.executemany("INSERT OR IGNORE INTO dirty VALUES (?)", [(p,) for p in stats.patients])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return stats

    def _line(self, line: bytes, where: str, problems: Problems, stats: MergeStats) -> None:
        if not line.strip():
            return
        try:
            res = orjson.loads(line)
        except orjson.JSONDecodeError:
            res = None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            # kept as written, under the patient its bytes name (else shared: every screening reads it), so the
            # screening reads it as a full run would (sources.grouping: bytes that are not UTF-8 replaced, a
            # trailing comma, an object without a type, or an unreadable record of that patient or of anyone),
            # never dropped
            problems.add(where, P["bad-json-kept"]() if res is None else P["not-fhir-kept"](), skipped=False)
            ref = line_patient_reference(line)
            patient = patient_id({"resourceType": "Observation", "subject": {"reference": ref}}) if ref else None
            stats.lines += 1
            self._put("?", "#" + hashlib.sha256(line).hexdigest(), patient or "", "", "", line, stats)
            return
        if res["resourceType"] == "Bundle" and any(_deletion(e) for e in res.get("entry") or ()):
            for e in res.get("entry") or ():
                target = _deletion(e)
                if target is not None:
                    stats.lines += 1
                    self._delete(*target, stats)
            return
        stats.lines += 1
        self._upsert(res, line, where, stats)

    def _relink(self, rid: str, patient: dict, stats: MergeStats) -> None:
        """Keep the records a stored Patient links to (Patient.link: sources.grouping.linked_records), and mark
        those it linked to and links to now dirty: what each screening says depends on the other record."""
        old = {r[0] for r in self.db.execute("SELECT target FROM links WHERE source = ?", (rid,))}
        new = {t.removeprefix("Patient/") for _, _, t in linked_records(patient, f"Patient/{rid}") if t is not None}
        if old == new:
            return
        self.db.execute("DELETE FROM links WHERE source = ?", (rid,))
        self.db.executemany("INSERT OR IGNORE INTO links VALUES (?, ?)", [(rid, t) for t in sorted(new)])
        for target in old ^ new:
            self._dirty(target, stats)

    def _upsert(self, res: dict, line: bytes, where: str, stats: MergeStats) -> None:
        rtype = res["resourceType"]
        rid = res.get("id")
        if not isinstance(rid, str) or not rid:
            rid = "#" + hashlib.sha256(line).hexdigest()  # no id: never replaced, never deleted
        meta = res.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        vid, lu = meta.get("versionId"), meta.get("lastUpdated")
        vid = vid if isinstance(vid, str) else ""
        lu = lu if isinstance(lu, str) else ""
        if self._put(rtype, rid, patient_id(res) or "", vid, lu, line, stats) and rtype == "Patient":
            self._relink(rid, res, stats)

    def _put(self, rtype: str, rid: str, patient: str, vid: str, lu: str, line: bytes, stats: MergeStats) -> bool:
        """Store one line (replacing an older copy); False when the stored copy is newer and stays."""
        old = self.db.execute("SELECT patient, vid, lu, seq FROM res WHERE type = ? AND id = ?", (rtype, rid)).fetchone()
        if old is not None:
            if stored_is_newer(old[1], old[2], vid, lu):
                stats.stale += 1
                return False
            stats.replaced += 1
            self._dirty(old[0], stats)
            seq = old[3]
        else:
            stats.added += 1
            self._seq += 1
            seq = self._seq
        self.db.execute("INSERT OR REPLACE INTO res VALUES (?, ?, ?, ?, ?, ?, ?)", (rtype, rid, patient, vid, lu, seq, line))
        self._dirty(patient, stats)
        return True

    def _delete(self, rtype: str, rid: str, stats: MergeStats) -> None:
        old = self.db.execute("DELETE FROM res WHERE type = ? AND id = ? RETURNING patient", (rtype, rid)).fetchone()
        if old is not None:
            stats.deleted += 1
            self._dirty(old[0], stats)
            if rtype == "Patient":
                self._relink(rid, {}, stats)

    @staticmethod
    def _dirty(patient: str, stats: MergeStats) -> None:
        stats.patients.add(patient or EVERYONE)

    # ---- what to screen -----------------------------------------------------------------------
    def dirty(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT patient FROM dirty")}

    def linking_to(self, patients: set[str]) -> set[str]:
        """The stored Patients that link to one of these (screened with them: a link reaches both records)."""
        found: set[str] = set()
        for p in patients:
            found.update(r[0] for r in self.db.execute("SELECT source FROM links WHERE target = ?", (p,)))
        return found

    def patients(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT patient FROM res WHERE patient != ''")}

    def write_ndjson(self, target: Path, patients: set[str] | None) -> int:
        """Write the resources of these patients (None: everyone) and every shared resource to one
        NDJSON file, grouped by patient; the number of lines."""
        n = 0
        with open(target, "wb") as out:
            if patients is None:
                rows: Iterator[Any] = self.db.execute("SELECT body FROM res ORDER BY patient, seq")
            else:
                self.db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (p TEXT PRIMARY KEY) WITHOUT ROWID")
                self.db.execute("DELETE FROM wanted")
                self.db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(p,) for p in patients | {""}])
                # CROSS JOIN keeps `wanted` the outer loop: SQLite otherwise walks the whole patient index
                # (7.3 s for 100 of 10 000 patients, 0.18 s this way)
                rows = self.db.execute("SELECT res.body FROM wanted CROSS JOIN res ON res.patient = wanted.p "
                                       "ORDER BY wanted.p, res.seq")
            for (body,) in rows:
                out.write(body)
                out.write(b"\n")
                n += 1
        return n

    # ---- results --------------------------------------------------------------------------------
    def save_results(self, screened: set[str] | None, results: Iterable[Any], fingerprint: str) -> None:
        """Replace the results of the screened patients (None: all) and clear their dirty marks."""
        self.db.execute("BEGIN")
        try:
            if screened is None:
                self.db.execute("DELETE FROM results")
                self.db.execute("DELETE FROM parts")
                self.db.execute("DELETE FROM dirty")
            else:
                keys = [(p,) for p in screened]
                self.db.executemany("DELETE FROM results WHERE patient = ?", keys)
                self.db.executemany("DELETE FROM dirty WHERE patient = ?", keys)
                self.db.execute("DELETE FROM dirty WHERE patient = ''")
            results = list(results)
            parts, ids = _parts(results)
            if screened is not None:  # a part the store already holds is shared even when one result here has it
                held = self.db.execute
                for digest, (count, _body) in parts.items():
                    if count == 1 and held("SELECT 1 FROM parts WHERE digest = ?", (digest,)).fetchone():
                        parts[digest] = (2, _body)
            self.db.executemany("INSERT OR IGNORE INTO parts VALUES (?, ?)",
                                [(d, body) for d, (count, body) in parts.items() if count > 1])
            self.db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, NULL)",
                                [(_key(r.patient), r.patient, r.status, _dumps(r, parts, ids)) for r in results])
            self.put("fingerprint", fingerprint)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def results(self) -> Iterator[StoredRow]:
        """Every stored result, by patient id (our own results, in a folder only its user can read): each
        unpickled only when `StoredRow.load` is called."""
        @lru_cache(maxsize=PART_CACHE)
        def part(digest: bytes) -> Any:
            row = self.db.execute("SELECT body FROM parts WHERE digest = ?", (digest,)).fetchone()
            if row is None:
                raise UsageError(E["missing-part"](folder=str(self.folder)))
            return pickle.loads(row[0])

        def loader(blob: bytes) -> Callable[[], Any]:
            def load() -> Any:
                unpickler = pickle.Unpickler(io.BytesIO(blob))
                unpickler.persistent_load = part  # type: ignore[method-assign]
                return unpickler.load()
            return load

        last = ""
        while True:  # in batches, each read to its end: `save_rendered` may write between them
            rows = self.db.execute("SELECT patient, ref, status, result, rendered FROM results WHERE patient > ? "
                                   "ORDER BY patient LIMIT ?", (last, RESULT_BATCH)).fetchall()
            for _patient, ref, status, blob, rendered in rows:
                yield StoredRow(ref, status, pickle.loads(rendered) if rendered else {}, loader(blob))
            if len(rows) < RESULT_BATCH:
                return
            last = rows[-1][0]

    def save_rendered(self, rendered: Iterable[tuple[str, dict[str, bytes]]]) -> None:
        """Keep what results rendered (ScreeningResult.rendered), by patient reference: dropped with the result."""
        self.db.executemany("UPDATE results SET rendered = ? WHERE patient = ?",
                            [(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL), _key(ref)) for ref, r in rendered])

    def counts(self) -> dict[str, int]:
        one = self.db.execute
        return {"resources": one("SELECT count(*) FROM res").fetchone()[0],
                "patients": one("SELECT count(DISTINCT patient) FROM res WHERE patient != ''").fetchone()[0],
                "results": one("SELECT count(*) FROM results").fetchone()[0],
                "dirty": one("SELECT count(*) FROM dirty").fetchone()[0]}


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One stored result: its patient reference and status, what it rendered before (by key), and how to
    read the whole result back."""

    ref: str
    status: str
    rendered: dict[str, bytes]
    load: Callable[[], Any]


def _key(ref: str) -> str:
    """The results table's key of a patient reference."""
    return ref.removeprefix("Patient/")


def _shared_values(obj: object) -> Iterator[Any]:
    """The `Shared` values in a result (its fields, tuples of them), outermost first."""
    if isinstance(obj, Shared):
        yield obj
    elif isinstance(obj, tuple):
        for item in obj:
            yield from _shared_values(item)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            yield from _shared_values(getattr(obj, name))


def _digest(value: Any) -> tuple[bytes, bytes]:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return hashlib.blake2b(body, digest_size=16).digest(), body


def _parts(results: list[Any]) -> tuple[dict[bytes, tuple[int, bytes]], dict[int, bytes]]:
    """digest -> (how many of these results hold the value, its pickle), for every `Shared` value; and the
    digest of each value by its id (the results hold them while they are saved)."""
    parts: dict[bytes, tuple[int, bytes]] = {}
    ids: dict[int, bytes] = {}
    for r in results:
        for value in _shared_values(r):
            digest, body = _digest(value)
            count, _ = parts.get(digest, (0, body))
            parts[digest] = (count + 1, body)
            ids[id(value)] = digest
    return parts, ids


def _dumps(result: Any, parts: dict[bytes, tuple[int, bytes]], ids: dict[int, bytes]) -> bytes:
    """A result's pickle, each `Shared` value more than one result holds replaced by its digest (it is in
    `parts`); a value only this result holds (its own age, with the Patient as evidence) is pickled in place,
    where reading it back costs no lookup."""

    def shared(obj: object) -> bytes | None:
        if not isinstance(obj, Shared):
            return None
        digest = ids[id(obj)]
        return digest if parts[digest][0] > 1 else None

    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.persistent_id = shared  # type: ignore[method-assign]
    pickler.dump(result)
    return out.getvalue()


def _deletion(entry: object) -> tuple[str, str] | None:
    """(type, id) of a Bundle entry that is a `DELETE Type/id` request."""
    if not isinstance(entry, dict):
        return None
    req = entry.get("request")
    if not isinstance(req, dict) or req.get("method") != "DELETE" or not isinstance(req.get("url"), str):
        return None
    parts = req["url"].split("?", 1)[0].strip("/").split("/")
    if len(parts) < 2 or not parts[-2] or not parts[-1]:
        return None
    return parts[-2], parts[-1]


def state_file_mode(folder: Path) -> None:
    """Keep the store readable by its user only (it holds patient data)."""
    for p in (folder, folder / DB_NAME):
        if p.exists():
            os.chmod(p, 0o700 if p.is_dir() else 0o600)


__all__ = ["DB_NAME", "EVERYONE", "LAYOUT", "MergeStats", "PatientState", "StoredRow", "state_file_mode", "stored_is_newer"]
