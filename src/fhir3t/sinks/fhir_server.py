"""Push a transaction Bundle to a FHIR server and say what happened to every entry.

- Transaction when the server declares one, else a batch: entries a later entry refers to by
  `urn:uuid:` (the conditional-create ResearchStudy) are sent first on their own, references are
  rewritten to the ids the server gave, then the rest goes in one batch.
- Only what is safe is retried: a transaction made of idempotent entries (PUT to an id,
  conditional create/update) may be sent again after a lost answer; in a batch, entries that failed
  with 408/429/5xx are re-sent if idempotent. Nothing is dropped silently: every entry ends in the
  report as ok, failed (with the server's message), skipped by a rule, or unknown.
- No regression: current ResearchSubjects are read first; one whose status is on-study*,
  follow-up, off-study or withdrawn is never overwritten with a screening status.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fhir3t.errors import ServerError, UsageError
from fhir3t.transport.http import FhirClient, HttpStatusError, outcome_text

log = logging.getLogger("fhir3t.push")

#: Statuses that mean "the study team has taken over": a screening run must not replace them.
PROTECTED = frozenset({"on-study", "on-study-intervention", "on-study-observation", "follow-up",
                       "off-study", "withdrawn"})
#: What a screening run writes (fhir3t statuses and R4 pre-enrolment ones).
SCREENING = frozenset({"candidate", "eligible", "ineligible", "not-registered", "screening",
                       "pending-on-study"})
CHUNK = 50


@dataclass
class EntryOutcome:
    index: int
    method: str
    url: str
    state: str  # ok | failed | skipped | unknown | dry-run
    status: str = ""
    location: str = ""
    message: str = ""

    def line(self) -> str:
        extra = f" -> {self.location}" if self.location else ""
        msg = f": {self.message}" if self.message else ""
        return f"entry {self.index} {self.method} {self.url}: {self.state} {self.status}{extra}{msg}".rstrip()


@dataclass
class PushReport:
    mode: str  # transaction | batch | dry-run
    outcomes: list[EntryOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[EntryOutcome]:
        return [o for o in self.outcomes if o.state in ("failed", "unknown")]

    @property
    def ok(self) -> bool:
        return not self.failed


def _entry_key(e: dict) -> tuple[str, str]:
    req = e.get("request") or {}
    return str(req.get("method", "")).upper(), str(req.get("url", ""))


def is_idempotent(entry: dict) -> bool:
    """PUT/DELETE to an id or a condition, conditional create, GET: the same result if sent twice."""
    method, _url = _entry_key(entry)
    req = entry.get("request") or {}
    if method in ("PUT", "DELETE", "GET", "HEAD"):
        return True
    return method == "POST" and bool(req.get("ifNoneExist"))


def check_bundle(bundle: Any) -> list[dict]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise UsageError("not a FHIR Bundle")
    if bundle.get("type") not in ("transaction", "batch"):
        raise UsageError(f"Bundle.type is {bundle.get('type')!r}; only transaction or batch Bundles can be pushed")
    entries = bundle.get("entry") or []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("request"), dict) or not e["request"].get("method") \
                or not e["request"].get("url"):
            raise UsageError(f"entry {i} has no request.method / request.url")
    return entries


class FhirServerSink:
    """Sends Bundles to one server through a FhirClient."""

    def __init__(self, client: FhirClient, *, study_identifier: str | None = None) -> None:
        self.client = client
        self.study_identifier = study_identifier

    # ---- server features ------------------------------------------------------------------
    def supports(self, interaction: str) -> bool:
        cs = self.client.capabilities()
        for rest in cs.get("rest") or ():
            if any(isinstance(i, dict) and i.get("code") == interaction for i in rest.get("interaction") or ()):
                return True
        return False

    # ---- no-regression --------------------------------------------------------------------
    def current_subjects(self, entries: list[dict]) -> dict[str, list[dict]]:
        """Current ResearchSubjects on the server for the patients of the Bundle's subjects, by patient."""
        patients: dict[str, None] = {}
        ids: dict[str, None] = {}
        for e in entries:
            res = e.get("resource") or {}
            if res.get("resourceType") == "ResearchSubject":
                ref = (res.get("individual") or {}).get("reference")
                if isinstance(ref, str) and ref.startswith("Patient/"):
                    patients[ref] = None
                if isinstance(res.get("id"), str):
                    ids[res["id"]] = None
        by_patient: dict[str, list[dict]] = {}
        seen: set[str] = set()

        def add(res: dict) -> None:
            rid = res.get("id")
            if not isinstance(rid, str) or rid in seen:
                return
            seen.add(rid)
            ref = (res.get("individual") or {}).get("reference")
            if isinstance(ref, str):
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

    def _study_refs(self, entries: list[dict]) -> set[str]:
        """References under which this Bundle's study may already be known on the server."""
        refs: set[str] = set()
        for e in entries:
            res = e.get("resource") or {}
            if res.get("resourceType") != "ResearchStudy":
                continue
            if e.get("fullUrl"):
                refs.add(e["fullUrl"])
            if isinstance(res.get("id"), str):
                refs.add(f"ResearchStudy/{res['id']}")
            query = (e.get("request") or {}).get("ifNoneExist")
            if query:
                try:
                    for found in self.client.search("ResearchStudy", _query_pairs(query)):
                        refs.add(f"ResearchStudy/{found['id']}")
                except HttpStatusError:
                    pass
        return refs

    def _study_idents(self, entries: list[dict]) -> set[tuple[str, str]]:
        out = set()
        for e in entries:
            res = e.get("resource") or {}
            if res.get("resourceType") == "ResearchStudy":
                for i in res.get("identifier") or ():
                    if isinstance(i, dict):
                        out.add((i.get("system", ""), i.get("value", "")))
        return out

    def protect(self, entries: list[dict], report: PushReport, index: dict[int, int] | None = None) -> list[dict]:
        """Apply the no-regression rule and keep one ResearchSubject per patient and study.

        A subject already on-study / follow-up / off-study / withdrawn is left alone (the entry is
        dropped, the Provenance no longer points at it). A subject of this study that the hospital
        created under another id is updated in place (its other elements, e.g. consent, are kept)
        instead of adding a second one next to it.
        """
        index = index if index is not None else {id(e): i for i, e in enumerate(entries)}
        subjects = [e for e in entries if (e.get("resource") or {}).get("resourceType") == "ResearchSubject"]
        if not subjects:
            return entries
        current = self.current_subjects(entries)
        study_refs = self._study_refs(entries)
        idents = self._study_idents(entries)

        def same_study(cur: dict) -> bool:
            study = cur.get("study") or {}
            ref = "/".join(str(study.get("reference", "")).split("/")[-2:])
            ident = study.get("identifier") or {}
            return ref in study_refs or (ident.get("system", ""), ident.get("value", "")) in idents

        dropped: dict[int, str] = {}
        replaced: dict[int, dict] = {}
        for e in subjects:
            res = e["resource"]
            patient = (res.get("individual") or {}).get("reference", "")
            mine = [c for c in current.get(patient, []) if c.get("id") == res.get("id") or same_study(c)]
            guarded = [c for c in mine if c.get("status") in PROTECTED]
            if guarded and res.get("status") in SCREENING:
                cur = guarded[0]
                dropped[id(e)] = (f"{patient} is already {cur.get('status')} (ResearchSubject/{cur.get('id')}); "
                                  f"not overwritten with {res.get('status')}")
                continue
            if mine and not any(c.get("id") == res.get("id") for c in mine):
                cur = mine[0]
                merged = {**cur, **res, "id": cur["id"]}
                merged.pop("meta", None)
                if "meta" in res:
                    merged["meta"] = res["meta"]
                replaced[id(e)] = {**e, "resource": merged,
                                   "request": {**e["request"], "url": f"ResearchSubject/{cur['id']}"}}
                report.notes.append(f"{patient}: updating the existing ResearchSubject/{cur['id']} of this study "
                                    "instead of adding a second one")
        if not dropped and not replaced:
            return entries
        gone_urls = set()
        kept = []
        for e in entries:
            if id(e) in dropped:
                method, url = _entry_key(e)
                report.outcomes.append(EntryOutcome(index[id(e)], method, url, "skipped", message=dropped[id(e)]))
                report.notes.append(dropped[id(e)])
                gone_urls.add(e.get("fullUrl"))
                continue
            if id(e) in replaced:
                new = replaced[id(e)]
                index[id(new)] = index[id(e)]
                e = new
            kept.append(e)
        out = []
        for e in kept:
            res = e.get("resource") or {}
            if res.get("resourceType") == "Provenance" and gone_urls:
                res = copy.deepcopy(res)
                res["target"] = [t for t in res.get("target") or () if t.get("reference") not in gone_urls]
                if not res["target"]:
                    method, url = _entry_key(e)
                    report.outcomes.append(EntryOutcome(index[id(e)], method, url, "skipped",
                                                        message="every subject it described was kept as it was"))
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
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "failed", str(exc.status),
                                                    message=f"transaction rolled back: {msg}"))
            return
        except ServerError as exc:
            for e in entries:
                m, u = _entry_key(e)
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "unknown",
                                                    message=f"no answer to the transaction ({exc}); check the server"))
            return
        self._read_response(entries, index, resp, report)

    def _read_response(self, sent: list[dict], index: dict[int, int], resp: Any, report: PushReport) -> list[dict]:
        """Record outcomes; return the entries that failed in a way worth retrying."""
        answers = resp.get("entry") if isinstance(resp, dict) else None
        if not isinstance(answers, list):
            answers = []
        retry = []
        for k, e in enumerate(sent):
            m, u = _entry_key(e)
            ans = answers[k] if k < len(answers) and isinstance(answers[k], dict) else None
            if ans is None:
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "unknown",
                                                    message="the server's response has no entry for it"))
                continue
            r = ans.get("response") or {}
            status = str(r.get("status", ""))
            code = status.split(" ")[0]
            if code.startswith("2"):
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "ok", status, r.get("location", "")))
            else:
                msg = outcome_text(r.get("outcome")) or outcome_text(ans.get("resource"))
                if code in ("408", "429", "500", "502", "503", "504") and is_idempotent(e):
                    retry.append(e)
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "failed", status, message=msg))
        return retry

    def _batch(self, entries: list[dict], index: dict[int, int], report: PushReport, rounds: int = 3) -> None:
        referenced = _referenced_urls(entries)
        mapping: dict[str, str] = {}
        first = [e for e in entries if e.get("fullUrl") in referenced and _entry_key(e)[0] == "POST"]
        for e in entries:
            m, u = _entry_key(e)
            if e.get("fullUrl") and m == "PUT" and "?" not in u:
                mapping[e["fullUrl"]] = u
        for e in first:
            m, u = _entry_key(e)
            headers = {}
            if (e.get("request") or {}).get("ifNoneExist"):
                headers["If-None-Exist"] = e["request"]["ifNoneExist"]
            try:
                resp = self.client.request("POST", u, json=e["resource"], headers=headers, idempotent=is_idempotent(e))
            except HttpStatusError as exc:
                report.outcomes.append(EntryOutcome(index[id(e)], m, u, "failed", str(exc.status),
                                                    message=outcome_text(exc.body) or str(exc)))
                continue
            loc = resp.headers.get("Location") or resp.headers.get("Content-Location") or ""
            created = _json_or_none(resp)
            rid = created.get("id") if isinstance(created, dict) else None
            if not rid and loc:
                parts = loc.split("/_history")[0].rstrip("/").split("/")
                rid = parts[-1]
            if rid:
                mapping[e["fullUrl"]] = f"{e['resource']['resourceType']}/{rid}"
            report.outcomes.append(EntryOutcome(index[id(e)], m, u, "ok", str(resp.status_code), loc))
        rest = []
        for e in entries:
            if e in first:
                continue
            res = e.get("resource")
            if isinstance(res, dict):
                res = _rewrite_refs(copy.deepcopy(res), mapping)
                unresolved = [r for r in _refs(res) if r.startswith("urn:uuid:")]
                if unresolved:
                    m, u = _entry_key(e)
                    report.outcomes.append(EntryOutcome(index[id(e)], m, u, "failed",
                                                        message=f"refers to {unresolved[0]}, which was not created"))
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
                    report.outcomes.append(EntryOutcome(index[id(e)], m, u, "unknown", message=f"batch not answered: {exc}"))
                return
            retry = self._read_response(rest, index, resp, report)
            if retry and attempt < rounds - 1:
                again = {index[id(e)] for e in retry}
                report.outcomes = [o for o in report.outcomes if o.index not in again]
                self.client.sleep(self.client.retry.backoff(attempt + 1))
            rest = retry if attempt < rounds - 1 else []


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
