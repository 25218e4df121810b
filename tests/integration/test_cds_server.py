"""The CDS Hooks service against the real FHIR test server (sekmet on loopback, samples loaded, read only):
full prefetch, partial prefetch plus fetches, fetches only, a slow or failing server, the token's reach."""
from __future__ import annotations

import json
import logging
from datetime import date
from urllib.parse import quote

import pytest
import requests

from cds_helpers import SERVICE, Recorder, hook_request, running
from fhir3t.pipeline import Definition
from fhir3t.service.prefetch import templates
from fhir3t.service.settings import ServeSettings
from integration.conftest import AS_OF, CONCEPT_MAP

AS_OF_DAY = date.fromisoformat(AS_OF)
TOKEN = "tok-3b9d7f0e-never-logged"


@pytest.fixture(scope="module")
def definition() -> Definition:
    return Definition.load(concept_maps=[CONCEPT_MAP])


@pytest.fixture
def service(definition, loaded_server, tmp_path):
    settings = ServeSettings(state_dir=tmp_path / "state", as_of=AS_OF_DAY, fhir_servers=(loaded_server,),
                             show_again_after_days=0, budget_ms=5000)
    with running(settings, definition) as (url, cds):
        yield url, cds


def server_prefetch(base: str, definition: Definition, pid: str, keys: set[str] | None = None) -> dict:
    """What an EHR would prefetch from its own server: each template run against it (null when empty)."""
    out: dict = {}
    for key, tpl in templates(definition).items():
        if keys is not None and key not in keys:
            continue
        r = requests.get(f"{base}/{tpl.expand(pid)}", headers={"Accept": "application/fhir+json"}, timeout=30)
        r.raise_for_status()
        body = r.json()
        out[key] = None if body.get("resourceType") == "Bundle" and not body.get("entry") else body
    return out


def post(url: str, body: dict) -> dict:
    r = requests.post(f"{url}/cds-services/{SERVICE}", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def statuses(cards: list[dict]) -> list[str]:
    return [c["summary"].split(" for ")[0] for c in cards]


def test_full_prefetch_partial_prefetch_and_fetches_only_give_the_same_card(service, definition, loaded_server):
    url, _cds = service
    full = post(url, hook_request("p03", server_prefetch(loaded_server, definition, "p03")))
    partial = post(url, hook_request("p03", server_prefetch(loaded_server, definition, "p03", {"patient", "condition"}),
                                     fhirServer=loaded_server))
    fetched = post(url, hook_request("p03", fhirServer=loaded_server,
                                     fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                                        "scope": "patient/*.read", "subject": "fhir3t"}))
    assert statuses(full["cards"]) == statuses(partial["cards"]) == statuses(fetched["cards"]) == ["Possible candidate"]
    assert full["cards"][0]["detail"] == partial["cards"][0]["detail"] == fetched["cards"][0]["detail"]


def test_fetching_resolves_what_no_prefetch_can_express(service, definition, loaded_server):
    """p02's tacrolimus points at a Medication resource: prefetch alone leaves two criteria unknown (a candidate),
    fetching reads the Medication and the patient is eligible."""
    url, _cds = service
    only_prefetch = post(url, hook_request("p02", server_prefetch(loaded_server, definition, "p02")))
    assert statuses(only_prefetch["cards"]) == ["Possible candidate"]
    assert "drug reference does not resolve" in only_prefetch["cards"][0]["detail"]
    with_server = post(url, hook_request("p02", server_prefetch(loaded_server, definition, "p02"), fhirServer=loaded_server))
    assert statuses(with_server["cards"]) == ["Eligible"]


def test_cards_by_status_from_the_server(service, loaded_server):
    url, _cds = service
    got = {pid: statuses(post(url, hook_request(pid, fhirServer=loaded_server))["cards"])
           for pid in ("p06", "p04", "p07", "p13", "p22")}
    assert got == {"p06": ["Eligible"], "p04": ["Possible candidate"], "p07": [], "p13": [], "p22": ["Eligible"]}


def test_an_unknown_patient_gets_no_card(service, loaded_server):
    url, _cds = service
    assert post(url, hook_request("nobody-here", fhirServer=loaded_server)) == {"cards": []}


def test_the_token_is_never_logged(service, loaded_server, caplog):
    url, _cds = service
    caplog.set_level(logging.DEBUG, logger="fhir3t")
    post(url, hook_request("p01", fhirServer=loaded_server,
                           fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                              "scope": "patient/*.read", "subject": "fhir3t"}))
    def text(level: int) -> str:
        return "\n".join(r.getMessage() + json.dumps(getattr(r, "fields", {}), default=str)
                         for r in caplog.records if r.levelno >= level)

    assert TOKEN not in text(logging.DEBUG)
    assert "fetch_requests" in text(logging.INFO) and "p01" not in text(logging.INFO)  # ids only at -vv (paths)


# ---- servers that misbehave -----------------------------------------------------------------
def empty_bundle() -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": []}


def test_a_slow_server_gives_no_card_and_the_answer_does_not_wait_for_it(definition, tmp_path):
    slow = Recorder(lambda path: (200, empty_bundle(), 8.0 if path.startswith("/fhir/Observation") else 0.0))
    try:
        settings = ServeSettings(state_dir=tmp_path, as_of=AS_OF_DAY, fhir_servers=(slow.base,), budget_ms=400)
        with running(settings, definition) as (url, _cds):
            body = post(url, hook_request("p01", fhirServer=slow.base))
            # answered while the server was still sitting on the Observation query
            assert not slow.finished.is_set()
            assert body == {"cards": []}
    finally:
        slow.stop()


def test_a_failing_server_gives_no_card(definition, tmp_path):
    failing = Recorder(lambda path: (500, {"resourceType": "OperationOutcome", "issue": []}, 0.0)
                       if "Condition" in path else (200, empty_bundle(), 0.0))
    try:
        settings = ServeSettings(state_dir=tmp_path, as_of=AS_OF_DAY, fhir_servers=(failing.base,))
        with running(settings, definition) as (url, _cds):
            assert post(url, hook_request("p01", fhirServer=failing.base)) == {"cards": []}
            assert any("Condition" in p for p, _a in failing.seen)
    finally:
        failing.stop()


def test_the_token_goes_to_the_fhir_server_origin_only(definition, tmp_path):
    """A next link to another origin is not followed at all (issue 21: the service read from an origin it
    was not allowed to): no request, no token there, and no card from a record fetched in part."""
    elsewhere = Recorder(lambda path: (200, empty_bundle(), 0.0))

    def answer(path: str):
        if path.startswith("/fhir/Observation"):
            return 200, {**empty_bundle(), "link": [{"relation": "next", "url": f"{elsewhere.base}/Observation?page=2"}]}, 0.0
        return 200, empty_bundle(), 0.0

    ehr = Recorder(answer)
    try:
        settings = ServeSettings(state_dir=tmp_path, as_of=AS_OF_DAY, fhir_servers=(ehr.base,))
        with running(settings, definition) as (url, _cds):
            answer = post(url, hook_request("p01", fhirServer=ehr.base,
                                            fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                                               "scope": "patient/*.read", "subject": "fhir3t"}))
        assert answer == {"cards": []}
        assert ehr.seen and all(auth == f"Bearer {TOKEN}" for _p, auth in ehr.seen)
        assert elsewhere.seen == []
        assert f"/fhir/Condition?patient={quote('p01')}" in [p for p, _a in ehr.seen]
    finally:
        ehr.stop()
        elsewhere.stop()
