"""Pull patients from a FHIR server's REST API and hand them to the engine as RawRecords.

1. Candidates: patients with a Condition in the trial's anchor value set (dermatomyositis), found
   with `Condition?code=` over the value set's codes (explicit codes, ICD `is-a` roots expanded one
   level, hospital-local codes a ConceptMap translates into it) plus `code:below` for `is-a` roots
   (a server that does not implement `:below` properly still matches through the expansion); or a
   given patient list / Group. `since` keeps only candidates with data changed since that day.
2. Each candidate's record in as few round trips as the CapabilityStatement allows:
   `Patient/[id]/$everything?_type=...` (1 request a patient), else one batch Bundle of searches
   for several patients, else `Patient?_id=a,b,c&_revinclude=...`, else one search per type.
   `Bundle.link[next]` is followed as given; `search.mode=outcome` entries are ignored.
Grouping a result into a RawRecord reuses the file grouping (`group_documents`), so a server record and the same data in
a file are screened identically.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

from fhir3t.errors import Problems, ServerError
from fhir3t.jsonshape import child
from fhir3t.r4facts import r4_facts
from fhir3t.sources.base import RawRecord
from fhir3t.sources.grouping import SharedIndex, group_documents
from fhir3t.sources.refs import normalize_reference
from fhir3t.terminology import Code, Terminology, ValueSet
from fhir3t.transport.http import FhirClient, HttpStatusError

log = logging.getLogger("fhir3t.rest")

STRATEGIES = ("everything", "batch", "revinclude", "search")
#: Page size asked for; servers may answer with less (links are followed either way).
PAGE = 500
#: Patients per batch Bundle / per `_id=` revinclude search.
GROUP = 10
#: Codes per `Condition?code=` request (keeps URLs well under common 8 KB limits).
CODES_PER_QUERY = 60


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def anchor_codes(vs: ValueSet, tx: Terminology) -> tuple[list[Code], list[Code]]:
    """(exact codes to search, is-a roots for `code:below`) for a value set.

    ICD-10 style `is-a` roots are expanded one level (M33.1 -> M33.10..M33.19, also written
    without the dot) because a server without `:below` matches only exact codes; ConceptMap source
    codes that translate into the value set are added so hospital-local codings are found too.
    """
    exact: dict[Code, None] = {}
    roots: list[Code] = []
    for system, codes in vs.include_codes.items():
        for c in sorted(codes):
            exact[(system, c)] = None
    for fsys, op, value, _rx in vs.include_filters:
        if op not in ("is-a", "descendent-of", "="):
            continue
        if op != "descendent-of":
            exact[(fsys, value)] = None
        if fsys in tx.systems.prefix_hierarchy and op != "=":
            roots.append((fsys, value))
            for d in "0123456789":
                exact[(fsys, value + d)] = None
                if "." not in value and len(value) == 3:
                    exact[(fsys, f"{value}.{d}")] = None
    for (system, code) in list(exact):
        if tx.systems.normalizer.get(system) == "icd10" and "." in code:
            exact[(system, code.replace(".", ""))] = None
    for src, targets in tx.maps.map.items():
        if any(t in vs for t in targets):
            exact[src] = None
    return list(exact), roots


@dataclass
class PullStats:
    candidates: int = 0
    screened: int = 0
    strategy: str = ""
    requests_candidates: int = 0
    requests_records: int = 0


@dataclass
class RestSource:
    """Iterates RawRecords pulled from a server (see module doc). Problems are collected, not raised."""

    client: FhirClient
    tx: Terminology
    types: Sequence[str]
    problems: Problems
    shared: SharedIndex = field(default_factory=SharedIndex)
    anchor: tuple[str, str] = ("", "")  # (resource type, value set id) candidates are found by: the study profile's
    patients: Sequence[str] = ()
    group: str | None = None
    since: date | None = None
    strategy: str | None = None
    on_candidates: Callable[[int], None] | None = None
    stats: PullStats = field(default_factory=PullStats)

    def __post_init__(self) -> None:
        if not self.anchor[0]:  # the study profile names how candidates are found (profiles/study.json)
            from fhir3t.study import load_study

            study = load_study()
            self.anchor = (study.candidate_type, study.candidate_valueset)

    # ---- server features ------------------------------------------------------------------
    def _resource_caps(self) -> dict[str, dict]:
        cs = self.client.capabilities()
        out: dict[str, dict] = {}
        for rest in cs.get("rest") or ():
            if isinstance(rest, dict) and rest.get("mode", "server") == "server":
                for r in rest.get("resource") or ():
                    if isinstance(r, dict) and isinstance(r.get("type"), str):
                        out[r["type"]] = r
        return out

    def choose_strategy(self) -> str:
        if self.strategy:
            if self.strategy not in STRATEGIES:
                raise ServerError(f"unknown pull strategy {self.strategy!r} (one of {', '.join(STRATEGIES)})")
            return self.strategy
        cs = self.client.capabilities()
        caps = self._resource_caps()
        patient_ops = {o.get("name", "").lstrip("$") for o in caps.get("Patient", {}).get("operation") or () if isinstance(o, dict)}
        sys_ops = set()
        interactions = set()
        for rest in cs.get("rest") or ():
            sys_ops |= {o.get("name", "").lstrip("$") for o in rest.get("operation") or () if isinstance(o, dict)}
            interactions |= {i.get("code") for i in rest.get("interaction") or () if isinstance(i, dict)}
        if "everything" in patient_ops or "everything" in sys_ops:
            return "everything"
        if "batch" in interactions:
            return "batch"
        if caps.get("Patient", {}).get("searchRevInclude"):
            return "revinclude"
        return "search"

    def _patient_param(self, rtype: str) -> str:
        """The search parameter naming a resource's patient, as the server declares it."""
        params = {p.get("name") for p in self._resource_caps().get(rtype, {}).get("searchParam") or () if isinstance(p, dict)}
        for name in ("patient", "subject", "individual", "beneficiary"):
            if name in params:
                return name
        return "patient"

    # ---- candidates -----------------------------------------------------------------------
    def candidates(self) -> list[str]:
        """Patient ids to screen, in a stable order."""
        if self.patients:
            ids = [p.split("/")[-1] for p in self.patients]
        elif self.group:
            ids = self._group_members(self.group)
        else:
            ids = self._anchor_patients()
        if self.since is not None:
            changed = self._changed_since(self.since)
            ids = [i for i in ids if i in changed]
        ids = list(dict.fromkeys(ids))
        self.stats.candidates = len(ids)
        self.stats.requests_candidates = self.client.stats.requests
        return ids

    def _group_members(self, gid: str) -> list[str]:
        group = self.client.get(f"Group/{gid.split('/')[-1]}")
        out = []
        for m in (group or {}).get("member") or ():
            ref = (m.get("entity") or {}).get("reference") if isinstance(m, dict) else None
            key = normalize_reference(ref, {}) if isinstance(ref, str) else None
            if key and key.startswith("Patient/"):
                out.append(key.split("/", 1)[1])
        if not out:
            self.problems.add(f"Group/{gid}", "the Group has no Patient members; nothing to screen", skipped=False)
        return out

    def _anchor_patients(self) -> list[str]:
        rtype, vs_id = self.anchor
        vs = self.tx.valueset(vs_id)
        exact, roots = anchor_codes(vs, self.tx)
        pfield = self._patient_param(rtype)
        queries: list[list[tuple[str, str]]] = []
        for i in range(0, len(exact), CODES_PER_QUERY):
            chunk = exact[i:i + CODES_PER_QUERY]
            queries.append([("code", ",".join(f"{_esc(s)}|{_esc(c)}" for s, c in chunk))])
        for s, c in roots:
            queries.append([("code:below", f"{_esc(s)}|{_esc(c)}")])
        found: dict[str, None] = {}
        for q in queries:
            params = [*q, ("_count", str(PAGE)), ("_elements", pfield if pfield != "patient" else "subject,patient")]
            try:
                for res in self.client.search(rtype, params):
                    key = self._patient_of(res)
                    if key:
                        found[key] = None
            except HttpStatusError as exc:
                if q[0][0] == "code:below" and exc.status in (400, 422, 501):
                    log.info("server rejects %s:below; relying on the expanded code list", rtype)
                    continue
                if exc.status in (400, 422, 501):
                    self.problems.add(f"{rtype} search", f"the server cannot search {rtype} by code ({exc.status}); "
                                      "screening every Patient instead", skipped=False)
                    return self._all_patients()
                raise
        return list(found)

    def _all_patients(self) -> list[str]:
        return [r["id"] for r in self.client.search("Patient", [("_elements", "id"), ("_count", str(PAGE))])
                if isinstance(r.get("id"), str)]

    def _patient_of(self, res: dict) -> str | None:
        fields = r4_facts().links(res.get("resourceType", ""))
        if res.get("resourceType") == "Patient":
            return res.get("id")
        for f in fields:
            v = res.get(f)
            ref = v.get("reference") if isinstance(v, dict) else None
            key = normalize_reference(ref, {}) if isinstance(ref, str) else None
            if key and key.startswith("Patient/"):
                return key.split("/", 1)[1]
        return None

    def _changed_since(self, since: date) -> set[str]:
        """Patients with any resource the criteria read (or the Patient itself) updated since `since`."""
        out: set[str] = set()
        caps = self._resource_caps()
        for rtype in ["Patient", *sorted(t for t in self.types if t not in r4_facts().shared_types)]:
            if caps and rtype not in caps:
                continue
            params = [("_lastUpdated", f"ge{since.isoformat()}"), ("_count", str(PAGE))]
            for res in self.client.search(rtype, params):
                key = self._patient_of(res)
                if key:
                    out.add(key)
        return out

    # ---- records --------------------------------------------------------------------------
    def _type_list(self) -> list[str]:
        return sorted({"Patient", *self.types, *r4_facts().shared_types})

    def _fetch_everything(self, ids: list[str]) -> list[dict]:
        pid = ids[0]
        first = self.client.get(f"Patient/{pid}/$everything",
                                params=[("_type", ",".join(self._type_list())), ("_count", str(PAGE))])
        entries: list[dict] = []
        for page in self.client.pages(first, where=f"Patient/{pid}/$everything"):
            entries.extend(page.get("entry") or ())
        return entries

    def _fetch_batch(self, ids: list[str]) -> list[dict]:
        reqs = []
        for pid in ids:
            reqs.append({"request": {"method": "GET", "url": f"Patient/{pid}"}})
            for t in self._type_list():
                if t in ("Patient", *r4_facts().shared_types):
                    continue
                reqs.append({"request": {"method": "GET", "url": f"{t}?{self._patient_param(t)}=Patient/{pid}&_count={PAGE}"}})
        resp = self.client.json("POST", "", json={"resourceType": "Bundle", "type": "batch", "entry": reqs},
                                idempotent=True)
        if not isinstance(resp, dict) or resp.get("resourceType") != "Bundle":
            raise ServerError("batch search: the server did not answer with a Bundle")
        entries: list[dict] = []
        for i, e in enumerate(resp.get("entry") or ()):
            res = e.get("resource") if isinstance(e, dict) else None
            status = str(((e or {}).get("response") or {}).get("status", ""))
            if not isinstance(res, dict):
                if not status.startswith("2"):
                    url = reqs[i]["request"]["url"].split("?")[0] if i < len(reqs) else "?"
                    self.problems.add(f"batch entry {i} ({url})", f"server answered {status or 'nothing'}; that data is missing")
                continue
            if res.get("resourceType") == "Bundle":
                for page in self.client.pages(res, where=f"batch entry {i}"):
                    entries.extend(page.get("entry") or ())
            else:
                entries.append({"resource": res, "fullUrl": e.get("fullUrl")})
        self._add_referenced(entries)
        return entries

    def _fetch_revinclude(self, ids: list[str]) -> list[dict]:
        params = [("_id", ",".join(ids)), ("_count", str(PAGE))]
        for t in self._type_list():
            if t not in ("Patient", *r4_facts().shared_types):
                params.append(("_revinclude", f"{t}:{self._patient_param(t)}"))
        entries: list[dict] = []
        for page in self.client.pages(self.client.get("Patient", params=params), where="Patient _revinclude search"):
            entries.extend(page.get("entry") or ())
        self._add_referenced(entries)
        return entries

    def _fetch_search(self, ids: list[str]) -> list[dict]:
        entries: list[dict] = []
        for pid in ids:
            try:
                entries.append({"resource": self.client.get(f"Patient/{pid}")})
            except HttpStatusError as exc:
                if exc.status in (404, 410):
                    continue
                raise
            for t in self._type_list():
                if t in ("Patient", *r4_facts().shared_types):
                    continue
                for res in self.client.search(t, [(self._patient_param(t), f"Patient/{pid}"), ("_count", str(PAGE))]):
                    entries.append({"resource": res})
        self._add_referenced(entries)
        return entries

    def _add_referenced(self, entries: list[dict]) -> None:
        """Read the Medications / ResearchStudies the records point at (once per run, in one search each)."""
        wanted: dict[str, set[str]] = {}
        for e in entries:
            res = e.get("resource") if isinstance(e, dict) else None
            if not isinstance(res, dict):
                continue
            for key in ("medicationReference", "study"):
                v = res.get(key)
                ref = v.get("reference") if isinstance(v, dict) else None
                norm = normalize_reference(ref, {}) if isinstance(ref, str) and not ref.startswith("#") else None
                if norm and norm.split("/")[0] in r4_facts().shared_types and self.shared.get(norm) is None:
                    wanted.setdefault(norm.split("/")[0], set()).add(norm.split("/")[1])
        for rtype, ids in wanted.items():
            for res in self.client.search(rtype, [("_id", ",".join(sorted(ids))), ("_count", str(PAGE))]):
                self.shared.add(res)

    def fetch(self, ids: list[str], strategy: str) -> list[RawRecord]:
        """The records of a group of patients (one group = one patient for $everything)."""
        fn = {"everything": self._fetch_everything, "batch": self._fetch_batch,
              "revinclude": self._fetch_revinclude, "search": self._fetch_search}[strategy]
        where = f"{self.client.base}/Patient/{ids[0]}" if len(ids) == 1 else f"{self.client.base} ({len(ids)} patients)"
        try:
            entries = fn(ids)
        except HttpStatusError as exc:
            if exc.status in (404, 410):
                self.problems.add(where, f"not found on the server ({exc.status}); skipped")
                return []
            raise
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": _dedupe(entries)}
        complete = group_documents([(where, bundle)], self.problems, self.shared)
        wanted = {f"Patient/{i}" for i in ids}
        out = [r for r in complete if r.key in wanted]
        missing = wanted - {r.key for r in out}
        for key in sorted(missing):
            self.problems.add(where, f"{key}: the server returned no Patient resource; skipped")
        return out

    def __iter__(self) -> Iterator[RawRecord]:
        strategy = self.choose_strategy()
        self.stats.strategy = strategy
        ids = self.candidates()
        log.info("%d candidate patients; fetching records with %s", len(ids), strategy)
        if self.on_candidates:
            self.on_candidates(len(ids))
        size = 1 if strategy in ("everything", "search") else GROUP
        groups = [ids[i:i + size] for i in range(0, len(ids), size)]
        for records in self.client.map(lambda g: self.fetch(g, strategy), groups):
            for r in records:
                self.stats.screened += 1
                yield r
        self.stats.requests_records = self.client.stats.requests - self.stats.requests_candidates


def _dedupe(entries: Iterable[dict]) -> list[dict]:
    seen: set[str] = set()
    out = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        if (e.get("search") or {}).get("mode") == "outcome":
            continue
        res = e.get("resource")
        if isinstance(res, dict) and isinstance(res.get("id"), str):
            key = f"{res.get('resourceType')}/{res['id']}"
            if key in seen:
                continue
            seen.add(key)
        out.append(e)
    return out


def study_subject_patients(client: FhirClient, system: str, value: str, problems: Problems,
                           statuses: Iterable[str] = ()) -> list[str]:
    """Patient ids with a ResearchSubject of the study `system|value` (in one of `statuses`).

    A subject may name its study by reference or only by identifier, and R4 servers differ in
    chained-search support, so subjects are searched by status and matched here, against the
    study's identifier or the ids of the ResearchStudy resources that carry it.
    """
    study_refs = {f"ResearchStudy/{s['id']}" for s in client.search("ResearchStudy", [("identifier", f"{_esc(system)}|{_esc(value)}")])
                  if isinstance(s.get("id"), str)}
    params = [("_count", str(PAGE))]
    if statuses:
        params.append(("status", ",".join(sorted(statuses))))
    found: dict[str, None] = {}
    for rs in client.search("ResearchSubject", params):
        study = child(rs, "study")
        ident = child(study, "identifier")
        ref = study.get("reference")
        ours = (ident.get("value") == value and ident.get("system", system) == system) or (
            isinstance(ref, str) and "/".join(ref.rstrip("/").split("/")[-2:]) in study_refs)
        individual = (rs.get("individual") or {}).get("reference")
        key = normalize_reference(individual, {}) if ours and isinstance(individual, str) else None
        if key and key.startswith("Patient/"):
            found[key.split("/", 1)[1]] = None
    if not found:
        problems.add("ResearchSubject search", f"no ResearchSubject of {value} on the server", skipped=False)
    return list(found)
