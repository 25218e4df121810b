"""Bulk $export: kick-off, polling with Retry-After, downloads, resuming an interrupted export."""
from __future__ import annotations

import json

import pytest
import requests
import responses

from fhir3t.errors import ServerError
from fhir3t.sources.bulk import STATE, BulkExporter
from fhir3t.transport.http import FhirClient, RetryPolicy

BASE = "http://fhir.test/fhir"
STATUS = f"{BASE}/bulk-status/job1"
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}


def manifest() -> dict:
    return {"transactionTime": "2026-11-16T00:00:00Z", "requiresAccessToken": False,
            "output": [{"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"},
                       {"type": "Condition", "url": f"{BASE}/files/Condition.ndjson"}],
            "error": [{"type": "OperationOutcome", "url": f"{BASE}/files/err.ndjson"}]}


def client(slept: list[float]) -> FhirClient:
    return FhirClient(BASE, parallel=1, sleep=slept.append, retry=RetryPolicy(attempts=2, rng=lambda: 0.0))


def files():
    responses.get(f"{BASE}/files/Patient.ndjson", body=json.dumps(PATIENT) + "\n")
    responses.get(f"{BASE}/files/err.ndjson", body='{"resourceType":"OperationOutcome","issue":[]}\n')


@responses.activate
def test_export_polls_with_retry_after_and_downloads(tmp_path):
    kick = responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, status=202, headers={"X-Progress": "50%", "Retry-After": "3"})
    responses.get(STATUS, json=manifest())
    files()
    responses.get(f"{BASE}/files/Condition.ndjson", body='{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"}}\n')
    slept: list[float] = []
    progress: list[str] = []
    res = BulkExporter(client(slept), tmp_path, types=["Patient,Condition"], since="2026-01-01",
                       on_progress=progress.append).run()
    assert kick.calls[0].request.headers["Prefer"] == "respond-async"
    assert "_since=2026-01-01T00%3A00%3A00Z" in kick.calls[0].request.url
    assert slept == [3.0] and progress == ["50%"]
    assert sorted(p.name for p in res.files) == ["Condition.000.ndjson", "Patient.000.ndjson"]
    assert (tmp_path / "errors" / "OperationOutcome.000.ndjson").exists()
    assert json.loads((tmp_path / "Patient.000.ndjson").read_text())["id"] == "p1"


@responses.activate
def test_interrupted_export_resumes_without_a_new_kickoff(tmp_path):
    kick = responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, json=manifest())
    files()
    responses.get(f"{BASE}/files/Condition.ndjson", body=requests.exceptions.ConnectionError("connection reset"))
    with pytest.raises(ServerError):
        BulkExporter(client([]), tmp_path).run()
    assert (tmp_path / STATE).exists() and (tmp_path / "Patient.000.ndjson").exists()
    responses.replace(responses.GET, f"{BASE}/files/Condition.ndjson", body='{"resourceType":"Condition","id":"c1"}\n')
    patient_calls = len([c for c in responses.calls if c.request.url.endswith("Patient.ndjson")])
    res = BulkExporter(client([]), tmp_path).run()
    assert res.resumed and len(kick.calls) == 1
    assert len([c for c in responses.calls if c.request.url.endswith("Patient.ndjson")]) == patient_calls  # not again
    assert (tmp_path / "Condition.000.ndjson").exists()


@responses.activate
def test_forgotten_job_is_started_again(tmp_path):
    (tmp_path / STATE).write_text(json.dumps({"request": {"server": BASE, "group": None, "types": [], "since": None},
                                              "status_url": f"{BASE}/bulk-status/old", "manifest": None, "done": []}))
    responses.get(f"{BASE}/bulk-status/old", status=404)
    kick = responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, json={**manifest(), "output": manifest()["output"][:1]})
    files()
    res = BulkExporter(client([]), tmp_path).run()
    assert len(kick.calls) == 1 and [p.name for p in res.files] == ["Patient.000.ndjson"]


@responses.activate
def test_failed_export_is_a_server_error_naming_the_status_url(tmp_path, caplog):
    responses.get(f"{BASE}/Group/g1/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, status=500, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "exception", "diagnostics": "disk full"}]})
    with pytest.raises(ServerError, match=r"failed on the server .http://fhir.test/fhir/bulk-status/job1: 500: error exception"):
        BulkExporter(client([]), tmp_path, group="g1").run()
    with caplog.at_level("DEBUG", logger="fhir3t"), pytest.raises(ServerError, match="disk full"):
        BulkExporter(client([]), tmp_path, group="g1").run()
