"""order-select and the candidate's suggestions over real HTTP against the real test server (sekmet on loopback):
every way an EHR codes the order a clinician picks, the warning card and its delete suggestion, the suspect
that says so, the unrelated drug that gets nothing; a candidate's draft test orders in the hospital's own
codes, applied the way an EHR applies them and resulted by the lab, after which the criterion is decided."""
from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
import requests

from cds_helpers import SERVICE, hook_request, running
from fhir3t.pipeline import Definition
from fhir3t.service.settings import ServeSettings
from integration.conftest import AS_OF, CONCEPT_MAP, SAMPLES, as_transaction

AS_OF_DAY = date.fromisoformat(AS_OF)
ORDER_SERVICE = "nct06438679-order-select"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
FORMULARY = "http://zj2h.example.org/fhir/CodeSystem/formulary"
#: the hospital's ConceptMap with its formulary (YP07310 巴瑞替尼 -> RxNorm 2047232) beside the sample lab map
FORMULARY_MAP = SAMPLES / "hospital" / "ConceptMap-zj2h-local.json"


@pytest.fixture(scope="module")
def definition() -> Definition:
    return Definition.load(concept_maps=[CONCEPT_MAP, FORMULARY_MAP])


@pytest.fixture
def service(definition, loaded_server, tmp_path):
    settings = ServeSettings(state_dir=tmp_path / "state", as_of=AS_OF_DAY, fhir_servers=(loaded_server,),
                             show_again_after_days=0, budget_ms=10000)
    with running(settings, definition) as (url, cds):
        yield url, cds


def order_call(url: str, server: str, pid: str, medication: dict, user: str = "Practitioner/dr-wang") -> dict:
    order = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
             "subject": {"reference": f"Patient/{pid}"}, "medicationCodeableConcept": medication}
    body = hook_request(pid, fhirServer=server)
    body["hook"] = "order-select"
    body["context"].update(userId=user, selections=["MedicationRequest/draft-1"],
                           draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]})
    r = requests.post(f"{url}/cds-services/{ORDER_SERVICE}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def assert_warning_with_delete(answer: dict) -> dict:
    (card,) = answer["cards"]
    assert card["indicator"] == "warning"
    assert len(card["summary"]) < 140 and len(card["detail"]) <= 600
    deletes = [a for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"]
    assert deletes == [{"type": "delete", "resourceId": "MedicationRequest/draft-1", "description": deletes[0]["description"]}]
    assert "exclude the patient from NCT06438679" in deletes[0]["description"]
    return card


E2 = "**Recent lenalidomide, cyclosporine or other JAK inhibitor**"


def test_an_ingredient_code_would_exclude(service, loaded_server):
    url, _cds = service
    card = assert_warning_with_delete(order_call(url, loaded_server, "p01", {
        "coding": [{"system": RXNORM, "code": "2047232", "display": "baricitinib"}]}))
    assert card["summary"].startswith("Starting baricitinib would exclude the patient from NCT06438679")
    assert card["detail"].startswith(f"{E2}: starting baricitinib today meets this exclusion.")


def test_a_hospital_formulary_code_is_read_through_the_conceptmap(service, loaded_server):
    url, _cds = service
    card = assert_warning_with_delete(order_call(url, loaded_server, "p01", {
        "coding": [{"system": FORMULARY, "code": "YP07310", "display": "巴瑞替尼片 2mg"}]}))
    assert card["summary"].startswith("Starting 巴瑞替尼片 2mg would exclude the patient")
    assert "meets this exclusion" in card["detail"]


@pytest.mark.parametrize("medication, named", [
    ({"coding": [{"system": RXNORM, "code": "2047237", "display": "baricitinib 2 MG Oral Tablet"}]}, "baricitinib"),  # SCD
    ({"coding": [{"system": RXNORM, "code": "2047241", "display": "baricitinib 2 MG Oral Tablet [Olumiant]"}]},
     "baricitinib"),  # SBD
    ({"text": "Olumiant"}, None),  # a brand name only
    ({"coding": [{"system": "http://zj2h.example.org/fhir/CodeSystem/his-drug", "code": "X-0001"}], "text": "巴瑞替尼片"},
     "巴瑞替尼"),  # a Chinese name, coded in a system no one maps
], ids=["rxnorm-scd", "rxnorm-sbd", "brand-only", "chinese-name"])
def test_a_product_code_a_brand_or_a_chinese_name_is_read_by_its_name_and_may_exclude(service, loaded_server,
                                                                                        medication, named):
    """Names never decide a criterion, so the card says the drug may exclude the patient, and why: it is named,
    not coded, as a drug the criterion reads (a suspect, said so)."""
    url, _cds = service
    card = assert_warning_with_delete(order_call(url, loaded_server, "p01", medication))
    assert " may exclude the patient from NCT06438679" in card["summary"] and card["summary"].endswith("(eligible now)")
    first = card["detail"].split("\n\n")[0]
    assert first.startswith(E2)
    if named:
        assert f"is named like {named}, a drug this criterion reads, but is not coded as one" in first
    else:
        assert "is named, not coded, as a drug this criterion reads" in first


def test_a_suspect_of_another_drug_class_says_so_for_its_criterion(service, loaded_server):
    """Rituximab by an RxNorm product code: the depleting-agent criterion (E3), not E2, is the one named."""
    url, _cds = service
    card = assert_warning_with_delete(order_call(url, loaded_server, "p01", {
        "coding": [{"system": RXNORM, "code": "1731560", "display": "rituximab 10 MG/ML Injectable Solution"}]}))
    assert card["detail"].startswith("**Recent immune-cell-depleting agent**: rituximab 10 MG/ML Injectable Solution")
    assert "named like rituximab" in card["detail"].split("\n\n")[0]


@pytest.mark.parametrize("medication", [
    {"coding": [{"system": RXNORM, "code": "161", "display": "acetaminophen"}]},
    {"coding": [{"system": FORMULARY, "code": "YP01201", "display": "奥美拉唑肠溶胶囊 20mg"}]},  # mapped: omeprazole
], ids=["rxnorm", "formulary"])
def test_an_unrelated_drug_gets_no_card(service, loaded_server, medication):
    url, _cds = service
    assert order_call(url, loaded_server, "p01", medication) == {"cards": []}


def test_a_study_drug_for_a_candidate_is_information_not_a_warning(service, loaded_server):
    url, _cds = service
    (card,) = order_call(url, loaded_server, "p03", {"coding": [{"system": RXNORM, "code": "1357536",
                                                                 "display": "tofacitinib"}]})["cards"]
    assert card["indicator"] == "info" and card["summary"].startswith("Before starting tofacitinib")
    assert not any(a["type"] == "delete" for s in card["suggestions"] for a in s["actions"])


def test_no_order_card_for_an_ineligible_patient(service, loaded_server):
    url, _cds = service
    assert order_call(url, loaded_server, "p07", {"coding": [{"system": RXNORM, "code": "2047232"}]}) == {"cards": []}


# ---- the candidate's suggestions: applied the way an EHR applies them ------------------------------
def clone_patient(base: str, sample: str, old: str, new: str) -> None:
    """Load a sample under another patient id (so what this test adds leaves the shared samples alone)."""
    text = (SAMPLES / "screening" / f"{sample}.json").read_text(encoding="utf-8").replace(old, new)
    r = requests.post(base, json=as_transaction(json.loads(text)), timeout=60)
    assert r.status_code == 200, r.text[:500]


NEGATIVE = {"coding": [{"system": "http://snomed.info/sct", "code": "260385009", "display": "Negative"}]}
BELOW_LIMIT = {"value": 20, "comparator": "<", "unit": "IU/mL", "system": "http://unitsofmeasure.org", "code": "[IU]/mL"}


def apply_create(base: str, action: dict) -> dict:
    """What an EHR does with an accepted `create` action: the draft is signed and stored."""
    assert action["type"] == "create"
    resource = {**action["resource"], "status": "active"}
    r = requests.post(f"{base}/{resource['resourceType']}", json=resource,
                      headers={"Content-Type": "application/fhir+json"}, timeout=30)
    assert r.status_code == 201, r.text[:300]
    return r.json()


def lab_result(base: str, order: dict, pid: str, when: str) -> None:
    """The hospital's lab resulting an order in its own code (the order's first coding): negative, or a viral
    load below the limit of detection."""
    local = order["code"]["coding"][0]
    obs = {"resourceType": "Observation", "id": f"lab-{uuid.uuid4().hex[:12]}", "status": "final",
           "basedOn": [{"reference": f"ServiceRequest/{order['id']}"}], "subject": {"reference": f"Patient/{pid}"},
           "code": {"coding": [local], "text": local.get("display", "")}, "effectiveDateTime": when}
    if "DNA" in order["code"]["text"] or "RNA" in order["code"]["text"]:
        obs["valueQuantity"] = BELOW_LIMIT
    else:
        obs["valueCodeableConcept"] = NEGATIVE
    r = requests.put(f"{base}/Observation/{obs['id']}", json=obs, headers={"Content-Type": "application/fhir+json"},
                     timeout=30)
    assert r.status_code in (200, 201), r.text[:300]


def patient_view(url: str, server: str, pid: str) -> dict:
    r = requests.post(f"{url}/cds-services/{SERVICE}", json=hook_request(pid, fhirServer=server), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_applying_the_candidates_test_orders_and_resulting_them_decides_its_criteria(definition, scratch_server, tmp_path):
    loaded_server = scratch_server
    settings = ServeSettings(state_dir=tmp_path / "state", as_of=AS_OF_DAY, fhir_servers=(loaded_server,),
                             show_again_after_days=0, budget_ms=10000)
    with running(settings, definition) as (url, _cds):
        apply_and_rescreen(url, loaded_server)


def apply_and_rescreen(url: str, loaded_server: str) -> None:
    clone_patient(loaded_server, "03-candidate-missing-tests", "p03", "p03apply")
    (card,) = patient_view(url, loaded_server, "p03apply")["cards"]
    assert card["summary"].endswith("4 criteria need data")
    tests = next(s for s in card["suggestions"] if s["actions"][0]["resource"]["code"].get("coding"))
    local = [a["resource"]["code"]["coding"][0] for a in tests["actions"]]
    assert all(c["system"] == "http://hospital.example.org/CodeSystem/lab" for c in local)  # the hospital's own codes
    assert [c["code"] for c in local] == ["HBSAG", "HBCAB", "HBVDNA", "HCVAB", "HCVRNA", "HIV-AGAB", "IGRA-TB"]
    orders = [apply_create(loaded_server, a) for a in tests["actions"]]
    stored = requests.get(f"{loaded_server}/ServiceRequest?patient=p03apply", timeout=30).json()
    assert len(stored.get("entry") or []) == len(orders)
    for order in orders:
        lab_result(loaded_server, order, "p03apply", "2026-11-15T10:00:00+08:00")
    (after,) = patient_view(url, loaded_server, "p03apply")["cards"]
    assert after["summary"].startswith("Eligible for NCT06438679")  # E7-E10 decided by results in the local codes
    page = requests.get(after["links"][0]["url"], timeout=10).text
    assert "unknown" not in page.split("<tbody>")[1]


def test_order_select_cards_come_for_each_user_while_dismissals_hold_for_the_one_who_dismissed(service, loaded_server):
    url, _cds = service
    med = {"coding": [{"system": RXNORM, "code": "2047232", "display": "baricitinib"}]}
    (card,) = order_call(url, loaded_server, "p06", med, user="Practitioner/dr-wang")["cards"]
    fb = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-16T09:30:00Z",
                        "overrideReason": {"reason": card["overrideReasons"][1]}}]}
    assert requests.post(f"{url}/cds-services/{ORDER_SERVICE}/feedback", json=fb, timeout=10).status_code == 200
    assert order_call(url, loaded_server, "p06", med, user="Practitioner/dr-wang") == {"cards": []}
    assert len(order_call(url, loaded_server, "p06", med, user="Practitioner/dr-li")["cards"]) == 1
