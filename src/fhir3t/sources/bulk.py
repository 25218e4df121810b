"""FHIR Bulk Data `$export` into a folder that `fhir3t screen OUT_DIR` reads.

Kick-off with `Prefer: respond-async`, poll the `Content-Location` status URL honouring
`Retry-After` and showing `X-Progress`, then download every output and error file (NDJSON) to
OUT_DIR. The state (status URL, files already downloaded) lives in OUT_DIR/.fhir3t-export.state,
so an interrupted export resumes where it stopped instead of asking the server to start over.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from fhir3t.errors import ServerError, UsageError
from fhir3t.transport.http import FhirClient, HttpStatusError, outcome_text, parse_json

log = logging.getLogger("fhir3t.bulk")

STATE = ".fhir3t-export.state"  # not .json: `fhir3t screen OUT_DIR` must not read it as a Bundle


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    errors: list[Path] = field(default_factory=list)
    resumed: bool = False
    polls: int = 0
    manifest: dict = field(default_factory=dict)


class BulkExporter:
    def __init__(self, client: FhirClient, out_dir: str | Path, *, group: str | None = None,
                 types: Sequence[str] = (), since: date | str | None = None, max_wait: float = 3600.0,
                 poll_interval: float = 2.0, on_progress: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.out = Path(out_dir)
        self.group = group
        self.types = [t for v in types for t in v.split(",") if t]
        self.since = since.isoformat() if isinstance(since, date) else since
        self.max_wait = max_wait
        self.poll_interval = poll_interval
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
            st = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        return st if isinstance(st, dict) and st.get("request") == self._request_key() else None

    def _save_state(self, st: dict) -> None:
        tmp = self.state_path.with_name(STATE + ".part")
        tmp.write_text(json.dumps(st, indent=1))
        tmp.replace(self.state_path)

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
            raise ServerError(f"$export kick-off: expected 202 with Content-Location, got {resp.status_code}")
        return loc

    def poll(self, status_url: str, result: ExportResult) -> dict | None:
        """The manifest when the export is done; None when the server no longer knows the job."""
        start = self.clock()
        while True:
            try:
                resp = self.client.request("GET", status_url, headers={"Accept": "application/json"}, ok=(202,))
            except HttpStatusError as exc:
                if exc.status in (404, 410):
                    return None
                raise ServerError(f"$export failed on the server: {outcome_text(exc.body) or exc}") from None
            result.polls += 1
            if resp.status_code == 200:
                manifest = parse_json(resp)
                if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
                    raise ServerError("$export: the completion manifest has no output list")
                return manifest
            progress = resp.headers.get("X-Progress", "in progress")
            if self.on_progress:
                self.on_progress(progress)
            log.info("export %s", progress)
            if self.clock() - start > self.max_wait:
                raise ServerError(f"$export still running after {self.max_wait:.0f} s; rerun the same command "
                                  "later to resume it")
            wait = self.client.retry.retry_after(resp.headers.get("Retry-After"))
            self.client.sleep(min(wait if wait is not None else self.poll_interval, 120.0))

    def download(self, manifest: dict, st: dict, result: ExportResult) -> None:
        counters: dict[str, int] = {}
        token = bool(manifest.get("requiresAccessToken"))
        for kind, items in (("output", manifest.get("output") or []), ("error", manifest.get("error") or [])):
            for item in items:
                url, rtype = item.get("url"), item.get("type") or "Resource"
                if not isinstance(url, str):
                    continue
                n = counters.get(f"{kind}:{rtype}", 0)
                counters[f"{kind}:{rtype}"] = n + 1
                sub = self.out / "errors" if kind == "error" else self.out
                sub.mkdir(parents=True, exist_ok=True)
                target = sub / f"{rtype}.{n:03d}.ndjson"
                (result.errors if kind == "error" else result.files).append(target)
                if url in st["done"] and target.exists():
                    continue
                resp = self.client.request("GET", url, headers={"Accept": "application/fhir+ndjson"},
                                           auth=True if token else None, stream=True)
                part = target.with_name(target.name + ".part")
                with part.open("wb") as fh:
                    for chunk in resp.iter_content(1 << 16):
                        fh.write(chunk)
                part.replace(target)
                st["done"].append(url)
                self._save_state(st)

    def supplement(self, files: list[Path]) -> list[Path]:
        """Fetch the Medications / ResearchStudies the export points at but does not contain.

        A Patient-level export holds the patients' compartments only; the drug of a
        `medicationReference` and the study of a ResearchSubject are outside it, and without them
        E3 / E4 could not be decided. They are read by id (a few searches) into
        `<Type>.referenced.ndjson`.
        """
        from fhir3t.r4facts import r4_facts
        from fhir3t.sources.refs import normalize_reference

        SHARED_TYPES = r4_facts().shared_types

        have: set[str] = set()
        wanted: set[str] = set()
        for f in files:
            with f.open("rb") as fh:
                for line in fh:
                    try:
                        res = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(res, dict):
                        continue
                    if res.get("resourceType") in SHARED_TYPES:
                        have.add(f"{res['resourceType']}/{res.get('id')}")
                    for key in ("medicationReference", "study"):
                        ref = (res.get(key) or {}).get("reference") if isinstance(res.get(key), dict) else None
                        norm = normalize_reference(ref, {}) if isinstance(ref, str) and not ref.startswith("#") else None
                        if norm and norm.split("/")[0] in SHARED_TYPES:
                            wanted.add(norm)
        missing: dict[str, list[str]] = {}
        for ref in sorted(wanted - have):
            rtype, rid = ref.split("/", 1)
            missing.setdefault(rtype, []).append(rid)
        out: list[Path] = []
        for rtype, ids in missing.items():
            target = self.out / f"{rtype}.referenced.ndjson"
            with target.open("w") as fh:
                for i in range(0, len(ids), 50):
                    for res in self.client.search(rtype, [("_id", ",".join(ids[i:i + 50])), ("_count", "100")]):
                        fh.write(json.dumps(res, separators=(",", ":")) + "\n")
            out.append(target)
        return out

    def run(self) -> ExportResult:
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.out.is_dir():
            raise UsageError(f"{self.out} is not a folder")
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
        raise ServerError("$export: the server lost the export twice; try again later")
