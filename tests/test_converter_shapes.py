"""FHIR written by converters from HL7 v2 messages and C-CDA documents (v2-to-FHIR and CDA-to-FHIR templates,
integration-engine channels): shapes whose meaning fhir3t cannot read keep the criterion unknown (naming the
record), never decide it towards eligibility.

Each case starts from an eligible patient (samples/screening/01-eligible-classic.json) and changes or adds one
record the way a converter writes it.
"""
from __future__ import annotations

import pytest

from conftest import eligible_p01, resource_in, screen_one

AS_OF = "2026-11-16"
LOINC = "http://loinc.org"


_patient, _res, _screen = eligible_p01, resource_in, screen_one


def _later_hiv_result(code: dict, **more: object) -> dict:
    """A reactive HIV screen a week after the sample's negative one (so it is the most recent)."""
    return {"resourceType": "Observation", "id": "conv-hiv", "status": "final", "subject": {"reference": "Patient/p01"},
            "code": code, "effectiveDateTime": "2026-11-10T09:00:00+08:00", "valueString": "Reactive", **more}


def test_the_base_patient_is_eligible(definition):
    assert _screen(definition, _patient()).status == "eligible"


# ---------------------------------------------------------------- codes under no system fhir3t knows
@pytest.mark.parametrize("coding", [
    {"system": "LN", "code": "56888-1"},                         # HL7 v2 table 0396's name for LOINC (OBX-3.3)
    {"code": "56888-1"},                                          # the system dropped
    {"system": "urn:oid:LN", "code": "56888-1"},                  # a converter's fallback for an unmapped name
    {"system": "http://lis.example.org/codes", "code": "56888-1"},
])
def test_a_listed_code_under_no_system_fhir3t_knows_is_a_suspect_not_another_test(definition, coding):
    b = _patient()
    b["entry"].append({"resource": _later_hiv_result({"coding": [coding]})})
    out = _screen(definition, b)
    c = out.by_id("E9-hiv")
    assert c.result == "unknown", c.reason
    assert "Observation/conv-hiv" in c.evidence and "no code system fhir3t knows" in c.reason
    assert out.status == "candidate"


def test_a_listed_code_under_no_known_system_in_a_panel_component_is_a_suspect(definition):
    b = _patient()
    panel = _later_hiv_result({"coding": [{"system": "LN", "code": "24364-2"}]})
    del panel["valueString"]
    panel["component"] = [{"code": {"coding": [{"system": "LN", "code": "56888-1"}]}, "valueString": "Reactive"}]
    b["entry"].append({"resource": panel})
    c = _screen(definition, b).by_id("E9-hiv")
    assert c.result == "unknown" and "component.code" in c.reason, c.reason


@pytest.mark.parametrize("coding", [
    {"system": "LN", "code": "12345-6"},       # a code no value set lists (and a wrong check digit)
    {"system": "LN", "code": "2345-7"},        # glucose: listed nowhere
    {"code": "5196-2"},                        # an HBsAg code with a wrong check digit is no LOINC code
])
def test_a_code_under_no_known_system_that_no_value_set_lists_is_another_record(definition, coding):
    b = _patient()
    b["entry"].append({"resource": _later_hiv_result({"coding": [coding]})})
    out = _screen(definition, b)
    assert out.status == "eligible"


@pytest.mark.parametrize("substance", [{"system": "RXN", "code": "42316"}, {"code": "42316"}])
def test_a_cda_drug_allergy_naming_a_3t_drug_under_no_known_system_keeps_e11_unknown(definition, substance):
    """C-CDA's allergy observation says 'Propensity to adverse reactions to drug' and names the drug as its
    participant, which converters write as reaction.substance."""
    b = _patient()
    b["entry"].append({"resource": {
        "resourceType": "AllergyIntolerance", "id": "conv-allergy", "patient": {"reference": "Patient/p01"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "419511003"}]},
        "reaction": [{"substance": {"coding": [substance]}}]}})
    out = _screen(definition, b)
    c = out.by_id("E11-hypersensitivity")
    assert c.result == "unknown" and "AllergyIntolerance/conv-allergy" in c.evidence, c.reason
    assert "reaction.substance" in c.reason and out.status == "candidate"


def test_a_listed_code_under_a_known_system_beside_a_stray_one_is_read(definition):
    b = _patient()
    b["entry"].append({"resource": _later_hiv_result({"coding": [{"system": "LN", "code": "56888-1"},
                                                                 {"system": LOINC, "code": "56888-1"}]})})
    assert _screen(definition, b).by_id("E9-hiv").result == "met"


# ---------------------------------------------------------------- null flavors beside a value
NULL_FLAVOR = "http://hl7.org/fhir/StructureDefinition/iso21090-nullFlavor"


def _null(code: str = "UNK") -> dict:
    return {"extension": [{"url": NULL_FLAVOR, "valueCode": code}]}


@pytest.mark.parametrize("where", ["_valueString", "valueCodeableConcept", "coding", "_value"])
def test_a_result_whose_value_carries_a_null_flavor_has_no_value(definition, where):
    b = _patient()
    hiv = _res(b, "p01-hiv")
    if where == "_valueString":
        del hiv["valueCodeableConcept"]
        hiv["valueString"] = "NEG"
        hiv["_valueString"] = _null()
    elif where == "valueCodeableConcept":
        hiv["valueCodeableConcept"].update(_null("OTH"))
    elif where == "coding":
        hiv["valueCodeableConcept"]["coding"][0].update(_null("OTH"))
    else:
        del hiv["valueCodeableConcept"]
        hiv["valueQuantity"] = {"value": 0.1, "comparator": "<", "unit": "S/CO", "_value": _null("NI")}
    out = _screen(definition, b)
    c = out.by_id("E9-hiv")
    assert c.result == "unknown" and "Observation/p01-hiv" in c.evidence, c.reason
    assert out.status == "candidate"


def test_a_dlco_value_carrying_a_null_flavor_is_no_number(definition):
    b = _patient()
    _res(b, "p01-dlco")["valueQuantity"]["_value"] = _null("MSK")
    assert _screen(definition, b).by_id("I4-dlco").result == "unknown"


# ---------------------------------------------------------------- dates written without a value
def _cancer(**dates: object) -> dict:
    return {"resourceType": "Condition", "id": "conv-cancer", "subject": {"reference": "Patient/p01"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "resolved"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C50.911"}]}, **dates}


@pytest.mark.parametrize("dates", [
    {"onsetDateTime": "2015-01-01", "recordedDate": "2015-02-01", "_abatementDateTime": _null()},
    {"onsetDateTime": "2015-01-01", "recordedDate": "2015-02-01",
     "_abatementDateTime": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                           "valueCode": "unknown"}]}},
    {"onsetDateTime": "2015-01-01", "recordedDate": "2015-02-01", "abatementPeriod": {"start": "2015-06-01",
                                                                                       "_end": _null()}},
    {"recordedDate": "2015-02-01", "_onsetDateTime": _null("NI")},
])
def test_a_resolved_cancer_whose_date_is_there_without_a_value_may_lie_in_the_window(definition, dates):
    b = _patient()
    b["entry"].append({"resource": _cancer(**dates)})
    out = _screen(definition, b)
    c = out.by_id("E6-malignancy")
    assert c.result == "unknown" and "Condition/conv-cancer" in c.evidence, c.reason
    assert out.status == "candidate"


def test_a_resolved_cancer_with_all_its_dates_before_the_window_is_still_not_met(definition):
    b = _patient()
    b["entry"].append({"resource": _cancer(onsetDateTime="2015-01-01", abatementDateTime="2016-01-01",
                                           recordedDate="2015-02-01")})
    assert _screen(definition, b).by_id("E6-malignancy").result == "not-met"


def _baricitinib(**more: object) -> dict:
    return {"resourceType": "MedicationStatement", "id": "conv-bari", "subject": {"reference": "Patient/p01"},
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": "2047232"}]}, **more}


@pytest.mark.parametrize("record", [
    {"status": "completed", "effectivePeriod": {"start": "2026-10-01", "_end": _null()}},   # CDA <high nullFlavor>
    {"status": "completed", "effectivePeriod": {"start": "2026-10-01", "end": "2026-10-02", "_end": _null()}},
    {"status": "completed", "_effectiveDateTime": _null(), "dateAsserted": "2026-08-01"},
])
def test_a_drug_whose_end_is_there_without_a_value_has_an_unknown_last_exposure(definition, record):
    b = _patient()
    b["entry"].append({"resource": _baricitinib(**record)})
    out = _screen(definition, b)
    c = out.by_id("E2-recent-immunomodulator")
    assert c.result == "unknown" and "MedicationStatement/conv-bari" in c.evidence, c.reason


def test_an_active_drug_whose_end_has_no_value_is_ongoing(definition):
    b = _patient()
    b["entry"].append({"resource": _baricitinib(status="active", effectivePeriod={"start": "2026-10-01",
                                                                                  "_end": _null()})})
    assert _screen(definition, b).by_id("E2-recent-immunomodulator").result == "met"


# ---------------------------------------------------------------- results of a withdrawn report
@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
@pytest.mark.parametrize("container", ["DiagnosticReport", "Observation"])
def test_a_result_of_a_withdrawn_report_or_panel_is_not_read_as_it_stands(definition, status, container):
    """An ORU whose order was cancelled (OBR-25 X) converts into a report of that status, while its results keep
    OBX-11 F: the negative HIV screen it points at must not decide E9."""
    b = _patient()
    report = {"resourceType": container, "id": "conv-report", "status": status, "subject": {"reference": "Patient/p01"},
              "code": {"coding": [{"system": LOINC, "code": "24364-2"}]},
              "effectiveDateTime": "2026-11-03T09:30:00+08:00",
              ("result" if container == "DiagnosticReport" else "hasMember"): [{"reference": "Observation/p01-hiv"}]}
    b["entry"].append({"resource": report})
    out = _screen(definition, b)
    c = out.by_id("E9-hiv")
    assert c.result == "unknown" and "Observation/p01-hiv" in c.evidence and f"{container}/conv-report" in c.reason, c.reason
    assert out.status == "candidate"


@pytest.mark.parametrize("status", ["final", "corrected", "registered", "partial"])
def test_a_result_of_a_report_of_another_status_is_read(definition, status):
    b = _patient()
    b["entry"].append({"resource": {"resourceType": "DiagnosticReport", "id": "conv-report", "status": status,
                                    "subject": {"reference": "Patient/p01"},
                                    "code": {"coding": [{"system": LOINC, "code": "24364-2"}]},
                                    "result": [{"reference": "Observation/p01-hiv"}]}})
    out = _screen(definition, b)
    assert out.by_id("E9-hiv").result == "not-met" and out.status == "eligible"
