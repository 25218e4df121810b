"""RestSource against a scripted server: candidate search, strategies, paging, screening equality."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from fhir3t.dates import parse_day
from fhir3t.errors import Problems
from fhir3t.pipeline import Definition, Run, screen_records
from fhir3t.sources.grouping import SharedIndex
from fhir3t.sources.rest import RestSource, anchor_codes
from fhir3t.transport.http import FhirClient

BASE = "http://fhir.test/fhir"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
ICD_CM = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.fixture(scope="module")
def eng() -> Definition:
    return Definition.load(concept_maps=[SAMPLES / "conceptmaps" / "hospital-local.json"])


def sample(name: str) -> list[dict]:
    b = json.loads((SAMPLES / "screening" / name).read_text())
    return [e["resource"] for e in b["entry"]]


def test_anchor_codes_expand_icd_roots_and_add_local_codes(eng):
    exact, roots = anchor_codes(eng.tx.valueset("dermatomyositis"), eng.tx)
    assert (ICD_CM, "M33.10") in exact and (ICD_CM, "M3310") in exact   # dotted and undotted
    assert ("http://snomed.info/sct", "396230008") in exact
    assert ("http://hospital.example.org/CodeSystem/dx", "DM-ADULT") in exact  # via the ConceptMap
    assert (ICD_CM, "M33.00") not in exact                                      # juvenile DM stays out
    assert (ICD_CM, "M33.1") in roots


def cap(everything: bool = True, batch: bool = True) -> dict:
    res = [{"type": "Patient", "operation": [{"name": "everything"}] if everything else [],
            "searchParam": [{"name": "_id"}]},
           {"type": "Condition", "searchParam": [{"name": "patient"}, {"name": "code"}]},
           {"type": "Observation", "searchParam": [{"name": "subject"}, {"name": "patient"}]}]
    return {"resourceType": "CapabilityStatement",
            "rest": [{"mode": "server", "resource": res, "interaction": [{"code": "batch"}] if batch else []}]}


def source(eng, problems, **kw) -> tuple[RestSource, FhirClient, SharedIndex]:
    client = FhirClient(BASE, parallel=1, sleep=lambda s: None)
    shared = SharedIndex()
    return RestSource(client, eng.tx, sorted(eng.screener.types), problems, shared, **kw), client, shared


@responses.activate
def test_everything_pull_screens_like_the_file_and_follows_pages(eng):
    res = sample("01-eligible-classic.json")
    half = len(res) // 2
    responses.get(f"{BASE}/metadata", json=cap())
    responses.get(f"{BASE}/Condition", json={"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Condition", "id": "p01-dm", "subject": {"reference": "Patient/p01"},
                      "code": {"coding": [{"system": ICD_CM, "code": "M33.10"}]}}},
        {"search": {"mode": "outcome"}, "resource": {"resourceType": "OperationOutcome", "issue": []}}]})
    nxt = f"{BASE}/opaque-page?cursor=2"
    responses.get(f"{BASE}/Patient/p01/$everything", json={
        "resourceType": "Bundle", "type": "searchset", "link": [{"relation": "next", "url": nxt}],
        "entry": [{"resource": r} for r in res[:half]]})
    responses.get(nxt, json={"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in res[half:]]})
    problems = Problems()
    src, client, shared = source(eng, problems)
    got = list(screen_records(eng, Run.start(eng, as_of=parse_day("2026-11-16"), problems=problems), src, shared))
    assert [r.patient for r in got] == ["Patient/p01"] and got[0].status == "eligible"
    assert src.stats.strategy == "everything"
    ev = next(c for c in responses.calls if "$everything" in c.request.url).request.url
    types = parse_qs(urlsplit(ev).query)["_type"][0].split(",")
    assert {"Patient", "Condition", "Observation", "MedicationStatement"} <= set(types)
    cond_queries = [parse_qs(urlsplit(c.request.url).query) for c in responses.calls if "/Condition" in c.request.url]
    assert any("code:below" in q for q in cond_queries) and any("code" in q for q in cond_queries)
    assert client.stats.requests == 1 + len(cond_queries) + 2  # metadata + candidate searches + 2 pages


@responses.activate
def test_batch_strategy_groups_patients_and_reports_failed_entries(eng):
    responses.get(f"{BASE}/metadata", json=cap(everything=False))
    p = sample("01-eligible-classic.json")
    by_type: dict[str, list[dict]] = {}
    for r in p:
        by_type.setdefault(r["resourceType"], []).append(r)

    def answer(request):
        sent = json.loads(request.body)
        out = []
        for e in sent["entry"]:
            url = e["request"]["url"]
            if url.startswith("Patient/p01"):
                out.append({"resource": by_type["Patient"][0], "response": {"status": "200 OK"}})
            elif url.startswith("Patient/"):
                out.append({"response": {"status": "404 Not Found"}})
            elif url.startswith("Observation?") and "p01" in url:
                out.append({"response": {"status": "500 Internal Server Error"}})
            else:
                t = url.split("?")[0]
                rs = by_type.get(t, []) if "p01" in url else []
                out.append({"resource": {"resourceType": "Bundle", "entry": [{"resource": r} for r in rs]},
                            "response": {"status": "200 OK"}})
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "batch-response", "entry": out})

    responses.add_callback(responses.POST, BASE, callback=answer)
    problems = Problems()
    src, _client, shared = source(eng, problems, patients=["p01", "Patient/gone"])
    got = list(screen_records(eng, Run.start(eng, as_of=parse_day("2026-11-16"), problems=problems), src, shared))
    assert got == []  # its Observations were lost: an incomplete record is not screened (never "eligible")
    text = " ".join(str(x) for x in problems)
    assert "batch entry" in text and "500" in text and "Patient/gone" in text
    assert "Patient/p01: the Observation request failed, so the record is incomplete; not screened" in text
    assert problems.any_skipped
    assert len([c for c in responses.calls if c.request.method == "POST"]) == 1  # both patients, one batch


@responses.activate
def test_condition_search_refused_falls_back_to_every_patient(eng):
    responses.get(f"{BASE}/metadata", json=cap())
    responses.get(f"{BASE}/Condition", status=400, json={"resourceType": "OperationOutcome", "issue": []})
    responses.get(f"{BASE}/Patient", json={"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Patient", "id": "a"}}, {"resource": {"resourceType": "Patient", "id": "b"}}]})
    problems = Problems()
    src, _, _ = source(eng, problems)
    assert src.candidates() == ["a", "b"]
    assert "screening every Patient" in str(next(iter(problems)))
