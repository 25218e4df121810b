"""The embedded state: one SQLite file holding the same FHIR resources a server would (the study, the subjects with
every version, the team's Communications, Consents and Provenances) and the screening runs.

A small FHIR store: every write makes a new version (kept in `versions`, as a server's _history); a write with
If-Match checks the current version first and refuses (`Conflict`) when another writer got there before; a
conditional create finds an existing resource by identifier. A transaction is one SQLite transaction (BEGIN
IMMEDIATE), so two processes sharing the file serialise and a failure part-way writes nothing. Screening runs
are recorded as rows (the result's JSON contract), one per patient per run, for the timeline and the log;
`fhir3t push` sends the resources to a server later.

The file is created mode 0600 (it holds patient identifiers and the team's notes), in WAL mode so the
coordinator's page can read while a nightly run writes.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fhir3t.enrolment.records import Screening, screening_of_result
from fhir3t.enrolment.refused import Conflict
from fhir3t.errors import ConfigError
from fhir3t.jsonshape import child, child_text, items, objs, text
from fhir3t.messages import Message, render
from fhir3t.state.base import CHANGED, Entry, Versioned, Written, relink

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, updated TEXT NOT NULL,
    patient TEXT, json BLOB NOT NULL, PRIMARY KEY (type, id));
CREATE INDEX IF NOT EXISTS resources_patient ON resources (type, patient);
CREATE TABLE IF NOT EXISTS versions (
    type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, updated TEXT NOT NULL,
    json BLOB NOT NULL, PRIMARY KEY (type, id, version));
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY AUTOINCREMENT, recorded TEXT NOT NULL, as_of TEXT NOT NULL, d1 TEXT NOT NULL,
    criteria TEXT NOT NULL, patients INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS screenings (
    run INTEGER NOT NULL REFERENCES runs (run), patient TEXT NOT NULL, status TEXT NOT NULL,
    display_id TEXT, result BLOB NOT NULL, PRIMARY KEY (run, patient));
CREATE INDEX IF NOT EXISTS screenings_patient ON screenings (patient, run);
"""
UNUSABLE = Message("state.unusable", "the state file {path} cannot be used ({reason}); give another with --state FILE")
NEWER = Message("state.newer", "the state file {path} was written by a newer fhir3t (schema {found}); update fhir3t")
#: where a resource names its patient (what a patient's records are found by)
PATIENT_LINKS = ("individual", "subject", "patient")


def now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _patient_of(res: Mapping[str, Any]) -> str | None:
    for link in PATIENT_LINKS:
        ref = child_text(child(res, link), "reference")
        if ref and ref.startswith("Patient/"):
            return ref
    return None


def _identifier_query(query: str) -> tuple[str, str] | None:
    """(system, value) of `identifier=system|value` (the only conditional create the workflow writes)."""
    from urllib.parse import parse_qsl

    pairs = parse_qsl(query.split("?", 1)[-1])
    if len(pairs) != 1 or pairs[0][0] != "identifier":
        return None
    system, _, value = pairs[0][1].rpartition("|")
    return system, value


class StateFile:
    """The SQLite state (see the module doc); one connection, shared safely by threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.label = str(self.path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is None:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif found[0] != SCHEMA_VERSION:
                raise ConfigError(render(NEWER(path=str(self.path), found=found[0])))
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)[:120] or type(exc).__name__
            raise ConfigError(render(UNUSABLE(path=str(self.path), reason=reason))) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- transactions --------------------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: other writers wait; all or nothing)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _current(self, rtype: str, rid: str) -> tuple[int, dict] | None:
        row = self._db.execute("SELECT version, json FROM resources WHERE type = ? AND id = ?", (rtype, rid)).fetchone()
        return (int(row[0]), orjson.loads(row[1])) if row else None

    def _put(self, res: dict, updated: str) -> Written:
        rtype, rid = res["resourceType"], res["id"]
        cur = self._current(rtype, rid)
        version = (cur[0] if cur else 0) + 1
        meta = res.get("meta")
        body = {**res, "meta": {**(meta if isinstance(meta, dict) else {}), "versionId": str(version), "lastUpdated": updated}}
        blob = orjson.dumps(body)
        self._db.execute("INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?, ?, ?)",
                         (rtype, rid, version, updated, _patient_of(body), blob))
        self._db.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?)", (rtype, rid, version, updated, blob))
        return Written(f"{rtype}/{rid}", str(version))

    def _by_identifier(self, rtype: str, system: str, value: str) -> dict | None:
        for (blob,) in self._db.execute("SELECT json FROM resources WHERE type = ?", (rtype,)):
            res = orjson.loads(blob)
            if any(i.get("system") == system and i.get("value") == value for i in objs(res.get("identifier"))):
                return res
        return None

    def commit(self, entries: Sequence[Entry]) -> list[Written]:
        with self.writing():
            return self._commit(entries)

    def _commit(self, entries: Sequence[Entry]) -> list[Written]:
        """Inside a write transaction: check every If-Match first, then write (a Conflict leaves nothing)."""
        for e in entries:
            if e.if_match is None:
                continue
            cur = self._current(e.resource["resourceType"], e.resource["id"])
            now = str(cur[0]) if cur else "0"
            if now != e.if_match:
                raise Conflict(CHANGED(ref=e.ref, expected=e.if_match, now=now))
        mapping: dict[str, str] = {}
        for e in entries:
            if e.if_none_exist and e.full_url:
                ident = _identifier_query(e.if_none_exist)
                found = self._by_identifier(e.resource["resourceType"], *ident) if ident else None
                mapping[e.full_url] = f"{e.resource['resourceType']}/{(found or e.resource)['id']}"
            elif e.full_url:
                mapping[e.full_url] = e.ref
        updated = now_instant()
        out = []
        for e in entries:
            if e.if_none_exist and e.full_url and mapping[e.full_url] != e.ref:
                cur = self._current(*mapping[e.full_url].split("/", 1))
                out.append(Written(mapping[e.full_url], str(cur[0]) if cur else None))
                continue
            out.append(self._put(relink(e.resource, mapping), updated))
        return out

    # ---- reading ------------------------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def get(self, rtype: str, rid: str) -> Versioned | None:
        with self._lock:
            cur = self._current(rtype, rid)
        return Versioned(cur[1], str(cur[0])) if cur else None

    def resources(self, rtype: str | None = None) -> list[dict]:
        """The current version of every resource (of a type)."""
        if rtype is None:
            return [orjson.loads(b) for (b,) in self._rows("SELECT json FROM resources ORDER BY type, id")]
        return [orjson.loads(b) for (b,) in self._rows("SELECT json FROM resources WHERE type = ? ORDER BY id", (rtype,))]

    def history(self, rtype: str, rid: str) -> list[dict]:
        return [orjson.loads(b) for (b,) in self._rows("SELECT json FROM versions WHERE type = ? AND id = ? ORDER BY version",
                                                       (rtype, rid))]

    def study(self, system: str, value: str) -> Versioned | None:
        with self._lock:
            found = self._by_identifier("ResearchStudy", system, value)
            cur = self._current("ResearchStudy", found["id"]) if found else None
        return Versioned(cur[1], str(cur[0])) if cur else None

    def subject(self, patient: str, subject_id: str, study_ref: str) -> Versioned | None:
        own = self.get("ResearchSubject", subject_id)
        if own is not None:
            return own
        for blob, version in self._rows("SELECT json, version FROM resources WHERE type = 'ResearchSubject' AND patient = ?",
                                        (patient,)):
            res = orjson.loads(blob)
            if child_text(child(res, "study"), "reference") == study_ref:
                return Versioned(res, str(version))
        return None

    def subjects(self, study_ref: str) -> list[Versioned]:
        out = []
        for blob, version in self._rows("SELECT json, version FROM resources WHERE type = 'ResearchSubject' ORDER BY id"):
            res = orjson.loads(blob)
            if child_text(child(res, "study"), "reference") == study_ref:
                out.append(Versioned(res, str(version)))
        return out

    def team_records(self, study_ref: str, patient: str | None = None, subject_ref: str | None = None) -> list[dict]:
        types = ("Communication", "Consent", "Provenance") if patient else ("Communication", "Consent")
        out: list[dict] = []
        for rtype in types:
            if patient and rtype != "Provenance":
                rows = self._rows("SELECT json FROM resources WHERE type = ? AND patient = ? ORDER BY updated", (rtype, patient))
            else:
                rows = self._rows("SELECT json FROM resources WHERE type = ? ORDER BY updated", (rtype,))
            for (blob,) in rows:
                res = orjson.loads(blob)
                if rtype == "Provenance":
                    targets = {child_text(t, "reference") for t in items(res.get("target"))}
                    mine = {r.get("id") for r in out if r.get("resourceType") in ("Communication", "Consent")}
                    if not (subject_ref in targets or any(t and t.split("/")[-1] in mine for t in targets)):
                        continue
                out.append(res)
        return out

    def screenings(self, study_ref: str, patient: str | None = None) -> list[Screening]:
        sql = ("SELECT s.result, r.recorded, s.run FROM screenings s JOIN runs r USING (run)"
               + (" WHERE s.patient = ?" if patient else "") + " ORDER BY s.run")
        out = []
        for blob, recorded, run in self._rows(sql, (patient,) if patient else ()):
            s = screening_of_result(orjson.loads(blob), recorded, f"run {run}")
            if s is not None:
                out.append(s)
        return out  # in the order of the runs (the recorded times of runs on other machines may disagree)

    def display_ids(self, patients: Iterable[str]) -> dict[str, str]:
        wanted = set(patients)
        out: dict[str, str] = {}
        for patient, display in self._rows("SELECT patient, display_id FROM screenings WHERE display_id IS NOT NULL "
                                           "ORDER BY run"):
            if patient in wanted:
                out[patient] = display
        return out

    def find_patient(self, wanted: str) -> str | None:
        ref = wanted if wanted.startswith("Patient/") else f"Patient/{wanted}"
        known = {p for (p,) in self._rows("SELECT DISTINCT patient FROM screenings")}
        known |= {p for (p,) in self._rows("SELECT DISTINCT patient FROM resources WHERE patient IS NOT NULL")}
        if ref in known:
            return ref
        hits = {p for p, d in self._rows("SELECT DISTINCT patient, display_id FROM screenings") if d == wanted}
        return hits.pop() if len(hits) == 1 else None

    # ---- screening runs ------------------------------------------------------------------------------------
    def record_run(self, recorded: str, as_of: str, d1: str, criteria: str, results: Sequence[Mapping[str, Any]],
                   entries: Sequence[Entry]) -> int:
        """A screening run: its results as rows, and the FHIR entries its push policy allows, in one transaction."""
        with self.writing() as db:
            run = db.execute("INSERT INTO runs (recorded, as_of, d1, criteria, patients) VALUES (?, ?, ?, ?, ?)",
                             (recorded, as_of, d1, criteria, len(results))).lastrowid
            db.executemany("INSERT OR REPLACE INTO screenings VALUES (?, ?, ?, ?, ?)",
                           [(run, r["patient"], r["status"], text(r.get("display_id")), orjson.dumps(r)) for r in results])
            self._commit(entries)
        return int(run or 0)

    def runs(self) -> list[dict[str, Any]]:
        return [{"run": r, "recorded": rec, "as_of": a, "d1": d, "criteria": c, "patients": n}
                for r, rec, a, d, c, n in self._rows("SELECT * FROM runs ORDER BY run")]


__all__ = ["SCHEMA_VERSION", "StateFile", "now_instant"]
