"""A small in-memory FHIR R4 server for pytest-httpserver, with knobs to make it lack features or lie.

It answers what fhir3t sends: metadata (built from the knobs), searches (`_id`, `_count`, `_offset`,
tokens `code` / `code:below` / `identifier` / `status`, references `patient` / `subject` /
`individual` / `study`; unknown parameters are ignored, as R4 servers' default lenient handling
does), reads, deletes, `Patient/[id]/$everything`, transaction and batch Bundles (PUT, POST with
`ifNoneExist`, GET searches), `POST [type]` with If-None-Exist, and a Bulk `$export` kick-off with a
status URL. The lies: `ignore` (parameters treated as unknown), `reject` (400), `everything_drops`
(types left out of $everything), `conditional_create = False` (ifNoneExist ignored),
`transaction = False`, `forbidden` (403 on a type), `status_url` (Content-Location elsewhere), `delete_allowed = False`.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FHIR_JSON = "application/fhir+json"
REF_ELEMENTS = {"patient": ("subject", "patient", "individual"), "subject": ("subject",),
                "individual": ("individual",), "study": ("study",)}
SHARED = ("Medication", "ResearchStudy")
DM = {"system": "http://snomed.info/sct", "code": "396230008"}  # dermatomyositis: in the study's anchor value set


def _json(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type=FHIR_JSON)


def _outcome(status: int, text: str) -> Response:
    return _json({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                                 "diagnostics": text}]}, status)


def _ref_key(value: object) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    return "/".join(ref.rstrip("/").split("/")[-2:]) if isinstance(ref, str) else None


def _tokens(value: str) -> list[tuple[str, str]]:
    out = []
    for part in re.split(r"(?<!\\),", value):
        system, _, code = part.rpartition("|") if "|" in part else ("", "", part)
        out.append((system.replace("\\|", "|"), code.replace("\\|", "|")))
    return out


class FakeFhir:
    def __init__(self, server: HTTPServer, base: str = "/fhir") -> None:
        self.server = server
        self.base = base
        self.store: dict[str, dict[str, dict]] = {}
        self.ignore: set[tuple[str, str]] = set()
        self.reject: set[tuple[str, str]] = set()
        self.everything_drops: set[str] = set()
        self.undeclared: set[str] = set()
        self.everything = True
        self.transaction = True
        self.batch = True
        self.conditional_create = True
        self.export = True
        self.status_url: str | None = None
        self.delete_allowed = True
        self.fhir_version = "4.0.1"
        self.software = "fake-fhir"
        self.code_ignores_system = False
        self.forbidden: set[str] = set()  # types the credentials may not search (403)
        self.log: list[tuple[str, str]] = []
        self.bodies: list[dict] = []
        server.expect_request(re.compile(f"^{re.escape(base)}(/.*)?$")).respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for(self.base)

    # ---- data ---------------------------------------------------------------------------------
    def add(self, *resources: dict) -> FakeFhir:
        for r in resources:
            self.store.setdefault(r["resourceType"], {})[r["id"]] = r
        return self

    def all(self, rtype: str) -> list[dict]:
        return [self.store[rtype][k] for k in sorted(self.store.get(rtype, {}))]

    def patient_of(self, res: dict) -> str | None:
        for element in ("subject", "patient", "individual"):
            key = _ref_key(res.get(element))
            if key and key.startswith("Patient/"):
                return key.split("/", 1)[1]
        return None

    # ---- metadata ------------------------------------------------------------------------------
    def capability(self) -> dict:
        types = sorted({*self.store, "Patient", "Condition", "Observation", "ResearchStudy", "ResearchSubject",
                        "Medication", "MedicationStatement", "MedicationRequest", "MedicationAdministration",
                        "MedicationDispense", "AllergyIntolerance", "AdverseEvent", "Consent", "DiagnosticReport",
                        "Immunization", "ImmunizationRecommendation", "QuestionnaireResponse"} - self.undeclared)
        resources = []
        for t in types:
            r: dict[str, Any] = {"type": t, "conditionalCreate": self.conditional_create,
                                 "searchParam": [{"name": n, "type": "token"} for n in
                                                 ("_id", "code", "identifier", "status", "patient", "subject",
                                                  "individual", "study")]}  # ignored ones too: it lies
            ops = []
            if t == "Patient" and self.everything:
                ops.append({"name": "everything"})
            if t == "Patient" and self.export:
                ops.append({"name": "export"})
            if ops:
                r["operation"] = ops
            resources.append(r)
        interactions = [{"code": c} for c, on in (("transaction", self.transaction), ("batch", self.batch)) if on]
        return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                "fhirVersion": self.fhir_version, "software": {"name": self.software},
                "rest": [{"mode": "server", "resource": resources, "interaction": interactions}]}

    # ---- search --------------------------------------------------------------------------------
    def matches(self, rtype: str, res: dict, params: list[tuple[str, str]]) -> bool:
        for name, value in params:
            if (name.startswith("_") and name != "_id") or (rtype, name) in self.ignore:
                continue
            if name == "_id":
                if res.get("id") not in value.split(","):
                    return False
            elif name in ("code", "code:below"):
                codings = [(c.get("system", ""), c.get("code", "")) for c in (res.get("code") or {}).get("coding", [])]
                wanted = _tokens(value)
                below = name.endswith(":below")
                loose = self.code_ignores_system
                if not any((s == ws or not ws or loose) and (c.startswith(wc) if below else c == wc) for s, c in codings
                           for ws, wc in wanted):
                    return False
            elif name == "identifier":
                idents = [(i.get("system", ""), i.get("value", "")) for i in res.get("identifier", [])]
                if not any((s == ws or not ws) and v == wv for s, v in idents for ws, wv in _tokens(value)):
                    return False
            elif name == "status":
                if res.get("status") not in value.split(","):
                    return False
            elif name in REF_ELEMENTS:
                keys = {_ref_key(res.get(e)) for e in REF_ELEMENTS[name]}
                wanted_refs = {v if "/" in v else f"Patient/{v}" for v in value.split(",")}
                if not keys & wanted_refs:
                    return False
        return True

    def search(self, rtype: str, params: list[tuple[str, str]]) -> Response:
        for name, _ in params:
            if (rtype, name.split(":")[0]) in self.reject or (rtype, name) in self.reject:
                return _outcome(400, f"unknown search parameter {name}")
        hits = [r for r in self.all(rtype) if self.matches(rtype, r, params)]
        count = int(dict(params).get("_count", "20"))
        offset = int(dict(params).get("_offset", "0"))
        page = hits[offset:offset + count]
        links = []
        if offset + count < len(hits):
            rest = [(k, v) for k, v in params if k != "_offset"] + [("_offset", str(offset + count))]
            links.append({"relation": "next", "url": f"{self.url}/{rtype}?{urlencode(rest)}"})
        return _json(self.searchset(page, links, total=len(hits)))

    def searchset(self, resources: list[dict], links: list | None = None, total: int | None = None) -> dict:
        return {"resourceType": "Bundle", "type": "searchset", "total": len(resources) if total is None else total,
                "link": links or [], "entry": [{"fullUrl": f"{self.url}/{r['resourceType']}/{r['id']}", "resource": r,
                                                "search": {"mode": "match"}} for r in resources]}

    def everything_of(self, pid: str, types: set[str] | None) -> Response:
        patient = self.store.get("Patient", {}).get(pid)
        if patient is None:
            return _outcome(404, "no such patient")
        out = [patient]
        for rtype in sorted(self.store):
            if rtype in SHARED or rtype == "Patient":
                continue
            out += [r for r in self.all(rtype) if self.patient_of(r) == pid]
        for r in list(out):
            for element in ("medicationReference", "study"):
                key = _ref_key(r.get(element))
                if key and key.split("/")[0] in SHARED:
                    t, i = key.split("/")
                    if i in self.store.get(t, {}):
                        out.append(self.store[t][i])
        out = [r for r in out if r["resourceType"] not in self.everything_drops
               and (types is None or r["resourceType"] in types)]
        return _json(self.searchset(list({(r["resourceType"], r["id"]): r for r in out}.values())))

    # ---- writes --------------------------------------------------------------------------------
    def create(self, rtype: str, res: dict, if_none_exist: str | None) -> tuple[int, dict]:
        if if_none_exist and self.conditional_create:
            found = [r for r in self.all(rtype) if self.matches(rtype, r, parse_qsl(if_none_exist.split("?")[-1]))]
            if len(found) == 1:
                return 200, found[0]
            if len(found) > 1:
                return 412, {}
        res = {**res, "id": uuid.uuid4().hex[:16]}
        self.add(res)
        return 201, res

    def bundle(self, body: dict) -> Response:
        kind = body.get("type")
        if (kind == "transaction" and not self.transaction) or (kind == "batch" and not self.batch):
            return _outcome(400, f"{kind} not supported")
        out = []
        for e in body.get("entry", []):
            req = e.get("request", {})
            method, url = req.get("method"), req.get("url", "")
            if method == "POST":
                status, res = self.create(url, e["resource"], req.get("ifNoneExist"))
                loc = f"{res.get('resourceType', url)}/{res.get('id', '')}/_history/1" if res else ""
                out.append({"response": {"status": f"{status} {'OK' if status == 200 else 'Created'}", "location": loc}})
            elif method == "PUT":
                self.add(e["resource"])
                out.append({"response": {"status": "200 OK", "location": f"{url}/_history/1"}})
            elif method == "GET" and "?" not in url and url.count("/") == 1:
                rtype, rid = url.split("/")
                res = self.store.get(rtype, {}).get(rid)
                out.append({"resource": res, "response": {"status": "200 OK"}} if res else
                           {"response": {"status": "404 Not Found"}})
            elif method == "GET":
                rtype, _, query = url.partition("?")
                resp = self.search(rtype, parse_qsl(query))
                out.append({"resource": json.loads(resp.get_data()), "response": {"status": "200 OK"}})
            else:
                out.append({"response": {"status": "400 Bad Request"}})
        return _json({"resourceType": "Bundle", "type": f"{kind}-response", "entry": out})

    # ---- dispatch ------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        path = request.path[len(self.base):].strip("/")
        params = parse_qsl(request.query_string.decode(), keep_blank_values=True)
        self.log.append((request.method, unquote(request.full_path).rstrip("?")))
        parts = path.split("/") if path else []
        if path == "metadata":
            return _json(self.capability())
        if not parts:
            if request.method == "POST":
                self.bodies.append(json.loads(request.get_data()))
                return self.bundle(self.bodies[-1])
            return _outcome(400, "nothing here")
        if parts[0] == "export-status":
            if request.method == "DELETE":
                return Response(status=202)
            return Response(status=202, headers={"X-Progress": "in progress", "Retry-After": "1"})
        if path == "Patient/$export":
            if not self.export:
                return _outcome(404, "no export")
            return Response(status=202, headers={"Content-Location": self.status_url or f"{self.url}/export-status/1"})
        if len(parts) == 3 and parts[0] == "Patient" and parts[2] == "$everything":
            if not self.everything:
                return _outcome(404, "no $everything")
            types = dict(params).get("_type")
            return self.everything_of(parts[1], set(types.split(",")) if types else None)
        if parts[0] in self.forbidden:
            return _outcome(403, "insufficient scope")
        if len(parts) == 1:
            if request.method == "POST":
                status, res = self.create(parts[0], json.loads(request.get_data()), request.headers.get("If-None-Exist"))
                return _json(res, status, Location=f"{self.url}/{parts[0]}/{res.get('id')}/_history/1")
            return self.search(parts[0], params)
        if len(parts) == 2:
            res = self.store.get(parts[0], {}).get(parts[1])
            if request.method == "DELETE":
                if not self.delete_allowed:
                    return _outcome(405, "delete not allowed")
                self.store.get(parts[0], {}).pop(parts[1], None)
                return Response(status=204)
            return _json(res) if res is not None else _outcome(404, "not found")
        return _outcome(400, "not understood")


@contextmanager
def loopback_server() -> Iterator[HTTPServer]:
    """A started pytest-httpserver on 127.0.0.1 (a free port), stopped at the end."""
    s = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def study(rid: str = "rs-ours", value: str = "NCT06438679", system: str = "http://clinicaltrials.gov") -> dict:
    return {"resourceType": "ResearchStudy", "id": rid, "status": "active", "identifier": [{"system": system, "value": value}]}


def record(pid: str, *, dm: bool = True) -> list[dict]:
    """A patient with one resource of most types the criteria read (ids `<type>-<pid>`)."""
    subject = {"reference": f"Patient/{pid}"}
    out: list[dict] = [{"resourceType": "Patient", "id": pid, "birthDate": "1980-01-01", "gender": "female"}]
    if dm:
        out.append({"resourceType": "Condition", "id": f"cond-{pid}", "subject": subject, "code": {"coding": [DM]},
                    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                   "code": "active"}]}})
    out += [
        {"resourceType": "Observation", "id": f"obs-{pid}", "status": "final", "subject": subject,
         "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]}, "effectiveDateTime": "2026-01-01"},
        {"resourceType": "Consent", "id": f"consent-{pid}", "status": "active", "patient": subject},
        {"resourceType": "QuestionnaireResponse", "id": f"qr-{pid}", "status": "completed", "subject": subject},
        {"resourceType": "Immunization", "id": f"imm-{pid}", "status": "completed", "patient": subject,
         "vaccineCode": {"text": "influenza"}, "occurrenceDateTime": "2020-01-01"},
        {"resourceType": "ImmunizationRecommendation", "id": f"ir-{pid}", "patient": subject, "date": "2026-01-01",
         "recommendation": [{"vaccineCode": [{"text": "x"}], "forecastStatus": {"text": "due"}}]},
        {"resourceType": "MedicationStatement", "id": f"ms-{pid}", "status": "active", "subject": subject,
         "medicationReference": {"reference": "Medication/med-1"}},
        {"resourceType": "ResearchSubject", "id": f"rsub-{pid}", "status": "candidate", "individual": subject,
         "study": {"reference": "ResearchStudy/rs-ours"}},
    ]
    return out


def populated(server: HTTPServer) -> FakeFhir:
    """Two candidates with a full record each, a patient without the diagnosis, the study and a drug."""
    fake = FakeFhir(server)
    fake.add(*record("p1"), *record("p2"), *record("p3", dm=False), study(),
             {"resourceType": "Medication", "id": "med-1", "code": {"text": "tacrolimus"}})
    return fake
