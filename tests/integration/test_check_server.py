"""fhir3t check-server against the real FHIR server the suite starts (see conftest.py), with independent
oracles: what the server's CapabilityStatement and raw HTTP answers say, read here with `requests`.

Runs before test_server.py (file order) and leaves the server as it found it: the patient and the
ImmunizationRecommendation added here are deleted again, and the write test deletes its study.
"""
from __future__ import annotations

import json

import requests

from fhir3t.cli import main
from fhir3t.errors import Problems
from fhir3t.pipeline import Definition
from fhir3t.sources.rest import RestSource
from fhir3t.transport.http import FhirClient
from integration.conftest import AS_OF, CONCEPT_MAP

TEST_SYSTEM = "urn:fhir3t:check-server"


def _get(base: str, path: str, **params) -> dict:
    r = requests.get(f"{base}/{path}", params=params, timeout=30)
    r.raise_for_status()
    return r.json()


def _all(base: str, rtype: str) -> list[dict]:
    return [e["resource"] for e in _get(base, rtype, _count="1000").get("entry", [])]


def _totals(base: str) -> dict[str, int]:
    return {t: len(_all(base, t)) for t in ("Patient", "ResearchStudy", "ResearchSubject", "Condition")}


def _check(base: str, capsys, *extra: str) -> tuple[int, dict]:
    code = main(["check-server", base, "--concept-map", str(CONCEPT_MAP), "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _by_id(doc: dict, check_id: str) -> list[dict]:
    return [c for c in doc["checks"] if c["id"] == check_id]


def test_check_server_reads_the_test_server_and_writes_nothing(loaded_server, capsys):
    before = _totals(loaded_server)
    code, doc = _check(loaded_server, capsys)
    assert _totals(loaded_server) == before
    cs = _get(loaded_server, "metadata")
    assert _by_id(doc, "fhir-version")[0]["status"] == ("ok" if cs["fhirVersion"].startswith("4.0.") else "fail")
    patient_ops = {o["name"] for r in cs["rest"][0]["resource"] if r["type"] == "Patient" for o in r.get("operation", [])}
    assert _by_id(doc, "strategy")[0]["details"]["strategy"] == ("everything" if "everything" in patient_ops else "batch")
    # the candidate count is the one a real pull finds
    definition = Definition.load(concept_maps=[CONCEPT_MAP])
    src = RestSource(FhirClient(loaded_server), definition.tx, sorted(definition.screener.types), Problems())
    cand = _by_id(doc, "search-candidates")[0]
    assert cand["status"] == "ok" and cand["details"]["candidates"] == len(src.candidates()) > 0
    e2e = _by_id(doc, "end-to-end")[0]
    assert e2e["status"] == "ok" and e2e["details"]["patient"] == src.candidates()[0]
    # the e2e record holds what $everything returns for that patient, read independently
    raw = _get(loaded_server, f"Patient/{e2e['details']['patient']}/$everything", _count="1000")
    kinds = {e["resource"]["resourceType"] for e in raw["entry"]}
    assert set(e2e["details"]["types"]) <= kinds
    for probe in ("search-study-identifier", "search-subject-individual", "search-subject-id", "search-subject-study"):
        assert _by_id(doc, probe)[0]["status"] == "ok", probe
    assert [c["status"] for c in _by_id(doc, "export") + _by_id(doc, "export-status")] == ["ok", "ok"]
    assert code == doc["exit_code"] == (1 if doc["counts"]["fail"] else 0)


def test_a_type_left_out_of_everything_is_caught_as_the_raw_answer_shows(loaded_server, capsys):
    """sekmet 0.1.1 has no search parameters for ImmunizationRecommendation: its $everything leaves
    them out and `patient=` is ignored on them. check-server must say so exactly when that is true."""
    headers = {"Content-Type": "application/fhir+json"}
    ir = {"resourceType": "ImmunizationRecommendation", "id": "check-ir-1", "patient": {"reference": "Patient/check-ir"},
          "date": "2026-01-01", "recommendation": [{"vaccineCode": [{"text": "influenza"}],
                                                     "forecastStatus": {"text": "due"}}]}
    requests.put(f"{loaded_server}/Patient/check-ir", json={"resourceType": "Patient", "id": "check-ir"},
                 headers=headers, timeout=30).raise_for_status()
    requests.put(f"{loaded_server}/ImmunizationRecommendation/check-ir-1", json=ir, headers=headers,
                 timeout=30).raise_for_status()
    try:
        raw = _get(loaded_server, "Patient/check-ir/$everything")
        left_out = not any(e["resource"]["resourceType"] == "ImmunizationRecommendation" for e in raw.get("entry", []))
        code, doc = _check(loaded_server, capsys, "--no-export")
    finally:
        requests.delete(f"{loaded_server}/ImmunizationRecommendation/check-ir-1", timeout=30)
        requests.delete(f"{loaded_server}/Patient/check-ir", timeout=30)
    failed = [c for c in _by_id(doc, "record-coverage") if c["status"] == "fail"]
    assert [c["details"]["resource"] for c in failed] == (["ImmunizationRecommendation/check-ir-1"] if left_out else [])
    if left_out:
        assert "E12-vaccination would take it as none recorded" in failed[0]["message"] and code == 1


def test_the_write_test_on_the_test_server_leaves_nothing_behind(loaded_server, capsys):
    studies = _all(loaded_server, "ResearchStudy")
    _code, doc = _check(loaded_server, capsys, "--write-test", "--no-export")
    assert doc["write_test"] is True
    cs = _get(loaded_server, "metadata")
    transaction = any(i["code"] == "transaction" for i in cs["rest"][0].get("interaction", []))
    t = _by_id(doc, "transaction")[0]
    assert t["details"] == {"mode": "transaction" if transaction else "batch", "tried": True}
    assert [c["status"] for c in _by_id(doc, "conditional-create")] == ["ok"]
    made = _by_id(doc, "write-test")[0]
    assert made["status"] == "ok" and len(made["details"]["made"]) == 1
    after = _all(loaded_server, "ResearchStudy")
    assert sorted(s["id"] for s in after) == sorted(s["id"] for s in studies)
    assert not any(i.get("system") == TEST_SYSTEM for s in after for i in s.get("identifier", []))
    r = requests.get(f"{loaded_server}/ResearchStudy/{made['details']['made'][0]}", timeout=30)
    assert r.status_code in (404, 410)


def test_screen_warns_once_of_the_types_the_test_server_does_not_declare(loaded_server, tmp_path, capsys):
    cs = _get(loaded_server, "metadata")
    declared = {r["type"] for r in cs["rest"][0]["resource"]}
    definition = Definition.load(concept_maps=[CONCEPT_MAP])
    # (types read only for what they name, a visit's reasonCode, are no gap to warn of: ReadPlan.mention_only)
    missing = sorted(set(definition.screener.types) - definition.plan.mention_only - declared)
    optional = sorted(definition.plan.mention_only - declared)
    assert main(["screen", "--server", loaded_server, "--as-of", AS_OF, "--concept-map", str(CONCEPT_MAP),
                 "--format", "json", "--out", str(tmp_path / "r.json"), "--no-progress"]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "server check:" in ln]
    if missing:
        assert len(err) == 2 and err[0].startswith("fhir3t screen: server check: warning: resource types: not declared")
        assert all(t in err[0] for t in missing) and not any(f"{t} (" in err[0] for t in optional)
    else:
        assert err == []
