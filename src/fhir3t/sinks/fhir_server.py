"""Push a transaction Bundle to a FHIR server and say what happened to every entry.

- Transaction when the server declares one, else a batch: entries a later entry refers to by
  `urn:uuid:` (the conditional-create ResearchStudy) are sent first on their own, references are
  rewritten to the ids the server gave, then the rest goes in one batch.
- Only what is safe is retried: a transaction made of idempotent entries (PUT to an id,
  conditional create/update) may be sent again after a lost answer; in a batch, entries that failed
  with 408/429/5xx are re-sent if idempotent. Nothing is dropped silently: every entry ends in the
  report as ok, failed (with the server's message), skipped by a rule, or unknown.
- No regression: current ResearchSubjects are read first and the enrolment module's push policy
  (enrolment/policy.py) decides: a subject of this study in a team status (or one fhir3t cannot
  read) is never overwritten with a screening status, and no second subject is added next to it;
  the screening result is reported beside it, per patient. That holds without trusting the
  server's search: subjects are searched by the patient's relative and absolute reference, and a
  current subject is of this study if its `study` names our identifier or resolves (read by id) to a
  ResearchStudy carrying it; a reference to a study that cannot be read is another study's when our
  study is on the server under another id, and may be ours (so it still blocks the screening entry)
  when it is not.
- The server's answers are type-checked: a transaction-response whose entries are strings still
  gives a per-entry report (those entries are "unknown": the server may have applied them).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fhir3t.enrolment import Existing, Verdict, decide
from fhir3t.errors import ServerError, UsageError
from fhir3t.fhirutil import fhir_id
from fhir3t.jsonshape import child, child_text, items, objs, text
from fhir3t.messages import Later, Msg, later, render, table
from fhir3t.transport.http import FhirClient, HttpStatusError, outcome_text
from fhir3t.transport.urls import clean

log = logging.getLogger("fhir3t.push")

#: what `push` says: a Bundle it refuses (the CLI's error line), and an entry it did not apply or a note (an entry's
#: or note's text is a `Later`: English where a str is read, the message for the reader's language)
E = table("push.bundle", {
    "not-bundle": "not a FHIR Bundle",
    "type": "Bundle.type is {type}; only transaction or batch Bundles can be pushed",
    "entries": "Bundle.entry is {type}, not a list of entries",
    "no-request": "entry {i} has no request.method / request.url",
    "method": "entry {i}: request.method {method} is not an HTTP method",
    "full-url": "entry {i}: fullUrl is not a string",
    "if-none-exist": "entry {i}: request.ifNoneExist is not a string",
    "resource": "entry {i}: resource is not a FHIR resource",
    "no-resource": "entry {i}: {method} without a resource",
    "subject-unreadable": "ResearchSubject search: the server returned a subject without a readable individual; the "
                          "no-regression rule cannot be applied, nothing was pushed",
})
N = table("push.entry", {
    "kept": "{patient} is {status} in this study (ResearchSubject/{subject}): kept as the study team set it; today's "
            "screening says {screening}",
    "unresolved-study": "{patient} has ResearchSubject/{subject} ({status}) whose study cannot be resolved, so it may be "
                        "this study's; not overwritten, no second one added",
    "no-id": "{patient} has a ResearchSubject of this study without a usable id; not pushed",
    "updating": "{patient}: updating the existing ResearchSubject/{subject} of this study instead of adding a second one",
    "provenance-kept": "every subject it described was kept as it was",
    "rolled-back": "transaction rolled back: {outcome}",
    "no-answer": "no answer to the transaction ({error}); check the server",
    "unreadable-answer": "the server's response has no readable entry for it",
    "not-created": "refers to {reference}, which was not created",
    "batch-no-answer": "batch not answered: {error}",
})

CHUNK = 50
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})


@dataclass
class EntryOutcome:
    index: int
    method: str
    url: str
    state: str  # ok | failed | skipped | unknown | dry-run
    status: str = ""
    location: str = ""
    message: str = ""

    def line(self, lang: str = "en") -> str:
        """The entry's line: its index, request and codes as written, the message in `lang`."""
        extra = f" -> {self.location}" if self.location else ""
        msg = f": {said(self.message, lang)}" if self.message else ""
        return f"entry {self.index} {self.method} {self.url}: {self.state} {self.status}{extra}{msg}".rstrip()


def said(text_: str, lang: str = "en") -> str:
    """An entry's message or a note in `lang` (a `Later` carries its message; the server's own text is as written)."""
    return render(text_.msg, lang) if isinstance(text_, Later) else text_


def _error(exc: Exception) -> str | Msg:
    """An error's message where it has one (said in the reader's language), else its English text."""
    return getattr(exc, "msg", None) or str(exc)


@dataclass(frozen=True)
class KeptSubject:
    """A subject the push left as the study team set it, with the screening result it did not write."""

    patient: str
    status: str  # the team's status on the server
    screening: str  # what today's screening says
    subject: str | None  # ResearchSubject id on the server


@dataclass
class PushReport:
    mode: str  # transaction | batch | dry-run
    outcomes: list[EntryOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: subjects kept in the team's status, per patient (a consented patient now ineligible is a finding)
    kept: list[KeptSubject] = field(default_factory=list)

    @property
    def failed(self) -> list[EntryOutcome]:
        return [o for o in self.outcomes if o.state in ("failed", "unknown")]

    @property
    def ok(self) -> bool:
        return not self.failed


def _entry_key(e: dict) -> tuple[str, str]:
    req = child(e, "request")
    return (text(req.get("method")) or "").upper(), text(req.get("url")) or ""


def _resource(e: object) -> dict[str, Any]:
    return child(e, "resource")


def _rtype(e: object) -> str | None:
    return text(_resource(e).get("resourceType"))


def is_idempotent(entry: dict) -> bool:
    """PUT/DELETE to an id or a condition, conditional create, GET: the same result if sent twice."""
    method, _url = _entry_key(entry)
    if method in ("PUT", "DELETE", "GET", "HEAD"):
        return True
    return method == "POST" and bool(child_text(child(entry, "request"), "ifNoneExist"))


def check_bundle(bundle: Any) -> list[dict]:
    """The entries of a Bundle that can be pushed; a UsageError naming the first entry that cannot."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise UsageError(E["not-bundle"]())
    if bundle.get("type") not in ("transaction", "batch"):
        raise UsageError(E["type"](type=clean(repr(bundle.get('type')), 60)))
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise UsageError(E["entries"](type=type(entries).__name__))
    for i, e in enumerate(entries):
        req = child(e, "request")
        method, url = text(req.get("method")), text(req.get("url"))
        if not isinstance(e, dict) or not method or not url:
            raise UsageError(E["no-request"](i=i))
        if method.upper() not in METHODS:
            raise UsageError(E["method"](i=i, method=repr(clean(method, 20))))
        if "fullUrl" in e and not isinstance(e["fullUrl"], str):
            raise UsageError(E["full-url"](i=i))
        if "ifNoneExist" in req and not isinstance(req["ifNoneExist"], str):
            raise UsageError(E["if-none-exist"](i=i))
        res = e.get("resource")
        if res is not None and not (isinstance(res, dict) and isinstance(res.get("resourceType"), str)):
            raise UsageError(E["resource"](i=i))
        if method.upper() in ("POST", "PUT") and res is None:
            raise UsageError(E["no-resource"](i=i, method=method.upper()))
    return entries


def _status(value: object) -> tuple[str, str]:
    """(code, shown) of a server's `response.status`: the code and its standard phrase, nothing else
    the server wrote (it is free text)."""
    raw = text(value) or ""
    code = raw.split(" ")[0] if raw else ""
    if len(code) == 3 and code.isascii() and code.isdigit():
        try:
            return code, f"{code} {HTTPStatus(int(code)).phrase}"
        except ValueError:
            return code, code
    return code, clean(code, 12)


class FhirServerSink:
    """Sends Bundles to one server through a FhirClient."""

    def __init__(self, client: FhirClient, *, study_identifier: str | None = None) -> None:
        self.client = client
        self.study_identifier = study_identifier
        self._studies: dict[str, dict | None] = {}  # ResearchStudy/id -> resource (None: unreadable)
        #: the search for our study by identifier found it on the server (its id there is known)
        self._ours_found = False

    # ---- server features ------------------------------------------------------------------
    def supports(self, interaction: str) -> bool:
        cs = self.client.capabilities()
        for rest in objs(items(cs.get("rest"))):
            if any(child_text(i, "code") == interaction for i in objs(items(rest.get("interaction")))):
                return True
        return False

    # ---- no-regression --------------------------------------------------------------------
    def current_subjects(self, entries: list[dict]) -> dict[str, list[dict]]:
        """Current ResearchSubjects on the server for the patients of the Bundle's subjects, by patient.

        A subject is filed under the patient it references (not the one searched for), so a
        server that ignores `individual=` cannot attach another patient's subject.
        """
        patients: dict[str, None] = {}
        ids: dict[str, None] = {}
        for e in entries:
            res = _resource(e)
            if res.get("resourceType") == "ResearchSubject":
                ref = child_text(child(res, "individual"), "reference")
                if ref and ref.startswith("Patient/") and fhir_id(ref.split("/", 1)[1]):
                    patients[ref] = None
                    # a server that does not normalise references finds a subject stored with the
                    # absolute URL only under that URL
                    patients[f"{self.client.base.rstrip('/')}/{ref}"] = None
                if fhir_id(res.get("id")):
                    ids[res["id"]] = None
        by_patient: dict[str, list[dict]] = {}
        seen: set[str] = set()

        def add(res: dict) -> None:
            rid = fhir_id(res.get("id"))
            if rid is not None:
                if rid in seen:
                    return
                seen.add(rid)
            ref = child_text(child(res, "individual"), "reference")
            if not ref:  # whose it is cannot be told: it may be an enrolled patient's
                raise ServerError(E["subject-unreadable"]())
            by_patient.setdefault("/".join(ref.split("/")[-2:]), []).append(res)

        plist, ilist = list(patients), list(ids)
        for i in range(0, len(plist), CHUNK):
            for res in self.client.search("ResearchSubject", [("individual", ",".join(plist[i:i + CHUNK])),
                                                              ("_count", "500")]):
                add(res)
        for i in range(0, len(ilist), CHUNK):
            for res in self.client.search("ResearchSubject", [("_id", ",".join(ilist[i:i + CHUNK])), ("_count", "500")]):
                add(res)
        return by_patient

    def _study_idents(self, entries: list[dict]) -> set[tuple[str, str]]:
        out = set()
        for e in entries:
            res = _resource(e)
            if res.get("resourceType") == "ResearchStudy":
                for i in objs(items(res.get("identifier"))):
                    system, value = text(i.get("system")) or "", text(i.get("value"))
                    if value:
                        out.add((system, value))
        return out

    def _study_refs(self, entries: list[dict], idents: set[tuple[str, str]]) -> set[str]:
        """References under which this Bundle's study may already be known on the server.

        Studies found by the conditional-create query count only if they carry the identifier
        (a server that ignores `identifier=` answers with every study).
        """
        refs: set[str] = set()
        for e in entries:
            res = _resource(e)
            if res.get("resourceType") != "ResearchStudy":
                continue
            if isinstance(e.get("fullUrl"), str):
                refs.add(e["fullUrl"])
            if fhir_id(res.get("id")):
                refs.add(f"ResearchStudy/{res['id']}")
            query = child_text(child(e, "request"), "ifNoneExist")
            if query:
                try:
                    for found in self.client.search("ResearchStudy", _query_pairs(query)):
                        if fhir_id(found.get("id")) and _carries(found, idents):
                            refs.add(f"ResearchStudy/{found['id']}")
                            self._studies[f"ResearchStudy/{found['id']}"] = found
                            self._ours_found = True
                except HttpStatusError:
                    pass
        return refs

    def _same_study(self, cur: dict, refs: set[str], idents: set[tuple[str, str]]) -> bool | None:
        """Whether a current subject belongs to this study: True, False, or None when it cannot be told
        (also whenever the Bundle names no readable study identifier to compare with)."""
        study = child(cur, "study")
        if not idents:
            ref = child_text(study, "reference")
            return True if ref and (ref in refs or "/".join(ref.rstrip("/").split("/")[-2:]) in refs) else None
        ident = child(study, "identifier")
        value = text(ident.get("value"))
        if value:
            return _carries({"identifier": [ident]}, idents)
        ref = child_text(study, "reference")
        if not ref:
            return None
        if ref in refs or "/".join(ref.rstrip("/").split("/")[-2:]) in refs:
            return True
        parts = ref.split("/_history")[0].rstrip("/").split("/")
        local = ref.startswith("ResearchStudy/") or ref.startswith(self.client.base + "/ResearchStudy/")
        if not local or len(parts) < 2 or parts[-2] != "ResearchStudy" or not fhir_id(parts[-1]):
            return None  # a contained, urn: or foreign-server study: not readable here
        key = f"ResearchStudy/{parts[-1]}"
        if key not in self._studies:
            try:
                got = self.client.get(key)
            except HttpStatusError:
                got = None
            self._studies[key] = got if isinstance(got, dict) and got.get("resourceType") == "ResearchStudy" else None
        found = self._studies[key]
        if found is None:
            # a study that cannot be read: another study's when ours is known on this server under another
            # id; otherwise it may be ours (a server whose identifier search is broken)
            return False if self._ours_found else None
        return _carries(found, idents)

    def protect(self, entries: list[dict], report: PushReport, index: dict[int, int] | None = None) -> list[dict]:
        """Apply the enrolment module's push policy (enrolment/policy.py) to every screening subject.

        This method reads the server (current subjects, which study they belong to) and applies the
        decisions; what is allowed is decided in one place, `enrolment.decide`. A subject kept because
        the study team has it is reported per patient with the screening result beside it.
        """
        index = index if index is not None else {id(e): i for i, e in enumerate(entries)}
        subjects = [e for e in entries if _rtype(e) == "ResearchSubject"]
        if not subjects:
            return entries
        current = self.current_subjects(entries)
        idents = self._study_idents(entries)
        refs = self._study_refs(entries, idents)
        dropped: dict[int, str] = {}
        replaced: dict[int, dict] = {}
        for e in subjects:
            res = _resource(e)
            patient = child_text(child(res, "individual"), "reference") or ""
            status = res.get("status")
            existing = [Existing(fhir_id(c.get("id")), c.get("status"),
                                 True if fhir_id(c.get("id")) and c.get("id") == res.get("id")
                                 else self._same_study(c, refs, idents))
                        for c in current.get(patient, [])]
            decision = decide(status if isinstance(status, str) else "", text(res.get("id")) or "", existing)
            shown_status = clean(decision.current, 40)
            if decision.verdict is Verdict.KEEP:
                dropped[id(e)] = later(N["kept"](patient=patient, status=shown_status,
                                                 subject=clean(decision.target, 64), screening=clean(status, 40)))
                report.kept.append(KeptSubject(patient, str(decision.current), str(status), decision.target))
            elif decision.verdict is Verdict.BLOCK:
                dropped[id(e)] = later(N["unresolved-study"](patient=patient, subject=clean(decision.target, 64),
                                                             status=shown_status)
                                       if decision.target else N["no-id"](patient=patient))
            elif decision.verdict is Verdict.UPDATE:
                target = next(c for c in current.get(patient, []) if c.get("id") == decision.target)
                merged = {**target, **res, "id": target["id"]}
                merged.pop("meta", None)
                if "meta" in res:
                    merged["meta"] = res["meta"]
                replaced[id(e)] = {**e, "resource": merged,
                                   "request": {**child(e, "request"), "url": f"ResearchSubject/{target['id']}"}}
                report.notes.append(later(N["updating"](patient=patient, subject=str(target["id"]))))
        if not dropped and not replaced:
            return entries
        gone_urls = set()
        kept = []
        for e in entries:
            if id(e) in dropped:
                method, url = _entry_key(e)
                report.outcomes.append(EntryOutcome(index[id(e)], method, url, "skipped", message=dropped[id(e)]))
                report.notes.append(dropped[id(e)])
                if isinstance(e.get("fullUrl"), str):
                    gone_urls.add(e["fullUrl"])
                continue
            if id(e) in replaced:
                new = replaced[id(e)]
                index[id(new)] = index[id(e)]
                e = new
            kept.append(e)
        out = []
        for e in kept:
            res = _resource(e)
            if res.get("resourceType") == "Provenance" and gone_urls:
                res = copy.deepcopy(res)
                res["target"] = [t for t in items(res.get("target")) if child_text(t, "reference") not in gone_urls]
                if not res["target"]:
                    method, url = _entry_key(e)
                    report.outcomes.append(EntryOutcome(index[id(e)], method, url, "skipped",
                                                        message=later(N["provenance-kept"]())))
                    continue
                new = {**e, "resource": res}
                index[id(new)] = index[id(e)]
                e = new
            out.append(e)
        return out

    # ---- sending --------------------------------------------------------------------------
    def push(self, bundle: dict, *, dry_run: bool = False, protect: bool = True) -> PushReport:
        entries = check_bundle(bundle)
        index = {id(e): i for i, e in enumerate(entries)}
        report = PushReport("dry-run" if dry_run else "")
        if protect:
            entries = self.protect(entries, report, index)
        if dry_run:
            for e in entries:
                m, u = _entry_key(e)
                report.outcomes.append(EntryOutcome(index.get(id(e), -1), m, u, "dry-run"))
            report.outcomes.sort(key=lambda o: o.index)
            return report
        if bundle.get("type") == "transaction" and self.supports("transaction"):
            report.mode = "transaction"
            self._transaction(bundle, entries, index, report)
        else:
            report.mode = "batch"
            self._batch(entries, index, report)
        report.outcomes.sort(key=lambda o: o.index)
        return report

    def _transaction(self, bundle: dict, entries: list[dict], index: dict[int, int], report: PushReport) -> None:
        body = {**bundle, "type": "transaction", "entry": entries}
        safe = all(is_idempotent(e) for e in entries)
        try:
            resp = self.client.json("POST", "", json=body, idempotent=safe)
        except HttpStatusError as exc:
            msg = outcome_text(exc.body) or str(exc)
            for e in entries:
                m, u = _entry_key(e)
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "failed", _status(str(exc.status))[1],
                                                    message=later(N["rolled-back"](outcome=msg))))
            return
        except ServerError as exc:
            for e in entries:
                m, u = _entry_key(e)
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "unknown",
                                                    message=later(N["no-answer"](error=_error(exc)))))
            return
        self._read_response(entries, index, resp, report)

    def _read_response(self, sent: list[dict], index: dict[int, int], resp: Any, report: PushReport) -> list[dict]:
        """Record outcomes; return the entries that failed in a way worth retrying.

        Called after the server applied (some of) the Bundle: nothing in its answer may stop the
        per-entry report. An entry without a readable answer is "unknown".
        """
        answers = items(resp.get("entry")) if isinstance(resp, dict) else []
        retry = []
        for k, e in enumerate(sent):
            m, u = _entry_key(e)
            ans = answers[k] if k < len(answers) and isinstance(answers[k], dict) else None
            r = child(ans, "response")
            code, shown = _status(r.get("status"))
            if ans is None or not code:
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "unknown",
                                                    message=later(N["unreadable-answer"]())))
                continue
            if code.startswith("2"):
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "ok", shown, clean(text(r.get("location")) or "", 200)))
            else:
                msg = outcome_text(r.get("outcome")) or outcome_text(ans.get("resource"))
                if code in ("408", "429", "500", "502", "503", "504") and is_idempotent(e):
                    retry.append(e)
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "failed", shown, message=msg))
        return retry

    def _batch(self, entries: list[dict], index: dict[int, int], report: PushReport, rounds: int = 3) -> None:
        referenced = _referenced_urls(entries)
        mapping: dict[str, str] = {}
        first = [e for e in entries if text(e.get("fullUrl")) in referenced and _entry_key(e)[0] == "POST"]
        first_ids = {id(e) for e in first}
        for e in entries:
            m, u = _entry_key(e)
            if e.get("fullUrl") and m == "PUT" and "?" not in u:
                mapping[e["fullUrl"]] = u
        for e in first:
            m, u = _entry_key(e)
            headers = {}
            cond = child_text(child(e, "request"), "ifNoneExist")
            if cond:
                headers["If-None-Exist"] = cond
            try:
                resp = self.client.request("POST", u, json=e["resource"], headers=headers, idempotent=is_idempotent(e))
            except HttpStatusError as exc:
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "failed", _status(str(exc.status))[1],
                                                    message=outcome_text(exc.body) or str(exc)))
                continue
            loc = resp.headers.get("Location") or resp.headers.get("Content-Location") or ""
            created = _json_or_none(resp)
            rid = fhir_id(created.get("id")) if isinstance(created, dict) else None
            if not rid and loc:
                rid = fhir_id(loc.split("/_history")[0].rstrip("/").split("/")[-1])
            if rid:
                mapping[e["fullUrl"]] = f"{e['resource']['resourceType']}/{rid}"
            report.outcomes.append(EntryOutcome(index[id(e)], m, u, "ok", _status(str(resp.status_code))[1],
                                                clean(loc, 200)))
        rest = []
        for e in entries:
            if id(e) in first_ids:
                continue
            res = e.get("resource")
            if isinstance(res, dict):
                res = _rewrite_refs(copy.deepcopy(res), mapping)
                unresolved = [r for r in _refs(res) if r.startswith("urn:uuid:")]
                if unresolved:
                    m, u = _entry_key(e)
                    report.outcomes.append(EntryOutcome(index[id(e)], m, u, "failed",
                                                        message=later(N["not-created"](reference=clean(unresolved[0], 80)))))
                    continue
                e2 = {k: v for k, v in e.items() if k != "fullUrl"}
                e2["resource"] = res
            else:
                e2 = dict(e)
            index[id(e2)] = index[id(e)]
            rest.append(e2)
        for attempt in range(rounds):
            if not rest:
                break
            try:
                resp = self.client.json("POST", "", json={"resourceType": "Bundle", "type": "batch", "entry": rest},
                                        idempotent=all(is_idempotent(e) for e in rest))
            except ServerError as exc:
                for e in rest:
                    m, u = _entry_key(e)
                    report.outcomes.append(EntryOutcome(index[id(e)], m, u, "unknown",
                                                        message=later(N["batch-no-answer"](error=_error(exc)))))
                return
            retry = self._read_response(rest, index, resp, report)
            if retry and attempt < rounds - 1:
                again = {index[id(e)] for e in retry}
                report.outcomes = [o for o in report.outcomes if o.index not in again]
                self.client.sleep(self.client.retry.backoff(attempt + 1))
            rest = retry if attempt < rounds - 1 else []


def _carries(study: dict, idents: set[tuple[str, str]]) -> bool:
    """True if a ResearchStudy (or a bare identifier) carries one of our identifiers. A system
    missing on either side matches: for the no-regression rule, "may be the same study" must win."""
    for i in objs(items(study.get("identifier"))):
        system, value = text(i.get("system")) or "", text(i.get("value"))
        if value and any(v == value and (not system or not s or s == system) for s, v in idents):
            return True
    return False


def _json_or_none(resp) -> Any:
    try:
        return resp.json() if resp.content else None
    except ValueError:
        return None


def _query_pairs(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query.split("?", 1)[-1], keep_blank_values=True)


def _refs(obj: Any) -> Iterable[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _refs(v)


def _referenced_urls(entries: list[dict]) -> set[str]:
    out: set[str] = set()
    for e in entries:
        out.update(r for r in _refs(e.get("resource")) if r.startswith("urn:"))
    return out


def _rewrite_refs(obj: Any, mapping: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str) and v in mapping:
                obj[k] = mapping[v]
            else:
                _rewrite_refs(v, mapping)
    elif isinstance(obj, list):
        for v in obj:
            _rewrite_refs(v, mapping)
    return obj
