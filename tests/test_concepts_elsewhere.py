"""A criterion's concept in an element no rule interprets (issue 20, class 2): a property of the records layer.

Every coding and concept text of a resource of a type some rule reads is checked against the value sets
read for that type and their names (records.relevance, `Hit`); one in an element the rule does not
interpret keeps that criterion unknown, naming the element. The issue's shapes, each on an eligible
patient (p01) and each next to its boundary (the same record without the concept stays eligible):
"""
from __future__ import annotations

import copy

import orjson
import pytest

import fhir3t
from conftest import SAMPLES
from fhir3t.errors import Problems

AS_OF = "2026-11-16"
P01 = orjson.loads((SAMPLES / "screening" / "01-eligible-classic.json").read_bytes())
SCT, RX, ICD10, LOINC, ATC = ("http://snomed.info/sct", "http://www.nlm.nih.gov/research/umls/rxnorm",
                              "http://hl7.org/fhir/sid/icd-10", "http://loinc.org", "http://www.whocc.no/atc")
CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
PT = {"reference": "Patient/p01"}


def cc(system: str | None = None, code: str | None = None, display: str | None = None, text: str | None = None) -> dict:
    out: dict = {}
    if system or code or display:
        out["coding"] = [{k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}]
    if text:
        out["text"] = text
    return out


def screen_with(*resources: dict, drop: tuple[str, ...] = ()) -> fhir3t.ScreeningResult:
    b = copy.deepcopy(P01)
    b["entry"] = [e for e in b["entry"] if e["resource"].get("id") not in drop]
    b["entry"] += [{"resource": r} for r in resources]
    (r,) = fhir3t.screen([], as_of=AS_OF, problems=Problems(), documents=[("p01.json", b)])
    return r


def allergy(code: dict, **extra) -> dict:
    return {"resourceType": "AllergyIntolerance", "id": "a1", "patient": PT, "code": code, "recordedDate": "2024-03-01",
            "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"), **extra}


DRUG_ALLERGY = cc(SCT, "416098002", "Drug allergy")
THALIDOMIDE = cc(RX, "10432", "thalidomide")


def test_a_generic_drug_allergy_with_thalidomide_in_reaction_substance_is_unknown_naming_the_element():
    r = screen_with(allergy(DRUG_ALLERGY, reaction=[{"substance": THALIDOMIDE, "manifestation": [cc(text="rash")]}]))
    for cid in ("E11-hypersensitivity", "E1-prior-3t-failure"):
        c = r.by_id(cid)
        assert c.result == "unknown", cid
        assert "RxNorm 10432 'thalidomide' named in AllergyIntolerance.reaction.substance of AllergyIntolerance/a1" in c.reason
        assert "AllergyIntolerance/a1" in c.evidence
    assert r.status == "candidate"
    # boundary: the same allergy to another substance, and a note that names the drug (free text is not read)
    r = screen_with(allergy(DRUG_ALLERGY, reaction=[{"substance": cc(RX, "7980", "penicillin G")}],
                            note=[{"text": "no thalidomide allergy"}]))
    assert r.status == "eligible"


@pytest.mark.parametrize("where", ["reaction-text", "extension", "contained-substance"])
def test_the_drug_named_in_any_other_element_of_the_allergy(where):
    extra = {"reaction-text": {"reaction": [{"substance": cc(text="沙利度胺片")}]},
             "extension": {"extension": [{"url": "https://hospital.example.org/allergen", "valueCodeableConcept": THALIDOMIDE}]},
             "contained-substance": {"contained": [{"resourceType": "Substance", "id": "s", "code": THALIDOMIDE}],
                                     "reaction": [{"substance": {"text": "see contained"}}]}}[where]
    r = screen_with(allergy(DRUG_ALLERGY, **extra))
    assert r.by_id("E11-hypersensitivity").result == "unknown" and r.status == "candidate"


def _statement(med: dict, **extra) -> dict:
    return {"resourceType": "MedicationStatement", "id": "ms1", "status": "stopped", "subject": PT, **med,
            "effectivePeriod": {"start": "2025-01-01", "end": "2025-06-01"},
            "statusReason": [cc(SCT, "58848006", "Lack of drug action")], **extra}


def test_a_contained_medication_coded_only_by_ingredient():
    med = {"resourceType": "Medication", "id": "m", "form": cc(text="capsule"),
           "ingredient": [{"itemCodeableConcept": cc(RX, "42316", "tacrolimus"), "isActive": True}]}
    r = screen_with(_statement({"medicationReference": {"reference": "#m"}}, contained=[med]))
    c = r.by_id("E1-prior-3t-failure")
    assert c.result == "unknown"
    assert "Medication.ingredient.itemCodeableConcept" in c.reason or "contained.Medication.ingredient" in c.reason
    assert "not in the input" not in c.reason  # the Medication is in the input: it is coded only by ingredient


def test_a_referenced_medication_in_another_file_coded_only_by_ingredient():
    med = {"resourceType": "Medication", "id": "m-ext", "ingredient": [{"itemCodeableConcept": cc(text="他克莫司")}]}
    b = copy.deepcopy(P01)
    b["entry"].append({"resource": _statement({"medicationReference": {"reference": "Medication/m-ext"}})})
    pharmacy = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": med}]}
    (r,) = fhir3t.screen([], as_of=AS_OF, problems=Problems(), documents=[("p01.json", b), ("pharmacy.json", pharmacy)])
    assert r.by_id("E1-prior-3t-failure").result == "unknown"


def test_an_atc_class_code_with_the_drug_elsewhere_is_no_decision():
    """ATC L04AX ('other immunosuppressants') says what kind of drug, not which: the extension names thalidomide."""
    med = {"medicationCodeableConcept": cc(ATC, "L04AX", "Other immunosuppressants")}
    r = screen_with(_statement(med, extension=[{"url": "https://hospital.example.org/drug", "valueCodeableConcept": cc(text="沙利度胺")}]))
    assert r.by_id("E1-prior-3t-failure").result == "unknown"
    r = screen_with(_statement({"medicationCodeableConcept": cc(ATC, "L04AX04", "lenalidomide")},
                               extension=[{"url": "https://hospital.example.org/x", "valueCodeableConcept": cc(text="thalidomide")}]))
    assert r.by_id("E1-prior-3t-failure").result == "not-met"  # a specific ATC code decides by itself


def _condition(code: dict, **extra) -> dict:
    return {"resourceType": "Condition", "id": "c9", "subject": PT, "code": code, "onsetDateTime": "2025-03-01",
            "clinicalStatus": cc(CLIN, "active"), **extra}


@pytest.mark.parametrize("where, extra", [
    ("Condition.evidence.code", {"evidence": [{"code": [cc(ICD10, "C50.9", "Malignant neoplasm of breast")]}]}),
    ("Condition.extension.valueCodeableConcept", {"extension": [{"url": "https://h.example.org/dx", "valueCodeableConcept": cc(ICD10, "C50.9")}]}),
    ("Condition.stage.summary", {"stage": [{"summary": cc(text="breast cancer stage II")}]}),
])
def test_a_generic_diagnosis_with_the_cancer_in_another_element(where, extra):
    r = screen_with(_condition(cc(SCT, "64572001", "Disease"), **extra))
    c = r.by_id("E6-malignancy")
    assert c.result == "unknown" and where in c.reason and r.status == "candidate"


def test_a_diagnosis_whose_evidence_names_a_cancer_but_resolved_long_ago_decides_nothing():
    r = screen_with(_condition(cc(SCT, "64572001", "Disease"), clinicalStatus=cc(CLIN, "resolved"),
                               onsetDateTime="2010-01-01", abatementDateTime="2011-01-01",
                               evidence=[{"code": [cc(ICD10, "C50.9")]}]))
    assert r.by_id("E6-malignancy").result == "not-met"


def _obs(rid: str, code: dict, day: str, **value) -> dict:
    return {"resourceType": "Observation", "id": rid, "status": "final", "subject": PT, "code": code,
            "effectiveDateTime": day, **value}


NEG = {"valueCodeableConcept": cc(SCT, "260385009", "Negative")}
POS = {"valueCodeableConcept": cc(SCT, "10828004", "Positive")}


@pytest.mark.parametrize("test, code, crit", [
    ("HBsAg", cc(text="乙肝表面抗原"), "E7-hbv"),
    ("HBsAg", cc(display="HBs antigen"), "E7-hbv"),
    ("IGRA", cc(text="QuantiFERON-TB Gold Plus"), "E10-tb"),
    ("HIV", cc(display="HIV-1/2 Ab"), "E9-hiv"),
    ("hCG", cc(text="β-hCG"), "E13-pregnancy"),
])
def test_a_newer_positive_named_only_in_text_keeps_an_older_readable_negative_from_deciding(test, code, crit):
    r = screen_with(_obs("o-new", code, "2026-11-12", **POS))
    assert r.by_id(crit).result == "unknown" and "Observation/o-new" in r.by_id(crit).evidence, test
    # boundary: the same result a day older than the readable negative does not decide
    older = screen_with(_obs("o-old", code, "2026-10-20", **POS))
    assert older.status == "eligible", test


def test_hcv_named_only_in_text_with_a_readable_negative_rna():
    """anti-HCV positive named in text only, HCV RNA negative: not-met by the spec (unknown AND not-met)."""
    r = screen_with(_obs("o-hcv", cc(text="丙型肝炎病毒抗体"), "2026-11-12", **POS))
    assert r.by_id("E8-hcv").result == "not-met"
    r = screen_with(_obs("o-rna", cc(text="HCV RNA"), "2026-11-12", valueQuantity={"value": 2.1e5, "unit": "IU/mL"}),
                    _obs("o-hcv", cc(LOINC, "13955-0"), "2026-11-12", **POS))
    assert r.by_id("E8-hcv").result == "unknown"


def test_a_panel_component_named_only_in_text_is_not_ignored():
    panel = _obs("o-panel", cc(text="乙肝五项"), "2026-11-12",
                 component=[{"code": cc(text="乙肝表面抗原"), "valueString": "阳性"},
                            {"code": cc(text="乙肝表面抗体"), "valueString": "阴性"}])
    assert screen_with(panel).by_id("E7-hbv").result == "unknown"


def _report(code: dict, day: str, **extra) -> dict:
    return {"resourceType": "DiagnosticReport", "id": "dr1", "status": "final", "subject": PT, "code": code,
            "effectiveDateTime": day, **extra}


@pytest.mark.parametrize("conclusion, want", [([cc(SCT, "10828004", "Positive")], "met"),
                                              ([cc(SCT, "260385009", "Negative")], "not-met"),
                                              ([], "unknown"),
                                              ([cc(SCT, "10828004"), cc(SCT, "260385009")], "unknown")])
def test_a_report_coded_for_the_test_is_read_by_its_conclusion(conclusion, want):
    extra = {"conclusionCode": conclusion} if conclusion else {}
    r = screen_with(_report(cc(LOINC, "5196-1", "HBsAg"), "2026-11-12", **extra))
    assert r.by_id("E7-hbv").result == want
    assert "DiagnosticReport/dr1" in r.by_id("E7-hbv").evidence


@pytest.mark.parametrize("field", ["result", "hasMember"])
def test_results_contained_in_their_report_or_panel_are_read(field):
    child = _obs("hb", cc(LOINC, "5196-1", "HBsAg"), "2026-11-12", **POS)
    child.pop("subject")
    if field == "result":
        container = _report(cc(text="乙肝五项"), "2026-11-12", result=[{"reference": "#hb"}], contained=[child])
    else:
        container = _obs("panel", cc(text="乙肝五项"), "2026-11-12", hasMember=[{"reference": "#hb"}], contained=[child])
    r = screen_with(container)
    assert r.by_id("E7-hbv").result == "met", field


def test_a_hit_needs_a_criterions_concept():
    """Codings and texts that are nobody's concept change nothing (the boundary of every case above)."""
    r = screen_with(allergy(DRUG_ALLERGY, reaction=[{"substance": cc(SCT, "256349002", "Peanut")}]),
                    _condition(cc(SCT, "38341003", "Hypertension"), evidence=[{"code": [cc(text="headache")]}]),
                    _obs("bp", cc(LOINC, "8480-6"), "2026-11-12", valueQuantity={"value": 120, "unit": "mmHg"},
                         extension=[{"url": "https://h.example.org/x", "valueCodeableConcept": cc(text="seated")}]))
    assert r.status == "eligible"


# ---------------------------------------------------------------- types no rule reads, read for what they name
def _encounter(reason: dict) -> dict:
    return {"resourceType": "Encounter", "id": "enc-hiv", "status": "finished", "subject": PT,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": {"start": "2026-10-01"}, "reasonCode": [reason]}


@pytest.mark.parametrize("record,crit,where", [
    (_encounter(cc(ICD10, "B20")), "E9-hiv", "Encounter.reasonCode"),                 # a visit for HIV care
    ({"resourceType": "Procedure", "id": "pr-1", "status": "completed", "code": cc(text="mastectomy"), "subject": PT,
      "performedDateTime": "2026-03-01", "reasonCode": [cc(ICD10, "C50.9")]}, "E6-malignancy", "Procedure.reasonCode"),
    ({"resourceType": "ServiceRequest", "id": "sr-1", "status": "active", "intent": "order", "subject": PT,
      "code": cc(LOINC, "25836-8"), "reasonCode": [cc(SCT, "86406008")]}, "E9-hiv", "ServiceRequest.reasonCode"),
    ({"resourceType": "ExplanationOfBenefit", "id": "eob-1", "status": "active", "patient": PT,
      "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": cc(ICD10, "B20")}]}, "E9-hiv",
     "ExplanationOfBenefit.diagnosis"),
])
def test_a_diagnosis_named_in_a_record_of_a_type_no_rule_reads_keeps_its_absence_from_deciding(record, crit, where):
    """A US Core visit whose reasonCode is HIV disease, a procedure done for breast cancer, an order for an HIV viral
    load, a claim's diagnosis: the EHR states the diagnosis there and nowhere else (R4Facts.mention_types). The
    criterion that absence of the diagnosis decides is unknown, naming the record, not not-met."""
    out = screen_with(record)
    c = out.by_id(crit)
    assert c.result == "unknown" and f"{record['resourceType']}/{record['id']}" in c.evidence, c.reason
    assert where in c.reason and out.status == "candidate"


def test_a_record_of_such_a_type_that_names_nothing_of_the_criteria_is_passed_over():
    assert screen_with(_encounter(cc(ICD10, "J18.9"))).status == "eligible"  # pneumonia: no criterion's concept
    assert screen_with(_encounter(cc(text="随访"))).status == "eligible"


@pytest.mark.parametrize("native", ["off", "on"])
def test_a_visit_naming_hiv_in_a_bulk_export_is_read_by_either_reader(native, tmp_path):
    if native == "on":
        pytest.importorskip("duckdb")
    by_type: dict[str, list[bytes]] = {}
    for e in [*P01["entry"], {"resource": _encounter(cc(ICD10, "B20"))}]:  # p01 as a Bulk export: a file per type
        by_type.setdefault(e["resource"]["resourceType"], []).append(orjson.dumps(e["resource"]))
    (tmp_path / "x").mkdir()
    for rtype, lines in by_type.items():
        (tmp_path / "x" / f"{rtype}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    (r,) = fhir3t.screen([tmp_path / "x"], as_of=AS_OF, native=native)
    assert r.by_id("E9-hiv").result == "unknown" and "Encounter/enc-hiv" in r.by_id("E9-hiv").evidence
