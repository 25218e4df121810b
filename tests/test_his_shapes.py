"""Records as a Chinese hospital's HIS / LIS / PACS / EMR export them (local codes beside standard ones,
Chinese words and signs in results, forms answered in the hospital's tools): shapes whose meaning fhir3t cannot
read keep the criterion unknown (naming the record), never decide it towards eligibility.

Each case starts from the eligible hospital-shaped patient samples/hospital (hs01, with the hospital's ConceptMap)
and changes one record the way such a system writes it.
"""
from __future__ import annotations

import copy
import json

import pytest

from conftest import SAMPLES, screen_bundle
from fhir3t.pipeline import Definition

AS_OF = "2026-11-16"
HOSPITAL = SAMPLES / "hospital"
V3I = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@pytest.fixture(scope="module")
def definition_his() -> Definition:
    return Definition.load(None, [HOSPITAL / "ConceptMap-zj2h-local.json"])


def _records() -> list[dict]:
    entries = [e for part in ("ehr", "pharmacy")
               for e in json.loads((HOSPITAL / part / "hs01.json").read_text(encoding="utf-8"))["entry"]]
    return [copy.deepcopy(e["resource"]) for e in entries]


BASE = _records()


def _patient() -> list[dict]:
    return copy.deepcopy(BASE)


def _res(records: list[dict], rid: str) -> dict:
    return next(r for r in records if r.get("id") == rid)


def _set_value(r: dict, **value: object) -> None:
    for k in [k for k in r if k.startswith("value") or k == "interpretation"]:
        del r[k]
    r.update(value)


def _screen(definition: Definition, records: list[dict]):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in records]}
    results = screen_bundle(definition, bundle, AS_OF)
    assert len(results) == 1
    return results[0]


def test_the_base_patient_is_eligible(definition_his):
    assert _screen(definition_his, _patient()).status == "eligible"


# ---------------------------------------------------------------- I3: a grade among words fhir3t does not know
MDA5 = "hs01-o2"


@pytest.mark.parametrize("value", [
    {"valueString": "+++ 待复查"},                       # pending recheck
    {"valueString": "疑似+++"},                          # suspected
    {"valueString": "标本溶血 +++"},                     # haemolysed specimen
    {"valueString": "+++?"},
    {"valueString": "可疑 +++"},                         # the words say indeterminate
    {"valueString": "++（弱）"},                         # weak
    {"valueString": "阴性 +++"},                         # the words say negative
    {"valueString": "+++ 阴性"},
    {"valueString": "+++", "interpretation": [{"text": "阴性"}]},  # another part of the result says negative
    {"valueString": "+++", "interpretation": [{"text": "正常"}]},  # ... or normal
    {"valueString": "-", "valueCodeableConcept": {"text": "+++"}},
    {"valueString": "阴性", "interpretation": [{"text": "+++"}]},
])
def test_a_strong_grade_beside_words_fhir3t_does_not_read_or_that_say_otherwise_is_unknown(definition_his, value):
    p = _patient()
    mda5 = _res(p, MDA5)
    _set_value(mda5, **value)
    out = _screen(definition_his, p)
    c = out.by_id("I3-mda5")
    assert c.result == "unknown", c.reason
    assert f"Observation/{MDA5}" in c.evidence
    assert out.status == "candidate"


@pytest.mark.parametrize("value,expected", [
    ("阳性(+++)", "met"), ("阳性（＋＋）", "met"), ("+++(1:320)", "met"), ("++/+++", "met"),
    ("+++（参考范围：阴性）", "met"),                  # a reference range beside the value is set aside
    ("阳性(+)", "not-met"), ("阴性(-)", "not-met"), ("+-", "not-met"), ("±", "not-met"),
])
def test_a_grade_written_with_words_fhir3t_reads_is_still_read(definition_his, value, expected):
    p = _patient()
    _set_value(_res(p, MDA5), valueString=value)
    assert _screen(definition_his, p).by_id("I3-mda5").result == expected


# ---------------------------------------------------------------- checklist: a response to another version of the form
CHECKLIST = "hs01-qr5"
CHECKLIST_URL = "https://fhir3t.github.io/fhir/Questionnaire/3t-screening-checklist"


def test_a_checklist_answering_a_version_of_the_form_fhir3t_does_not_know_is_unknown(definition_his):
    p = _patient()
    _res(p, CHECKLIST)["questionnaire"] = CHECKLIST_URL + "|2.0.0"   # the hospital's forms tool: its own edition
    out = _screen(definition_his, p)
    for cid in ("I6-contraception", "I7-compliance", "E14-investigator"):
        c = out.by_id(cid)
        assert c.result == "unknown" and f"QuestionnaireResponse/{CHECKLIST}" in c.evidence and "2.0.0" in c.reason
    assert out.status == "candidate"


def test_a_checklist_naming_the_version_fhir3t_knows_is_read(definition_his):
    p = _patient()
    _res(p, CHECKLIST)["questionnaire"] = CHECKLIST_URL + "|1.0.0"
    assert _screen(definition_his, p).status == "eligible"


def test_an_older_response_to_another_version_does_not_hide_the_newer_one(definition_his):
    p = _patient()
    old = copy.deepcopy(_res(p, CHECKLIST))
    old.update(id="qr-old", questionnaire=CHECKLIST_URL + "|0.9", authored="2026-10-01T09:00:00+08:00")
    assert _screen(definition_his, [*p, old]).status == "eligible"


# ---------------------------------------------------------------- I5: a coded finding beside a conclusion fhir3t cannot read
CT = "hs01-dr4"
SCT = "http://snomed.info/sct"
ILD = {"system": SCT, "code": "233703007", "display": "Interstitial lung disease"}
NORMAL = {"system": SCT, "code": "17621005", "display": "Normal"}
PACS_FINDING = "http://pacs.zj2h.example.org/fhir/CodeSystem/finding"


@pytest.mark.parametrize("conclusions", [
    [{"coding": [ILD]}, {"text": "两肺未见明显异常"}],                                     # a conclusion written only as text
    [{"coding": [ILD]}, {"coding": [{"system": PACS_FINDING, "code": "N01", "display": "未见异常"}]}],  # a PACS code, unmapped
    [{"coding": [ILD, {"system": PACS_FINDING, "code": "N01"}]}],                       # ... as a second coding of the finding
    [{"coding": [ILD]}, {"coding": [NORMAL]}],                                         # two findings that disagree
    [{"coding": [ILD, NORMAL]}],
])
def test_a_chest_ct_finding_beside_a_conclusion_that_may_say_otherwise_is_unknown(definition_his, conclusions):
    p = _patient()
    _res(p, CT)["conclusionCode"] = conclusions
    out = _screen(definition_his, p)
    c = out.by_id("I5-ct")
    assert c.result == "unknown", c.reason
    assert f"DiagnosticReport/{CT}" in c.evidence and out.status == "candidate"


def test_a_chest_ct_observation_coded_both_ild_and_normal_is_unknown(definition_his):
    p = _patient()
    ct = _res(p, CT)
    obs = {"resourceType": "Observation", "id": "ct-obs", "status": "final", "code": ct["code"],
           "subject": {"reference": "Patient/hs01"}, "effectiveDateTime": ct["effectiveDateTime"],
           "valueCodeableConcept": {"coding": [ILD, {"system": PACS_FINDING, "code": "N01"}]}}
    p = [r for r in p if r.get("id") != CT] + [obs]
    c = _screen(definition_his, p).by_id("I5-ct")
    assert c.result == "unknown" and "Observation/ct-obs" in c.evidence, c.reason


def test_a_chest_ct_finding_beside_another_coded_finding_is_still_read(definition_his):
    p = _patient()
    _res(p, CT)["conclusionCode"] = [{"coding": [ILD], "text": "双肺间质性改变"},
                                     {"coding": [{"system": SCT, "code": "87433001", "display": "Pulmonary emphysema"}]}]
    assert _screen(definition_his, p).by_id("I5-ct").result == "met"


# ---------------------------------------------------------------- a result coded as two tests
LIS = "http://zj2h.example.org/fhir/CodeSystem/lis-test"
LOINC = "http://loinc.org"


@pytest.mark.parametrize("rid,coding,cid", [
    # the LIS code the hospital's ConceptMap translates to anti-HCV, beside the LOINC code of HBsAg
    ("hs01-o6", [{"system": LIS, "code": "HCVAB", "display": "丙肝抗体"}, {"system": LOINC, "code": "5196-1"}], "E7-hbv"),
    ("hs01-o6", [{"system": LIS, "code": "HCVAB", "display": "丙肝抗体"}, {"system": LOINC, "code": "5196-1"}], "E8-hcv"),
    # two LOINC codes: HBsAg and anti-HBs (16935-9, the vaccination antibody)
    ("hs01-o6", [{"system": LOINC, "code": "16935-9"}, {"system": LOINC, "code": "5196-1"}], "E7-hbv"),
    ("hs01-o9", [{"system": LIS, "code": "TSPOT"}, {"system": LOINC, "code": "56888-1"}], "E9-hiv"),
])
def test_a_negative_result_coded_as_two_tests_counts_for_neither(definition_his, rid, coding, cid):
    p = _patient()
    _res(p, rid)["code"] = {"coding": coding}
    out = _screen(definition_his, p)
    c = out.by_id(cid)
    assert c.result == "unknown", c.reason
    assert f"Observation/{rid}" in c.evidence and out.status == "candidate"


def test_a_result_whose_hospital_code_no_conceptmap_translates_is_read_by_its_loinc_code(definition_his):
    p = _patient()
    _res(p, "hs01-o6")["code"] = {"coding": [{"system": LIS, "code": "HBSAG-NEW", "display": "乙肝表面抗原(新)"},
                                             {"system": LOINC, "code": "5196-1"}]}
    assert _screen(definition_his, p).status == "eligible"


# ---------------------------------------------------------------- another type's concept named in a record fhir3t reads
ICD10 = "http://hl7.org/fhir/sid/icd-10"
SUBJECT = {"reference": "Patient/hs01"}
B20 = {"resourceType": "Condition", "id": "dx1", "subject": SUBJECT, "code": {"coding": [{"system": ICD10, "code": "B20"}]},
       "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                      "code": "active"}]}}


@pytest.mark.parametrize("record,cid", [
    # a pathology report (病理报告) concluding lung adenocarcinoma, with no Condition for it
    ({"resourceType": "DiagnosticReport", "id": "path1", "status": "final", "subject": SUBJECT,
      "code": {"coding": [{"system": LOINC, "code": "11526-1"}], "text": "病理报告"}, "effectiveDateTime": "2026-09-01",
      "conclusion": "（右肺上叶）浸润性腺癌", "conclusionCode": [{"coding": [{"system": ICD10, "code": "C34.1"}]}]},
     "E6-malignancy"),
    ({"resourceType": "DiagnosticReport", "id": "path1", "status": "final", "subject": SUBJECT,
      "code": {"text": "病理报告"}, "effectiveDateTime": "2026-09-01",
      "conclusionCode": [{"coding": [{"system": SCT, "code": "363346000"}], "text": "恶性肿瘤"}]}, "E6-malignancy"),
    # an EMR 'diagnosis' item written as an Observation valued with the diagnosis code
    ({"resourceType": "Observation", "id": "dx-obs", "status": "final", "subject": SUBJECT, "code": {"text": "出院诊断"},
      "effectiveDateTime": "2026-09-01", "valueCodeableConcept": {"coding": [{"system": ICD10, "code": "B20"}]}},
     "E9-hiv"),
    # a Condition contained in a report
    ({"resourceType": "DiagnosticReport", "id": "dr9", "status": "final", "subject": SUBJECT, "code": {"text": "会诊报告"},
      "contained": [B20]}, "E9-hiv"),
    # a drug record contained in a chest CT report (the report is read for I5; the drug by no one)
    ({"resourceType": "DiagnosticReport", "id": "dr7", "status": "final", "subject": SUBJECT,
      "code": {"coding": [{"system": LOINC, "code": "24627-2"}]}, "effectiveDateTime": "2026-10-01",
      "contained": [{"resourceType": "MedicationStatement", "id": "m", "status": "active", "subject": SUBJECT,
                     "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                               "code": "3008"}]}}]}, "E2-recent-immunomodulator"),
])
def test_a_diagnosis_or_drug_named_only_in_another_type_of_record_keeps_its_absence_unknown(definition_his, record, cid):
    out = _screen(definition_his, [*_patient(), record])
    c = out.by_id(cid)
    assert c.result == "unknown", c.reason
    assert f"{record['resourceType']}/{record['id']}" in c.evidence and out.status == "candidate"


def test_a_pregnancy_status_result_is_not_a_suspect_of_the_pregnancy_diagnosis_rule(definition_his):
    p = _patient()  # a man: E13 is not-met unless a record says pregnant
    p.append({"resourceType": "Observation", "id": "preg", "status": "final", "subject": SUBJECT,
              "code": {"coding": [{"system": LOINC, "code": "82810-3"}]}, "effectiveDateTime": "2024-01-01",
              "valueCodeableConcept": {"coding": [{"system": SCT, "code": "77386006"}]}})
    assert _screen(definition_his, p).by_id("E13-pregnancy").result == "not-met"


# ---------------------------------------------------------------- a negative flag beside a value text fhir3t cannot read
HBSAG = "hs01-o6"
NEG_FLAG = [{"coding": [{"system": V3I, "code": "NEG"}]}]


@pytest.mark.parametrize("value", [
    {"valueString": "待复查", "interpretation": NEG_FLAG},                 # pending recheck
    {"valueString": "阳性待确认", "interpretation": NEG_FLAG},             # positive, to be confirmed
    {"valueString": "复查阳性", "interpretation": NEG_FLAG},               # positive on recheck
    {"valueString": "标本溶血", "interpretation": NEG_FLAG},               # haemolysed specimen
    {"valueCodeableConcept": {"text": "可疑"}, "interpretation": NEG_FLAG},  # indeterminate
    {"valueString": "阴性", "interpretation": [{"coding": NEG_FLAG[0]["coding"], "text": "待复查"}]},
])
def test_a_negative_flag_beside_a_value_text_fhir3t_cannot_read_is_unknown(definition_his, value):
    p = _patient()
    _set_value(_res(p, HBSAG), **value)
    out = _screen(definition_his, p)
    c = out.by_id("E7-hbv")
    assert c.result == "unknown", c.reason
    assert f"Observation/{HBSAG}" in c.evidence and out.status == "candidate"


@pytest.mark.parametrize("value", [
    {"valueString": "0.32", "interpretation": NEG_FLAG},                   # a measurement: the flag says what it means
    {"valueString": "<0.05 IU/mL", "interpretation": NEG_FLAG},
    {"valueString": "阴性(-)", "interpretation": [{"coding": NEG_FLAG[0]["coding"], "text": "阴性"}]},
    {"valueCodeableConcept": {"coding": [{"system": SCT, "code": "260385009",
                                          "display": "Negative (qualifier value)"}]}},  # a read code's display
])
def test_a_negative_result_whose_texts_fhir3t_reads_stays_negative(definition_his, value):
    p = _patient()
    _set_value(_res(p, HBSAG), **value)
    assert _screen(definition_his, p).by_id("E7-hbv").result == "not-met"


# ---------------------------------------------------------------- a drug record whose dosage runs a course past its date
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _cyclosporine(**extra: object) -> dict:
    r = {"resourceType": "MedicationStatement", "id": "csa", "status": "completed", "subject": SUBJECT,
         "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "3008"}], "text": "环孢素软胶囊"},
         "effectiveDateTime": "2026-10-20"}     # 27 days before d1: outside E2's 14 days on its own
    r.update(extra)
    return r


@pytest.mark.parametrize("timing", [
    {"repeat": {"boundsDuration": {"value": 28, "unit": "天", "system": "http://unitsofmeasure.org", "code": "d"},
                "frequency": 2, "period": 1, "periodUnit": "d"}},                 # 每日两次 共28天
    {"repeat": {"boundsDuration": {"value": 4, "code": "wk", "system": "http://unitsofmeasure.org"}}},
    {"repeat": {"boundsPeriod": {"start": "2026-10-20", "end": "2026-11-12"}}},
    {"repeat": {"boundsPeriod": {"start": "2026-10-20"}}},                      # no end: runs on
    {"repeat": {"count": 56, "frequency": 2, "period": 1, "periodUnit": "d"}},    # 56 doses
    {"repeat": {"boundsDuration": {"value": 1, "unit": "疗程"}}},                # a unit fhir3t does not know
])
def test_a_drug_whose_dosage_runs_a_course_past_its_date_is_not_last_taken_on_that_date(definition_his, timing):
    record = _cyclosporine(dosage=[{"text": "口服", "timing": timing}])
    out = _screen(definition_his, [*_patient(), record])
    c = out.by_id("E2-recent-immunomodulator")
    assert c.result in ("unknown", "met"), c.reason
    assert "MedicationStatement/csa" in c.evidence and out.status != "eligible"


@pytest.mark.parametrize("repeat", [
    {"boundsDuration": {"value": 14, "code": "d", "system": "http://unitsofmeasure.org"}},
    {"count": 28, "frequency": 2, "period": 1, "periodUnit": "d"},               # 28 doses, twice a day: 14 days
    {"boundsPeriod": {"start": "2026-09-01", "end": "2026-09-15"}},
])
def test_a_course_that_ended_before_the_window_still_counts_as_before(definition_his, repeat):
    record = _cyclosporine(effectiveDateTime="2026-09-01", dosage=[{"timing": {"repeat": repeat}}])
    assert _screen(definition_his, [*_patient(), record]).by_id("E2-recent-immunomodulator").result == "not-met"


# ---------------------------------------------------------------- a ConceptMap target that holds only under a condition
def test_a_conceptmap_target_that_depends_on_another_element_is_no_translation(tmp_path):
    """The LIS reuses one item code for two assays; the hospital's map says it is HBsAg only for a serum specimen
    (dependsOn), which fhir3t cannot check: the result is no HBsAg result fhir3t can read."""
    cm = {"resourceType": "ConceptMap", "id": "lis-conditional", "status": "active",
          "group": [{"source": LIS, "target": LOINC, "element": [{"code": "HBV-AG", "target": [{
              "code": "5196-1", "equivalence": "equivalent",
              "dependsOn": [{"property": "http://zj2h.example.org/fhir/specimen", "value": "血清"}]}]}]}]}
    path = tmp_path / "cm.json"
    path.write_text(json.dumps(cm, ensure_ascii=False), encoding="utf-8")
    definition = Definition.load(None, [HOSPITAL / "ConceptMap-zj2h-local.json", path])
    p = _patient()
    _res(p, "hs01-o6")["code"] = {"coding": [{"system": LIS, "code": "HBV-AG"}]}
    c = _screen(definition, p).by_id("E7-hbv")
    assert c.result == "unknown", c.reason


# ---------------------------------------------------------------- a panel that says why it has no value
def _hbv_panel(**extra: object) -> dict:
    """乙肝五项 as one LIS panel: the HBsAg and anti-HBc results are its components."""
    r = {"resourceType": "Observation", "id": "hbv5", "status": "final", "subject": SUBJECT,
         "code": {"coding": [{"system": LIS, "code": "HBV5", "display": "乙肝五项"}], "text": "乙肝五项"},
         "effectiveDateTime": "2026-11-10T08:00:00+08:00",
         "component": [{"code": {"coding": [{"system": LOINC, "code": "5196-1"}], "text": "乙肝表面抗原"}, "valueString": "阴性"},
                       {"code": {"coding": [{"system": LOINC, "code": "16933-4"}], "text": "乙肝核心抗体"},
                        "valueString": "阴性"}]}
    r.update(extra)
    return r


@pytest.mark.parametrize("absent", [{"text": "标本不合格"},   # specimen unacceptable
                                    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                                 "code": "error"}]}])
def test_a_panel_giving_a_data_absent_reason_has_no_results_whatever_its_parts_carry(definition_his, absent):
    p = [r for r in _patient() if r.get("id") not in ("hs01-o6", "hs01-o7")] + [_hbv_panel(dataAbsentReason=absent)]
    out = _screen(definition_his, p)
    c = out.by_id("E7-hbv")
    assert c.result == "unknown" and "Observation/hbv5" in c.evidence, c.reason
    assert out.status == "candidate"


def test_a_panel_whose_own_value_does_not_apply_still_has_its_parts(definition_his):
    na = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-applicable"}]}
    p = [r for r in _patient() if r.get("id") not in ("hs01-o6", "hs01-o7")] + [_hbv_panel(dataAbsentReason=na)]
    assert _screen(definition_his, p).by_id("E7-hbv").result == "not-met"


# ---------------------------------------------------------------- a diagnosis or finding whose text hedges it
DM = "hs01-c1"


@pytest.mark.parametrize("text", ["疑似皮肌炎", "皮肌炎待排", "皮肌炎待查", "皮肌炎可能", "排除皮肌炎", "皮肌炎？", "考虑皮肌炎",
                                  "Dermatomyositis, suspected", "r/o dermatomyositis"])
def test_a_dermatomyositis_diagnosis_whose_text_says_suspected_or_ruled_out_is_unknown(definition_his, text):
    p = _patient()
    dm = _res(p, DM)
    dm["code"]["text"] = text
    out = _screen(definition_his, p)
    c = out.by_id("I2-dm")
    assert c.result == "unknown" and f"Condition/{DM}" in c.evidence, c.reason
    assert out.status == "candidate"


@pytest.mark.parametrize("text", ["无肌病性皮肌炎", "皮肌炎（MDA5阳性）", "临床无肌病性皮肌炎"])
def test_a_dermatomyositis_diagnosis_named_plainly_is_met(definition_his, text):
    p = _patient()
    _res(p, DM)["code"]["text"] = text
    assert _screen(definition_his, p).by_id("I2-dm").result == "met"


@pytest.mark.parametrize("finding", [
    {"coding": [ILD], "text": "间质性肺病可能"},                                            # possible ILD
    {"coding": [ILD], "text": "排除间质性肺病"},                                            # ILD ruled out
    {"coding": [dict(ILD, display="No evidence of interstitial lung disease")]},
])
def test_a_chest_ct_finding_whose_text_hedges_it_is_unknown(definition_his, finding):
    p = _patient()
    _res(p, CT)["conclusionCode"] = [finding]
    c = _screen(definition_his, p).by_id("I5-ct")
    assert c.result == "unknown" and f"DiagnosticReport/{CT}" in c.evidence, c.reason


# ---------------------------------------------------------------- an export file fhir3t cannot read
def _export(tmp_path, pharmacy: bytes):
    """hs01's HIS export as written, the hospital's ConceptMap, and a pharmacy export (with a cyclosporine order
    that makes E2 met) written as `pharmacy` says."""
    from fhir3t.api import screen as screen_files
    from fhir3t.errors import Problems

    (tmp_path / "ehr.json").write_bytes((HOSPITAL / "ehr" / "hs01.json").read_bytes())
    (tmp_path / "cm.json").write_bytes((HOSPITAL / "ConceptMap-zj2h-local.json").read_bytes())
    (tmp_path / "pharmacy.json").write_bytes(pharmacy)
    results = list(screen_files([tmp_path], as_of=AS_OF, problems=Problems()))
    assert len(results) == 1
    return results[0]


def _pharmacy_bundle() -> dict:
    bundle = json.loads((HOSPITAL / "pharmacy" / "hs01.json").read_text(encoding="utf-8"))
    bundle["entry"].append({"resource": {
        "resourceType": "MedicationStatement", "id": "csa", "status": "active", "subject": SUBJECT,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "3008"}], "text": "环孢素软胶囊"},
        "effectivePeriod": {"start": "2026-10-01"}}})
    return bundle


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])          # Python writes the byte-order mark first
def test_a_json_export_written_in_utf16_or_utf32_with_its_byte_order_mark_is_read(tmp_path, codec):
    out = _export(tmp_path, json.dumps(_pharmacy_bundle(), ensure_ascii=False).encode(codec))
    assert out.by_id("E2-recent-immunomodulator").result == "met"


@pytest.mark.parametrize("damage", [
    lambda text: text[:-40].encode("utf-8"),                  # cut off mid-file (a transfer that stopped)
    lambda text: text.encode("utf-16-le"),                    # UTF-16 without its byte-order mark
    lambda text: text.encode("utf-8").replace(b'"entry"', b'"entry" "x"', 1),
])
def test_an_export_file_that_cannot_be_read_keeps_what_absence_decides_unknown(tmp_path, damage):
    out = _export(tmp_path, damage(json.dumps(_pharmacy_bundle(), ensure_ascii=False)))
    c = out.by_id("E2-recent-immunomodulator")
    assert c.result == "unknown", c.reason
    assert any("pharmacy.json" in e for e in c.evidence)
    assert out.status == "candidate"


def test_a_blank_export_file_holds_nothing(tmp_path):
    assert _export(tmp_path, b"  \n\n").status == "eligible"


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_an_ndjson_export_written_in_utf16_or_utf32_with_its_byte_order_mark_is_read(tmp_path, codec):
    from fhir3t.api import screen as screen_files
    from fhir3t.errors import Problems

    (tmp_path / "ehr.json").write_bytes((HOSPITAL / "ehr" / "hs01.json").read_bytes())
    (tmp_path / "cm.json").write_bytes((HOSPITAL / "ConceptMap-zj2h-local.json").read_bytes())
    lines = "\r\n".join(json.dumps(e["resource"], ensure_ascii=False) for e in _pharmacy_bundle()["entry"]) + "\r\n"
    (tmp_path / "pharmacy.ndjson").write_bytes(lines.encode(codec))
    results = list(screen_files([tmp_path], as_of=AS_OF, problems=Problems()))
    assert [r.by_id("E2-recent-immunomodulator").result for r in results] == ["met"]


# ---------------------------------------------------------------- a result coded as one test and named as another
@pytest.mark.parametrize("rid,code,cid", [
    ("hs01-o6", {"coding": [{"system": LOINC, "code": "5196-1"}], "text": "丙肝抗体"}, "E7-hbv"),      # HBsAg named anti-HCV
    ("hs01-o6", {"coding": [{"system": LOINC, "code": "5196-1", "display": "Hepatitis C virus Ab"}]}, "E7-hbv"),
    ("hs01-o8", {"coding": [{"system": LOINC, "code": "13955-0"}], "text": "HIV抗原抗体联合检测"}, "E8-hcv"),
])
def test_a_negative_result_coded_as_one_criterion_test_and_named_as_another_is_unknown(definition_his, rid, code, cid):
    p = _patient()
    _res(p, rid)["code"] = code
    out = _screen(definition_his, p)
    c = out.by_id(cid)
    assert c.result == "unknown" and f"Observation/{rid}" in c.evidence, c.reason


def test_a_result_named_by_its_own_test_and_another_word_is_read(definition_his):
    p = _patient()
    _res(p, "hs01-o6")["code"] = {"coding": [{"system": LOINC, "code": "5196-1"}], "text": "乙肝表面抗原(化学发光法)"}
    assert _screen(definition_his, p).by_id("E7-hbv").result == "not-met"


@pytest.mark.parametrize("text", ["皮肌炎（已缓解）", "皮肌炎病史", "既往皮肌炎", "History of dermatomyositis",
                                  "dermatomyositis, in remission"])
@pytest.mark.parametrize("clinical", [None, "active"])
def test_a_dermatomyositis_diagnosis_whose_text_says_it_may_no_longer_be_active_is_unknown(definition_his, text,
                                                                                           clinical):
    p = _patient()
    dm = _res(p, DM)
    dm["code"]["text"] = text
    if clinical is None:
        del dm["clinicalStatus"]
    out = _screen(definition_his, p)
    c = out.by_id("I2-dm")
    assert c.result == "unknown" and f"Condition/{DM}" in c.evidence, c.reason
