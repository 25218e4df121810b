"""Bounded fuzz tests: hostile server answers and push input, one corrupted value at a time.

Each example corrupts one answer of a scripted server on 127.0.0.1 (pytest-httpserver) or the
Bundle given to push, then runs the real code. Asserted: no internal error (only fhir3t's own
errors, with their exit codes), no hang (every request has a deadline), and when the corrupted
answer concerns one patient, the other patients are still screened with their usual result.

The CI run is small and deterministic (derandomized, FHIR3T_FUZZ_CI examples, default 40 per
test); `python -m pytest -m fuzz` runs the same properties on FHIR3T_FUZZ_EXAMPLES random
examples each (default 2000).
"""
from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from fhir3t.dates import parse_day
from fhir3t.errors import EXIT_INTERNAL, Fhir3tError, Problems, UsageError
from fhir3t.pipeline import Run, screen_records
from fhir3t.sinks import FhirServerSink
from fhir3t.sources.bulk import BulkExporter
from fhir3t.sources.grouping import SharedIndex
from fhir3t.sources.rest import RestSource
from fhir3t.transport.http import FhirClient, RetryPolicy
from fuzz_json import answer, mutated

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "screening"
AS_OF = parse_day("2026-11-16")
COMMON = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}
CI = settings(max_examples=int(os.environ.get("FHIR3T_FUZZ_CI", "40")), derandomize=True, **COMMON)
LONG = settings(max_examples=int(os.environ.get("FHIR3T_FUZZ_EXAMPLES", "2000")), **COMMON)


def sample(name: str, pid: str) -> list[dict]:
    text = (SAMPLES / name).read_text()
    old = next(e["resource"]["id"] for e in json.loads(text)["entry"] if e["resource"]["resourceType"] == "Patient")
    return [e["resource"] for e in json.loads(text.replace(old, pid))["entry"]]


def searchset(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}


CAP = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": [{"mode": "server", "interaction": [
    {"code": "transaction"}, {"code": "batch"}], "resource": [
    {"type": "Patient", "operation": [{"name": "everything"}], "searchParam": [{"name": "_id"}]},
    {"type": "Condition", "searchParam": [{"name": "patient"}, {"name": "code"}]}]}]}
GOOD = {"good1": "01-eligible-classic.json", "good2": "01-eligible-classic.json"}
VICTIM = sample("01-eligible-classic.json", "victim")


class Script:
    """What the server answers: path -> (status, body, headers); anything else is a 404."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, dict]] = {}

    def set(self, path: str, body: object, status: int = 200, headers: dict | None = None) -> None:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        self.routes[path] = (status, raw, headers or {})

    def __call__(self, request: Request) -> Response:
        status, body, headers = self.routes.get(request.path, (404, b"", {}))
        return Response(body, status=status, headers=headers, content_type="application/fhir+json")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[HTTPServer, Script]]:
    s = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    s.start()
    script = Script()
    s.expect_request(re.compile(".*")).respond_with_handler(script)
    yield s, script
    s.stop()


def client(srv: HTTPServer) -> FhirClient:
    # the deadline bounds every request (no hang); generous, since the machine running the suite may be busy
    return FhirClient(srv.url_for("/fhir"), parallel=2, sleep=lambda s: None, timeout=30,
                      retry=RetryPolicy(attempts=2, rng=lambda: 0.0))


def reset(script: Script, cap: object = CAP) -> None:
    script.routes.clear()
    script.set("/fhir/metadata", cap)
    for pid, name in GOOD.items():
        script.set(f"/fhir/Patient/{pid}/$everything", searchset(sample(name, pid)))
    script.set("/fhir/Patient/victim/$everything", searchset(VICTIM))


def pull(srv: HTTPServer, definition, **kw) -> tuple[dict[str, str], Problems]:
    problems = Problems()
    shared = SharedIndex()
    src = RestSource(client(srv), definition.tx, sorted(definition.screener.types), problems, shared,
                     patients=["good1", "victim", "good2"], **kw)
    run = Run.start(definition, as_of=AS_OF, problems=problems)  # the run reports patients it could not screen
    return {r.patient: r.status for r in screen_records(definition, run, src, shared)}, problems


# ---- one patient's answer corrupted: the others are screened as usual --------------------------------
STATUS = st.sampled_from([200, 200, 200, 200, 400, 404, 410, 422, 500, 503, 302])
HEADERS = st.sampled_from([{}, {"Retry-After": "²"}, {"Retry-After": "0"}, {"Content-Type": "text/html"},
                           {"Location": "http://127.0.0.1:9/x"}, {"Content-Encoding": "gzip"}])


def check_one_patient(server, definition, body: bytes, status: int, headers: dict) -> None:
    srv, script = server
    reset(script)
    script.set("/fhir/Patient/victim/$everything", body, status, headers)
    got, problems = pull(srv, definition)
    assert got.get("Patient/good1") == "eligible" and got.get("Patient/good2") == "eligible", (got, [str(p) for p in problems])
    if "Patient/victim" not in got:
        assert any("Patient/victim" in str(p) for p in problems), ([str(p) for p in problems], status, headers, body[:800])
    assert not any("internal error" in str(p) for p in problems)


@CI
@given(body=answer(searchset(VICTIM)), status=STATUS, headers=HEADERS)
def test_fuzz_one_patients_everything_answer(server, definition, body, status, headers):
    check_one_patient(server, definition, body, status, headers)


@pytest.mark.fuzz
@LONG
@given(body=answer(searchset(VICTIM)), status=STATUS, headers=HEADERS)
def test_fuzz_long_one_patients_everything_answer(server, definition, body, status, headers):
    check_one_patient(server, definition, body, status, headers)


# ---- the CapabilityStatement or the candidate search corrupted: a clean error or a clean run -------------
def check_run(server, definition, cap: bytes, conditions: bytes) -> None:
    srv, script = server
    reset(script, cap)
    script.set("/fhir/Condition", conditions)
    problems = Problems()
    shared = SharedIndex()
    src = RestSource(client(srv), definition.tx, sorted(definition.screener.types), problems, shared)
    try:
        run = Run.start(definition, as_of=AS_OF, problems=problems)
        got = {r.patient: r.status for r in screen_records(definition, run, src, shared)}
    except Fhir3tError as exc:
        assert exc.exit_code not in (EXIT_INTERNAL,) and str(exc)
        return
    assert set(got) <= {"Patient/good1", "Patient/good2", "Patient/victim"}


CONDITIONS = searchset([{"resourceType": "Condition", "id": f"c-{p}", "subject": {"reference": f"Patient/{p}"},
                         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M33.10"}]}}
                        for p in ("good1", "victim", "good2")])


@CI
@given(cap=answer(CAP), conditions=answer(CONDITIONS))
def test_fuzz_capabilities_and_candidate_search(server, definition, cap, conditions):
    check_run(server, definition, cap, conditions)


@pytest.mark.fuzz
@LONG
@given(cap=answer(CAP), conditions=answer(CONDITIONS))
def test_fuzz_long_capabilities_and_candidate_search(server, definition, cap, conditions):
    check_run(server, definition, cap, conditions)


# ---- push: corrupted input Bundle and corrupted server answers -----------------------------------------
def push_input(n: int = 3) -> dict:
    study = {"resourceType": "ResearchStudy", "id": "study-1", "status": "active",
             "identifier": [{"system": "http://clinicaltrials.gov", "value": "NCT06438679"}]}
    entries = [{"fullUrl": "urn:uuid:study-1", "resource": study,
                "request": {"method": "POST", "url": "ResearchStudy", "ifNoneExist": "identifier=http://clinicaltrials.gov|NCT06438679"}}]
    for i in range(n):
        entries.append({"fullUrl": f"urn:uuid:rs-{i}", "request": {"method": "PUT", "url": f"ResearchSubject/rs-{i}"},
                        "resource": {"resourceType": "ResearchSubject", "id": f"rs-{i}", "status": "eligible",
                                     "study": {"reference": "urn:uuid:study-1"}, "individual": {"reference": f"Patient/p{i}"}}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


TX_RESPONSE = {"resourceType": "Bundle", "type": "transaction-response", "entry": [
    {"response": {"status": "201 Created", "location": f"X/{i}/_history/1"}} for i in range(4)]}
SUBJECTS = searchset([{"resourceType": "ResearchSubject", "id": "hosp-1", "status": "on-study",
                       "study": {"reference": "ResearchStudy/S9"}, "individual": {"reference": "Patient/p1"}}])


def check_push(server, bundle: object, tx: bytes, subjects: bytes, transaction: bool) -> None:
    srv, script = server
    script.routes.clear()
    cap = copy.deepcopy(CAP)
    if not transaction:
        cap["rest"][0]["interaction"] = [{"code": "batch"}]
    script.set("/fhir/metadata", cap)
    script.set("/fhir/ResearchSubject", subjects)
    script.set("/fhir/ResearchStudy", searchset([]))
    script.set("/fhir/ResearchStudy/S9", {"resourceType": "ResearchStudy", "id": "S9", "identifier": [
        {"system": "http://clinicaltrials.gov", "value": "NCT06438679"}]})
    script.set("/fhir/ResearchStudy", searchset([]))
    script.set("/fhir", tx)
    try:
        report = FhirServerSink(client(srv)).push(bundle)  # type: ignore[arg-type]
    except UsageError:
        return  # the input was refused, naming the entry: fine
    except Fhir3tError as exc:
        assert exc.exit_code != EXIT_INTERNAL
        return
    n = len(bundle.get("entry") or [])  # type: ignore[union-attr]
    indices = sorted(o.index for o in report.outcomes)
    assert indices == sorted(set(indices)) and set(indices) <= set(range(n)), indices
    # every entry is accounted for, except a study entry folded into its subjects' batch
    assert len(indices) >= n - 1
    # no-regression: while the server's answer still shows Patient/p1 enrolled, p1's screening entry is not sent
    if enrolled_p1(subjects) and is_screening_entry_of_p1(bundle):
        assert not any(o.url == "ResearchSubject/rs-1" and o.state in ("ok", "failed", "unknown") for o in report.outcomes), \
            ([o.line() for o in report.outcomes], subjects, bundle)


def enrolled_p1(subjects: bytes) -> bool:
    """The oracle, simpler than the code: a parseable searchset holding a ResearchSubject of Patient/p1 whose
    status is not a screening one."""
    try:
        doc = json.loads(subjects)
    except ValueError:
        return False
    listed = doc.get("entry") if isinstance(doc, dict) and doc.get("resourceType") == "Bundle" else None
    return isinstance(listed, list) and any(
        isinstance(e, dict) and isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "ResearchSubject"
        and e["resource"].get("individual") == {"reference": "Patient/p1"}
        and e["resource"].get("status") not in ("candidate", "eligible", "ineligible", "not-registered", "screening",
                                                "pending-on-study", "potential-candidate")
        for e in listed)


def is_screening_entry_of_p1(bundle: object) -> bool:
    """The Bundle still names our study (its identifier intact) and still sends p1 a screening status."""
    listed = bundle.get("entry") if isinstance(bundle, dict) else None
    ours = {"system": "http://clinicaltrials.gov", "value": "NCT06438679"}
    return isinstance(listed, list) and any(
        isinstance(e, dict) and isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "ResearchStudy"
        and isinstance(e["resource"].get("identifier"), list) and ours in e["resource"]["identifier"] for e in listed) and any(
        isinstance(e, dict) and isinstance(e.get("resource"), dict) and e["resource"].get("individual") == {"reference": "Patient/p1"}
        and e["resource"].get("status") == "eligible" and e.get("request") == {"method": "PUT", "url": "ResearchSubject/rs-1"}
        for e in listed)


@CI
@given(bundle=mutated(push_input()), tx=answer(TX_RESPONSE), subjects=answer(SUBJECTS), transaction=st.booleans())
def test_fuzz_push(server, bundle, tx, subjects, transaction):
    check_push(server, bundle, tx, subjects, transaction)


@pytest.mark.fuzz
@LONG
@given(bundle=mutated(push_input()), tx=answer(TX_RESPONSE), subjects=answer(SUBJECTS), transaction=st.booleans())
def test_fuzz_long_push(server, bundle, tx, subjects, transaction):
    check_push(server, bundle, tx, subjects, transaction)


# ---- Bulk export: corrupted manifest -------------------------------------------------------------------
def manifest(base: str) -> dict:
    return {"transactionTime": "2026-11-16T00:00:00Z", "requiresAccessToken": False, "request": f"{base}/Patient/$export",
            "output": [{"type": "Patient", "url": f"{base}/files/p.ndjson"},
                       {"type": "Condition", "url": f"{base}/files/c.ndjson"}],
            "error": [{"type": "OperationOutcome", "url": f"{base}/files/e.ndjson"}]}


def check_export(server, body_of) -> None:
    srv, script = server
    base = srv.url_for("/fhir")
    script.routes.clear()
    script.set("/fhir/Patient/$export", b"", 202, {"Content-Location": f"{base}/status"})
    script.set("/fhir/status", body_of(manifest(base)))
    for f in ("p", "c", "e"):
        script.set(f"/fhir/files/{f}.ndjson", b'{"resourceType":"Patient","id":"x"}\n')
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        try:
            BulkExporter(client(srv), out, max_wait=5).run()
        except Fhir3tError as exc:
            assert exc.exit_code != EXIT_INTERNAL
        written = [p for p in Path(tmp).rglob("*") if p.is_file()]
        assert all(out in p.parents for p in written), written  # nothing outside OUT_DIR
        assert not [p for p in written if p.name.endswith(".part")]


@CI
@given(data=st.data())
def test_fuzz_export_manifest(server, data):
    check_export(server, lambda m: data.draw(answer(m)))


@pytest.mark.fuzz
@LONG
@given(data=st.data())
def test_fuzz_long_export_manifest(server, data):
    check_export(server, lambda m: data.draw(answer(m)))
