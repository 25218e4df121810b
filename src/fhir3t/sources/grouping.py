"""One grouping for every file input: read everything once, keep what is relevant, group it by
patient, then hand over one patient at a time.

Pass 1 reads every Bundle, single-resource file and NDJSON line once (in any mix, in any order),
drops what the injected ReadFilter says no rule needs, and files each kept resource under its
patient in a GroupStore (in memory, spilling to disk partitions past `spill_at` resources).
Resources no patient owns (Medication, ResearchStudy, a report's subject-less results) go to a
shared index. Pass 2 yields one RawRecord per patient with everything every file held for them,
so a patient whose LIS results, pharmacy records and TB clinic notes come from different systems'
exports is screened once, whole.

Entries that could decide a criterion but cannot be attributed (a garbled patient reference, an
unknown resource type) are never silently dropped: inside a Bundle that holds a single Patient they
stay with that patient as `Unread` (the criteria that could depend on them become unknown);
elsewhere they are reported and counted in `stats.unattributed` for the run's summary. A Bundle inside a
Bundle is read as part of it; a resource an operation's Parameters carries is kept as unread (`_held`).
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fhir3t import fhirxml
from fhir3t.errors import Problems
from fhir3t.fhirutil import (
    PatientLink,
    Token,
    conditional_patient,
    has_patient_link,
    identifier_keys,
    normalize_reference,
    patient_link,
    reference_base,
    token_key,
)
from fhir3t.messages import Message, Msg, table
from fhir3t.messages.core import from_data, to_data
from fhir3t.r4facts import r4_facts
from fhir3t.sources.base import UNREAD_FILE, RawRecord, ReadFilter, Unread
from fhir3t.sources.files import (
    Entry,
    Limits,
    bundle_entries,
    expand_paths,
    line_patient_reference,
    line_type,
    ndjson_rows,
    parse_line,
    read_json_file,
    types_in_unreadable,
)
from fhir3t.sources.files import P as FILE_PROBLEMS
from fhir3t.sources.native import NativeLines
from fhir3t.sources.seen import AMBIGUOUS, IdentLog, SeenPatients, resolve_identifiers
from fhir3t.sources.store import DiskStore, Group, GroupStore, MemoryStore
from fhir3t.sources.versions import (
    COPIES_DIFFER,
    Deleted,
    Undecided,
    history_entries,
    later_version,
    newest,
    newest_in_history,
    reconcile,
)
from fhir3t.textnorm import clip

#: what is said about input that cannot be filed under a patient
P = table("input.grouping", {
    "orphan": "{type} names no patient and no report or panel of a patient points at it; skipped",
    "patient-no-id": "Patient without id or fullUrl; skipped",
    "again": "{key} appears again (first in {first}); its resources are screened together",
    "structure-entries": "could not be read: an entry has an unexpected structure ({kind}); the file's remaining entries "
                         "were skipped",
    "structure-line": "could not be read: unexpected structure ({kind}); line skipped",
    "lenient": "not strict JSON (a comma before a closing bracket): read as written",
    "unparsed-names": "the line names a patient: the criteria it could decide are left unknown for that patient",
    "not-r4": "resource type is not an R4 type; skipped",
    "no-patient": "{type} has no usable patient reference; skipped",
    "bad-patient": "{type} refers to a patient reference that is not a Patient in this input; skipped",
    "export-incomplete": "this Bulk export did not complete (its state file says so): only part of it is here; run the "
                         "same 'fhir3t export' again to resume it",
    "foreign": "{type} names a patient who is not in the input (a garbled reference?): the criteria it could decide "
               "are left unknown for the patients it may belong to",
    "ident-unclaimed": "names its patient by an identifier no screened Patient carries; skipped",
    "ident-unknown-owners": "names its patient by an identifier no Patient in the input carries (a garbled identifier?): "
                            "the Bundle's patients keep the criteria it could decide unknown",
    "ident-unknown": "names its patient by an identifier no Patient in the input carries; skipped",
    "ident-several": "names its patient by an identifier several Patients in the input carry: each of them keeps the "
                     "criteria it could decide unknown",
    "not-r4-names": "resource type is not an R4 type, and it names a patient: the criteria it could decide are left "
                    "unknown",
    "no-type-names": "resource without resourceType, and it names a patient: the criteria it could decide are left "
                     "unknown",
    "no-type-nobody": "resource without resourceType (not FHIR: no resourceType), naming no patient; skipped",
    "no-patient-resource": "{key}: no Patient resource found; screened without demographics",
    "other-server": "{type} names a Patient on another server than the Bundle's Patients (an absolute reference); "
                    "skipped",
    "patch": "a PATCH of {type}, which fhir3t does not apply: the criteria it could decide are left unknown for the "
             "document's patients",
    "delete-search": "a conditional DELETE of {type} (which records it deletes cannot be told): the criteria they could "
                     "decide are left unknown for the document's patients",
    "failed": "a failed request (HTTP {code}): what it would have returned is missing; the criteria it could decide are "
              "left unknown for the document's patients",
    "incomplete": "the server says its answer leaves something out (OperationOutcome {issue}): the criteria it could "
                  "decide are left unknown for the document's patients",
    "contained": "{type} contained in a record no criterion reads it through is not read as a record: the criteria "
                 "it could decide are left unknown for the patient its record names",
    "nested-unread": "a Bundle inside the Bundle could not be read: the criteria what it holds could decide are left "
                     "unknown for the document's patients",
    "binary": "{type} carried as the content of a Binary is not read as a record: the criteria it could decide are left "
              "unknown for the patient it names",
    "binary-unread": "a Binary says it holds FHIR content that cannot be decoded: the criteria it could decide are left "
                     "unknown for the document's patients",
    "page-missing": "a searchset page whose next page (its 'next' link) is not in the input: the criteria the rest of "
                    "the search could decide are left unknown for its patients",
    "document-missing": "the Composition lists a record ({type}) the document Bundle does not hold: the criteria it "
                        "could decide are left unknown for the document's patients",
    "held": "{type} held inside an operation's Parameters is not read as a record: the criteria it could decide are "
            "left unknown for the patient it names",
    "too-deep": "Bundles nested more than {depth} deep are not read: the criteria what they hold could decide are left "
                "unknown for the document's patients",
})

#: OperationOutcome issue codes by which a server says its answer leaves something out (R4 issue-type)
INCOMPLETE_ISSUES = frozenset({"incomplete", "too-costly", "throttled", "suppressed", "timeout", "too-long"})


def _url_type(url: object) -> str:
    """The resource type a request.url names (`Type/id`, `Type?search`, absolute or `_history`), "*" if none."""
    if not isinstance(url, str):
        return "*"
    head, query, _ = url.partition("?")
    parts = head.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    name = parts[-1] if query else parts[-2] if len(parts) >= 2 else ""
    return name if name[:1].isupper() and name.isalpha() else "*"


def entry_gaps(entries: list, where: str, sep: str = "#") -> Iterator[tuple[str, str, Msg, Msg]]:
    """(location, type or "*", why for the patient, problem) of each entry of a Bundle that says a record may be
    missing or changed in a way fhir3t does not apply: a PATCH, a conditional DELETE (which records it deletes
    cannot be told), a failed request of a batch or transaction answer, a search outcome or an answer's outcome
    that says the server left something out."""
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            continue
        loc = f"{where}{sep}entry[{i}]"
        request: dict = e["request"] if isinstance(e.get("request"), dict) else {}
        method = request.get("method")
        if method == "PATCH":
            rtype = _url_type(request.get("url"))
            yield loc, rtype, ENTRY_PATCH(type=rtype), P["patch"](type=rtype)
        elif method == "DELETE" and isinstance(request.get("url"), str) and "?" in request["url"]:
            rtype = _url_type(request["url"])
            yield loc, rtype, ENTRY_DELETE_SEARCH(type=rtype), P["delete-search"](type=rtype)
        response: dict = e["response"] if isinstance(e.get("response"), dict) else {}
        status = response.get("status")
        code = status.strip()[:3] if isinstance(status, str) else ""
        if code[:1] in ("4", "5") and code.isdigit():
            yield loc, "*", ENTRY_FAILED(code=code), P["failed"](code=code)
            continue
        search: dict = e["search"] if isinstance(e.get("search"), dict) else {}
        outcome = e.get("resource") if search.get("mode") == "outcome" else response.get("outcome")
        issue = _incomplete_issue(outcome)
        if issue is not None:
            yield loc, "*", ENTRY_INCOMPLETE(issue=issue), P["incomplete"](issue=issue)


def document_gaps(entries: list[Entry]) -> Iterator[tuple[str, str, Msg, Msg]]:
    """What a document's Composition lists in its sections (`section.entry`, nested sections too) that its
    Bundle does not hold (a document Bundle holds everything its Composition references, R4 bdl-11): the record
    is missing, as (location of the Composition, its type or "*", why, problem) like `entry_gaps`."""
    have: set[str] = set()
    for e in entries:
        rid = e.resource.get("id")
        if isinstance(rid, str):
            have.add(f"{e.resource['resourceType']}/{rid}")
        if e.full_url:
            have.add(e.full_url)
    for e in entries:
        if e.resource["resourceType"] != "Composition":
            continue
        stack = list(e.resource.get("section") or ()) if isinstance(e.resource.get("section"), list) else []
        while stack:
            section = stack.pop()
            if not isinstance(section, dict):
                continue
            if isinstance(section.get("section"), list):
                stack.extend(section["section"])
            for item in section.get("entry") or () if isinstance(section.get("entry"), list) else ():
                ref = item.get("reference") if isinstance(item, dict) else None
                if not isinstance(ref, str) or ref.startswith("#") or ref in have \
                        or (normalize_reference(ref, {}) or "") in have:
                    continue
                rtype = _url_type(ref) if not ref.startswith("urn:") else "*"
                yield e.where, rtype, ENTRY_DOC_MISSING(type=rtype), P["document-missing"](type=rtype)


def _incomplete_issue(outcome: object) -> str | None:
    """The first issue of an OperationOutcome that says an answer leaves something out (an error or fatal
    issue, or one coded INCOMPLETE_ISSUES), as its code; None when there is none."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return None
    issues = outcome.get("issue")
    for issue in issues if isinstance(issues, list) else ():
        if not isinstance(issue, dict):
            continue
        code: str = issue["code"] if isinstance(issue.get("code"), str) else ""
        if code in INCOMPLETE_ISSUES or issue.get("severity") in ("error", "fatal"):
            return clip(code, 30) if code.replace("-", "").isalpha() else "?"
    return None


#: marks a stand-in for a Bundle nested past MAX_NESTING (True) or whose entries cannot be read (False), kept as
#: unread like an untyped entry
TOO_DEEP = "__fhir3t_too_deep__"
#: Bundles inside Bundles read as part of the outer document, this many deep (a batch-response of searchsets is 1)
MAX_NESTING = 8


#: the media types of FHIR content (R4 http.html#mime-type; the older json+fhir / xml+fhir too)
_FHIR_MEDIA = re.compile(r"^\s*application/(fhir\+(json|xml)|(json|xml)\+fhir)\b", re.IGNORECASE)


def fhir_binary(res: dict) -> bool:
    """Does a Binary say its content is FHIR?"""
    ct = res.get("contentType")
    return isinstance(ct, str) and _FHIR_MEDIA.match(ct) is not None and "data" in res


def binary_resources(res: dict, limit: int) -> list[dict] | None:
    """The resources a FHIR-content Binary carries (a Bundle's entries and what they hold, a Parameters' resources),
    or None when its content cannot be decoded (not base64, over `limit` bytes, not JSON/XML, no resource)."""
    data = res.get("data")
    if not isinstance(data, str) or len(data) > limit * 4 // 3 + 4:
        return None
    try:
        raw = base64.b64decode(data, validate=True)
        obj: object = fhirxml.parse(raw)[0] if "xml" in str(res.get("contentType")).lower() else orjson.loads(raw)
    except (ValueError, binascii.Error, orjson.JSONDecodeError, fhirxml.XmlRefused):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("resourceType"), str):
        return None
    if obj["resourceType"] == "Parameters":
        return [e.resource for e in parameters_resources(obj, "")]
    if obj["resourceType"] == "Bundle":
        wrapper = {"resourceType": "Parameters", "parameter": [{"resource": obj}]}
        return [e.resource for e in parameters_resources(wrapper, "")]
    return [obj]


def parameters_resources(params: dict, where: str) -> list[Entry]:
    """The resources a Parameters resource carries (`parameter[i].resource`, in parts too, and the entries of a
    Bundle or Parameters it carries), with their location; MAX_NESTING levels deep."""
    out: list[Entry] = []

    def walk(items: object, loc: str, name: str, depth: int) -> None:
        for i, p in enumerate(items if isinstance(items, list) else ()):
            if not isinstance(p, dict):
                continue
            here = f"{loc}.{name}[{i}]"
            if isinstance(p.get("resource"), dict):
                resource(p["resource"], f"{here}.resource", depth)
            if depth < MAX_NESTING:
                walk(p.get("part"), here, "part", depth + 1)

    def resource(res: dict, loc: str, depth: int) -> None:
        rtype = res.get("resourceType")
        if rtype == "Parameters" and depth < MAX_NESTING:
            walk(res.get("parameter"), loc, "parameter", depth + 1)
        elif rtype == "Bundle" and isinstance(res.get("entry"), list) and depth < MAX_NESTING:
            for j, e in enumerate(res["entry"]):
                if isinstance(e, dict) and isinstance(e.get("resource"), dict):
                    resource(e["resource"], f"{loc}.entry[{j}].resource", depth + 1)
        else:
            out.append(Entry(res, loc, None))

    walk(params.get("parameter"), where, "parameter", 0)
    return out

DEFAULT_SPILL_AT = 50_000  # kept resources held in memory (~175 MB) before the store moves to disk
#: inputs bigger than this (gzip counted 8 times its size) go to disk from the start with store="auto"
AUTO_DISK_BYTES = 256 * 1024 * 1024

_TRAILING_COMMA = re.compile(r",\s*[}\]]")

#: why an entry of a patient's Bundle could not be used (a reason says it; the location goes to the problems)
ENTRY_NOT_R4 = Message("entry.not-r4", "an entry of this patient's Bundle is of a resource type that is not FHIR R4's "
                                       "(misspelt?): it could be any record")
ENTRY_NO_PATIENT = Message("entry.no-patient", "an entry of this patient's Bundle names no patient (subject/patient "
                                               "missing or unusable)")
ENTRY_BAD_PATIENT = Message("entry.bad-patient", "an entry of this patient's Bundle names a patient reference that "
                                                 "cannot be followed")
ENTRY_OTHER_PATIENT = Message("entry.other-patient", "an entry of this patient's Bundle names another patient who is "
                                                     "not in the input (a garbled reference?)")
ENTRY_UNTYPED = Message("entry.untyped", "an entry naming this patient has no resourceType: it could be any record")
ENTRY_HELD = Message("entry.held", "a resource held inside an operation's Parameters (its input or output), not a record "
                                   "of its own: fhir3t does not read it as one")
ENTRY_TOO_DEEP = Message("entry.too-deep", "a Bundle nested too deep inside this patient's Bundle is not read: it "
                                           "could hold any record")
ENTRY_PATCH = Message("entry.patch", "an entry of this patient's Bundle changes a record ({type}) by a PATCH, which "
                                     "fhir3t does not apply: the record it changes may read otherwise")
ENTRY_DELETE_SEARCH = Message("entry.delete-search", "an entry of this patient's Bundle deletes the {type} records a "
                                                     "search names (a conditional DELETE): which ones cannot be told")
ENTRY_FAILED = Message("entry.failed", "an answer in this patient's Bundle is a failed request (HTTP {code}): what it "
                                       "would have returned is missing")
ENTRY_INCOMPLETE = Message("entry.incomplete", "the server says an answer in this patient's Bundle leaves something out "
                                               "(OperationOutcome {issue}): what it left out is missing")
ENTRY_OTHER_SERVER = Message("entry.other-server", "an entry of this patient's Bundle names a patient on another server "
                                                   "than this patient's (an absolute reference): it is not this patient, "
                                                   "and whose it is cannot be told")
ENTRY_CONTAINED = Message("entry.contained", "a {type} contained in a record no criterion reads it through (a list, "
                                             "a document, a drug record's reason): fhir3t does not read it as a "
                                             "record of its own")
ENTRY_NESTED_UNREAD = Message("entry.nested-unread", "a Bundle inside this patient's Bundle could not be read: it could "
                                                     "hold any record")
ENTRY_BINARY = Message("entry.binary", "a {type} carried as the content of a Binary (an engine's payload), not a record "
                                       "of its own: fhir3t does not read it as one")
ENTRY_BINARY_UNREAD = Message("entry.binary-unread", "a Binary of this patient's Bundle says it holds FHIR content that "
                                                     "cannot be decoded: it could hold any record")
ENTRY_PAGE_MISSING = Message("entry.page-missing", "a search result of this patient is one page of several, and its "
                                                   "next page is not in the input: the rest of the search is missing")
ENTRY_DOC_MISSING = Message("entry.document-missing", "the document's Composition lists a record ({type}) its Bundle "
                                                     "does not hold: it is missing")
ENTRY_UNPARSED = Message("entry.unparsed", "a line of the input that is not valid JSON names this patient: it could be "
                                           "any record")
ENTRY_LINKED = Message("entry.patient-linked", "this Patient is linked ({how}) to {other}, another record of the same "
                                               "person: what is held under that one may be this patient's")
ENTRY_LINKED_BY = Message("entry.patient-linked-by", "{other}, another record of the same person, links to this one "
                                                     "({how}): what is held under that one may be this patient's")
ENTRY_NEAR = Message("entry.near", "a record names a patient who is not in the input, one typo away from this "
                                   "patient's reference (a garbled reference?)")
ENTRY_NO_IDENTIFIER = Message("entry.no-identifier", "an entry of this patient's Bundle names its patient by an "
                                                     "identifier no Patient in the input carries")
ENTRY_AMBIGUOUS = Message("entry.ambiguous", "a record names its patient by an identifier that several Patients in the "
                                             "input carry: it may be this patient's")


@dataclass
class _Doc:
    """What resolving references inside one document needs: its fullUrls, Patients, their identifiers."""

    aliases: dict[str, str] = field(default_factory=dict)
    patients: list[str] = field(default_factory=list)
    only: str | None = None
    #: what the Bundle's reports and panels point at (None for NDJSON: a report may be in any file)
    parts: set[str] | None = None
    #: identifier key (fhirutil.identifier_keys) -> the Patient of this document carrying it ("" when several do)
    idents: dict[str, str] = field(default_factory=dict)

    #: the patients the document's readable entries name (a pharmacy's Bundle holds no Patient resource)
    named: tuple[str, ...] = ()
    #: the servers its Patients' absolute fullUrls name (fhirutil.reference_base): a reference to a Patient on
    #: another server names someone else, whatever its id
    bases: set[str] = field(default_factory=set)

    def elsewhere(self, ref: str, own: str | None = None) -> bool:
        """Does an absolute reference name a Patient on a server that is neither one the document's Patients
        are on nor the one the entry itself is on (`own`, its fullUrl: a hospital's systems that share patient
        ids each write their own server, as the input of several systems' exports does)?"""
        if not self.bases or ref in self.aliases:
            return False
        base = reference_base(ref)
        return base is not None and base not in self.bases and base != (reference_base(own) if own else None)

    @property
    def owners(self) -> tuple[str, ...]:
        """Whose record an entry of this document that names no usable patient may be: its only (or
        scoped) patient, else every Patient it holds, else every patient its other entries name (whose
        it is cannot be told, so each of them keeps it unread)."""
        return (self.only,) if self.only else tuple(self.patients) or self.named


@dataclass(frozen=True)
class Pending:
    """A record naming its patient by an identifier no Patient of its own document carries: resolved
    against the Patients of every input after pass 1 (`why` set: an entry kept only as unread)."""

    key: str  # fhirutil.token_key of the identifier
    resource: dict
    where: str
    source: str
    owners: tuple[str, ...]  # whose record it may be if no Patient carries the identifier (_Doc.owners)
    why: Msg | None = None


#: types many patients' records point at (r4-facts shared_types: Medication, ResearchStudy)
_SHARED = frozenset(r4_facts().shared_types)


@dataclass
class SharedIndex:
    """Resources that many patients' resources point at (Medication, ResearchStudy), and results
    that name no patient but that a patient's report or panel may point at."""

    by_ref: dict[str, dict] = field(default_factory=dict)
    #: every document is one server's answer (sources.rest): an absolute reference on another host names that
    #: server's own resource under another of its names (an EHR behind a proxy writes its public URL), so the
    #: servers fullUrls name are not kept (`bases`, `_Doc.bases`)
    one_server: bool = False
    #: results that name no patient, by id(resource): (type, where they were read); and where the ones a
    #: record adopted were read (locations, so that processes can pool what they adopted)
    orphans: dict[int, tuple[str, str]] = field(default_factory=dict)
    adopted: set[str] = field(default_factory=set)
    #: what history Bundles deleted, by "Type/id" (sources.versions orders them against the copies read)
    deleted: dict[str, list[Deleted]] = field(default_factory=dict)
    #: records naming their patient by identifier, by fhirutil.token_key: (resource, where, why unread or None,
    #: several patients carry it); each patient's record takes those its Patient's identifiers name
    pending: dict[str, list[tuple[dict, str, Msg | None, bool]]] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    #: records of a read type that name no patient, in a document that names none either: anyone's
    anyone: list[tuple[dict, str]] = field(default_factory=list)
    #: "Type/id" -> the servers (fhirutil.reference_base) the absolute fullUrls of its copies name: an absolute
    #: reference to it on another server is another resource
    bases: dict[str, set[str]] = field(default_factory=dict)
    #: searchset pages of the input files that have a `next` page: (its URL, whose the page is, where, source);
    #: and the `self` URL of every Bundle of the input files (a next page there is read: `unfollowed_pages`)
    pages: list[tuple[str, list[str], str, str]] = field(default_factory=list)
    selves: set[str] = field(default_factory=set)

    def add_anyone(self, resource: dict, where: str) -> None:
        self.anyone.append((resource, where))

    def add_pending(self, p: Pending, ambiguous: bool) -> None:
        self.pending.setdefault(p.key, []).append((p.resource, p.where, p.why, ambiguous))

    def named_by(self, keys: Iterable[str]) -> list[tuple[dict, str, Msg | None, bool]]:
        """The pending records one of these identifier keys names (each once)."""
        out: dict[str, tuple[dict, str, Msg | None, bool]] = {}
        for k in keys:
            for item in self.pending.get(k, ()):
                out.setdefault(item[1], item)
        self.claimed.update(out)
        return list(out.values())

    def unclaimed(self) -> list[str]:
        return sorted({w for items in self.pending.values() for _, w, _, _ in items} - self.claimed)

    def delete(self, tomb: Deleted) -> None:
        self.deleted.setdefault(tomb.ref, []).append(tomb)

    def add_orphan(self, resource: dict, full_url: str | None, where: str) -> None:
        self.add(resource, full_url)
        self.orphans[id(resource)] = (resource["resourceType"], where)

    def entries(self) -> list[tuple[str, dict, str | None]]:
        """(ref, resource, orphan location) for every resource, to rebuild the index elsewhere."""
        return [(ref, r, self.orphans[id(r)][1] if id(r) in self.orphans else None) for ref, r in self.by_ref.items()]

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, dict, str | None]]) -> SharedIndex:
        out = cls()
        for ref, r, orphan in entries:
            out._put(ref, r)
            if orphan is not None:
                out.orphans[id(r)] = (r["resourceType"], orphan)
        return out

    def state(self) -> dict:
        """Everything the index holds, as plain JSON-able data (to rebuild it in another process)."""
        return {"entries": self.entries(),
                "deleted": [[d.ref, d.version_id, d.last_updated, d.where, list(d.position) if d.position else None]
                            for ds in self.deleted.values() for d in ds],
                "pending": [[k, r, w, to_data(why) if why is not None else None, amb]
                            for k, items in self.pending.items() for r, w, why, amb in items],
                "anyone": [[r, w] for r, w in self.anyone],
                "pages": [[u, o, w, s] for u, o, w, s in self.pages], "selves": sorted(self.selves)}

    @classmethod
    def from_states(cls, states: Iterable[dict]) -> SharedIndex:
        """One index from the states of several (the processes of a parallel run)."""
        states = list(states)
        out = cls.from_entries(tuple(e) for st in states for e in st["entries"])
        for st in states:
            for ref, vid, lu, where, pos in st["deleted"]:
                out.delete(Deleted(ref, vid, lu, where, (pos[0], pos[1]) if pos else None))
            out.anyone += [(r, w) for r, w in st.get("anyone", ())]
            out.pages += [(u, list(o), w, s) for u, o, w, s in st.get("pages", ())]
            out.selves.update(st.get("selves", ()))
            for k, r, w, why, amb in st.get("pending", ()):
                out.pending.setdefault(k, []).append((r, w, from_data(why) if why is not None else None, amb))  # type: ignore[arg-type]
        return out

    def unadopted(self) -> list[tuple[str, str]]:
        """(type, where) of results no record adopted."""
        return sorted({(t, w) for t, w in self.orphans.values() if w not in self.adopted}, key=lambda x: x[1])

    def add(self, resource: dict, full_url: str | None = None) -> None:
        rid = resource.get("id")
        if isinstance(rid, str):
            self._put(f"{resource['resourceType']}/{rid}", resource)
        if full_url:
            self._put(full_url, resource)

    def _put(self, ref: str, resource: dict) -> None:
        """File a resource under a reference. Another copy already there that differs is ordered by its meta
        (sources.versions): the newer stays; when the order cannot be told, neither is the resource a
        reference names, and a stand-in that says so takes their place (records.build names it)."""
        base = reference_base(ref) if "://" in ref and not self.one_server else None
        if base is not None:
            norm = normalize_reference(ref, {})
            if norm:
                self.bases.setdefault(norm, set()).add(base)
        old = self.by_ref.get(ref)
        if old is not None and resource.get("resourceType") not in _SHARED:
            self.by_ref[ref] = resource  # results that name no patient: a record's own copies are reconciled there
            return
        if old is None or old is resource or old.get(COPIES_DIFFER):
            self.by_ref[ref] = old if old is not None and old.get(COPIES_DIFFER) else resource
            return
        pick = newest(old, resource)
        if not isinstance(pick, Undecided):
            self.by_ref[ref] = pick  # type: ignore[assignment]  # of two dicts, one
            return
        rid = resource.get("id")
        self.by_ref[ref] = {"resourceType": resource.get("resourceType"), **({"id": rid} if isinstance(rid, str) else {}),
                            COPIES_DIFFER: len(pick.copies)}

    def get(self, ref: str) -> dict | None:
        hit = self.by_ref.get(ref)
        if hit is None and "://" in ref:
            norm = normalize_reference(ref, {})
            known, base = self.bases.get(norm or ""), reference_base(ref)
            if known and base is not None and base not in known:
                norm = None  # the same Type/id on another server: another resource (it is not in the input)
            hit = self.by_ref.get(norm) if norm else None
        if hit is not None and self.orphans and id(hit) in self.orphans:
            self.adopted.add(self.orphans[id(hit)][1])
        return hit

    def studies(self) -> list[dict]:
        seen: dict[int, dict] = {}
        for r in self.by_ref.values():
            if r.get("resourceType") == "ResearchStudy":
                seen[id(r)] = r
        return list(seen.values())


@dataclass
class GroupStats:
    files: int = 0
    resources: int = 0  # resources read
    kept: int = 0
    patients: int = 0
    unattributed: int = 0  # relevant entries no patient could be found for
    spilled: bool = False


class GroupingSource:
    """A Source over files (see module doc)."""

    def __init__(self, paths: Iterable[str | Path], problems: Problems, wants: ReadFilter | None = None, *,
                 limits: Limits | None = None, store: str = "auto", spill_at: int = DEFAULT_SPILL_AT,
                 tmpdir: str | Path | None = None, on_file: Callable[[Path], None] | None = None,
                 shared: SharedIndex | None = None, documents: Iterable[tuple[str, object]] = (),
                 scope: str | None = None, native: bool = False) -> None:
        paths = list(paths)
        self.json_files, self.ndjson_files = expand_paths(paths, problems)
        for p in paths:
            _check_export_state(Path(p), problems)
        #: parsed JSON documents given in memory (name, Bundle or resource): a server's answers, tests
        self.documents = list(documents)
        self.problems = problems
        self.wants = wants
        self.limits = limits or Limits()
        self.store_kind = store
        self.spill_at = spill_at
        self.tmpdir = tmpdir
        self.on_file = on_file
        self.shared = shared if shared is not None else SharedIndex()
        self.stats = GroupStats()
        facts = r4_facts()
        self._links = facts.links
        self._shared_types = facts.shared_types
        self._r4_types = facts.resource_types
        self._store: GroupStore | None = None
        self.seen = SeenPatients()  # every Patient read, with where it was first (bounded: see seen.py)
        #: (the Bundle's patients it may belong to, other patient named, type, where, source): after pass 1
        self.foreign: list[tuple[tuple[str, ...], str, str, str, str]] = []
        self._prefilter: Callable[[bytes], bool] | None = None
        #: every Patient's identifiers (fhirutil.identifier_keys -> patient), hashed and logged: see seen.IdentLog
        self.idents = IdentLog(tmpdir)
        #: records naming their patient by an identifier their own document does not resolve (after pass 1)
        self.pending: list[Pending] = []
        #: "Patient/<id>" when every document is one patient's (a CDS call's patient-scoped searches): entries
        #: that cannot be attributed are kept against that patient as unread
        self.scope = scope
        self._all_links = tuple(dict.fromkeys(f for links in facts.patient_links.values() for f in links))
        #: read NDJSON through the native first pass (sources.native; the `native` extra)
        self.native = native
        self._native: NativeLines | None = None

    # ---- the two passes ----------------------------------------------------------------
    def __iter__(self) -> Iterator[RawRecord]:
        try:
            self.collect()
            yield from self.records()
            self.report_orphans()
        finally:
            self.close()

    def collect(self, *, judge_foreign: bool = True) -> GroupStore:
        """Pass 1: read every input once, keep what is relevant, file it under its patient.

        `judge_foreign` off leaves `self.foreign` for a caller that knows more patients (parallel runs)."""
        disk = self.store_kind == "disk" or (self.store_kind == "auto" and _input_bytes(
            [*self.json_files, *self.ndjson_files]) > AUTO_DISK_BYTES)
        self._store = DiskStore(self.tmpdir) if disk else MemoryStore()
        self.stats.spilled = disk and self.store_kind == "auto"
        for name, data in self.documents:
            self._document(data, name, paged=False)
        for path in self.json_files:
            data = read_json_file(path, self.problems, self.limits)
            if data is not None:
                self._document(data, str(path))
            else:
                self._unreadable_file(path)
            self._file_done(path)
        for path in self.ndjson_files:
            self._ndjson_file(path)
            self._file_done(path)
        if self._native is not None:  # pass 2 runs without DuckDB's memory (its reader alone holds ~50 MB)
            self._native.close()
        if judge_foreign:
            for item in foreign_unread(self.foreign, self.seen, self.problems):
                self._store.unread(*item)
            carried = resolve_identifiers([self.idents], (p.key for p in self.pending))
            self.idents.close()  # read once: pass 2 does not need it
            for item in resolve_pending(self.pending, carried, self.problems, self.shared, self.stats):
                self._store.unread(*item)
            for item in unfollowed_pages(self.shared, self.problems):
                self._store.unread(*item)
        return self._store

    def _unreadable_file(self, path: Path) -> None:
        """A file that could not be read (not JSON, too big, bytes that do not decode): the records of the types
        it names (all types read, when it names none that can be seen) may be anyone's, so every patient's record
        holds one of each as unread: what their absence decides stays unknown, naming the file."""
        try:
            if path.stat().st_size == 0:
                return
        except OSError:
            pass
        wants = self.wants
        read = set(wants.types) if wants is not None else set(self._r4_types)
        named = types_in_unreadable(path, self.limits)
        types = (named & read) if named is not None else read
        for rtype in sorted(types):
            if rtype != "Patient" and rtype not in self._shared_types and rtype in self._r4_types:
                self.shared.add_anyone({"resourceType": rtype, UNREAD_FILE: True}, str(path))

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self.idents.close()

    def report_orphans(self) -> None:
        """Results that name no patient and that no record adopted: said once each, at the end."""
        for rtype, where in self.shared.unadopted():
            self.problems.add(where, P["orphan"](type=rtype))
            self.stats.unattributed += 1
        for where in self.shared.unclaimed():
            self.problems.add(where, P["ident-unclaimed"]())
            self.stats.unattributed += 1

    def _line_filter(self) -> Callable[[bytes], bool] | None:
        """The read filter's raw-bytes pre-check, when it has one (see records.relevance.LineFilter)."""
        if self._prefilter is None and self.wants is not None and hasattr(self.wants, "line_filter"):
            self._prefilter = self.wants.line_filter(self._shared_types, self._r4_types)
        return self._prefilter

    def _file_done(self, path: Path) -> None:
        self.stats.files += 1
        if self.on_file is not None:
            self.on_file(path)

    def records(self) -> Iterator[RawRecord]:
        """Pass 2: one RawRecord per patient, with everything every input held for them."""
        assert self._store is not None
        yield from records_of(self._store.groups(), self.shared, self.problems, self.stats)

    # ---- pass 1 ------------------------------------------------------------------------
    def _add(self, key: str, resource: dict, where: str, source: str) -> None:
        store = self._store
        assert store is not None
        store.add(key, resource, where, source)
        self.stats.kept += 1
        if self.store_kind == "auto" and isinstance(store, MemoryStore) and store.size > self.spill_at:
            self._store = DiskStore.from_memory(store, self.tmpdir)
            self.stats.spilled = True

    def _patient(self, res: dict, where: str, full_url: str | None, source: str) -> str | None:
        rid = res.get("id")
        key = f"Patient/{rid}" if isinstance(rid, str) and rid else full_url
        if key is None:
            self.problems.add(where, P["patient-no-id"]())
            return None
        first = self.seen.add(key, source)
        if first is not None and first != source:
            self.problems.add(where, P["again"](key=key, first=first), skipped=False)
        self._add(key, res, where, source)
        for k in identifier_keys(res):
            self.idents.add(k, key)
        for how, other, target in linked_records(res, key):
            self._store.unread(key, Unread("*", where, ENTRY_LINKED(how=how, other=other)), source)  # type: ignore[union-attr]
            if target is not None:  # and the record it links to, whether or not that one links back
                self._store.unread(target, Unread("*", where, ENTRY_LINKED_BY(how=how, other=key)), source)  # type: ignore[union-attr]
        return key

    def _document(self, data: object, where: str, paged: bool = True) -> None:
        """One Bundle or resource of the input. `paged`: a file's (a searchset page there may have its next
        page among the files, or not: `unfollowed_pages`); a server's answers given in memory page themselves."""
        if paged and isinstance(data, dict) and data.get("resourceType") == "Bundle":
            own = _link(data, "self")
            if own:
                self.shared.selves.add(own)
        untyped: list[Entry] = []
        held: list[Entry] = []
        gaps: list[tuple[str, str, Msg, Msg]] = []
        try:
            entries = self._entries(data, where, untyped, held, gaps)
            if isinstance(data, dict) and data.get("type") == "document":
                gaps += document_gaps(entries or [])
        except (TypeError, AttributeError, ValueError, KeyError, RecursionError) as exc:
            self.problems.add(where, P["structure-entries"](kind=type(exc).__name__))
            return
        if not entries and not untyped and not held and not gaps:
            return
        try:
            doc = self._bundle(entries or [], where, untyped, held, gaps)
        except (TypeError, AttributeError, ValueError, KeyError, RecursionError) as exc:
            self.problems.add(where, P["structure-entries"](kind=type(exc).__name__))
            return
        nxt = _link(data, "next") if paged and isinstance(data, dict) and data.get("type") == "searchset" else None
        if nxt and doc.owners:
            self.shared.pages.append((nxt, list(doc.owners), where, where))

    def _entries(self, data: object, where: str, untyped: list[Entry], held: list[Entry],
                 gaps: list[tuple[str, str, Msg, Msg]], depth: int = 0) -> list[Entry] | None:
        """The entries of a document, a Bundle inside it read as part of it (a batch-response whose entries
        are the searchsets of one patient's record), each Bundle's history and deletions applied. Resources
        an operation's Parameters carry go to `held`: they are no record of their own (see `_held`)."""
        nested: list[Entry] = []
        entries = bundle_entries(data, where, self.problems, untyped, nested, "." if depth else "#")
        if isinstance(data, dict) and data.get("resourceType") == "Bundle" and isinstance(data.get("entry"), list):
            gaps += entry_gaps(data["entry"], where, "." if depth else "#")
            if data.get("type") == "history":
                entries = self._history(data["entry"], entries or [], where)
            else:  # a transaction's or a Bulk export's `deleted` DELETE: a tombstone of unknown order
                for _, c in history_entries(data["entry"], where):
                    if isinstance(c, Deleted):
                        self.shared.delete(Deleted(c.ref, c.version_id, c.last_updated, c.where))
        out: list[Entry] = []
        for e in entries or ():
            if e.resource["resourceType"] == "Parameters":
                held.extend(parameters_resources(e.resource, e.where))
            else:
                out.append(e)
        for n in nested:
            if depth >= MAX_NESTING:
                untyped.append(Entry({TOO_DEEP: True}, n.where, None))  # kept as unread (`_bundle`)
                continue
            inner = self._entries(n.resource, f"{n.where}.resource", untyped, held, gaps, depth + 1)
            if inner is None:  # its entries cannot be read (said): what it holds may be anyone's of the document
                untyped.append(Entry({TOO_DEEP: False}, n.where, None))
            out += inner or []
        return out if entries is not None or out else entries

    def _history(self, raw: list, entries: list[Entry], where: str) -> list[Entry]:
        """A history Bundle: only the newest version of each resource is read; a DELETE that is the newest
        becomes a tombstone that removes older copies read from any input (sources.versions)."""
        kept = newest_in_history(history_entries(raw, where), where)
        live = {id(c) for _, c in kept if isinstance(c, dict)}
        for _, c in kept:
            if isinstance(c, Deleted):
                self.shared.delete(c)
        return [e for e in entries if id(e.resource) in live]

    def _bundle(self, entries: list[Entry], source: str, untyped: Iterable[Entry] = (), held: Iterable[Entry] = (),
                gaps: Iterable[tuple[str, str, Msg, Msg]] = ()) -> _Doc:
        doc = _Doc(parts=set())
        rest: list[Entry] = []
        for e in entries:  # Patients first: other entries may name them by fullUrl or identifier
            if e.resource["resourceType"] == "Patient":
                key = self._patient(e.resource, e.where, e.full_url, source)
                if key is not None:
                    if e.full_url:
                        # one fullUrl for two Patients: a reference to it names either (`""`: it resolves to none)
                        doc.aliases[e.full_url] = key if doc.aliases.get(e.full_url, key) == key else ""
                        base = reference_base(e.full_url)
                        if base is not None and not self.shared.one_server:
                            doc.bases.add(base)
                    if key not in doc.patients:
                        doc.patients.append(key)
                    for k in identifier_keys(e.resource):
                        doc.idents[k] = key if doc.idents.get(k, key) == key else ""  # "": several patients
            else:
                rest.append(e)
        if self.scope is not None and self.scope not in doc.patients:
            doc.patients.append(self.scope)  # a search scoped to one patient: what it holds is theirs
        doc.only = self.scope or (doc.patients[0] if len(doc.patients) == 1 else None)
        doc.parts = _part_refs(rest)
        if not doc.patients:  # a system's Bundle without the Patient: whom its entries name
            doc.named = self._named(rest, doc)
        for e in untyped:
            self.stats.resources += 1
            if TOO_DEEP in e.resource:
                deep = e.resource[TOO_DEEP]
                self._unattributable("*", e.where, source, doc.owners, "*",
                                     ENTRY_TOO_DEEP() if deep else ENTRY_NESTED_UNREAD(),
                                     P["too-deep"](depth=MAX_NESTING) if deep else P["nested-unread"]())
            else:
                self._untyped(e.resource, e.where, source, doc, ENTRY_UNTYPED())
        for e in held:
            self.stats.resources += 1
            self._held(e.resource, e.where, source, doc)
        wants = self.wants
        for loc, rtype, why, problem in gaps:  # a record changed or left out in a way fhir3t does not apply
            if rtype == "*" or rtype not in self._r4_types or wants is None or rtype in wants.types:
                self._unattributable(rtype if rtype in self._r4_types else "*", loc, source, doc.owners,
                                     rtype if rtype in self._r4_types else "*", why, problem)
        for e in rest:
            self._resource(e.resource, e.where, e.full_url, source, doc)
        return doc

    def _ndjson_file(self, path: Path) -> None:
        """Every line of an NDJSON file. The loop is the hot path of a Bulk export (a hundred million
        lines, most of them dropped): lines come in batches split in C, a type the read filter never
        reads is skipped on its bytes, and a resource alike in its main code to one already judged
        is dropped on that verdict before anything else is made for it (location, filing). With the
        native first pass (sources.native), the lines are those DuckDB hands over, each with its key: a
        key learnt as dropped is dropped, and the verdict on a line of a key not yet judged is taught
        back, so its like is dropped in DuckDB. One loop for both readers: the native pass keeps what
        the Python reader keeps because every line it hands over takes the same steps."""
        native = self._native_lines()
        dropped: Container[str]
        verdicts: Container[str]
        if native is not None and native.usable(path):
            rows = native.rows(path, self.problems, self.limits)
            dropped, verdicts = native.dropped, native.verdicts
        else:
            native, rows = None, ndjson_rows(path, self.problems, self.limits)
            dropped, verdicts = frozenset(), {}
        where = str(path)
        problems = self.problems
        skip = self._line_filter()
        wants = self.wants
        types = wants.types if wants is not None else None
        quick = getattr(wants, "quick", None)
        key_verdict = getattr(wants, "key_verdict", None)
        shared_types, r4_types, stats = self._shared_types, self._r4_types, self.stats
        for lineno, key, line, terminated in rows:
            if key is not None and key in dropped:
                stats.resources += 1
                continue
            if type(line) is bytes and skip is not None and not skip(line):
                stats.resources += 1
                continue
            res = None
            try:
                res = orjson.loads(line)
                rtype = res["resourceType"]
                if type(rtype) is not str or not rtype:
                    raise KeyError
            except (orjson.JSONDecodeError, TypeError, KeyError):
                if type(res) is dict:  # an object without a usable resourceType: unread for whom it names
                    stats.resources += 1
                    self._untyped(res, f"{where}:{lineno}", where, _Doc(), ENTRY_UNTYPED())
                    continue
                raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
                if not raw.strip():
                    continue
                res = self._salvage(raw, f"{where}:{lineno}", where, terminated)
                if res is None:
                    continue
                rtype = res["resourceType"]
                key = None  # read leniently or with bytes replaced: teaches the native key nothing
            if rtype in ("Bundle", "Parameters"):  # a Bundle written as one line: read as a document
                self._document(res, f"{where}:{lineno}")
                continue
            # a later version is kept whatever it says (sources.versions) and teaches its key nothing
            learn = key is not None and key not in verdicts and not later_version(res)
            if types is not None and rtype not in shared_types and rtype in r4_types and rtype != "Patient" \
                    and (rtype not in types or (quick is not None and quick(rtype, res, where) is False
                                                and not later_version(res))):
                stats.resources += 1  # a type nobody reads, or a resource like one already dropped
                if (type(res.get("contained")) is list and res["contained"]) or rtype == "Binary":
                    try:  # what it contains or carries may be read
                        if type(res.get("contained")) is list and res["contained"]:
                            self._contained(res, f"{where}:{lineno}", where, _Doc())
                        if rtype == "Binary" and fhir_binary(res):
                            self._binary(res, f"{where}:{lineno}", where, _Doc())
                    except (TypeError, AttributeError, ValueError, KeyError, RecursionError) as exc:
                        problems.add(f"{where}:{lineno}", P["structure-line"](kind=type(exc).__name__))
                if learn:  # a type nobody reads: dropped by its key; a code: where the key decides it alone
                    native.learn(key, False if rtype not in types or key_verdict is None  # type: ignore[union-attr,arg-type]
                                 else key_verdict(rtype, res, False), res)
                continue
            loc = f"{where}:{lineno}"
            try:
                if rtype == "Patient":
                    self._patient(res, loc, None, where)
                else:
                    self._resource(res, loc, None, where, _Doc())
            except (TypeError, AttributeError, ValueError, KeyError, RecursionError) as exc:
                problems.add(loc, P["structure-line"](kind=type(exc).__name__))
            if learn:  # a drop is learnt only where the key decides it alone (relevance.key_verdict)
                verdict = quick(rtype, res, loc, tell=False) if quick is not None else None
                native.learn(key, key_verdict(rtype, res, verdict)  # type: ignore[union-attr,arg-type]
                             if key_verdict is not None else verdict, res)

    def _salvage(self, line: bytes, loc: str, source: str, terminated: bool) -> dict | None:
        """A line orjson refuses. Bytes that are not UTF-8 are replaced (U+FFFD) and the line read again:
        a value holding one is no code, date, status or reference fhir3t knows, so it decides nothing and
        keeps what it could decide unknown. A line that is still no resource is reported and, when its type
        (written first, as Bulk exports do) is one some rule reads or cannot be told, kept as unread against
        the patient its bytes name, or against every patient when it names none (it could be anyone's)."""
        res, how = salvage(line)
        if res is not None:
            self.problems.add(loc, FILE_PROBLEMS["not-utf8"]() if how == "not-utf8" else P["lenient"](), skipped=False)
            return res
        parse_line(line, loc, self.problems, terminated=terminated)
        rtype = line_type(line) or "*"
        wants = self.wants
        if rtype != "*" and (rtype not in self._r4_types or rtype == "Patient" or rtype in self._shared_types
                             or (wants is not None and rtype not in wants.types)):
            return None  # a type no rule reads (an unreadable Patient leaves its patient out: said above)
        self.stats.resources += 1
        found = line_patient_reference(line)
        link = patient_link({"subject": {"reference": found}}, ("subject",)) if found else None
        key = self._key(link, _Doc()) if link is not None else None
        if isinstance(key, str):
            self.problems.add(loc, P["unparsed-names"](), skipped=False)
            self._store.unread(key, Unread(rtype, loc, ENTRY_UNPARSED()), source)  # type: ignore[union-attr]
        elif rtype != "*":
            self.shared.add_anyone({"resourceType": rtype}, loc)  # whose it is cannot be told: anyone's
        else:
            self.stats.unattributed += 1
        return None

    def _native_lines(self) -> NativeLines | None:
        """The native first pass, when this source uses one and the read filter can make it."""
        if self._native is None and self.native and self.wants is not None and hasattr(self.wants, "native_lines"):
            self._native = self.wants.native_lines(self._shared_types, self._r4_types)
        return self._native or None

    def _resource(self, res: dict, where: str, full_url: str | None, source: str, doc: _Doc) -> None:
        """File one resource. `doc.parts`: what the Bundle's reports and panels point at (None for NDJSON,
        where a report may sit in another file)."""
        self.stats.resources += 1
        rtype = res["resourceType"]
        if rtype in self._shared_types:
            self.shared.add(res, full_url)
            return
        if rtype not in self._r4_types:
            self._untyped(res, where, source, doc, ENTRY_NOT_R4())
            return
        if isinstance(res.get("contained"), list) and res["contained"]:
            self._contained(res, where, source, doc)
        if rtype == "Binary" and fhir_binary(res):
            self._binary(res, where, source, doc)
            return
        wants = self.wants
        if wants is not None and (rtype not in wants.types or (not wants(res, where) and not later_version(res))):
            return  # (a later version of a read type is kept whatever it says: it may supersede a copy that counts)
        if not self._links(rtype):
            return  # not part of one patient's record (Provenance, Group, Practitioner, ...)
        link = patient_link(res, self._links(rtype))
        if link is None:
            if rtype == "Observation" and not has_patient_link(res):
                rid = res.get("id")
                if doc.parts is None:  # NDJSON: a report in any file may adopt it; said at the end if none does
                    self.shared.add_orphan(res, full_url, where)
                    return
                if full_url in doc.parts or (isinstance(rid, str) and f"Observation/{rid}" in doc.parts):
                    self.shared.add(res, full_url)  # a report's or panel's result: adopted by reference
                    return
            self._unattributable(rtype, where, source, doc.owners, rtype, ENTRY_NO_PATIENT(),
                                 P["no-patient"](type=rtype), res)
            return
        key = self._key(link, doc, full_url)
        if isinstance(key, tuple):  # named by an identifier no Patient of this Bundle carries: after pass 1
            self.pending.append(Pending(token_key(key), res, where, source, doc.owners))
            return
        if key is None:
            other = link.reference is not None and doc.elsewhere(link.reference, full_url)
            self._unattributable(rtype, where, source, doc.owners, rtype,
                                 ENTRY_OTHER_SERVER() if other else ENTRY_BAD_PATIENT(),
                                 P["other-server" if other else "bad-patient"](type=rtype), res)
            return
        self._add(key, res, where, source)
        if (doc.patients and key not in doc.patients) or (doc.parts is not None and not doc.patients and key not in self.seen):
            # a Bundle's entry naming a patient the Bundle does not hold (or, in a Bundle without Patients, one
            # not read yet): whether that patient exists is known after pass 1
            self.foreign.append((doc.owners, key, rtype, where, source))
        if full_url:
            rid = res.get("id")
            self._store.alias(key, full_url, f"{rtype}/{rid}" if isinstance(rid, str) else where)  # type: ignore[union-attr]

    def _named(self, entries: Iterable[Entry], doc: _Doc) -> tuple[str, ...]:
        """The patients the entries of a document name by a reference that resolves (in order, once)."""
        out: dict[str, None] = {}
        for e in entries:
            rtype = e.resource["resourceType"]
            link = patient_link(e.resource, self._links(rtype)) if rtype in self._r4_types else None
            key = self._key(link, doc, e.full_url) if link is not None else None
            if isinstance(key, str) and key.startswith("Patient/"):
                out[key] = None
        return tuple(out)

    def _key(self, link: PatientLink, doc: _Doc, own: str | None = None) -> str | Token | None:
        """The patient key a link names: a key, an identifier to look up among every input's Patients
        (a Token), or None (it names no Patient fhir3t can find). `own`: the entry's fullUrl."""
        token = link.identifier
        if link.typed_otherwise("Patient"):
            return None  # Reference.type names another type than the Patient it points at: it contradicts itself
        if link.reference is not None:
            ref = link.reference
            if doc.elsewhere(ref, own):
                return None  # a Patient of another server than the document's: not one fhir3t holds
            found: str | Token | None = conditional_patient(ref) if "?" in ref else normalize_reference(ref, doc.aliases)
            if isinstance(found, str):
                return found if found.startswith("Patient/") or found in doc.patients else None
            if found is None and "?" not in ref and token is None:
                return None
            token = found if found is not None else token
        if token is None:
            return None
        hit = doc.idents.get(token_key(token))
        if hit:
            return hit
        return None if hit == "" else token  # "": several Patients of this Bundle carry it

    def _held(self, res: dict, where: str, source: str, doc: _Doc, container: dict | None = None,
              ref: str = "", said: tuple[Msg, Msg] | None = None) -> None:
        """A whole resource that is no record of its own: one an operation's Parameters carry (`$submit-data`,
        `$member-match`, a message's payload: what it is for is the operation's), or one contained in a record
        of a type no rule reads (`container`: a problem List, a Composition, a drug record's reason). Kept as
        unread, with its content, for the patient it (else its container) names, else the document's
        patients: the criteria its type and code could decide stay unknown, naming it; it is never counted
        as a record nor as absent."""
        rtype = res.get("resourceType")
        why, problem = said or ((ENTRY_CONTAINED(type=rtype), P["contained"](type=rtype)) if container is not None
                                 else (ENTRY_HELD(), P["held"](type=rtype)))
        if not isinstance(rtype, str) or rtype not in self._r4_types:
            if container is None:
                self._untyped(res, where, source, doc, why)
            return
        wants = self.wants
        if rtype == "Patient" or rtype in self._shared_types or not self._links(rtype) or (
                wants is not None and (rtype not in wants.types or not wants(res, where))):
            return
        link = patient_link(container, self._links(str(container.get("resourceType"))) or self._all_links) \
            if container is not None else None
        link = link or patient_link(res, self._links(rtype))
        key = self._key(link, doc) if link is not None else None
        rid = res.get("id")
        ref = ref or (f"{rtype}/{rid}" if isinstance(rid, str) and rid else "")
        if isinstance(key, str):
            self.problems.add(where, problem, skipped=False)
            self._store.unread(key, Unread(rtype, where, why, ref, res), source)  # type: ignore[union-attr]
            return
        if isinstance(key, tuple):
            self.problems.add(where, problem, skipped=False)
            self.pending.append(Pending(token_key(key), res, where, source, doc.owners, why))
            return
        self._unattributable(rtype, where, source, doc.owners, rtype, why, problem, res, ref)

    def _binary(self, res: dict, where: str, source: str, doc: _Doc) -> None:
        """A Binary whose content is FHIR (an engine's payload): the resources it carries are no records of
        their own (what the Binary is for cannot be told), kept as unread like an operation's (`_held`); content
        that cannot be decoded keeps what absence decides unknown for the document's patients."""
        loc = f"{where}/data"
        found = binary_resources(res, self.limits.max_file_bytes)
        if found is None:
            self._unattributable("*", loc, source, doc.owners, "*", ENTRY_BINARY_UNREAD(), P["binary-unread"]())
            return
        for r in found:
            rtype = r.get("resourceType")
            self._held(r, loc, source, doc, said=(ENTRY_BINARY(type=rtype), P["binary"](type=rtype)))

    def _contained(self, res: dict, where: str, source: str, doc: _Doc) -> None:
        """Resources contained in a record that the builder does not read them through (a report's or panel's
        results, a drug record's or adverse event's drug are read there): kept as unread (`_held`)."""
        rtype = res["resourceType"]
        rid = res.get("id")
        here = f"{rtype}/{rid}" if isinstance(rid, str) and rid else where
        for i, c in enumerate(res["contained"]):
            ctype = c.get("resourceType") if isinstance(c, dict) else None
            if not isinstance(ctype, str) or ctype in self._shared_types or rtype == "AdverseEvent" or (
                    ctype == "Observation" and rtype in ("DiagnosticReport", "Observation")):
                continue
            cid = c.get("id")
            self._held(c, f"{where}/contained[{i}]", source, doc, res,
                       f"{here}#{cid}" if isinstance(cid, str) and cid else "")

    def _untyped(self, res: dict, where: str, source: str, doc: _Doc, why: Msg) -> None:
        """An entry whose resourceType is missing, misspelt or not R4's: it could be any record. Kept as
        unread against the patient it names (any element R4 names patients by), else the Bundle's only one."""
        link = patient_link(res, self._all_links) if isinstance(res, dict) else None
        key = self._key(link, doc) if link is not None else None
        if isinstance(key, tuple):
            self.pending.append(Pending(token_key(key), res, where, source, doc.owners, why))
            return
        typed = isinstance(res, dict) and isinstance(res.get("resourceType"), str) and bool(res["resourceType"])
        if key is not None:
            self.problems.add(where, P["not-r4-names" if typed else "no-type-names"](), skipped=False)
            self._store.unread(key, Unread("*", where, why), source)  # type: ignore[union-attr]
            return
        self._unattributable("*", where, source, doc.owners, "*", why, P["not-r4" if typed else "no-type-nobody"]())

    def _unattributable(self, rtype: str, where: str, source: str, owners: tuple[str, ...], as_type: str,
                        why: Msg, problem: Msg, resource: dict | None = None, whole: str | None = None) -> None:
        """A relevant entry with no usable patient: kept as unread against the Bundle's Patients (each of
        them, when it holds several: whose it is cannot be told). In a document that names no patient at
        all, a record of a known type may be anyone's: every patient's record holds it as unread (the
        criteria its code and dates could decide stay unknown for each); one of no known type is counted.
        `whole` (a reference, maybe ""): the resource is whole and no record of its own, kept with its content
        (see `_held`)."""
        self.problems.add(where, problem)
        if owners:
            assert self._store is not None
            for key in owners:
                self._store.unread(key, Unread(as_type, where, why, whole or "", resource if whole is not None else None),
                                   source)
        elif resource is not None and as_type != "*":
            self.shared.add_anyone(resource, where)
        else:
            self.stats.unattributed += 1


def salvage(line: bytes) -> tuple[dict | None, str]:
    """(resource, how) of a line orjson refuses, read as every reader of fhir3t reads it: bytes that are not UTF-8
    replaced (U+FFFD; how "not-utf8"), or commas before a closing bracket dropped (what DuckDB's reader accepts;
    how "lenient"); (None, "") when it is still no resource."""
    text = line.decode("utf-8", "replace")
    if "\ufffd" in text:
        try:
            res = orjson.loads(text)
        except orjson.JSONDecodeError:
            res = None
        if isinstance(res, dict) and isinstance(res.get("resourceType"), str) and res["resourceType"]:
            return res, "not-utf8"
    res = _lenient(text)
    return (res, "lenient") if res is not None else (None, "")


def _lenient(text: str) -> dict | None:
    """A line that is JSON but for commas before a closing bracket (which DuckDB's reader accepts), read
    without them; None for anything else (NaN, Infinity and numbers past the double range stay refused:
    a rule must never compare one)."""
    if _TRAILING_COMMA.search(text) is None:
        return None
    out: list[str] = []
    i, n, in_string, changed = 0, len(text), False, False
    while i < n:
        ch = text[i]
        if in_string:
            if ch == "\\":
                out.append(text[i:i + 2])
                i += 2
                continue
            in_string = ch != '"'
        elif ch == '"':
            in_string = True
        elif ch == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                changed = True
                i += 1
                continue
        out.append(ch)
        i += 1
    if not changed:
        return None
    try:
        res = orjson.loads("".join(out))
    except orjson.JSONDecodeError:
        return None
    return res if isinstance(res, dict) and isinstance(res.get("resourceType"), str) and res["resourceType"] else None


def _check_export_state(folder: Path, problems: Problems) -> None:
    """A folder `fhir3t export` wrote but did not finish holds only part of the export: say so."""
    from fhir3t.sources.bulk import STATE

    state = folder / STATE if folder.is_dir() else None
    if state is None or not state.is_file():
        return
    try:
        done = orjson.loads(state.read_bytes()).get("complete") is True
    except (OSError, orjson.JSONDecodeError, AttributeError):
        done = False
    if not done:
        problems.add(str(folder), P["export-incomplete"]())


def _input_bytes(files: Iterable[Path]) -> int:
    """About how many bytes the inputs decode to (a gzip file counted as 8 times its size)."""
    total = 0
    for f in files:
        try:
            size = f.stat().st_size
        except OSError:
            continue
        total += size * 8 if f.name.lower().endswith(".gz") else size
    return total


def _link(bundle: dict, relation: str) -> str | None:
    """The URL of a Bundle's link of this relation, as written (trimmed), or None."""
    links = bundle.get("link")
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("relation") == relation and isinstance(link.get("url"), str):
            return link["url"].strip() or None
    return None


def unfollowed_pages(shared: SharedIndex, problems: Problems) -> Iterator[tuple[str, Unread, str]]:
    """Searchset pages of the input files whose `next` page is not among them (no Bundle of the input has
    that URL as its `self` link): the rest of the search is missing, so what absence decides stays unknown for
    the page's patients. (Pages saved one a file, each with its `self` link, are read whole.)"""
    for url, owners, where, source in shared.pages:
        if url in shared.selves:
            continue
        problems.add(where, P["page-missing"](), skipped=False)
        for owner in owners:
            yield owner, Unread("*", where, ENTRY_PAGE_MISSING()), source


def foreign_unread(foreign: Iterable[tuple[tuple[str, ...], str, str, str, str]], patients: Container[str],
                   problems: Problems) -> Iterator[tuple[str, Unread, str]]:
    """Entries of a Bundle that name a patient who is nowhere in the input.

    In a Bundle that holds one patient's record, a Condition naming `Patient/018` when the Bundle's
    patient is `Patient/p18` and no `Patient/018` exists is most likely a garbled reference: the entry
    is still filed under what it names, and the Bundle's patient keeps the criteria that could depend
    on it unknown. In a Bundle of several patients, whose it is cannot be told: each keeps them unknown.
    (A Bundle may hold another patient's data legitimately; then that patient exists.)
    """
    for owners, other, rtype, where, source in foreign:
        if other in patients:
            continue
        near = near_patients(other, patients)
        problems.add(where, P["foreign"](type=rtype))
        for owner in dict.fromkeys([*owners, *near]):
            if owner != other:
                yield owner, Unread(rtype, where, ENTRY_OTHER_PATIENT() if owner in owners else ENTRY_NEAR()), source


_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."


def near_patients(key: str, patients: Container[str]) -> list[str]:
    """Patients of the input whose reference is one typo away from `key` (a character added, dropped,
    changed or swapped, or spaces inside): a garbled `Patient/p0l` or `Patient/p 01` may be `Patient/p01`'s
    (only digests of the patients are kept, so candidates are generated and looked up)."""
    head, sep, rid = key.rpartition("/")
    if not sep or not rid or len(rid) > 64:
        return []
    variants = {rid.replace(" ", "")}
    for i in range(len(rid) + 1):
        if i < len(rid):
            variants.add(rid[:i] + rid[i + 1:])
            if i + 1 < len(rid):
                variants.add(rid[:i] + rid[i + 1] + rid[i] + rid[i + 2:])
        for ch in _ID_CHARS:
            variants.add(rid[:i] + ch + rid[i:])
            if i < len(rid):
                variants.add(rid[:i] + ch + rid[i + 1:])
    variants.discard(rid)
    return sorted(f"{head}/{v}" for v in variants if v and f"{head}/{v}" in patients)


def resolve_pending(pending: Iterable[Pending], carried: Mapping[str, int], problems: Problems, shared: SharedIndex,
                    stats: GroupStats | None = None) -> Iterator[tuple[str, Unread, str]]:
    """Records naming their patient by identifier, judged against every input's Patients (after pass 1):
    one Patient carries it -> that patient's record takes it in pass 2; several -> each of them keeps it
    as unread; none -> unread for the document's only patient (a garbled identifier?), else reported."""
    for p in pending:
        found = carried.get(p.key)
        if found is None:
            rtype = str(p.resource.get("resourceType", "*")) if p.why is None else "*"
            if p.owners:
                problems.add(p.where, P["ident-unknown-owners"]())
                for owner in p.owners:
                    yield owner, Unread(rtype, p.where, ENTRY_NO_IDENTIFIER() if p.why is None else p.why), p.source
            else:
                problems.add(p.where, P["ident-unknown"]())
                if stats is not None:
                    stats.unattributed += 1
            continue
        if found == AMBIGUOUS:
            problems.add(p.where, P["ident-several"](), skipped=False)
        shared.add_pending(p, found == AMBIGUOUS)


def linked_records(patient: dict, key: str) -> Iterator[tuple[str, str, str | None]]:
    """(link type, reference as written, the other record's key when it names a Patient) of every other record of
    the same person a Patient links to
    (R4 Patient.link: replaced-by, replaces, refer, seealso), a RelatedPerson aside. fhir3t does not merge
    them, so the patient's criteria that absence decides stay unknown: the other record may hold what
    decides them (a merged-away record's HIV diagnosis)."""
    links = patient.get("link")
    for link in links if isinstance(links, list) else ():
        other = link.get("other") if isinstance(link, dict) else None
        ref = other.get("reference") if isinstance(other, dict) else None
        norm = normalize_reference(ref, {}) if isinstance(ref, str) else None
        if (norm or "").startswith("RelatedPerson/") or norm == key:
            continue
        kind = link.get("type") if isinstance(link, dict) else None
        how = kind if isinstance(kind, str) else "?"
        target = norm if norm is not None and norm.startswith("Patient/") else None
        yield clip(how, 20), clip(ref, 80) if isinstance(ref, str) else "?", target  # (a display may be a name: not said)


def records_of(groups: Iterable[tuple[str, Group]], shared: SharedIndex, problems: Problems,
               stats: GroupStats | None = None) -> Iterator[RawRecord]:
    """RawRecords from stored groups (pass 2; also what each process of a parallel run does)."""
    any_subjectless = any(r.get("resourceType") == "Observation" for r in shared.by_ref.values())
    for key, g in groups:
        if not g.resources and g.unread and all(u.why.id == ENTRY_LINKED_BY.id for u in g.unread):
            continue  # a record another Patient links to that the input does not hold: no patient to screen
        if not any(r.get("resourceType") == "Patient" for r, _ in g.resources):
            problems.add(g.source, P["no-patient-resource"](key=key), skipped=False)
        if stats is not None:
            stats.patients += 1
        resources, unread = g.resources, g.unread
        if shared.pending:  # records naming this patient by one of their identifiers, in any input
            named = shared.named_by(k for r, _ in g.resources if r.get("resourceType") == "Patient"
                                    for k in identifier_keys(r))
            if named:
                resources = [*resources, *((r, w) for r, w, why, amb in named if why is None and not amb)]
                unread = [*unread, *(Unread("*" if why is not None else str(r.get("resourceType", "*")), w,
                                            why if why is not None else ENTRY_AMBIGUOUS())
                                     for r, w, why, amb in named if why is not None or amb)]
        one = reconcile(resources, shared.deleted)  # every Type/id once: its newest copy (sources.versions)
        yield RawRecord(key, one.resources, g.source, _resolver(shared, g.aliases), g.aliases, unread,
                        bool(shared.orphans) or any_subjectless, one.conflicts, shared.anyone)


def _part_refs(entries: Iterable[Entry]) -> set[str]:
    """References a Bundle's reports (`result`) and panels (`hasMember`) make."""
    out: set[str] = set()
    for e in entries:
        r = e.resource
        field_name = "result" if r["resourceType"] == "DiagnosticReport" else "hasMember" if r["resourceType"] == "Observation" else None
        items = r.get(field_name) if field_name else None
        for item in items if isinstance(items, list) else ():
            ref = item.get("reference") if isinstance(item, dict) else None
            if isinstance(ref, str):
                out.add(ref)
                norm = normalize_reference(ref, {})
                if norm:
                    out.add(norm)
    return out


def _resolver(shared: SharedIndex, aliases: dict[str, str]) -> Callable[[str], dict | None]:
    def resolve(ref: str) -> dict | None:
        hit = shared.get(ref)
        if hit is None and ref in aliases:
            hit = shared.get(aliases[ref])
        return hit

    return resolve


def group_documents(documents: Iterable[tuple[str, object]], problems: Problems, shared: SharedIndex | None = None,
                    wants: ReadFilter | None = None, scope: str | None = None) -> list[RawRecord]:
    """Group parsed Bundles (a server's answers, a test's fixtures) by patient, in memory. `scope`: every
    document is that patient's (searches scoped to them): what cannot be attributed stays theirs, unread."""
    return list(GroupingSource([], problems, wants, store="memory", documents=documents, shared=shared, scope=scope))
