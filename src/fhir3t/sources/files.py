"""Read patients from files: FHIR Bundles / single resources (.json) and Bulk Data NDJSON.

Bundle input is streamed file by file: a Bundle that holds a Patient is taken as that
patient's record (as $everything, IPS and Synthea bundles are), so memory stays flat for
Bundle-per-patient input. NDJSON (one file per type) has to be grouped by patient; only
resources the caller wants (see `wants`) are kept while grouping.
"""
from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fhir3t.errors import InputError, Problems
from fhir3t.record import SHARED_TYPES, RawRecord, patient_reference

#: Types that must name a patient; one without a patient reference is reported and skipped.
PATIENT_SCOPED = frozenset({
    "Observation", "Condition", "MedicationStatement", "MedicationRequest",
    "MedicationAdministration", "AllergyIntolerance", "Immunization",
    "ImmunizationRecommendation", "Consent", "QuestionnaireResponse", "ResearchSubject",
    "AdverseEvent", "DiagnosticReport", "Encounter", "Procedure",
})

JSON_SUFFIXES = (".json", ".json.gz")
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")

#: wants(resource, where) -> keep it? `where` (the file or file:line) names it in a problem.
Wants = Callable[[dict, str], bool]


def _has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    name = path.name.lower()
    return name.endswith(suffixes)


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Split inputs into Bundle/resource JSON files and NDJSON files (folders searched recursively)."""
    json_files: list[Path] = []
    ndjson_files: list[Path] = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        candidates = sorted(x for x in path.rglob("*") if x.is_file()) if path.is_dir() else [path]
        for f in candidates:
            if _has_suffix(f, NDJSON_SUFFIXES):
                ndjson_files.append(f)
            elif _has_suffix(f, JSON_SUFFIXES):
                json_files.append(f)
            elif not path.is_dir():
                raise InputError(f"{f}: not a .json, .ndjson or .ndjson.gz file")
    return json_files, ndjson_files


def _read_bytes(path: Path) -> bytes:
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def normalize_reference(ref: str, aliases: dict[str, str]) -> str | None:
    """`Patient/x`, `urn:uuid:...` (via the Bundle's fullUrls) or `http(s)://base/Patient/x` → key."""
    hit = aliases.get(ref)
    if hit:
        return hit
    if ref.startswith("Patient/") and ref.count("/") == 1:
        return ref
    if ref.startswith("urn:"):
        return None
    parts = ref.split("?")[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] and parts[-1]:
        return f"{parts[-2]}/{parts[-1]}"
    return None


@dataclass
class SharedIndex:
    """Medication and ResearchStudy resources, which many patients' resources point at."""

    by_ref: dict[str, dict] = field(default_factory=dict)

    def add(self, resource: dict, full_url: str | None = None) -> None:
        rid = resource.get("id")
        if isinstance(rid, str):
            self.by_ref[f"{resource['resourceType']}/{rid}"] = resource
        if full_url:
            self.by_ref[full_url] = resource

    def get(self, ref: str) -> dict | None:
        hit = self.by_ref.get(ref)
        if hit is None and "://" in ref:
            norm = normalize_reference(ref, {})
            hit = self.by_ref.get(norm) if norm else None
        return hit

    def studies(self) -> list[dict]:
        seen: dict[int, dict] = {}
        for r in self.by_ref.values():
            if r.get("resourceType") == "ResearchStudy":
                seen[id(r)] = r
        return list(seen.values())


class FileSource:
    """Yields RawRecords from Bundle/resource files and NDJSON files."""

    def __init__(
        self,
        paths: Iterable[str | Path],
        problems: Problems,
        *,
        wants: Wants | None = None,
        on_file: Callable[[Path], None] | None = None,
        shared: SharedIndex | None = None,
    ) -> None:
        self.json_files, self.ndjson_files = expand_paths(paths)
        self.problems = problems
        self.wants = wants
        self.on_file = on_file
        self.shared = shared if shared is not None else SharedIndex()
        self._yielded: dict[str, str] = {}  # patient key -> where its record came from

    def __iter__(self) -> Iterator[RawRecord]:
        orphans: dict[str, RawRecord] = {}
        #: records holding nothing but a Patient wait for the end: their data may be in other
        #: files (a folder of single resources, or one Bundle per resource type)
        bare: dict[str, RawRecord] = {}
        for path in self.json_files:
            for raw in self._bundle_file(path, orphans):
                if len(raw.resources) == 1 and raw.key not in bare:
                    bare[raw.key] = raw
                else:
                    yield self._mark(raw)
            if self.on_file:
                self.on_file(path)
        if self.ndjson_files:
            yield from self._ndjson(self.ndjson_files)
        for key, raw in bare.items():
            extra = orphans.pop(key, None)
            if extra is not None:
                merged_resolve = _chain(raw.resolve, extra.resolve)
                raw = RawRecord(key, raw.resources + extra.resources, raw.source, merged_resolve,
                                {**raw.aliases, **extra.aliases})
            yield self._mark(raw)
        for key, raw in orphans.items():
            if key in self._yielded:
                self.problems.add(
                    raw.source,
                    f"{len(raw.resources)} resource(s) for {key} are in a file without its Patient, "
                    f"after its record was screened from {self._yielded[key]}; they were ignored "
                    "(keep a patient's resources in one Bundle, or use NDJSON)",
                )
                continue
            self.problems.add(raw.source, f"{key}: no Patient resource found; screened without demographics", skipped=False)
            yield self._mark(raw)

    def _mark(self, raw: RawRecord) -> RawRecord:
        self._yielded.setdefault(raw.key, raw.source)
        return raw

    # ---- Bundles and single resources -------------------------------------------------
    def _load(self, path: Path, where: str) -> object | None:
        return load_file(path, where, self.problems)

    def _bundle_file(self, path: Path, orphans: dict[str, RawRecord]) -> Iterator[RawRecord]:
        where = str(path)
        data = self._load(path, where)
        if data is None:
            return
        complete, loose = read_bundle(data, where, self.problems, self.shared, self.wants)
        for key, raw in loose.items():
            if key in orphans:
                orphans[key].resources.extend(raw.resources)
                orphans[key].aliases.update(raw.aliases)
                orphans[key].resolve = _chain(orphans[key].resolve, raw.resolve)
            else:
                orphans[key] = raw
        for raw in complete:
            if raw.key in self._yielded:
                self.problems.add(where, f"{raw.key} appears again (first in {self._yielded[raw.key]}); "
                                         "screened once more from this file", skipped=False)
            yield raw

    # ---- Bulk Data NDJSON ------------------------------------------------------------
    def _ndjson_lines(self, path: Path) -> Iterator[tuple[dict, str]]:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        try:
            with opener(path, "rb") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    loc = f"{path}:{lineno}"
                    try:
                        obj = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        self.problems.add(loc, f"not valid JSON ({exc}); line skipped")
                        continue
                    if not isinstance(obj, dict) or not isinstance(obj.get("resourceType"), str):
                        self.problems.add(loc, "not a FHIR resource (no resourceType); line skipped")
                        continue
                    yield obj, loc
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            self.problems.add(str(path), f"cannot read file past this point ({exc})")

    def _ndjson(self, files: list[Path]) -> Iterator[RawRecord]:
        # Shared resources first, so medicationReference resolves whatever the file order.
        def shared_first(p: Path) -> int:
            return 0 if p.name.split(".")[0] in SHARED_TYPES else 1

        order = sorted(files, key=shared_first)
        groups: dict[str, RawRecord] = {}
        shared = self.shared
        resolve = shared.get
        for path in order:
            for res, loc in self._ndjson_lines(path):
                rtype = res["resourceType"]
                if rtype in SHARED_TYPES:
                    shared.add(res)
                    continue
                if rtype == "Patient":
                    if not isinstance(res.get("id"), str):
                        self.problems.add(loc, "Patient without id; skipped")
                        continue
                    key = f"Patient/{res['id']}"
                elif rtype in PATIENT_SCOPED:
                    ref = patient_reference(res)
                    norm = normalize_reference(ref, {}) if ref else None
                    if norm is None or not norm.startswith("Patient/"):
                        self.problems.add(loc, f"{rtype} has no usable patient reference; skipped")
                        continue
                    key = norm
                    if self.wants is not None and not self.wants(res, loc):
                        continue
                else:
                    continue
                raw = groups.get(key)
                if raw is None:
                    raw = groups[key] = RawRecord(key, [], str(path.parent), resolve, {})
                raw.resources.append((res, loc))
            if self.on_file:
                self.on_file(path)
        for key, raw in groups.items():
            if not any(r.get("resourceType") == "Patient" for r, _ in raw.resources):
                self.problems.add(raw.source, f"{key}: no Patient resource in the NDJSON; screened without demographics", skipped=False)
            if key in self._yielded:
                self.problems.add(raw.source, f"{key} appears again (first in {self._yielded[key]}); screened once more", skipped=False)
            yield self._mark(raw)


_TOP_TYPE = re.compile(rb'^\s*\{\s*"resourceType"\s*:\s*"([A-Za-z]+)"')


def discover_concept_maps(json_files: Iterable[Path], max_bytes: int = 20_000_000) -> list[Path]:
    """ConceptMap files among the inputs, so a folder that ships its own map just works.

    Reads only the first bytes of each file when `resourceType` comes first (as FHIR servers and
    tools write it): patient files are not read twice. Otherwise a small file is searched whole.
    """
    found = []
    for path in json_files:
        try:
            if path.name.lower().endswith(".gz"):
                with gzip.open(path, "rb") as fh:
                    head = fh.read(512)
            else:
                with path.open("rb") as fh:
                    head = fh.read(512)
            top = _TOP_TYPE.match(head)
            if top is not None and top.group(1) != b"ConceptMap":
                continue
            if top is None and (path.stat().st_size > max_bytes or b'"ConceptMap"' not in _read_bytes(path)):
                continue
            obj = orjson.loads(_read_bytes(path))
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile, orjson.JSONDecodeError):
            continue
        if isinstance(obj, dict) and obj.get("resourceType") == "ConceptMap":
            found.append(path)
    return found


def load_file(path: Path, where: str, problems: Problems) -> object | None:
    """Parse a JSON file (gz too); a problem, not an exception, when it cannot be read."""
    try:
        return orjson.loads(_read_bytes(path))
    except orjson.JSONDecodeError as exc:
        problems.add(where, f"not valid JSON ({exc}); file skipped")
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        problems.add(where, f"cannot read file ({exc}); file skipped")
    return None


def _entry_problem(entry: object, loc: str, problems: Problems) -> None:
    """Say what is wrong with an entry the fast path could not read."""
    if not isinstance(entry, dict):
        problems.add(loc, "Bundle entry is not an object; skipped")
    elif not isinstance(entry.get("resource"), dict):
        if (entry.get("request") or {}).get("method") != "DELETE":
            problems.add(loc, "Bundle entry has no resource; skipped")
    else:
        problems.add(loc, "resource without resourceType; skipped")


def _chain(*resolvers: Callable[[str], dict | None]) -> Callable[[str], dict | None]:
    def resolve(ref: str) -> dict | None:
        for r in resolvers:
            hit = r(ref)
            if hit is not None:
                return hit
        return None

    return resolve


def read_bundle(  # noqa: C901 - split when grouping moves to one mechanism
    data: object, where: str, problems: Problems, shared: SharedIndex, wants: Wants | None = None
) -> tuple[list[RawRecord], dict[str, RawRecord]]:
    """Group one Bundle's (or single resource's) entries by patient.

    Returns the records of patients whose Patient resource is in the Bundle, and the
    'loose' resources of patients it only refers to. Shared resources (Medication,
    ResearchStudy) go into `shared`. Problems are reported with the entry index. `wants`
    drops resources no caller reads before they are grouped (most of a real record).
    """
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        problems.add(where, "not a FHIR resource (no resourceType); file skipped")
        return [], {}
    if data["resourceType"] == "Bundle":
        entries = data.get("entry") or []
        if not isinstance(entries, list):
            problems.add(where, "Bundle.entry is not a list; file skipped")
            return [], {}
        single = False
    else:
        entries = [{"resource": data}]
        single = True

    def loc_of(i: int) -> str:
        return where if single else f"{where}#entry[{i}]"

    resources: list[tuple[dict, str, str | None]] = []
    aliases: dict[str, str] = {}  # fullUrl / absolute URL -> patient key
    patient_keys: list[str] = []
    scoped = PATIENT_SCOPED
    wanted_types = getattr(wants, "types", None) or scoped  # skip the call for types nobody reads
    for i, entry in enumerate(entries):
        try:
            res = entry["resource"]
            rtype = res["resourceType"]
            ok = type(rtype) is str and rtype != ""
        except (KeyError, TypeError):
            ok = False
        if not ok:
            _entry_problem(entry, loc_of(i), problems)
            continue
        if rtype in scoped:
            if rtype not in wanted_types:
                continue
            if "search" in entry and (entry["search"] or {}).get("mode") == "outcome":
                continue
            if wants is None or wants(res, where):
                full_url = entry.get("fullUrl")
                resources.append((res, loc_of(i), full_url if type(full_url) is str else None))
            continue
        full_url = entry.get("fullUrl")
        if type(full_url) is not str:
            full_url = None
        if rtype == "Patient":
            rid = res.get("id")
            key = f"Patient/{rid}" if isinstance(rid, str) else full_url
            if key is None:
                problems.add(loc_of(i), "Patient without id or fullUrl; skipped")
                continue
            if full_url:
                aliases[full_url] = key
            if key not in patient_keys:
                patient_keys.append(key)
            resources.append((res, loc_of(i), key))
        elif rtype in SHARED_TYPES:
            shared.add(res, full_url)
        elif rtype == "Bundle":
            problems.add(loc_of(i), "nested Bundle is not read; skipped")

    local: dict[str, dict] | None = None

    def resolve(ref: str) -> dict | None:
        nonlocal local
        if local is None:  # built on first use: most records never resolve anything
            local = {}
            for e in entries:
                r = e.get("resource") if isinstance(e, dict) else None
                if isinstance(r, dict) and isinstance(r.get("resourceType"), str):
                    if isinstance(r.get("id"), str):
                        local[f"{r['resourceType']}/{r['id']}"] = r
                    if isinstance(e.get("fullUrl"), str):
                        local[e["fullUrl"]] = r
        return local.get(ref) or shared.get(ref)

    groups = {key: RawRecord(key, [], where, resolve, {}) for key in patient_keys}
    loose: dict[str, RawRecord] = {}
    for res, loc, extra in resources:
        rtype = res["resourceType"]
        if rtype == "Patient":
            groups[extra].resources.append((res, loc))  # type: ignore[index]
            continue
        ref = patient_reference(res)
        if ref is None:
            problems.add(loc, f"{rtype} has no patient reference (subject/patient/individual); skipped")
            continue
        key = normalize_reference(ref, aliases)
        if key is None or not (key.startswith("Patient/") or key in groups):
            problems.add(loc, f"{rtype} refers to {ref!r}, which is not a Patient in this input; skipped")
            continue
        raw = groups.get(key) or loose.get(key)
        if raw is None:
            raw = loose[key] = RawRecord(key, [], where, resolve, {})
        if extra:
            raw.aliases[extra] = f"{rtype}/{res['id']}" if isinstance(res.get("id"), str) else loc
        raw.resources.append((res, loc))
    return list(groups.values()), loose
