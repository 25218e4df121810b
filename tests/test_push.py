"""Pushing Bundles: per-entry outcomes, batch fallback, safe retries, the no-regression rule."""
from __future__ import annotations

import json

import responses

from fhir3t.cli import main
from fhir3t.sinks import FhirServerSink
from fhir3t.transport.http import FhirClient, RetryPolicy

BASE = "http://fhir.test/fhir"
STUDY_URN = "urn:uuid:study-1"


def cap(*interactions: str) -> dict:
    return {"resourceType": "CapabilityStatement",
            "rest": [{"mode": "server", "interaction": [{"code": i} for i in interactions]}]}


def bundle(*statuses: str) -> dict:
    entries = [{"fullUrl": STUDY_URN,
                "resource": {"resourceType": "ResearchStudy", "id": "study-1", "status": "active",
                             "identifier": [{"system": "http://clinicaltrials.gov", "value": "NCT06438679"}]},
                "request": {"method": "POST", "url": "ResearchStudy",
                            "ifNoneExist": "identifier=http://clinicaltrials.gov|NCT06438679"}}]
    for i, st in enumerate(statuses):
        entries.append({"fullUrl": f"urn:uuid:rs-{i}",
                        "resource": {"resourceType": "ResearchSubject", "id": f"rs-{i}", "status": st,
                                     "study": {"reference": STUDY_URN}, "individual": {"reference": f"Patient/p{i}"}},
                        "request": {"method": "PUT", "url": f"ResearchSubject/rs-{i}"}})
    entries.append({"fullUrl": "urn:uuid:prov", "resource": {
        "resourceType": "Provenance", "id": "prov", "recorded": "2026-11-16T00:00:00Z",
        "target": [{"reference": f"urn:uuid:rs-{i}"} for i in range(len(statuses))], "agent": [{"who": {"display": "x"}}]},
        "request": {"method": "PUT", "url": "Provenance/prov"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def empty_searches(subjects: list[dict] | None = None):
    responses.get(f"{BASE}/ResearchSubject", json={"resourceType": "Bundle", "entry": [
        {"resource": s} for s in subjects or []]})
    responses.get(f"{BASE}/ResearchStudy", json={"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "ResearchStudy", "id": "server-study"}}]})


def sink() -> FhirServerSink:
    return FhirServerSink(FhirClient(BASE, sleep=lambda s: None, retry=RetryPolicy(rng=lambda: 0.0), parallel=1))


@responses.activate
def test_transaction_outcomes_per_entry():
    responses.get(f"{BASE}/metadata", json=cap("transaction", "batch"))
    empty_searches()
    responses.post(BASE, json={"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": "200 OK", "location": "ResearchStudy/server-study/_history/1"}},
        {"response": {"status": "201 Created", "location": "ResearchSubject/rs-0/_history/1"}},
        {"response": {"status": "201 Created", "location": "Provenance/prov/_history/1"}}]})
    report = sink().push(bundle("eligible"))
    assert report.mode == "transaction" and report.ok
    assert [(o.index, o.state, o.status) for o in report.outcomes] == [
        (0, "ok", "200 OK"), (1, "ok", "201 Created"), (2, "ok", "201 Created")]


@responses.activate
def test_transaction_that_fails_halfway_reports_every_entry_not_applied(caplog):
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    empty_searches()
    responses.post(BASE, status=422, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": "Entry 2 (PUT ResearchSubject/rs-1): invalid status"}]})
    report = sink().push(bundle("eligible", "candidate"))
    assert [o.state for o in report.outcomes] == ["failed"] * 4
    assert all("error processing" in o.message and "rolled back" in o.message for o in report.outcomes)
    assert not any("Entry 2" in o.message for o in report.outcomes)  # server diagnostics only with -vv
    with caplog.at_level("DEBUG", logger="fhir3t"):
        report = sink().push(bundle("eligible", "candidate"))
    assert all("Entry 2" in o.message for o in report.outcomes)


@responses.activate
def test_batch_fallback_creates_study_first_rewrites_refs_and_retries_503_entries():
    responses.get(f"{BASE}/metadata", json=cap("batch"))
    empty_searches()
    responses.post(f"{BASE}/ResearchStudy", status=201, json={"resourceType": "ResearchStudy", "id": "S9"},
                   headers={"Location": f"{BASE}/ResearchStudy/S9/_history/1"})
    responses.post(BASE, json={"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "201 Created"}},
        {"response": {"status": "503 Service Unavailable"}},
        {"response": {"status": "400 Bad Request", "outcome": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "bad target"}]}}}]})
    responses.post(BASE, json={"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "201 Created"}}]})
    report = sink().push(bundle("eligible", "candidate"))
    assert report.mode == "batch"
    by_index = {o.index: o for o in report.outcomes}
    assert by_index[0].state == "ok"                 # the study, sent alone with If-None-Exist
    assert by_index[1].state == "ok"
    assert by_index[2].state == "ok"                 # 503 in round 1, resent alone in round 2
    assert by_index[3].state == "failed" and "error invalid" in by_index[3].message
    first_batch = json.loads(responses.calls[-2].request.body)
    assert first_batch["type"] == "batch"
    assert first_batch["entry"][0]["resource"]["study"]["reference"] == "ResearchStudy/S9"
    assert first_batch["entry"][2]["resource"]["target"][0]["reference"] == "ResearchSubject/rs-0"
    assert json.loads(responses.calls[-1].request.body)["entry"][0]["request"]["url"] == "ResearchSubject/rs-1"
    assert responses.calls[-3].request.headers["If-None-Exist"].startswith("identifier=")
    assert len(report.failed) == 1


@responses.activate
def test_no_regression_keeps_an_on_study_subject_and_says_so():
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    empty_searches([{"resourceType": "ResearchSubject", "id": "rs-0", "status": "on-study",
                     "study": {"reference": "ResearchStudy/server-study"}, "individual": {"reference": "Patient/p0"}}])
    responses.post(BASE, json={"resourceType": "Bundle", "entry": [
        {"response": {"status": "200 OK"}}, {"response": {"status": "200 OK"}}, {"response": {"status": "200 OK"}}]})
    report = sink().push(bundle("eligible", "ineligible"))
    sent = json.loads(responses.calls[-1].request.body)
    urls = [e["request"]["url"] for e in sent["entry"]]
    assert "ResearchSubject/rs-0" not in urls and "ResearchSubject/rs-1" in urls
    prov = sent["entry"][-1]["resource"]
    assert [t["reference"] for t in prov["target"]] == ["urn:uuid:rs-1"]
    skipped = [o for o in report.outcomes if o.state == "skipped"]
    assert len(skipped) == 1 and "on-study" in skipped[0].message and report.ok


@responses.activate
def test_dry_run_sends_nothing(tmp_path, capsys):
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    empty_searches()
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle("eligible")))
    assert main(["push", str(f), "--server", BASE, "--dry-run"]) == 0
    assert not [c for c in responses.calls if c.request.method in ("POST", "PUT")]
    assert "dry-run" in capsys.readouterr().err


@responses.activate
def test_cli_exit_7_and_each_failed_entry_named(tmp_path, capsys):
    responses.get(f"{BASE}/metadata", json=cap("batch"))
    empty_searches()
    responses.post(f"{BASE}/ResearchStudy", status=200, json={"resourceType": "ResearchStudy", "id": "S9"})
    responses.post(BASE, json={"resourceType": "Bundle", "entry": [
        {"response": {"status": "201 Created"}}, {"response": {"status": "409 Conflict"}}]})
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle("eligible")))
    assert main(["push", str(f), "--server", BASE]) == 7
    err = capsys.readouterr().err
    assert "entry 2 PUT Provenance/prov: failed 409 Conflict" in err


def test_cli_refused_connection_exit_5_no_traceback(tmp_path, capsys):
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle("eligible")))
    assert main(["push", str(f), "--server", "http://127.0.0.1:9/fhir", "--timeout", "2"]) == 5
    err = capsys.readouterr().err
    assert "cannot reach" in err and "Traceback" not in err


def test_cli_bad_url_and_bad_bundle(tmp_path, capsys):
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"resourceType": "Bundle", "type": "collection"}))
    assert main(["push", str(f), "--server", "http://x/fhir"]) == 2
    g = tmp_path / "g.json"
    g.write_text(json.dumps(bundle("eligible")))
    assert main(["push", str(g), "--server", "not-a-url"]) == 2
