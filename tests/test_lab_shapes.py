"""Lab results as laboratory systems and EHR lab interfaces export them: shapes whose meaning fhir3t cannot
read keep the criterion unknown (naming the record), never decide it towards eligibility.

Each case starts from an eligible patient (samples/screening/01-eligible-classic.json) and changes one lab
record the way a real LIS/EHR interface writes it.
"""
from __future__ import annotations

import copy
import json

import pytest

from conftest import SAMPLES, screen_bundle

AS_OF = "2026-11-16"
BASE = json.loads((SAMPLES / "screening" / "01-eligible-classic.json").read_text(encoding="utf-8"))
V3I = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LOINC = "http://loinc.org"


def _patient() -> dict:
    return copy.deepcopy(BASE)


def _res(bundle: dict, rid: str) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"].get("id") == rid)


def _set_value(r: dict, **value: object) -> None:
    for k in [k for k in r if k.startswith("value")]:
        del r[k]
    r.update(value)


def _screen(definition, bundle: dict):
    results = screen_bundle(definition, bundle, AS_OF)
    assert len(results) == 1
    return results[0]


def test_the_base_patient_is_eligible(definition):
    assert _screen(definition, _patient()).status == "eligible"


# ---------------------------------------------------------------- modifier extensions
@pytest.mark.parametrize("rid,where,cid", [
    ("p01-hiv", None, "E9-hiv"),                          # the result itself
    ("p01-mda5", None, "I3-mda5"),
    ("p01-dm", None, "I2-dm"),                            # a diagnosis
    ("p01-cyclosporine", None, "E2-recent-immunomodulator"),  # a drug record (a contained Medication's too)
    ("p01-cyclosporine", "contained", "E2-recent-immunomodulator"),
])
def test_a_modifier_extension_fhir3t_does_not_understand_makes_the_record_unreadable(definition, rid, where, cid):
    b = _patient()
    r = _res(b, rid)
    target = r["contained"][0] if where == "contained" else r
    target["modifierExtension"] = [{"url": "http://lis.example.org/fhir/StructureDefinition/not-performed",
                                    "valueBoolean": True}]
    out = _screen(definition, b)
    c = out.by_id(cid)
    assert c.result == "unknown", c.reason
    assert f"{r['resourceType']}/{rid}" in c.evidence and "modifier extension" in c.reason
    assert out.status == "candidate"


def test_a_modifier_extension_on_a_panel_component_makes_the_panel_unreadable(definition):
    b = _patient()
    hiv = _res(b, "p01-hiv")
    hiv["code"] = {"coding": [{"system": LOINC, "code": "24364-2"}], "text": "Infection screen panel"}
    comp = {"code": {"coding": [{"system": LOINC, "code": "56888-1"}]}, "valueString": "Negative",
            "modifierExtension": [{"url": "http://lis.example.org/ext/result-withdrawn", "valueBoolean": True}]}
    _set_value(hiv)
    hiv["component"] = [comp]
    c = _screen(definition, b).by_id("E9-hiv")
    assert c.result == "unknown" and "component[0].modifierExtension" in c.reason


# ---------------------------------------------------------------- dataAbsentReason beside a value
@pytest.mark.parametrize("rid,cid", [("p01-hiv", "E9-hiv"), ("p01-dlco", "I4-dlco"), ("p01-mda5", "I3-mda5"),
                                     ("p01-hbsag", "E7-hbv")])
def test_a_result_giving_a_data_absent_reason_has_no_value_whatever_value_sits_beside_it(definition, rid, cid):
    b = _patient()
    _res(b, rid)["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                                    "code": "error"}]}
    c = _screen(definition, b).by_id(cid)
    assert c.result == "unknown" and "error" in c.reason


def test_a_data_absent_reason_extension_on_the_primitive_value_is_no_value(definition):
    b = _patient()
    hiv = _res(b, "p01-hiv")
    _set_value(hiv, valueString="NEG", _valueString={"extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "error"}]})
    assert _screen(definition, b).by_id("E9-hiv").result == "unknown"


def test_a_component_giving_a_data_absent_reason_has_no_value(definition):
    b = _patient()
    hiv = _res(b, "p01-hiv")
    hiv["code"] = {"coding": [{"system": LOINC, "code": "24364-2"}]}
    _set_value(hiv)
    hiv["component"] = [{"code": {"coding": [{"system": LOINC, "code": "56888-1"}]}, "valueString": "Negative",
                         "dataAbsentReason": {"text": "haemolysed specimen"}}]
    c = _screen(definition, b).by_id("E9-hiv")
    assert c.result == "unknown" and "haemolysed specimen" in c.reason


# ---------------------------------------------------------------- parts of one result that disagree
def _interp(code: str, system: str = V3I) -> list[dict]:
    return [{"coding": [{"system": system, "code": code}]}]


@pytest.mark.parametrize("change", [
    {"interpretation": _interp("POS")},                                                   # coded Negative, flagged POS
    {"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}],
                              "text": "Reactive"}},                                       # coded Negative, text positive
    {"valueString": "Negative", "interpretation": [{"text": "阳性"}]},
    {"valueQuantity": {"value": 0.1, "comparator": "<", "unit": "S/CO"}, "interpretation": _interp("DET")},
])
def test_parts_of_a_qualitative_result_that_disagree_leave_it_unknown(definition, change):
    b = _patient()
    hiv = _res(b, "p01-hiv")
    if "valueCodeableConcept" in change or "valueString" in change or "valueQuantity" in change:
        _set_value(hiv)
    hiv.update(copy.deepcopy(change))
    c = _screen(definition, b).by_id("E9-hiv")
    assert c.result == "unknown" and "disagree" in c.reason, c.reason


@pytest.mark.parametrize("flag", [_interp("A"), _interp("H"), _interp("HH"), _interp(">"),
                                  _interp("R", "http://lis.example.org/CodeSystem/flags"), [{"text": "Abnormal"}]])
def test_a_negative_result_flagged_with_an_interpretation_fhir3t_does_not_understand_is_unknown(definition, flag):
    b = _patient()
    _res(b, "p01-hiv")["interpretation"] = flag
    c = _screen(definition, b).by_id("E9-hiv")
    assert c.result == "unknown" and "Observation/p01-hiv" in c.evidence, c.reason


@pytest.mark.parametrize("flag", [_interp("N"), _interp("NEG"), [{"text": "正常"}], [{"text": "阴性"}]])
def test_a_negative_result_flagged_normal_or_negative_is_still_negative(definition, flag):
    b = _patient()
    _res(b, "p01-hiv")["interpretation"] = flag
    out = _screen(definition, b)
    assert out.by_id("E9-hiv").result == "not-met" and out.status == "eligible"


@pytest.mark.parametrize("change", [
    {"valueString": "+++", "interpretation": _interp("NEG")},
    {"valueString": "++", "interpretation": _interp("N")},
    {"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}], "text": "+++"}},
])
def test_a_strong_grade_beside_a_coded_negative_or_normal_is_unknown(definition, change):
    b = _patient()
    mda5 = _res(b, "p01-mda5")
    _set_value(mda5)
    mda5.update(copy.deepcopy(change))
    c = _screen(definition, b).by_id("I3-mda5")
    assert c.result == "unknown" and "disagree" in c.reason, c.reason


# ---------------------------------------------------------------- units and numbers
UCUM = "http://unitsofmeasure.org"


@pytest.mark.parametrize("quantity", [
    {"value": 62, "unit": "mL/min/mmHg", "system": UCUM, "code": "%"},        # code and unit text disagree
    {"value": 62, "unit": "% change", "system": UCUM, "code": "%"},
    {"value": 62, "unit": "%", "system": "http://lis.example.org/units", "code": "%"},  # a code of another system
])
def test_a_quantity_whose_unit_spellings_are_not_all_understood_is_unknown(definition, quantity):
    b = _patient()
    _set_value(_res(b, "p01-dlco"), valueQuantity=quantity)
    c = _screen(definition, b).by_id("I4-dlco")
    assert c.result == "unknown" and "unit" in c.reason, c.reason


@pytest.mark.parametrize("quantity,expected", [
    ({"value": 3, "unit": "cm", "system": UCUM, "code": "mm"}, "unknown"),   # 3 mm or 30 mm?
    ({"value": 3, "unit": "mm", "system": UCUM, "code": "cm"}, "unknown"),
    ({"value": 3, "unit": "mm", "system": UCUM, "code": "mm"}, "not-met"),
    ({"value": 0.3, "unit": "cm"}, "not-met"),                                 # one spelling, converted
    ({"value": -1, "unit": "mm", "system": UCUM, "code": "mm"}, "unknown"),  # an LIS's 'not read'
])
def test_tst_induration_is_read_only_when_every_spelling_of_its_unit_agrees(definition, quantity, expected):
    b = _patient()
    tst = _res(b, "p01-igra")
    tst["code"] = {"coding": [{"system": LOINC, "code": "1648-5"}]}
    _set_value(tst, valueQuantity=quantity)
    assert _screen(definition, b).by_id("E10-tb").result == expected


@pytest.mark.parametrize("measured,predicted,expected", [
    ({"value": 7.5}, {"value": 25, "unit": "mL/min/mmHg"}, "unknown"),     # one side without a unit
    ({"value": 7.5, "unit": "mL/min/mmHg"}, {"value": 25}, "unknown"),
    ({"value": 7.5}, {"value": 25}, "unknown"),
    ({"value": 7.5, "unit": "mL/min/mmHg"}, {"value": 25, "unit": "mL/min/mmHg"}, "met"),
    ({"value": 7.5, "unit": "mmol/min/kPa", "system": UCUM, "code": "mmol/min/kPa"},
     {"value": 25, "unit": "mmol/min/kPa"}, "met"),
])
def test_the_measured_over_predicted_ratio_needs_both_units_and_the_same(definition, measured, predicted, expected):
    b = _patient()
    m = _res(b, "p01-dlco")
    m["code"] = {"coding": [{"system": LOINC, "code": "19911-7"}]}
    _set_value(m, valueQuantity=measured)
    p = copy.deepcopy(m)
    p["id"] = "p01-dlco-predicted"
    p["code"] = {"coding": [{"system": LOINC, "code": "19910-9"}]}
    _set_value(p, valueQuantity=predicted)
    b["entry"].append({"fullUrl": "http://ehr.example.org/fhir/Observation/p01-dlco-predicted", "resource": p})
    assert _screen(definition, b).by_id("I4-dlco").result == expected


def test_a_non_finite_number_is_no_number(definition):
    b = _patient()
    _res(b, "p01-dlco")["valueQuantity"]["value"] = float("nan")
    assert _screen(definition, b).by_id("I4-dlco").result == "unknown"


# ---------------------------------------------------------------- whose result, and which report counts
@pytest.mark.parametrize("focus", [[{"reference": "RelatedPerson/donor-1"}], [{"display": "fetus"}],
                                   [{"reference": "Patient/p01"}, {"reference": "Specimen/cord-blood"}]])
def test_a_result_about_something_other_than_the_patient_is_unknown(definition, focus):
    b = _patient()
    _res(b, "p01-hiv")["focus"] = focus
    c = _screen(definition, b).by_id("E9-hiv")
    assert c.result == "unknown" and "Observation/p01-hiv" in c.evidence and "focus" in c.reason, c.reason


def test_a_result_whose_focus_is_the_patient_is_read(definition):
    b = _patient()
    _res(b, "p01-hiv")["focus"] = [{"reference": "Patient/p01"}]
    assert _screen(definition, b).status == "eligible"


@pytest.mark.parametrize("status,expected", [("registered", "unknown"), ("unknown", "unknown"),
                                             ("preliminary", "not-met"), ("final", "not-met")])
def test_a_report_registered_or_of_unknown_status_does_not_count(definition, status, expected):
    b = _patient()
    b["entry"] = [e for e in b["entry"] if e["resource"].get("id") != "p01-hiv"]
    report = {"resourceType": "DiagnosticReport", "id": "dr-hiv", "status": status,
              "code": {"coding": [{"system": LOINC, "code": "56888-1"}]}, "subject": {"reference": "Patient/p01"},
              "effectiveDateTime": "2026-11-03",
              "conclusionCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}]}]}
    b["entry"].append({"fullUrl": "http://ehr.example.org/fhir/DiagnosticReport/dr-hiv", "resource": report})
    assert _screen(definition, b).by_id("E9-hiv").result == expected


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("change", [
    {"modifierExtension": [{"url": "http://lis.example.org/ext/result-withdrawn", "valueBoolean": True}]},
    {"focus": [{"reference": "RelatedPerson/donor-1"}]},
    {"_valueCodeableConcept": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                              "valueCode": "error"}]}},
])
def test_copies_of_unknown_order_that_differ_in_what_the_builder_reads_leave_the_result_unknown(definition, change,
                                                                                                  first):
    b = _patient()
    copy_ = copy.deepcopy(_res(b, "p01-hiv"))
    copy_.update(copy.deepcopy(change))
    entry = {"fullUrl": "http://ehr.example.org/fhir/Observation/p01-hiv", "resource": copy_}
    if first:
        b["entry"].insert(0, entry)
    else:
        b["entry"].append(entry)
    assert _screen(definition, b).by_id("E9-hiv").result == "unknown"


@pytest.mark.parametrize("comparator", [">", ">=", "ad", "≤"])
def test_a_zero_with_a_comparator_other_than_below_is_not_a_negative(definition, comparator):
    b = _patient()
    _set_value(_res(b, "p01-hiv"), valueQuantity={"value": 0, "comparator": comparator, "unit": "S/CO"})
    assert _screen(definition, b).by_id("E9-hiv").result == "unknown"


@pytest.mark.parametrize("system", ["http://terminology.hl7.org/CodeSystem/v2-0078", "http://hl7.org/fhir/v2/0078"])
@pytest.mark.parametrize("code,expected", [("N", "not-met"), ("NEG", "not-met"), ("POS", "unknown"), ("A", "unknown")])
def test_hl7_v2_abnormal_flags_read_as_their_v3_interpretation_codes(definition, system, code, expected):
    b = _patient()
    _res(b, "p01-hiv")["interpretation"] = _interp(code, system)
    assert _screen(definition, b).by_id("E9-hiv").result == expected


@pytest.mark.parametrize("interpretation", [
    {"coding": [{"system": V3I, "code": "A"}]},               # one interpretation written without its array
    ["A"],                                                    # not a CodeableConcept
    [{"coding": {"system": V3I, "code": "POS"}}],             # its coding not an array
])
def test_an_interpretation_in_a_shape_fhir3t_cannot_read_leaves_a_negative_unknown(definition, interpretation):
    b = _patient()
    _res(b, "p01-hiv")["interpretation"] = interpretation
    assert _screen(definition, b).by_id("E9-hiv").result == "unknown"


def test_an_interpretation_without_its_array_still_reads(definition):
    b = _patient()
    _res(b, "p01-hiv")["interpretation"] = {"coding": [{"system": V3I, "code": "POS"}]}
    assert "disagree" in _screen(definition, b).by_id("E9-hiv").reason
    b = _patient()
    mda5 = _res(b, "p01-mda5")
    mda5["interpretation"] = {"coding": [{"system": V3I, "code": "NEG"}]}
    assert _screen(definition, b).by_id("I3-mda5").result == "unknown"


@pytest.mark.parametrize("change", [{"code": 5}, {"unit": ["%"]}, {"system": 7}])
def test_a_quantity_whose_unit_is_not_text_is_unknown(definition, change):
    b = _patient()
    _res(b, "p01-dlco")["valueQuantity"].update(change)
    assert _screen(definition, b).by_id("I4-dlco").result == "unknown"
