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
from integration.conftest import AS_OF, CONCEPT_MAP, SAMPLES, as_transaction

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
    assert "drug reference does not resolve" in requests.get(only_prefetch["cards"][0]["links"][0]["url"], timeout=10).text
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
        assert f"/fhir/Condition?patient={quote('p01')}&_count=1000" in [p for p, _a in ehr.seen]
    finally:
        ehr.stop()
        elsewhere.stop()


# ---- filtered and paged prefetch -------------------------------------------------------------
SAME_CARDS = ("p01", "p02", "p03", "p04", "p05", "p06", "p07", "p22")


def card_text(answer: dict) -> list[tuple[str, str, str]]:
    return [(c["summary"], c["detail"], c["indicator"]) for c in answer["cards"]]


def test_by_code_prefetch_gives_the_same_cards_as_full_prefetch(definition, loaded_server, tmp_path):
    """The EHR runs the by-code templates on its server: Observations filtered by the codes the criteria read and
    the hospital's local codes (sample 22 is coded locally), and the cards are those of the full prefetch."""
    full_settings = ServeSettings(state_dir=tmp_path / "full", as_of=AS_OF_DAY, fhir_servers=(loaded_server,),
                                  show_again_after_days=0, budget_ms=10000)
    by_code = ServeSettings(**{**full_settings.__dict__, "state_dir": tmp_path / "by-code", "prefetch": "by-code"})
    tpls = templates(definition, "by-code")
    assert tpls["observation"].by_code
    with running(full_settings, definition) as (url_full, _c1), running(by_code, definition) as (url_code, _c2):
        discovered = requests.get(f"{url_code}/cds-services", timeout=10).json()["services"][0]["prefetch"]
        assert discovered["observation"] == tpls["observation"].query
        for pid in SAME_CARDS:
            full = server_prefetch(loaded_server, definition, pid)
            filtered = {}
            for key, tpl in tpls.items():
                body = requests.get(f"{loaded_server}/{tpl.expand(pid)}", timeout=30).json()
                filtered[key] = None if body.get("resourceType") == "Bundle" and not body.get("entry") else body
            got_full = requests.post(f"{url_full}/cds-services/{SERVICE}",
                                     json=hook_request(pid, full, fhirServer=loaded_server), timeout=30).json()
            got_code = requests.post(f"{url_code}/cds-services/{SERVICE}",
                                     json=hook_request(pid, filtered, fhirServer=loaded_server), timeout=30).json()
            assert card_text(got_code) == card_text(got_full), pid
        # and it is a filter: p03's blood pressure is not sent
        p03 = requests.get(f"{loaded_server}/{tpls['observation'].expand('p03')}", timeout=30).json()
        assert "p03-bp" not in json.dumps(p03) and "p03-mda5" in json.dumps(p03)


def first_pages(base: str, definition: Definition, pid: str, count: int = 2) -> dict:
    """What an EHR that pages its prefetch sends: the first page of each search (`_count`), with its next link."""
    out: dict = {}
    for key, tpl in templates(definition).items():
        query = tpl.expand(pid) if tpl.is_read else f"{tpl.expand(pid)}&_count={count}"
        body = requests.get(f"{base}/{query}", timeout=30).json()
        out[key] = None if body.get("resourceType") == "Bundle" and not body.get("entry") else body
    return out


def test_a_paged_prefetch_is_read_on_from_its_next_links_and_gives_the_same_cards(service, definition, loaded_server):
    url, _cds = service
    for pid in SAME_CARDS:
        paged = first_pages(loaded_server, definition, pid)
        if pid == "p01":
            assert any(isinstance(v, dict) and any(link.get("relation") == "next" for link in v.get("link", []))
                       for v in paged.values())
        full = server_prefetch(loaded_server, definition, pid)
        # no fhirServer: the next links are on a server the service is configured to read, so it reads on
        assert card_text(post(url, hook_request(pid, paged))) == card_text(post(url, hook_request(pid, full))), pid


def test_a_paged_prefetch_on_an_origin_the_service_may_not_read_is_412_without_a_fhir_server(definition, loaded_server,
                                                                                             tmp_path):
    settings = ServeSettings(state_dir=tmp_path, as_of=AS_OF_DAY, fhir_servers=("https://other.example/fhir",))
    with running(settings, definition) as (url, _cds):
        r = requests.post(f"{url}/cds-services/{SERVICE}", json=hook_request("p01", first_pages(loaded_server, definition,
                                                                                                 "p01")), timeout=30)
    assert r.status_code == 412 and "no fhirServer was given" in r.json()["error"]


def test_a_patient_with_5000_observations_gets_its_card_in_a_few_pages(definition, scratch_server, tmp_path, caplog):
    """A sick inpatient: 5,000 vital signs beside the screening results. The service asks for pages of 1,000
    (a server's default page is often 20: 250 requests in a row); the card is the one the patient gets without
    them. (The time it takes, against the default 2 s budget: benchmarks/bench_cds.py.)"""
    loaded_server = scratch_server
    text = (SAMPLES / "screening" / "01-eligible-classic.json").read_text(encoding="utf-8").replace("p01", "p01big")
    requests.post(loaded_server, json=as_transaction(json.loads(text)), timeout=60).raise_for_status()
    for start in range(0, 5000, 1000):
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": vital(f"p01big-v{i}", "p01big", i), "request": {"method": "PUT", "url": f"Observation/p01big-v{i}"}}
            for i in range(start, start + 1000)]}
        requests.post(loaded_server, json=tx, timeout=300).raise_for_status()
    settings = ServeSettings(state_dir=tmp_path, as_of=AS_OF_DAY, fhir_servers=(loaded_server,), budget_ms=60000)
    caplog.set_level(logging.INFO, logger="fhir3t")
    with running(settings, definition) as (url, _cds):
        (card,) = post(url, hook_request("p01big", fhirServer=loaded_server))["cards"]
    assert card["summary"].startswith("Eligible for NCT06438679")
    fields = [getattr(r, "fields", {}) for r in caplog.records if getattr(r, "fields", {}).get("event") == "cds-call"]
    assert fields and fields[-1]["fetch_requests"] <= len(templates(definition)) + 10


def vital(rid: str, pid: str, i: int) -> dict:
    return {"resourceType": "Observation", "id": rid, "status": "final", "subject": {"reference": f"Patient/{pid}"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "effectiveDateTime": f"2026-{1 + i % 10:02d}-{1 + i % 28:02d}T08:{i % 60:02d}:00+08:00",
            "valueQuantity": {"value": 60 + i % 40, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}
