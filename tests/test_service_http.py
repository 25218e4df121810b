"""The CDS Hooks service over real HTTP (uvicorn on a loopback port, called with requests), with prefetch only:
discovery, cards for eligible / candidate / ineligible / enrolled patients, feedback, the how-often rule,
bad requests, JWT client authentication, logs without patient data."""
from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from cds_helpers import (
    CONCEPT_MAP,
    SAMPLES_AS_OF,
    SERVICE,
    Recorder,
    full_prefetch,
    hook_request,
    running,
    sample_resources,
)
from fhir3t.pipeline import Definition
from fhir3t.service.settings import Issuer, Link, ServeSettings

ORDER_SERVICE = "nct06438679-order-select"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.fixture(scope="module")
def definition() -> Definition:
    return Definition.load(concept_maps=[CONCEPT_MAP])


@pytest.fixture
def service(definition, tmp_path):
    settings = ServeSettings(state_dir=tmp_path / "state", as_of=SAMPLES_AS_OF,
                             links=(Link("Screening worklist", "https://intranet.example/worklist.html?patient={patientId}"),))
    with running(settings, definition) as (url, cds):
        yield url, cds


def call(url: str, body: object, headers: dict | None = None) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return requests.post(f"{url}/cds-services/{SERVICE}", data=data,
                         headers={"Content-Type": "application/json", **(headers or {})}, timeout=30)


def cards_for(url: str, cds, sample: str, **extra) -> list[dict]:
    res = sample_resources(sample)
    r = call(url, hook_request(next(x["id"] for x in res if x["resourceType"] == "Patient"), full_prefetch(cds, res), **extra))
    assert r.status_code == 200, r.text
    return r.json()["cards"]


def test_discovery_lists_the_patient_view_service_with_its_prefetch(service):
    url, _cds = service
    r = requests.get(f"{url}/cds-services", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    svc, order = r.json()["services"]
    assert (svc["id"], svc["hook"]) == (SERVICE, "patient-view")
    assert (order["id"], order["hook"]) == (ORDER_SERVICE, "order-select")
    assert svc["description"] and svc["title"]
    assert svc["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert svc["prefetch"]["observation"] == "Observation?patient={{context.patientId}}"
    assert order["prefetch"] == svc["prefetch"]
    health = requests.get(f"{url}/health", timeout=10).json()
    assert health["status"] == "ok" and health["services"] == sorted([SERVICE, ORDER_SERVICE])


def test_an_eligible_patient_gets_one_short_info_card_with_a_referral_and_its_links(service):
    url, cds = service
    (card,) = cards_for(url, cds, "01-eligible-classic")
    assert card["summary"].startswith("Eligible for NCT06438679") and len(card["summary"]) < 140
    assert card["indicator"] == "info"
    assert card["detail"].startswith("All 22 criteria pass as of 2026-11-16.") and len(card["detail"]) <= 600
    assert "Second Affiliated Hospital" in card["source"]["label"]
    assert card["source"]["url"] == "https://clinicaltrials.gov/study/NCT06438679"
    (suggestion,) = card["suggestions"]
    assert suggestion["actions"][0]["resource"]["subject"] == {"reference": "Patient/p01"}
    page, registry, worklist = card["links"]
    assert page["label"] == "Full screening explanation" and page["url"].startswith(f"{url}/fhir3t/explain/")
    assert registry == {"label": "NCT06438679 in the trial registry", "url": "https://clinicaltrials.gov/study/NCT06438679",
                        "type": "absolute"}
    assert worklist == {"label": "Screening worklist", "url": "https://intranet.example/worklist.html?patient=p01",
                        "type": "absolute"}
    uuid.UUID(card["uuid"])


def test_the_explanation_page_shows_every_criterion_and_only_to_its_token(service):
    url, cds = service
    (card,) = cards_for(url, cds, "03-candidate-missing-tests")
    page = requests.get(card["links"][0]["url"], timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"] and "script" not in page.text
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    for c in cds.definition.criteria.criteria:
        assert c.title in page.text, c.id
    assert "order HBsAg (LOINC 5196-1) at screening" in page.text  # the full reason, codes and all, lives here
    token = card["links"][0]["url"].rsplit("/", 1)[1]
    assert token not in json.dumps([card["uuid"], card["suggestions"]])
    other = requests.get(f"{url}/fhir3t/explain/{'x' * len(token)}", timeout=10)
    assert other.status_code == 404 and "no longer available" in other.text and "HBsAg" not in other.text


def test_a_candidate_card_names_the_tests_that_would_settle_its_unknowns_and_drafts_them(service):
    url, cds = service
    (card,) = cards_for(url, cds, "03-candidate-missing-tests")
    assert card["summary"].endswith("4 criteria need data")
    assert card["detail"].startswith("18 of 22 criteria pass as of 2026-11-16. To decide the rest:")
    assert "- **Hepatitis B**: order HBsAg, anti-HBc and HBV DNA" in card["detail"]
    assert "- **Tuberculosis or NTM**: order IGRA" in card["detail"]  # an IGRA decides the TB test: no TST too
    assert "LOINC" not in card["detail"] and len(card["detail"]) <= 600
    tests, referral = card["suggestions"]
    assert card["selectionBehavior"] == "any"
    ordered = [a["resource"]["code"]["text"] for a in tests["actions"]]
    assert ordered == ["HBsAg", "anti-HBc", "HBV DNA", "anti-HCV", "HCV RNA", "HIV screen", "IGRA"]
    hbsag = tests["actions"][0]["resource"]
    assert hbsag["status"] == "draft" and hbsag["intent"] == "order" and hbsag["subject"] == {"reference": "Patient/p03"}
    assert hbsag["code"]["coding"][0]["system"] == "http://hospital.example.org/CodeSystem/lab"  # the hospital's code first
    assert referral["actions"][0]["resource"]["code"]["text"] == "Referral to the NCT06438679 study team"


def test_no_card_for_ineligible_patients(service):
    url, cds = service
    for sample in ("07-ineligible-mda5-low-grade", "11-ineligible-hbsag-positive", "17-ineligible-other-study"):
        assert cards_for(url, cds, sample) == [], sample


def test_no_card_for_a_patient_already_on_study(service, definition):
    url, cds = service
    res = sample_resources("01-eligible-classic")
    res.append({"resourceType": "ResearchSubject", "id": "rs-p01", "status": "on-study",
                "study": {"identifier": definition.study.identifier}, "individual": {"reference": "Patient/p01"}})
    r = call(url, hook_request("p01", full_prefetch(cds, res)))
    assert r.status_code == 200 and r.json() == {"cards": []}


def test_a_card_shows_once_per_interval_and_feedback_is_recorded(service):
    url, cds = service
    (card,) = cards_for(url, cds, "04-candidate-mda5-ungraded")
    assert cards_for(url, cds, "04-candidate-mda5-ungraded") == []  # the same chart opened again today
    fb = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-16T09:30:00Z",
                        "overrideReason": {"reason": card["overrideReasons"][3], "userComment": "next visit"}}]}
    r = requests.post(f"{url}/cds-services/{SERVICE}/feedback", json=fb, timeout=10)
    assert r.status_code == 200, r.text
    (other,) = cards_for(url, cds, "01-eligible-classic")
    accepted = {"feedback": [{"card": other["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-16T09:31:00Z",
                              "acceptedSuggestions": [{"id": other["suggestions"][0]["uuid"]}]}]}
    assert requests.post(f"{url}/cds-services/{SERVICE}/feedback", json=accepted, timeout=10).status_code == 200
    summary = cds.store.summary()
    assert (summary["cards_shown"], summary["accepted"], summary["overridden"]) == (2, 1, 1)
    assert summary["override_reasons"][0]["code"] == "not-now"


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not valid JSON"),
    ([1, 2], 400, "JSON object"),
    ({"hookInstance": "h", "context": {"patientId": "p01", "userId": "u"}}, 400, "request.hook is required"),
    ({"hook": "order-sign", "hookInstance": "h", "context": {"patientId": "p01", "userId": "u"}}, 400, "not 'order-sign'"),
    ({"hook": "patient-view", "hookInstance": "h"}, 400, "request.context is required"),
    ({"hook": "patient-view", "hookInstance": "h", "context": {"userId": "u"}}, 400, "context.patientId is required"),
    ({"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "p01/../x", "userId": "u"}}, 400, "FHIR id"),
    ({"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "p01", "userId": "u"}, "prefetch": []}, 400,
     "prefetch must be a JSON object"),
    ({"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "p01", "userId": "u"},
      "prefetch": {"patient": {"resourceType": "Patient", "id": "p02"}}}, 400, "not the Patient of context.patientId"),
    ({"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "p01", "userId": "u"},
      "fhirAuthorization": {"access_token": "t", "token_type": "Bearer"}}, 400, "needs request.fhirServer"),
    ({"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "p01", "userId": "u"},
      "fhirServer": "file:///etc/passwd"}, 400, "http(s) URL"),
])
def test_bad_requests_get_400_with_a_json_error_naming_the_problem(service, body, status, message):
    url, _cds = service
    r = call(url, body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_unknown_services_routes_and_oversized_bodies_get_json_errors(definition, tmp_path):
    with running(ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, max_body_mb=0.01), definition) as (url, _cds):
        r = requests.post(f"{url}/cds-services/no-such-service", json={}, timeout=10)
        assert r.status_code == 404 and "no CDS service" in r.json()["error"]
        r = requests.get(f"{url}/nothing-here", timeout=10)
        assert r.status_code == 404 and r.json()["error"]
        r = requests.get(f"{url}/cds-services/{SERVICE}", timeout=10)
        assert r.status_code == 405
        r = call(url, {"hook": "patient-view", "pad": "x" * 20000})
        assert r.status_code == 413 and "larger than" in r.json()["error"]
        r = requests.post(f"{url}/cds-services/{SERVICE}/feedback", json={"feedback": [{"card": "c", "outcome": "ok",
                                                                                        "outcomeTimestamp": "2026-11-16T00:00:00Z"}]},
                          timeout=10)
        assert r.status_code == 400 and "accepted or overridden" in r.json()["error"]
        r = requests.post(f"{url}/cds-services/{SERVICE}/feedback", json={"feedback": [
            {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-16T00:00:00Z"}]}, timeout=10)
        assert r.status_code == 400 and "acceptedSuggestions" in r.json()["error"]


def test_missing_prefetch_without_fhir_access_is_412(service):
    url, cds = service
    res = sample_resources("01-eligible-classic")
    pre = full_prefetch(cds, res)
    del pre["observation"], pre["condition"]
    r = call(url, hook_request("p01", pre))
    assert r.status_code == 412
    assert "condition, observation" in r.json()["error"] and "no fhirServer" in r.json()["error"]
    # a fhirServer the service is not configured to read is no access either (and gets no token)
    r = call(url, hook_request("p01", pre, fhirServer="https://somewhere.example/fhir",
                               fhirAuthorization={"access_token": "secret-token-1", "token_type": "Bearer",
                                                  "expires_in": 300, "scope": "patient/*.read", "subject": "fhir3t"}))
    assert r.status_code == 412 and "not one the service is configured to read" in r.json()["error"]


def test_full_prefetch_needs_no_fhir_server(service):
    """Every key prefetched (null where the EHR has nothing): screened from the prefetch alone."""
    url, cds = service
    res = sample_resources("06-eligible-searchset-age18")
    pre = full_prefetch(cds, res)
    assert any(v is None for v in pre.values())
    r = call(url, hook_request("p06", pre))
    assert r.status_code == 200 and r.json()["cards"][0]["summary"].startswith("Eligible")


def test_logs_say_counts_and_outcomes_never_patient_data(service, caplog):
    url, cds = service
    caplog.set_level(logging.DEBUG, logger="fhir3t")
    cards_for(url, cds, "03-candidate-missing-tests")
    cards_for(url, cds, "07-ineligible-mda5-low-grade")
    lines = [(r.getMessage(), json.dumps(getattr(r, "fields", {}))) for r in caplog.records if r.levelno >= logging.INFO]
    assert any("200 card" in m for m, _ in lines) and any("200 no-card" in m for m, _ in lines)
    text = "\n".join(m + f for m, f in lines)
    for phi in ("p03", "p07", "Patient/", "1966", "MRN"):
        assert phi not in text, phi
    fields = [json.loads(f) for _m, f in lines if '"cds-call"' in f]
    assert {f["outcome"] for f in fields} == {"card", "no-card"}
    assert all("screen_ms" in f for f in fields)


# ---- JWT --------------------------------------------------------------------------------
def test_with_jwt_required_every_call_needs_a_valid_token_for_its_own_url(definition, tmp_path):
    priv = ec.generate_private_key(ec.SECP384R1())
    pub = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(priv.public_key()))
    pub["kid"] = "k1"
    Path(tmp_path / "jwks.json").write_text(json.dumps({"keys": [pub]}))
    public = "https://cds.hospital.example/fhir3t"
    settings = ServeSettings(state_dir=tmp_path / "s", as_of=SAMPLES_AS_OF, require_jwt=True, public_url=public,
                             issuers=(Issuer("https://ehr.hospital.example", key=tmp_path / "jwks.json"),))

    def bearer(path: str) -> dict:
        now = int(time.time())
        t = jwt.encode({"iss": "https://ehr.hospital.example", "aud": public + path, "iat": now, "exp": now + 120,
                        "jti": str(uuid.uuid4())}, priv, algorithm="ES384", headers={"kid": "k1"})
        return {"Authorization": f"Bearer {t}"}

    with running(settings, definition) as (url, cds):
        assert requests.get(f"{url}/cds-services", timeout=10).status_code == 401
        r = requests.get(f"{url}/cds-services", headers=bearer(f"/cds-services/{SERVICE}"), timeout=10)
        assert r.status_code == 401 and "aud" in r.json()["error"]
        assert requests.get(f"{url}/cds-services", headers=bearer("/cds-services"), timeout=10).status_code == 200
        res = sample_resources("01-eligible-classic")
        body = hook_request("p01", full_prefetch(cds, res))
        assert call(url, body).status_code == 401
        ok = call(url, body, headers=bearer(f"/cds-services/{SERVICE}"))
        assert ok.status_code == 200 and len(ok.json()["cards"]) == 1
        assert requests.get(f"{url}/health", timeout=10).status_code == 200  # liveness needs no token


def test_the_documented_example_card_is_what_the_service_answers(definition, tmp_path):
    """docs/clinician.md: the card shown for sample p03 with the [serve] example's links and team."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "clinician.md").read_text(encoding="utf-8")
    documented = json.loads(text.split("The card it returns", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0])
    settings = ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, study_team="3T study team, rheumatology",
                             public_url="https://cds.hospital.example/fhir3t",
                             links=(Link("Screening worklist", "https://intranet.hospital.example/fhir3t/worklist.html"),))
    with running(settings, definition) as (url, cds):
        answer = call(url, hook_request("p03", full_prefetch(cds, sample_resources("03-candidate-missing-tests")))).json()
    tests = answer["cards"][0]["suggestions"][0]
    assert len(tests["actions"]) == 7  # the README shows the first of the seven test orders
    tests["actions"] = tests["actions"][:1]
    for d in (documented, answer):
        d["cards"][0].pop("uuid")
        for s in d["cards"][0]["suggestions"]:
            s.pop("uuid")
        page = d["cards"][0]["links"][0]
        assert page["url"].startswith("https://cds.hospital.example/fhir3t/fhir3t/explain/")
        page.pop("url")
    assert answer == documented


# ---- order-select ---------------------------------------------------------------------------
def order_select(pid: str, code: str, name: str, prefetch: dict | None = None, **extra) -> dict:
    order = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
             "subject": {"reference": f"Patient/{pid}"},
             "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": name}]}}
    body = hook_request(pid, prefetch, **extra)
    body["hook"] = "order-select"
    body["context"].update(selections=["MedicationRequest/draft-1"],
                           draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]})
    return body


def call_order(url: str, body: dict) -> requests.Response:
    return requests.post(f"{url}/cds-services/{ORDER_SERVICE}", json=body, timeout=30)


def test_ordering_a_drug_that_would_exclude_the_patient_is_a_warning_offering_to_remove_the_draft(service):
    url, cds = service
    pre = full_prefetch(cds, sample_resources("01-eligible-classic"))
    r = call_order(url, order_select("p01", "2047232", "baricitinib", pre))
    (card,) = r.json()["cards"]
    assert card["summary"] == ("Starting baricitinib would exclude the patient from NCT06438679 (3T in MDA5+ "
                               "dermatomyositis) (eligible now)")
    assert card["indicator"] == "warning"
    assert card["detail"].startswith("**Recent lenalidomide, cyclosporine or other JAK inhibitor**: starting baricitinib "
                                     "today meets this exclusion.")
    assert "All 22 criteria pass" in card["detail"]  # the record as it is now
    remove, refer = card["suggestions"]
    assert remove["actions"] == [{"type": "delete", "resourceId": "MedicationRequest/draft-1",
                                  "description": "Remove the draft baricitinib order (it would exclude the patient from "
                                                 "NCT06438679)"}]
    assert refer["actions"][0]["resource"]["resourceType"] == "ServiceRequest"


def test_ordering_a_study_drug_brings_the_trial_up_before_it_is_started(service):
    url, cds = service
    pre = full_prefetch(cds, sample_resources("03-candidate-missing-tests"))
    (card,) = call_order(url, order_select("p03", "1357536", "tofacitinib", pre)).json()["cards"]
    assert card["summary"] == ("Before starting tofacitinib: the patient is a possible candidate for NCT06438679 "
                               "(3T in MDA5+ dermatomyositis)")
    assert card["indicator"] == "info" and "would not exclude the patient" in card["detail"]
    assert all(a["type"] == "create" for sug in card["suggestions"] for a in sug["actions"])  # nothing to remove
    # the how-often rule's interval does not hold an order's card back (feedback quiet periods would)
    assert len(call_order(url, order_select("p03", "1357536", "tofacitinib", pre)).json()["cards"]) == 1


def test_other_orders_get_no_card_at_once_without_touching_the_fhir_server(definition, tmp_path):
    ehr = Recorder(lambda path: (200, {"resourceType": "Bundle", "type": "searchset", "entry": []}, 0.0))
    try:
        settings = ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, fhir_servers=(ehr.base,))
        with running(settings, definition) as (url, _cds):
            r = call_order(url, order_select("p01", "161", "acetaminophen", fhirServer=ehr.base))
            assert r.status_code == 200 and r.json() == {"cards": []}
            assert ehr.seen == []
            r = call_order(url, order_select("p01", "2047232", "baricitinib", fhirServer=ehr.base))
            assert r.status_code == 200 and ehr.seen  # a drug the criteria read: the record is read
    finally:
        ehr.stop()


def test_no_order_card_for_an_ineligible_patient_and_400_for_a_malformed_order_context(service):
    url, cds = service
    pre = full_prefetch(cds, sample_resources("07-ineligible-mda5-low-grade"))
    assert call_order(url, order_select("p07", "2047232", "baricitinib", pre)).json() == {"cards": []}
    body = order_select("p07", "2047232", "baricitinib", pre)
    del body["context"]["selections"]
    r = call_order(url, body)
    assert r.status_code == 400 and "context.selections" in r.json()["error"]
    body = order_select("p07", "2047232", "baricitinib", pre)
    body["context"]["draftOrders"] = []
    r = call_order(url, body)
    assert r.status_code == 400 and "context.draftOrders" in r.json()["error"]


# ---- concurrency: one Definition, a Run per call, no lock ---------------------------------------------
CONCURRENT = ["01-eligible-classic", "02-eligible-consent-resource", "03-candidate-missing-tests",
              "04-candidate-mda5-ungraded", "05-candidate-partial-birthdate", "06-eligible-searchset-age18",
              "08-ineligible-dlco-85", "22-local-codes"]


def _cards(url: str, cds, sample: str) -> list[tuple]:
    """What a card says, without the explanation page's per-card token."""
    return [(c["summary"], c["detail"], c["indicator"], json.dumps(c.get("links")[1:], sort_keys=True))
            for c in cards_for(url, cds, sample)]


def test_eight_concurrent_patient_view_calls_give_the_cards_of_eight_calls_in_a_row(definition, tmp_path, monkeypatch):
    """8 patients called at once over real HTTP get the same cards as one after another, and two screenings
    are inside the screening function at the same time (a barrier that a lock around screening would
    never let through: it would time out)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import fhir3t.service.hooks as hooks

    def service(name: str):
        settings = ServeSettings(state_dir=tmp_path / name, as_of=SAMPLES_AS_OF)
        return running(settings, definition)

    with service("in-a-row") as (url, cds):
        in_a_row = {s: _cards(url, cds, s) for s in CONCURRENT}
    assert sum(1 for v in in_a_row.values() if v) >= 6  # eligible and candidate patients get a card

    real = hooks.screen_documents
    overlap = threading.Barrier(2, timeout=20)
    inside = {"now": 0, "most": 0}
    lock = threading.Lock()

    def watched(*args, **kw):
        with lock:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        try:
            if overlap.n_waiting < 2 and not overlap.broken:
                try:
                    overlap.wait()
                except threading.BrokenBarrierError:
                    pass
            return real(*args, **kw)
        finally:
            with lock:
                inside["now"] -= 1

    monkeypatch.setattr(hooks, "screen_documents", watched)
    with service("at-once") as (url, cds), ThreadPoolExecutor(8) as pool:
        at_once = dict(zip(CONCURRENT, pool.map(lambda s: _cards(url, cds, s), CONCURRENT)))
    assert at_once == in_a_row
    assert inside["most"] >= 2 and not overlap.broken


# ---- CORS: browser-based CDS clients ----------------------------------------------------------------
SANDBOX = "https://sandbox.cds-hooks.org"


def preflight(url: str, origin: str, path: str = f"/cds-services/{SERVICE}") -> requests.Response:
    return requests.options(f"{url}{path}", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                     "Access-Control-Request-Headers": "authorization,content-type"},
                            timeout=10)


def test_a_cors_preflight_from_a_configured_origin_is_answered_and_from_another_refused(definition, tmp_path):
    settings = ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, cors_origins=(SANDBOX,))
    with running(settings, definition) as (url, cds):
        ok = preflight(url, SANDBOX)
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == SANDBOX
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert {"authorization", "content-type"} <= {h.strip().lower() for h in ok.headers["access-control-allow-headers"].split(",")}
        assert preflight(url, SANDBOX, "/cds-services").status_code == 200  # discovery too
        refused = preflight(url, "https://evil.example")
        assert refused.status_code == 403 and "cors_origins" in refused.json()["error"]
        assert "access-control-allow-origin" not in refused.headers
        # the call itself: the configured origin may read the answer, another may not
        body = hook_request("p01", full_prefetch(cds, sample_resources("01-eligible-classic")))
        mine = call(url, body, headers={"Origin": SANDBOX})
        assert mine.status_code == 200 and mine.headers["access-control-allow-origin"] == SANDBOX
        theirs = call(url, body, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in theirs.headers


def test_with_no_cors_origin_configured_every_preflight_is_refused(service):
    url, _cds = service
    r = preflight(url, SANDBOX)
    assert r.status_code == 403 and r.json()["error"].startswith("cross-origin calls are allowed only")


def test_a_paged_prefetch_is_read_on_with_the_token_only_on_the_fhir_servers_origin(definition, tmp_path):
    """The EHR sends its searches' first pages. Pages on the fhirServer's origin are read with its token, pages on
    another configured server without it; the card is the one the whole record gives."""
    res = sample_resources("01-eligible-classic")

    def page_two(of: str):
        def answer(path: str):
            hits = [r for r in res if r["resourceType"] == of] if f"/fhir/{of}?page=2" in path else []
            return 200, {"resourceType": "Bundle", "type": "searchset",
                         "entry": [{"resource": r, "search": {"mode": "match"}} for r in hits]}, 0.0
        return answer

    ehr, other = Recorder(page_two("Observation")), Recorder(page_two("Condition"))
    try:
        settings = ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, fhir_servers=(ehr.base, other.base))
        with running(settings, definition) as (url, cds):
            whole = call(url, hook_request("p01", full_prefetch(cds, res))).json()["cards"]
            pre = full_prefetch(cds, res)
            pre["observation"] = {"resourceType": "Bundle", "type": "searchset", "entry": [],
                                  "link": [{"relation": "next", "url": f"{ehr.base}/Observation?page=2"}]}
            pre["condition"] = {"resourceType": "Bundle", "type": "searchset", "entry": [],
                                "link": [{"relation": "next", "url": f"{other.base}/Condition?page=2"}]}
            token = {"access_token": "tok-page", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read",
                     "subject": "fhir3t"}
            paged = call(url, hook_request("p01", pre, fhirServer=ehr.base, fhirAuthorization=token)).json()["cards"]
        assert [(c["summary"], c["detail"]) for c in paged] == [(c["summary"], c["detail"]) for c in whole]
        assert ("/fhir/Observation?page=2", "Bearer tok-page") in ehr.seen
        assert other.seen == [("/fhir/Condition?page=2", None)]  # another origin: no token
    finally:
        ehr.stop()
        other.stop()
