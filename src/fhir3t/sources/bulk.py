"""FHIR Bulk Data `$export` into a folder that `fhir3t screen OUT_DIR` reads.

Kick-off with `Prefer: respond-async`, poll the `Content-Location` status URL honouring
`Retry-After` and showing `X-Progress`, then download every output and error file (NDJSON) to
OUT_DIR. The state (status URL, files already downloaded) lives in OUT_DIR/.fhir3t-export.state,
so an interrupted export resumes where it stopped instead of asking the server to start over.

The manifest is the server's word and is checked as such: file names come from the resource type
(`^[A-Z][A-Za-z]{1,63}$`) and a counter, never from the server's strings; a file that needs the
access token (`requiresAccessToken`) is downloaded only from an origin the credentials may go to;
polling never runs faster than a floor that grows, and stops at a total deadline. An export with a
file left out is reported as incomplete (never marked complete): a folder missing, say, the
Conditions would screen patients as having none.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from fhir3t.errors import Fhir3tError, ServerError, UsageError
from fhir3t.fhirutil import (
    RESOURCE_TYPE,  # what a manifest's `type` must look like before it names a file
    fhir_id,
)
from fhir3t.jsonshape import child, child_text, text
from fhir3t.messages import Msg, many, render, table
from fhir3t.smallfiles import STATE_LIMIT, read_small
from fhir3t.transport.http import FhirClient, HttpStatusError, ResponseError, outcome_text, parse_json
from fhir3t.transport.limits import DEFAULT_MAX_FILE
from fhir3t.transport.urls import clean, describe, origin, origin_text

log = logging.getLogger("fhir3t.bulk")

STATE = ".fhir3t-export.state"  # not .json: `fhir3t screen OUT_DIR` must not read it as a Bundle
#: Polling: never faster than the floor, which grows by POLL_GROWTH per poll up to POLL_CEILING.
POLL_FLOOR = 1.0
POLL_GROWTH = 1.5
POLL_CEILING = 60.0
#: The longest pause a server's Retry-After can ask for between polls.
MAX_POLL_WAIT = 120.0
DEFAULT_MAX_WAIT = 3600.0  # also in fhir3t.cli.export

#: what `export` says when the export cannot be made or finished (the CLI's error line), and of each file of the
#: manifest it did not download (listed in the "incomplete" error)
MESSAGES = table("export", {
    "file-elsewhere": "{rtype} file on {there}: not the server's origin ({base}) nor one allowed with --allow-origin{token}; "
                      "not downloaded (add --allow-origin {allow} if that host is trusted)",
    "needs-token": ", and the manifest says it needs the access token",
    "group": "--group {group} is not a FHIR id",
    "type": "--type {type} is not a FHIR resource type",
    "state": "the export state",
    "kickoff": "$export kick-off ({url}): expected 202 with Content-Location, got {status}",
    "kickoff-no-location": "$export kick-off ({url}): expected 202 with Content-Location, got {status} without "
                           "Content-Location",
    "status-url": "the $export status URL",
    "failed": "$export failed on the server ({url}: {status})",
    "no-output": "$export ({url}): the completion manifest has no output list",
    "unexpected": "$export status {url}: unexpected status {status} (expected 202 in progress or 200 done)",
    "in-progress": "in progress",
    "too-long": "$export still running after {seconds} s; rerun the same command later to resume it (or allow longer "
                "with --max-wait)",
    "not-a-list": "manifest '{kind}' is not a list",
    "not-an-object": "{where} is not an object",
    "bad-type": "{where}: type {type} is not a FHIR resource type",
    "no-url": "{where} ({rtype}): no url",
    "unusable": "{where} ({rtype}): {error}",
    "file-failed": "{rtype} file: {error}",
    "more": "\n  ... and {n} more",
    "incomplete": "$export incomplete: {n} file(s) of the manifest not downloaded, so {folder} must not be screened as "
                  "it is:\n  {files}{more}",
    "not-a-folder": "{path} is not a folder",
    "lost": "$export: the server lost the export twice; try again later",
    "cannot-write": "cannot write {path}: {error} (run the same command again when fixed: the export resumes)",
})
#: NDJSON lines longer than this are not read for references (a resource is far smaller).
MAX_LINE = 64 * 1024 * 1024


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    errors: list[Path] = field(default_factory=list)
    #: the manifest's `deleted` files (Bundles of DELETE requests, in an incremental export), kept apart
    #: with a suffix `fhir3t screen OUT_DIR` does not read: `--store-dir` applies them
    deleted: list[Path] = field(default_factory=list)
    resumed: bool = False
    polls: int = 0
    manifest: dict = field(default_factory=dict)
    bytes: int = 0


class BulkExporter:
    def __init__(self, client: FhirClient, out_dir: str | Path, *, group: str | None = None,
                 types: Sequence[str] = (), since: date | str | None = None, max_wait: float = DEFAULT_MAX_WAIT,
                 poll_interval: float = 2.0, poll_floor: float = POLL_FLOOR, max_file_bytes: int | None = DEFAULT_MAX_FILE,
                 on_progress: Callable[[str | Msg], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if group is not None and fhir_id(group) is None:
            raise UsageError(MESSAGES["group"](group=repr(clean(group, 80))))
        self.client = client
        self.out = Path(out_dir)
        self.group = group
        self.types = [t for v in types for t in v.split(",") if t]
        bad = [t for t in self.types if not RESOURCE_TYPE.fullmatch(t)]
        if bad:
            raise UsageError(MESSAGES["type"](type=repr(clean(bad[0], 80))))
        self.since = since.isoformat() if isinstance(since, date) else since
        self.max_wait = max_wait
        self.poll_interval = poll_interval
        self.poll_floor = poll_floor
        self.max_file_bytes = max_file_bytes
        self.on_progress = on_progress
        self.clock = clock

    # ---- state ----------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out / STATE

    def _request_key(self) -> dict:
        return {"server": self.client.base, "group": self.group, "types": self.types, "since": self.since}

    def _load_state(self) -> dict | None:
        try:
            st = json.loads(read_small(self.state_path, STATE_LIMIT, MESSAGES["state"]()))
        except (OSError, ValueError, Fhir3tError):
            return None
        if not isinstance(st, dict) or st.get("request") != self._request_key():
            return None
        done = st.get("done")
        if not isinstance(done, list) or not all(isinstance(u, str) for u in done) \
                or not isinstance(st.get("status_url"), str | None) or not isinstance(st.get("manifest"), dict | None):
            return None  # not a state this version wrote: start over
        return st

    def _save_state(self, st: dict) -> None:
        tmp = self.state_path.with_name(STATE + ".part")
        _write(tmp, tmp.write_text, json.dumps(st, indent=1))
        _write(tmp, tmp.replace, self.state_path)

    # ---- steps ----------------------------------------------------------------------------
    def kickoff(self) -> str:
        path = f"Group/{self.group}/$export" if self.group else "Patient/$export"
        params = [("_outputFormat", "application/fhir+ndjson")]
        if self.types:
            params.append(("_type", ",".join(self.types)))
        if self.since:
            params.append(("_since", self.since if "T" in self.since else f"{self.since}T00:00:00Z"))
        resp = self.client.request("GET", path, params=params,
                                   headers={"Prefer": "respond-async", "Accept": "application/fhir+json"})
        loc = resp.headers.get("Content-Location")
        if resp.status_code != 202 or not loc:
            raise ServerError(MESSAGES["kickoff" if loc else "kickoff-no-location"](url=describe(resp.url or path),
                                                                                    status=resp.status_code))
        self.client.followable(self.client.url(loc), render(MESSAGES["status-url"]()))  # http(s) and on an origin named
        return loc

    def poll(self, status_url: str, result: ExportResult) -> dict | None:
        """The manifest when the export is done; None when the server no longer knows the job."""
        start = self.clock()
        floor = self.poll_floor
        while True:
            try:
                resp = self.client.request("GET", status_url, headers={"Accept": "application/json"}, ok=(202,))
            except HttpStatusError as exc:
                if exc.status in (404, 410):
                    return None
                said = outcome_text(exc.body)  # the server's OperationOutcome, as written
                raise ServerError(MESSAGES["failed"](url=describe(self.client.url(status_url)),
                                                     status=f"{exc.status}: {said}" if said else str(exc.status))) from None
            result.polls += 1
            if resp.status_code == 200:
                manifest = parse_json(resp)
                if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
                    raise ServerError(MESSAGES["no-output"](url=describe(resp.url or status_url)))
                return manifest
            if resp.status_code != 202:
                raise ServerError(MESSAGES["unexpected"](url=describe(resp.url or status_url), status=resp.status_code))
            given = resp.headers.get("X-Progress")  # the server's words, shown as written
            progress: str | Msg = clean(given, 80) if given else MESSAGES["in-progress"]()
            if self.on_progress:
                self.on_progress(progress)
            log.info("export %s", progress if isinstance(progress, str) else render(progress))
            elapsed = self.clock() - start
            if elapsed >= self.max_wait:
                raise ServerError(MESSAGES["too-long"](seconds=f"{self.max_wait:.0f}"))
            asked = self.client.retry.retry_after(resp.headers.get("Retry-After"))
            wait = max(floor, asked if asked is not None else self.poll_interval)
            self.client.sleep(min(wait, MAX_POLL_WAIT, self.max_wait - elapsed))
            floor = min(floor * POLL_GROWTH, POLL_CEILING)

    def _items(self, manifest: dict, problems: list[Msg]) -> Iterator[tuple[str, str, str]]:
        """(kind, resource type, URL) of the manifest's files, each checked; the others go to `problems`."""
        for kind in ("output", "error", "deleted"):
            listed = manifest.get(kind)
            if listed is None and kind in ("error", "deleted"):
                continue
            if not isinstance(listed, list):
                problems.append(MESSAGES["not-a-list"](kind=kind))
                continue
            for i, item in enumerate(listed):
                where = f"manifest {kind}[{i}]"  # a location in the manifest (its JSON names)
                if not isinstance(item, dict):
                    problems.append(MESSAGES["not-an-object"](where=where))
                    continue
                rtype, url = item.get("type", "OperationOutcome" if kind == "error" else None), item.get("url")
                if not isinstance(rtype, str) or not RESOURCE_TYPE.fullmatch(rtype):
                    problems.append(MESSAGES["bad-type"](where=where, type=clean(repr(rtype), 80)))
                    continue
                if not isinstance(url, str):
                    problems.append(MESSAGES["no-url"](where=where, rtype=rtype))
                    continue
                try:
                    full = self.client.url(url)
                except ResponseError as exc:
                    problems.append(MESSAGES["unusable"](where=where, rtype=rtype, error=exc.msg or str(exc)))
                    continue
                yield kind, rtype, full

    def download(self, manifest: dict, st: dict, result: ExportResult) -> None:
        """Download every file of the manifest; raise ServerError at the end if one was left out."""
        counters: dict[tuple[str, str], int] = {}
        token = manifest.get("requiresAccessToken") is not False  # not a clear `false`: assume it is needed
        problems: list[Msg] = []
        for kind, rtype, url in self._items(manifest, problems):
            n = counters.get((kind, rtype), 0)
            counters[(kind, rtype)] = n + 1
            sub = self.out / {"error": "errors", "deleted": "deleted"}.get(kind, "")
            target = sub / (f"{rtype}.{n:03d}.deleted-ndjson" if kind == "deleted" else f"{rtype}.{n:03d}.ndjson")
            kept = {"error": result.errors, "deleted": result.deleted}.get(kind, result.files)
            if url in st["done"] and target.exists():
                kept.append(target)
                continue
            if not self.client.credentials_for(url):  # read only from origins the user named
                o = origin(url)
                problems.append(MESSAGES["file-elsewhere"](
                    rtype=rtype, there=origin_text(o) if o else describe(url), base=origin_text(self.client.origin),
                    token=MESSAGES["needs-token"]() if token else "", allow=origin_text(o) if o else "ORIGIN"))
                continue
            _write(sub, _mkdir, sub)
            try:
                result.bytes += self._fetch_file(url, target, token)
            except HttpStatusError as exc:
                if exc.status in (404, 410):
                    raise
                problems.append(MESSAGES["file-failed"](rtype=rtype, error=exc.msg or str(exc)))
                continue
            except ResponseError as exc:
                problems.append(MESSAGES["file-failed"](rtype=rtype, error=exc.msg or str(exc)))
                continue
            kept.append(target)
            st["done"].append(url)
            self._save_state(st)
        if problems:
            more = MESSAGES["more"](n=len(problems) - 20) if len(problems) > 20 else None
            raise ServerError(MESSAGES["incomplete"](n=len(problems), folder=str(self.out),
                                                     files=many(problems[:20], "\n  "), more=more))

    def _fetch_file(self, url: str, target: Path, token: bool = True) -> int:
        """Download to `target` through a .part file that is removed if anything goes wrong."""
        part = target.with_name(target.name + ".part")
        try:
            with _opened(part, "wb") as fh:
                n = self.client.download(url, lambda b: _write(part, fh.write, b),
                                         headers={"Accept": "application/fhir+ndjson"}, max_bytes=self.max_file_bytes,
                                         credentials=token)
            _write(target, part.replace, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return n

    def supplement(self, files: list[Path]) -> list[Path]:
        """Fetch the Medications / ResearchStudies the export points at but does not contain.

        A Patient-level export holds the patients' compartments only; the drug of a
        `medicationReference` and the study of a ResearchSubject are outside it, and without them
        E3 / E4 could not be decided. They are read by id (a few searches) into
        `<Type>.referenced.ndjson`; only the resources asked for are kept (a server that ignores
        `_id` answers with everything).
        """
        from fhir3t.fhirutil import normalize_reference
        from fhir3t.r4facts import r4_facts

        SHARED_TYPES = r4_facts().shared_types

        have: set[str] = set()
        wanted: set[str] = set()
        for f in files:
            for res in _resources(f):
                rtype, rid = text(res.get("resourceType")), text(res.get("id"))
                if rtype in SHARED_TYPES and rid:
                    have.add(f"{rtype}/{rid}")
                for key in ("medicationReference", "study"):
                    ref = child_text(child(res, key), "reference")
                    norm = normalize_reference(ref, {}) if ref and not ref.startswith("#") else None
                    if norm and norm.split("/")[0] in SHARED_TYPES and fhir_id(norm.split("/", 1)[1]):
                        wanted.add(norm)
        missing: dict[str, list[str]] = {}
        for ref in sorted(wanted - have):
            rtype, rid = ref.split("/", 1)
            missing.setdefault(rtype, []).append(rid)
        out: list[Path] = []
        for rtype, ids in missing.items():
            target = self.out / f"{rtype}.referenced.ndjson"
            part = target.with_name(target.name + ".part")
            try:
                with _opened(part, "w") as fh:
                    for i in range(0, len(ids), 50):
                        asked = set(ids[i:i + 50])
                        for res in self.client.search(rtype, [("_id", ",".join(sorted(asked))), ("_count", "100")]):
                            if text(res.get("id")) in asked:
                                _write(part, fh.write, json.dumps(res, separators=(",", ":")) + "\n")
                _write(target, part.replace, target)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            out.append(target)
        return out

    def run(self) -> ExportResult:
        _write(self.out, _mkdir, self.out)
        if not self.out.is_dir():
            raise UsageError(MESSAGES["not-a-folder"](path=str(self.out)))
        result = ExportResult()
        st = self._load_state()
        if st and st.get("complete"):
            st = None  # a finished export: a new run asks for fresh data
        if st and st.get("status_url"):
            result.resumed = True
            log.info("resuming the export started earlier")
        else:
            st = {"request": self._request_key(), "status_url": None, "manifest": None, "done": []}
        for _ in range(2):
            if not st.get("manifest"):
                if not st.get("status_url"):
                    st["status_url"] = self.kickoff()
                    self._save_state(st)
                manifest = self.poll(st["status_url"], result)
                if manifest is None:  # the server forgot the job: start again (once)
                    log.info("the server no longer knows the earlier export; starting a new one")
                    st.update(status_url=None, manifest=None, done=[])
                    continue
                st["manifest"] = manifest
                self._save_state(st)
            try:
                self.download(st["manifest"], st, result)
            except HttpStatusError as exc:
                if exc.status in (404, 410):  # files expired: export again
                    st.update(status_url=None, manifest=None, done=[])
                    result.files.clear()
                    result.errors.clear()
                    continue
                raise
            result.manifest = st["manifest"]
            result.files.extend(self.supplement(result.files))
            st["complete"] = True
            self._save_state(st)
            return result
        raise ServerError(MESSAGES["lost"]())


def _write(path: Path, op: Callable[..., Any], *args: Any) -> Any:
    """Run a local file operation; a full disk or a read-only folder is the user's to fix, not a bug."""
    try:
        return op(*args)
    except OSError as exc:
        raise UsageError(MESSAGES["cannot-write"](path=str(path), error=exc.strerror or type(exc).__name__)) from None


class _opened:
    """`open()` whose OSErrors (on open and on close, where a full disk often shows) become UsageErrors."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path, self.mode = path, mode

    def __enter__(self) -> IO[Any]:
        self.fh = _write(self.path, self.path.open, self.mode)
        return self.fh

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            _write(self.path, self.fh.close)
            return
        try:
            self.fh.close()
        except OSError:
            pass  # the error already under way is the one to report


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _resources(path: Path) -> Iterator[dict]:
    """The JSON objects of an NDJSON file; lines that are too long or not JSON objects are passed over."""
    with path.open("rb") as fh:
        while True:
            line = fh.readline(MAX_LINE)
            if not line:
                return
            if len(line) >= MAX_LINE and not line.endswith(b"\n"):
                while (more := fh.readline(MAX_LINE)) and not more.endswith(b"\n"):
                    pass
                continue
            try:
                res = json.loads(line)
            except ValueError:
                continue
            if isinstance(res, dict):
                yield res
