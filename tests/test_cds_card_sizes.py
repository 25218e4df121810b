"""Card size limits for every sample patient, in every language the message catalog has (English and zh-CN at
least: zh-CN renders the value sets' and criteria's Chinese names even before its catalog translates the
sentences): the summary under 140 characters (CDS Hooks), the detail at most DETAIL_MAX, for the patient-view
card and for order-select cards (a drug that would exclude, one named only), and neither holding a code."""
from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from cds_helpers import CONCEPT_MAP, ROOT, SAMPLES_AS_OF, SERVICE, hook_request
from fhir3t.fhirutil import patient_id
from fhir3t.messages.render import LOCALE_DIR
from fhir3t.pipeline import Definition
from fhir3t.r4facts import r4_facts
from fhir3t.service.cards import DETAIL_MAX, SUMMARY_MAX
from fhir3t.service.hooks import CdsService
from fhir3t.service.prefetch import as_prefetch
from fhir3t.service.settings import ServeSettings
from fhir3t.service.store import Store

SAMPLE_FOLDERS = ("screening", "hospital", "safety")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ORDERS = {
    "ingredient": {"coding": [{"system": RXNORM, "code": "2047232", "display": "baricitinib"}]},
    "named": {"coding": [{"system": RXNORM, "code": "2047241",
                          "display": "baricitinib 2 MG Oral Tablet [Olumiant] with a long product name"}]},
    "study-drug": {"coding": [{"system": RXNORM, "code": "1357536", "display": "tofacitinib"}]},
}
#: what a code looks like in a card: a LOINC code, an RxNorm / SNOMED number, a code system's name before a code
CODE = re.compile(r"\b(LOINC|SNOMED|RxNorm|ICD-10)\b|\b\d{4,}-\d\b")


def catalog_languages() -> list[str]:
    """en and zh-CN, and every language with a catalog (compiled or its source) under messages/locale."""
    found = {"en", "zh-CN"}
    if LOCALE_DIR.is_dir():
        for folder in LOCALE_DIR.iterdir():
            messages = folder / "LC_MESSAGES"
            if any(messages.glob("*.mo")) or any(messages.glob("*.po")):
                found.add(folder.name.replace("_", "-"))
    return sorted(found)


def sample_patients() -> dict[str, list[dict]]:
    """Every sample patient's resources, by patient id, whatever file of the samples they are in."""
    by_patient: dict[str, list[dict]] = defaultdict(list)
    shared: list[dict] = []
    for folder in SAMPLE_FOLDERS:
        for path in sorted((ROOT / "samples" / folder).rglob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("resourceType") != "Bundle":
                continue
            for e in doc.get("entry") or ():
                res = e.get("resource") if isinstance(e, dict) else None
                if not isinstance(res, dict):
                    continue
                pid = res.get("id") if res.get("resourceType") == "Patient" else patient_id(res)
                if pid:
                    by_patient[pid].append(res)
                elif res.get("resourceType") in r4_facts().shared_types:  # a drug, a study: everyone's
                    shared.append(res)
                # else: a record whose patient cannot be read (a garbled sample): no patient's search returns it
    return {pid: [*res, *shared] for pid, res in by_patient.items()
            if any(r.get("resourceType") == "Patient" for r in res)}


PATIENTS = sample_patients()


@pytest.fixture(scope="module")
def definition() -> Definition:
    return Definition.load(concept_maps=[CONCEPT_MAP, ROOT / "samples" / "hospital" / "ConceptMap-zj2h-local.json"])


def test_the_samples_hold_every_sample_patient():
    assert len(PATIENTS) >= 24 + 12 + 8
    assert {"p01", "p22", "hs10", "s01"} <= set(PATIENTS)


@pytest.mark.parametrize("lang", catalog_languages())
def test_every_sample_patients_cards_fit_in_every_language(definition, tmp_path, lang):
    settings = ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, show_again_after_days=0, lang=lang,
                             public_url="https://cds.hospital.example/fhir3t")
    cds = CdsService(definition, settings, Store(tmp_path))
    tpls = cds.services[SERVICE].prefetch
    cards = 0
    sizes = []
    try:
        for pid, resources in PATIENTS.items():
            prefetch = as_prefetch(resources, tpls, pid)
            answers = [cds.call(SERVICE, json.dumps(hook_request(pid, prefetch)).encode())]
            for name, medication in ORDERS.items():
                body = hook_request(pid, prefetch)
                order = {"resourceType": "MedicationRequest", "id": f"draft-{name}", "status": "draft", "intent": "order",
                         "subject": {"reference": f"Patient/{pid}"}, "medicationCodeableConcept": medication}
                body["hook"] = "order-select"
                body["context"].update(selections=[f"MedicationRequest/draft-{name}"],
                                       draftOrders={"resourceType": "Bundle", "entry": [{"resource": order}]})
                answers.append(cds.call("nct06438679-order-select", json.dumps(body).encode()))
            for answer in answers:
                assert answer.status == 200, (pid, answer.body)
                for card in answer.body["cards"]:
                    cards += 1
                    summary, detail = card["summary"], card["detail"]
                    sizes.append((len(summary), len(detail)))
                    assert len(summary) <= SUMMARY_MAX, (pid, lang, summary)
                    assert len(detail) <= DETAIL_MAX, (pid, lang, len(detail), detail)
                    assert not summary.endswith("…") and not detail.endswith("…"), (pid, lang)  # fitted, never cut
                    assert CODE.search(summary) is None and CODE.search(detail) is None, (pid, lang, detail)
                    assert "{" not in summary + detail, (pid, lang)  # no placeholder left unfilled
    finally:
        cds.close()
    # the samples' eligible and candidate patients, each with its patient-view and order cards
    assert cards >= 50, cards
    print(f"{lang}: {cards} cards, summary at most {max(s for s, _ in sizes)}, detail at most {max(d for _, d in sizes)}")


def test_the_detail_names_tests_not_codes_even_where_the_criteria_file_gives_a_hint_with_a_code(definition, tmp_path):
    """I5's hint says 'order a chest CT (LOINC 24627-2) and code its finding': the card says 'order chest CT'."""
    settings = ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, lang="en")
    cds = CdsService(definition, settings, Store(tmp_path))
    try:
        res = [r for r in PATIENTS["p01"] if not (r.get("resourceType") == "Observation"
                                                   and "24627-2" in json.dumps(r.get("code")))]
        answer = cds.call(SERVICE, json.dumps(hook_request("p01", as_prefetch(res, cds.services[SERVICE].prefetch, "p01"))).encode())
    finally:
        cds.close()
    (card,) = answer.body["cards"]
    assert "- **Interstitial changes on chest CT**: order chest CT" in card["detail"]
    assert "LOINC" not in card["detail"]


def test_a_long_unknown_list_is_counted_not_cut(definition):
    from datetime import date

    from fhir3t.criteria.kinds.observation import NONE_IN
    from fhir3t.criteria.model import CriterionResult, ScreeningResult
    from fhir3t.messages import Text, reason
    from fhir3t.service.cards import detail

    crits = tuple(CriterionResult(c.id, c.kind, "unknown", (), reason(NONE_IN(test=Text.of("x" * 60), window="w")))
                  for c in definition.criteria.criteria)
    text = detail(ScreeningResult("Patient/p", "candidate", crits, date(2026, 11, 16), date(2026, 11, 16)), definition)
    assert len(text) <= DETAIL_MAX and re.search(r"- and \d+ more criteria: see the full explanation", text)
