"""FhirClient against injected faults (responses): retries, Retry-After, timeouts, bad JSON, budget."""
from __future__ import annotations

import logging

import pytest
import requests
import responses

from fhir3t.errors import AuthError, ServerError
from fhir3t.transport.http import FhirClient, HttpStatusError, RetryPolicy, safe_path

BASE = "http://fhir.test/fhir"


def client(**kw) -> tuple[FhirClient, list[float]]:
    slept: list[float] = []
    kw.setdefault("retry", RetryPolicy(rng=lambda: 1.0))
    c = FhirClient(BASE, sleep=slept.append, parallel=1, **kw)
    return c, slept


@responses.activate
def test_429_waits_for_retry_after_then_succeeds():
    responses.get(f"{BASE}/Patient/a", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/Patient/a", json={"resourceType": "Patient", "id": "a"})
    c, slept = client()
    assert c.get("Patient/a")["id"] == "a"
    assert slept == [7.0]
    assert c.stats.requests == 2 and c.stats.retries == 1


@responses.activate
def test_503_twice_then_success_backs_off_exponentially():
    for _ in range(2):
        responses.get(f"{BASE}/metadata", status=503)
    responses.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement"})
    c, slept = client()
    assert c.capabilities()["resourceType"] == "CapabilityStatement"
    assert slept == [0.5, 1.0]  # base 0.5 * 2^(n-1), jitter fixed at 1.0


@responses.activate
def test_retry_after_too_long_is_reported_not_waited():
    responses.get(f"{BASE}/Patient", status=429, headers={"Retry-After": "3600"})
    c, slept = client()
    with pytest.raises(ServerError, match="retry after 3600"):
        c.get("Patient")
    assert slept == []


@responses.activate
def test_timeout_is_reported_at_once_not_retried_with_exit_code_5():
    # a request that used up --timeout is not sent again: a slow server would take attempts x timeout
    responses.get(f"{BASE}/Patient/a", body=requests.exceptions.ReadTimeout("read timed out"))
    c, slept = client(retry=RetryPolicy(attempts=3, rng=lambda: 1.0))
    with pytest.raises(ServerError) as exc:
        c.get("Patient/a")
    assert exc.value.exit_code == 5
    assert "no complete answer within 120 s" in str(exc.value) and "http://fhir.test/fhir/Patient/a" in str(exc.value)
    assert len(responses.calls) == 1 and slept == []


@responses.activate
def test_post_is_not_resent_after_a_lost_answer():
    responses.post(BASE, body=requests.exceptions.ReadTimeout("read timed out"))
    c, _ = client()
    with pytest.raises(ServerError):
        c.json("POST", "", json={"resourceType": "Bundle", "type": "batch"})
    assert len(responses.calls) == 1


@responses.activate
def test_malformed_json_page_is_a_server_error_not_a_traceback():
    responses.get(f"{BASE}/Condition", json={"resourceType": "Bundle", "type": "searchset",
                                             "link": [{"relation": "next", "url": f"{BASE}/page2?token=x"}],
                                             "entry": [{"resource": {"resourceType": "Condition", "id": "c1"}}]})
    responses.get(f"{BASE}/page2", body=b'{"resourceType": "Bundle", "entry": [', content_type="application/fhir+json")
    c, _ = client()
    got = []
    with pytest.raises(ServerError, match="not valid JSON"):
        for r in c.search("Condition", {"code": "x"}):
            got.append(r["id"])
    assert got == ["c1"]


@responses.activate
def test_next_links_followed_exactly_and_outcome_entries_ignored():
    nxt = "http://fhir.test/paging-service?_getpages=abc&_page=2"  # another path of the same origin: as given
    responses.get(f"{BASE}/Observation", json={
        "resourceType": "Bundle", "link": [{"relation": "next", "url": nxt}],
        "entry": [{"resource": {"resourceType": "Observation", "id": "o1"}},
                  {"search": {"mode": "outcome"}, "resource": {"resourceType": "OperationOutcome"}}]})
    responses.get(nxt, json={"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o2"}}]})
    c, _ = client()
    assert [r["id"] for r in c.search("Observation", {})] == ["o1", "o2"]
    assert responses.calls[1].request.url == nxt


@responses.activate
def test_4xx_fails_at_once_with_the_servers_outcome_diagnostics_only_at_debug(caplog):
    responses.get(f"{BASE}/Patient", status=400, json={
        "resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "expression": ["Patient.birthDate"],
                                                       "diagnostics": "born 1980-04-12 Zhang San is not a date"}]})
    c, slept = client()
    with pytest.raises(HttpStatusError) as exc:
        c.get("Patient", {"x": "1"})
    msg = str(exc.value)
    assert exc.value.status == 400 and "400 Bad Request: error invalid at Patient.birthDate" in msg
    assert "Zhang" not in msg and "1980" not in msg and "-vv" in msg  # diagnostics may quote patient data
    assert slept == [] and len(responses.calls) == 1
    with caplog.at_level(logging.DEBUG, logger="fhir3t"), pytest.raises(HttpStatusError) as exc:
        c.get("Patient", {"x": "1"})
    assert "Zhang San is not a date" in str(exc.value)


@responses.activate
def test_403_is_an_auth_error():
    responses.get(f"{BASE}/Patient", status=403)
    c, _ = client()
    with pytest.raises(AuthError) as exc:
        c.get("Patient")
    assert exc.value.exit_code == 6


@responses.activate
def test_request_budget_stops_the_run():
    responses.get(f"{BASE}/Patient/a", json={"resourceType": "Patient", "id": "a"})
    c, _ = client(max_requests=2)
    c.get("Patient/a")
    c.get("Patient/a")
    with pytest.raises(ServerError, match="budget"):
        c.get("Patient/a")
    assert len(responses.calls) == 2


def test_refused_connection_is_a_clear_server_error():
    slept: list[float] = []
    c = FhirClient("http://127.0.0.1:9", sleep=slept.append, retry=RetryPolicy(attempts=2, rng=lambda: 0.0))  # discard port
    with pytest.raises(ServerError, match="cannot reach"):
        c.get("http://127.0.0.1:9/metadata")
    assert len(slept) == 1  # connection errors are retried


def test_bad_url_is_rejected():
    with pytest.raises(ServerError):
        FhirClient("ftp://x")


@responses.activate
def test_debug_log_has_no_query_values(caplog):
    responses.get(f"{BASE}/Patient", json={"resourceType": "Bundle"})
    c, _ = client()
    with caplog.at_level(logging.DEBUG, logger="fhir3t.http"):
        c.get("Patient", {"name": "Zhang San", "birthdate": "1970-01-01"})
    text = caplog.text
    assert "GET http://fhir.test/fhir/Patient?name=…&birthdate=… -> 200" in text
    assert "Zhang" not in text and "1970" not in text


def test_safe_path_keeps_names_only():
    assert safe_path("http://h/fhir/Condition?code=a%7Cb&_count=5") == "/fhir/Condition?code=…&_count=…"


@responses.activate
def test_parallel_map_keeps_order():
    for i in range(6):
        responses.get(f"{BASE}/Patient/{i}", json={"resourceType": "Patient", "id": str(i)})
    c = FhirClient(BASE, parallel=3)
    assert [p["id"] for p in c.map(lambda i: c.get(f"Patient/{i}"), range(6))] == [str(i) for i in range(6)]
