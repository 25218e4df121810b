"""Pull patients from a FHIR server's REST API and hand them to the engine as RawRecords.

1. Candidates: patients with a Condition in the trial's anchor value set (profiles/), found
   with `Condition?code=` over the value set's codes (explicit codes, ICD `is-a` roots expanded one
   level, hospital-local codes a ConceptMap translates into it) plus `code:below` for `is-a` roots
   (a server that does not implement `:below` properly still matches through the expansion); or a
   given patient list / Group. `since` keeps only candidates with data changed since that day.
2. Each candidate's record in as few round trips as the CapabilityStatement allows:
   `Patient/[id]/$everything?_type=...` (1 request a patient), else one batch Bundle of searches
   for several patients, else `Patient?_id=a,b,c&_revinclude=...`, else one search per type.
   `Bundle.link[next]` is followed as given; `search.mode=outcome` entries are ignored. A search names
   the patient in every form a stored reference may take (`_patient_queries`: relative, absolute on the
   server's base and on bases seen in its answers): a server that keeps references as written and
   matches them as strings (Medplum) finds `http://server/fhir/Patient/x` by nothing else.
Grouping a result into a RawRecord reuses the file grouping (`group_documents`), so a server record and the same data in
a file are screened identically.

Nothing the server says is taken on trust: every value is type-checked where it is read; a
resource counts for a patient only if it references that patient, a candidate only if its
Condition's code is in the anchor value set, a ResearchSubject for a study only if its study
resolves to it (a server that ignores an unknown search parameter answers with everything); ids
are joined into request paths only when they are FHIR ids. One unusable answer (an error status,
not JSON, the wrong shape, too large, too many pages, or anything unexpected) becomes a located
problem for the patients it concerns, and the other patients are screened. A patient whose record
came back only in part is not screened: a missing Condition search would make every exclusion
look absent.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import quote

from fhir3t.errors import Fhir3tError, Problems, ServerError, UsageError
from fhir3t.fhirutil import fhir_id, normalize_reference, patient_id, search_escape
from fhir3t.jsonshape import child, child_text, items, objs, text
from fhir3t.messages import Msg, table
from fhir3t.r4facts import r4_facts
from fhir3t.sources.base import RawRecord
from fhir3t.sources.grouping import SharedIndex, group_documents
from fhir3t.terminology import Code, Terminology, ValueSet
from fhir3t.transport.http import FhirClient, HttpStatusError, ResponseError, entries
from fhir3t.transport.urls import clean

log = logging.getLogger("fhir3t.rest")

#: what the user asked that cannot be done
E = table("pull.error", {
    "strategy": "unknown pull strategy {strategy} (one of {known})",
    "not-an-id": "{option} {value} is not a FHIR id (letters, digits, '-' and '.', at most 64)",
})
#: what is said about a pull that could not get everything (each under the search or patient it concerns)
P = table("input.rest", {
    "group-unreadable": "{bad} of {total} members are not readable Patient references; those were not screened",
    "group-empty": "the Group has no Patient members; nothing to screen",
    "no-code-search": "the server cannot search {type} by code ({status}); screening every Patient instead",
    "outside-valueset": "{n} {type} resources in the answers are not in the value set {valueset} (the server may "
                        "ignore the code parameter); their patients were not taken as candidates",
    "batch-failed": "server answered {code}; that data is missing",
    "batch-no-answer": "server answered nothing; that data is missing",
    "foreign": "the server returned {n} resources of other patients (it may ignore a search parameter); they were not "
               "used",
    "not-found": "not found on the server ({status}); skipped",
    "error": "{error}; not screened",
    "unexpected": "unexpected answer from the server ({kind}); not screened",
    "request-failed": "the {type} request failed",
    "no-bundle": "the {type} search did not answer with a Bundle",
    "incomplete": "{key}: {why}, so the record is incomplete; not screened (missing data could make an exclusion "
                  "look absent)",
    "no-patient": "{key}: the server returned no Patient resource; skipped",
    "no-subjects": "no ResearchSubject of {study} on the server",
})

STRATEGIES = ("everything", "batch", "revinclude", "search")
#: Page size asked for; servers may answer with less (links are followed either way).
PAGE = 500
#: Patients per batch Bundle / per `_id=` revinclude search.
GROUP = 10
#: Codes per `Condition?code=` request (keeps URLs well under common 8 KB limits).
CODES_PER_QUERY = 60
#: Bases a patient's records are searched under (the server's own and others seen in its answers).
MAX_BASES = 4


def anchor_codes(vs: ValueSet, tx: Terminology) -> tuple[list[Code], list[Code]]:
    """(exact codes to search, is-a roots for `code:below`) for a value set.

    ICD-10 style `is-a` roots are expanded one level (A12.3 -> A12.30..A12.39, also written
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
    #: bases other than the server's own that its records name patients under (absolute references seen
    #: in the anchor search): a pull searches under them too (`_patient_queries`)
    seen_bases: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.shared.one_server = True  # what it groups is this server's answers (SharedIndex.one_server)
        if not self.anchor[0]:  # the study profile names how candidates are found (profiles/study.json)
            from fhir3t.study import load_study

            study = load_study()
            self.anchor = (study.candidate_type, study.candidate_valueset)

    # ---- server features ------------------------------------------------------------------
    def _rests(self) -> list[dict]:
        return [r for r in objs(items(self.client.capabilities().get("rest"))) if r.get("mode", "server") == "server"]

    def _resource_caps(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for rest in self._rests():
            for r in objs(items(rest.get("resource"))):
                rtype = text(r.get("type"))
                if rtype:
                    out[rtype] = r
        return out

    def choose_strategy(self) -> str:
        if self.strategy:
            if self.strategy not in STRATEGIES:
                raise ServerError(E["strategy"](strategy=repr(self.strategy), known=", ".join(STRATEGIES)))
            return self.strategy
        caps = self._resource_caps()
        patient_ops = _names(caps.get("Patient", {}).get("operation"))
        sys_ops: set[str] = set()
        interactions: set[str] = set()
        for rest in self._rests():
            sys_ops |= _names(rest.get("operation"))
            interactions |= {c for c in (child_text(i, "code") for i in objs(items(rest.get("interaction")))) if c}
        if "everything" in patient_ops or "everything" in sys_ops:
            return "everything"
        if "batch" in interactions:
            return "batch"
        if caps.get("Patient", {}).get("searchRevInclude"):
            return "revinclude"
        return "search"

    def patient_param(self, rtype: str) -> str:
        """The search parameter naming a resource's patient, as the server declares it (public for
        check-server, which must search the way a pull does)."""
        return self._patient_param(rtype)

    def _patient_param(self, rtype: str) -> str:
        """The search parameter naming a resource's patient, as the server declares it."""
        params = {text(p.get("name")) for p in objs(items(self._resource_caps().get(rtype, {}).get("searchParam")))}
        for name in ("patient", "subject", "individual", "beneficiary"):
            if name in params:
                return name
        return "patient"

    # ---- candidates -----------------------------------------------------------------------
    def candidates(self) -> list[str]:
        """Patient ids to screen, in a stable order."""
        if self.patients:
            ids = [_user_id("--patient", p) for p in self.patients]
        elif self.group:
            ids = self._group_members(_user_id("--group", self.group))
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
        group = self.client.get(f"Group/{gid}")
        if not isinstance(group, dict) or group.get("resourceType") != "Group":
            raise ResponseError(f"Group/{gid}: the server did not answer with a Group")
        out = []
        bad = 0
        members = items(group.get("member"))
        for m in members:
            ref = child_text(child(m, "entity"), "reference")
            key = normalize_reference(ref, {}) if ref else None
            pid = fhir_id(key.split("/", 1)[1]) if key and key.startswith("Patient/") else None
            if pid:
                out.append(pid)
            elif not (key and re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]+", key)):  # other types are not patients
                bad += 1
        if bad:
            self.problems.add(f"Group/{gid}", P["group-unreadable"](bad=bad, total=len(members)))
        if not out:
            self.problems.add(f"Group/{gid}", P["group-empty"](), skipped=False)
        return out

    def _anchor_patients(self) -> list[str]:
        rtype, vs_id = self.anchor
        vs = self.tx.valueset(vs_id)
        exact, roots = anchor_codes(vs, self.tx)
        pfield = self._patient_param(rtype)
        queries: list[list[tuple[str, str]]] = []
        for i in range(0, len(exact), CODES_PER_QUERY):
            chunk = exact[i:i + CODES_PER_QUERY]
            queries.append([("code", ",".join(f"{search_escape(s)}|{search_escape(c)}" for s, c in chunk))])
        for s, c in roots:
            queries.append([("code:below", f"{search_escape(s)}|{search_escape(c)}")])
        found: dict[str, None] = {}
        outside = 0
        fields = "code,subject,patient" if pfield == "patient" else f"code,{pfield}"
        for q in queries:
            params = [*q, ("_count", str(PAGE)), ("_elements", fields)]
            try:
                for res in self.client.search(rtype, params):
                    coded = {"coding": objs(items(child(res, "code").get("coding")))}  # tx.codes trusts the shape
                    if not any(code in vs for code in self.tx.codes(coded)):
                        outside += 1  # the server ignored `code` (or matched loosely): not a candidate
                        continue
                    key = patient_id(res)
                    if key:
                        found[key] = None
                        self._learn_base(res)
            except HttpStatusError as exc:
                if q[0][0] == "code:below" and exc.status in (400, 422, 501):
                    log.info("server rejects %s:below; relying on the expanded code list", rtype)
                    continue
                if exc.status in (400, 422, 501):
                    self.problems.add(f"{rtype} search", P["no-code-search"](type=rtype, status=exc.status),
                                      skipped=False)
                    return self._all_patients()
                raise
        if outside:
            self.problems.add(f"{rtype} search", P["outside-valueset"](n=outside, type=rtype, valueset=vs_id),
                              skipped=False)
        return list(found)

    def _all_patients(self) -> list[str]:
        out = []
        for r in self.client.search("Patient", [("_elements", "id"), ("_count", str(PAGE))]):
            rid = fhir_id(r.get("id"))
            if rid:
                out.append(rid)
        return out

    def _changed_since(self, since: date) -> set[str]:
        """Patients with any resource the criteria read (or the Patient itself) updated since `since`."""
        out: set[str] = set()
        caps = self._resource_caps()
        day = since.isoformat()
        for rtype in ["Patient", *sorted(t for t in self.types if t not in r4_facts().shared_types)]:
            if caps and rtype not in caps:
                continue
            params = [("_lastUpdated", f"ge{day}"), ("_count", str(PAGE))]
            for res in self.client.search(rtype, params):
                updated = child_text(child(res, "meta"), "lastUpdated")
                if updated and updated[:10] < day:  # the server ignored _lastUpdated
                    continue
                key = patient_id(res)
                if key:
                    out.add(key)
        return out

    # ---- records --------------------------------------------------------------------------
    def _type_list(self) -> list[str]:
        return sorted({"Patient", *self.types, *r4_facts().shared_types})

    def _searched_types(self) -> list[str]:
        return [t for t in self._type_list() if t not in ("Patient", *r4_facts().shared_types)]

    def _fetch_everything(self, ids: list[str]) -> Fetched:
        pid = ids[0]
        first = self.client.get(f"Patient/{pid}/$everything",
                                params=[("_type", ",".join(self._type_list())), ("_count", str(PAGE))])
        got: list[dict] = []
        for page in self.client.pages(first, where=f"Patient/{pid}/$everything"):
            got.extend(entries(page))
        return got, {}

    def _patient_queries(self, rtype: str, pid: str) -> list[tuple[str, str]]:
        """(parameter, value) of each search naming the patient for `rtype`, asked separately, the answers
        merged (each resource once, `_dedupe`): the relative reference by the parameter the server
        declares; then the absolute one on the server's base, and on each base the anchor search saw
        this server's data name patients by (`_bases`), by the parameter of the element itself
        (`Condition.subject`: R4's `patient` parameter is `subject.where(resolve() is Patient)`, which a
        server cannot evaluate on an absolute URL without resolving it). A server that keeps references
        as written and matches a search on the string, as Medplum does, finds an absolute reference by
        nothing else; one that indexes them by type and id (sekmet, HAPI) answers the same twice.
        """
        links = r4_facts().links(rtype)
        element = links[0] if links else self._patient_param(rtype)
        return [(self._patient_param(rtype), f"Patient/{pid}"),
                *((element, f"{base}/Patient/{pid}") for base in self._bases())]

    def _bases(self) -> list[str]:
        """This server's base, then (at most MAX_BASES) others its records name patients under."""
        own = self.client.base.rstrip("/")
        return [own, *sorted(self.seen_bases - {own})[:MAX_BASES - 1]]

    def _learn_base(self, resource: dict) -> None:
        for f in r4_facts().links(text(resource.get("resourceType")) or ""):
            ref = child_text(child(resource, f), "reference")
            m = re.fullmatch(r"(https?://[^?#]+)/Patient/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?", ref or "")
            if m:
                self.seen_bases.add(m.group(1))

    def _fetch_batch(self, ids: list[str]) -> Fetched:
        reqs: list[tuple[str, str, str]] = []  # (patient id, type, url)
        for pid in ids:
            reqs.append((pid, "Patient", f"Patient/{pid}"))
            for t in self._searched_types():
                for param, value in self._patient_queries(t, pid):
                    reqs.append((pid, t, f"{t}?{param}={quote(value, safe='/:')}&_count={PAGE}"))
        resp = self.client.json("POST", "", idempotent=True, json={
            "resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": u}} for _, _, u in reqs]})
        if not isinstance(resp, dict) or resp.get("resourceType") != "Bundle":
            raise ResponseError("batch search: the server did not answer with a Bundle")
        answers = items(resp.get("entry"))
        got: list[dict] = []
        incomplete: dict[str, Msg] = {}
        for i, (pid, rtype, _url) in enumerate(reqs):
            e = answers[i] if i < len(answers) else None
            res = e.get("resource") if isinstance(e, dict) else None
            status = child_text(child(e, "response"), "status") or ""
            code = status.split(" ")[0] if status else ""
            if not isinstance(res, dict) or not code.startswith("2"):
                if not (rtype == "Patient" and code in ("404", "410")):  # a patient that is gone is said by fetch()
                    self.problems.add(f"batch entry {i} ({rtype} of Patient/{pid})",
                                      P["batch-failed"](code=clean(code, 10)) if clean(code, 10)
                                      else P["batch-no-answer"]())
                    incomplete.setdefault(pid, P["request-failed"](type=rtype))
                continue
            if rtype == "Patient":
                got.append({"resource": res, "fullUrl": text(e.get("fullUrl")) if isinstance(e, dict) else None})
            elif res.get("resourceType") == "Bundle":
                for page in self.client.pages(res, where=f"batch entry {i} ({rtype} search)"):
                    got.extend(entries(page))
            else:
                incomplete.setdefault(pid, P["no-bundle"](type=rtype))
        self._add_referenced(got)
        return got, incomplete

    def _fetch_revinclude(self, ids: list[str]) -> Fetched:
        params = [("_id", ",".join(ids)), ("_count", str(PAGE))]
        for t in self._searched_types():
            params.append(("_revinclude", f"{t}:{self._patient_param(t)}"))
        got: list[dict] = []
        for page in self.client.pages(self.client.get("Patient", params=params), where="Patient _revinclude search"):
            got.extend(entries(page))
        # _revinclude matches the relative form only (on a server that matches strings): the other forms
        # by search, all the group's patients in one value list each
        for t in self._searched_types():
            for k in range(1, len(self._patient_queries(t, ids[0]))):
                param = self._patient_queries(t, ids[0])[k][0]
                values = ",".join(self._patient_queries(t, pid)[k][1] for pid in ids)
                got.extend({"resource": r} for r in self.client.search(t, [(param, values), ("_count", str(PAGE))]))
        self._add_referenced(got)
        return got, {}

    def _fetch_search(self, ids: list[str]) -> Fetched:
        got: list[dict] = []
        for pid in ids:
            try:
                got.append({"resource": self.client.get(f"Patient/{pid}")})
            except HttpStatusError as exc:
                if exc.status in (404, 410):
                    continue
                raise
            for t in self._searched_types():
                for param, value in self._patient_queries(t, pid):
                    for res in self.client.search(t, [(param, value), ("_count", str(PAGE))]):
                        got.append({"resource": res})
        self._add_referenced(got)
        return got, {}

    def _add_referenced(self, got: list[dict]) -> None:
        """Read the Medications / ResearchStudies the records point at (once per run, in one search each)."""
        wanted: dict[str, set[str]] = {}
        for e in got:
            res = e.get("resource") if isinstance(e, dict) else None
            if not isinstance(res, dict):
                continue
            for key in ("medicationReference", "study"):
                ref = child_text(child(res, key), "reference")
                norm = normalize_reference(ref, {}) if ref and not ref.startswith("#") else None
                if norm and norm.split("/")[0] in r4_facts().shared_types and fhir_id(norm.split("/", 1)[1]) \
                        and self.shared.get(norm) is None:
                    wanted.setdefault(norm.split("/")[0], set()).add(norm.split("/")[1])
        for rtype, ids in wanted.items():
            for res in self.client.search(rtype, [("_id", ",".join(sorted(ids))), ("_count", str(PAGE))]):
                if text(res.get("id")) in ids:  # a server that ignores _id answers with every one
                    self.shared.add(res)

    def fetch(self, ids: list[str], strategy: str) -> list[RawRecord]:
        """The records of a group of patients (one group = one patient for $everything).

        The per-response safety net: an unusable answer, or anything unexpected in it, becomes a
        problem naming these patients, and the run goes on with the others. Run-level failures
        (unreachable, timed out, budget spent, auth) still end the run.
        """
        fn = {"everything": self._fetch_everything, "batch": self._fetch_batch,
              "revinclude": self._fetch_revinclude, "search": self._fetch_search}[strategy]
        where = f"{self.client.base}/Patient/{ids[0]}" if len(ids) == 1 else \
            f"{self.client.base} (Patient/{ids[0]} and {len(ids) - 1} more)"
        try:
            got, incomplete = fn(ids)
            wanted = {f"Patient/{i}" for i in ids}
            kept, foreign = _own_entries(_dedupe(got), wanted)
            if foreign:
                self.problems.add(where, P["foreign"](n=foreign), skipped=False)
            bundle = {"resourceType": "Bundle", "type": "collection", "entry": kept}
            complete = [r for r in group_documents([(where, bundle)], Problems(), self.shared)
                        if any(res.get("resourceType") == "Patient" for res, _ in r.resources)]
        except HttpStatusError as exc:
            if exc.status in (404, 410):
                self.problems.add(where, P["not-found"](status=exc.status))
                return []
            self.problems.add(where, P["error"](error=exc.msg or str(exc)))
            return []
        except ResponseError as exc:
            self.problems.add(where, P["error"](error=exc.msg or str(exc)))
            return []
        except Fhir3tError:
            raise
        except Exception as exc:  # the safety net: a shape nobody foresaw must not end the run
            log.debug("unexpected answer for %s", where, exc_info=True)
            self.problems.add(where, P["unexpected"](kind=type(exc).__name__))
            return []
        out = []
        for r in complete:
            if r.key not in wanted:
                continue
            pid = r.key.split("/", 1)[1]
            if pid in incomplete:
                self.problems.add(where, P["incomplete"](key=r.key, why=incomplete[pid]))
                continue
            out.append(r)
        for key in sorted(wanted - {r.key for r in complete}):
            self.problems.add(where, P["no-patient"](key=key))
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


#: What a fetch strategy returns: entries, and the patients whose record came back only in part (why).
Fetched = tuple[list[dict], dict[str, Msg]]


def _names(ops: object) -> set[str]:
    """Operation names of a CapabilityStatement `operation` list, without the leading $."""
    return {n.lstrip("$") for n in (child_text(o, "name") for o in objs(items(ops))) if n}


def _user_id(option: str, value: str) -> str:
    """ID or Patient/ID (Group/ID) as the user gave it, if it is a FHIR id."""
    head, _, tail = value.rpartition("/")
    rid = fhir_id(tail) if head in ("", "Patient", "Group") else None
    if rid is None:
        raise UsageError(E["not-an-id"](option=option, value=repr(clean(value, 80))))
    return rid


def _own_entries(got: list[dict], wanted: set[str]) -> tuple[list[dict], int]:
    """The entries that belong to the wanted patients (or to none); the count of other patients' ones.

    A resource counts for a patient only if it references that patient: a server that ignores
    `patient=` or `_id=` answers with everyone's resources.
    """
    kept: list[dict] = []
    foreign = 0
    for e in got:
        res = e.get("resource")
        rtype = text(res.get("resourceType")) if isinstance(res, dict) else None
        if rtype is None or rtype in r4_facts().shared_types:
            kept.append(e)
            continue
        if rtype == "Patient":
            key = f"Patient/{res.get('id')}" if isinstance(res, dict) and isinstance(res.get("id"), str) else None
        else:
            key = None
            for f in r4_facts().links(rtype):
                ref = child_text(child(res, f), "reference")
                if ref:
                    key = normalize_reference(ref, {})
                    break
        if key is not None and key.startswith("Patient/") and key not in wanted:
            foreign += 1
            continue
        kept.append(e)
    return kept, foreign


def _dedupe(got: Iterable[dict]) -> list[dict]:
    """One entry per resource, outcome entries dropped, each rebuilt as {resource, fullUrl}: the
    server's envelope (search, request, response, of whatever shape) goes no further."""
    seen: set[str] = set()
    out = []
    for e in got:
        if not isinstance(e, dict):
            continue
        if child_text(child(e, "search"), "mode") == "outcome":
            continue
        res = e.get("resource")
        if isinstance(res, dict) and isinstance(res.get("id"), str):
            key = f"{res.get('resourceType')}/{res['id']}"
            if key in seen:
                continue
            seen.add(key)
        full_url = text(e.get("fullUrl"))
        out.append({"resource": res, **({"fullUrl": full_url} if full_url else {})})
    return out


def study_subject_patients(client: FhirClient, system: str, value: str, problems: Problems,
                           statuses: Iterable[str] = ()) -> list[str]:
    """Patient ids with a ResearchSubject of the study `system|value` (in one of `statuses`).

    A subject may name its study by reference or only by identifier, and R4 servers differ in
    chained-search support, so subjects are searched by status and matched here, against the
    study's identifier or the ids of the ResearchStudy resources that carry it. What the server
    returns is checked again: a ResearchStudy counts only if it carries the identifier, a subject
    only if its status is one asked for (a server ignoring a parameter answers with everything).
    """
    query = [("identifier", f"{search_escape(system)}|{search_escape(value)}")]
    study_refs = {f"ResearchStudy/{s['id']}" for s in client.search("ResearchStudy", query)
                  if isinstance(s.get("id"), str) and has_identifier(s, system, value)}
    wanted = set(statuses)
    params = [("_count", str(PAGE))]
    if wanted:
        params.append(("status", ",".join(sorted(wanted))))
    found: dict[str, None] = {}
    for rs in client.search("ResearchSubject", params):
        if wanted and text(rs.get("status")) not in wanted:
            continue
        if not subject_of_study(rs, system, value, study_refs):
            continue
        ref = child_text(child(rs, "individual"), "reference")
        key = normalize_reference(ref, {}) if ref else None
        if key and key.startswith("Patient/") and fhir_id(key.split("/", 1)[1]):
            found[key.split("/", 1)[1]] = None
    if not found:
        problems.add("ResearchSubject search", P["no-subjects"](study=value), skipped=False)
    return list(found)


def has_identifier(resource: object, system: str, value: str) -> bool:
    """True if the resource's `identifier` list holds system|value (a missing system matches)."""
    return any(i.get("value") == value and i.get("system", system) == system
               for i in objs(items(resource.get("identifier")) if isinstance(resource, dict) else []))


def subject_of_study(subject: dict, system: str, value: str, study_refs: set[str]) -> bool:
    """True if a ResearchSubject's `study` resolves to the study: by identifier, or by a reference
    to one of `study_refs` (the ResearchStudy resources known to carry the identifier)."""
    study = child(subject, "study")
    ident = child(study, "identifier")
    if ident.get("value") == value and ident.get("system", system) == system:
        return True
    ref = child_text(study, "reference")
    return ref is not None and "/".join(ref.rstrip("/").split("/")[-2:]) in study_refs
