"""Cases from the independent review: each one once let missing or odd data look eligible."""
from __future__ import annotations

import pytest

from factory import CHECKLIST, CM, ICD, RX, SCT, cc, checklist, cond, med, neg, obs, patient, pos, research_subject
from fhir3t.errors import Problems

US = {"identifier": {"system": "http://clinicaltrials.gov", "value": "NCT06438679"}}


def result(r, cid):
    return r.by_id(cid).result


def test_e1_adverse_event_suspect_medication_resource(screen):
    medication = {"resourceType": "Medication", "id": "m", "code": cc("1357536", RX)}
    ae = {"resourceType": "AdverseEvent", "id": "ae", "actuality": "actual", "subject": {"reference": "Patient/p1"},
          "date": "2024-01-01", "suspectEntity": [{"instance": {"reference": "Medication/m"}}]}
    c = screen(medication, ae).by_id("E1-prior-3t-failure")
    assert c.result == "met" and c.evidence == ("AdverseEvent/ae",)
    ae["actuality"] = "potential"
    assert result(screen(medication, ae), "E1-prior-3t-failure") == "not-met"


@pytest.mark.parametrize("code", [
    {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cn", "code": "C50.901"}]},  # a system fhir3t does not know
    {"coding": [{"code": "C50.901"}]},                                                 # no system
    {"text": "Breast cancer"},                                                         # text only
])
def test_unreadable_condition_leaves_absence_based_rules_unknown(screen, code):
    c = cond("C50.9", CM)
    c["code"] = code
    problems = Problems()
    r = screen(c, problems=problems)
    e6 = r.by_id("E6-malignancy")
    assert e6.result == "unknown" and f"Condition/{c['id']}" in e6.evidence and "code it to decide" in e6.reason
    assert r.status != "eligible"
    assert any("entry[1]" in p.where for p in problems)  # named on stderr
    # an unknown code system is input fhir3t could not use (exit 3); text-only / no system is a note
    assert problems.any_skipped == ("system" in code["coding"][0] if "coding" in code else False)


def test_unresolvable_drug_leaves_drug_rules_unknown(screen):
    ms = {"resourceType": "MedicationStatement", "id": "ms", "status": "active", "subject": {"reference": "Patient/p1"},
          "medicationReference": {"reference": "Medication/elsewhere"}}
    r = screen(ms)
    assert result(r, "E2-recent-immunomodulator") == "unknown" and result(r, "E3-depleting-agent") == "unknown"


@pytest.mark.parametrize("code,expected", [("C4A.9", "met"), ("C7A.010", "met"), ("C7B.00", "met"),
                                           ("C7C", "unknown"),      # no such category: not a well-formed code
                                           ("C5O.9", "unknown"),    # letter O for a zero: garbled, not 'another diagnosis'
                                           ("X50.9", "not-met")])   # a real code outside the malignancy categories
def test_e6_icd10cm_letter_categories(screen, code, expected):
    assert result(screen(cond(code, CM, onsetDateTime="2025-01-01")), "E6-malignancy") == expected


def test_e6_bcc_with_secondary_neuroendocrine_counts(screen):
    assert result(screen(cond("C44.311", CM), cond("C7B.8", CM, clinical="resolved")), "E6-malignancy") == "met"


def test_e2_request_with_only_an_order_date_is_unknown(screen):
    mr = med("3008", rtype="MedicationRequest", status="completed", authoredOn="2026-05-20")
    c = screen(mr).by_id("E2-recent-immunomodulator")
    assert c.result == "unknown" and "last exposure unknown" in c.reason


def test_amended_checklist_is_the_most_recent_answer(screen):
    old = checklist(authored="2026-06-01", investigator_ok=True)
    amended = checklist(authored="2026-06-10", status="amended", investigator_ok=False)
    assert result(screen(old, amended), "E14-investigator") == "met"


def test_consent_that_denies_the_study_does_not_count(screen):
    deny = {"resourceType": "Consent", "id": "c1", "status": "active", "patient": {"reference": "Patient/p1"},
            "provision": {"type": "deny", "data": [{"meaning": "related", "reference": US}]}}
    assert result(screen(deny), "I8-consent") == "unknown"
    permit_except = {"resourceType": "Consent", "id": "c2", "status": "active", "patient": {"reference": "Patient/p1"},
                     "provision": {"type": "permit", "provision": [{"type": "deny", "data": [{"meaning": "related", "reference": US}]}]}}
    assert result(screen(permit_except), "I8-consent") == "unknown"
    permit = {"resourceType": "Consent", "id": "c3", "status": "active", "patient": {"reference": "Patient/p1"},
              "provision": {"type": "permit", "data": [{"meaning": "related", "reference": US}]}}
    assert result(screen(permit), "I8-consent") == "met"


def test_study_display_text_proves_nothing(screen):
    trick = {"resourceType": "Consent", "id": "c1", "status": "active", "patient": {"reference": "Patient/p1"},
             "sourceReference": {"reference": "ResearchStudy/abc", "display": "Not NCT06438679"}}
    assert result(screen(trick), "I8-consent") == "unknown"


def test_same_study_with_https_identifier_system_is_this_study(screen):
    rs = research_subject({"identifier": {"system": "https://clinicaltrials.gov/", "value": "nct06438679"}},
                          status="pending-on-study")
    assert result(screen(rs), "E4-investigational") == "not-met"


def test_results_on_the_same_day_that_disagree_are_unknown(screen):
    d = "2026-06-03"
    assert result(screen(neg("56888-1", d), pos("56888-1", d)), "E9-hiv") == "unknown"
    assert result(screen(pos("56888-1", d), neg("56888-1", d)), "E9-hiv") == "unknown"
    # times with zones put them in order: the positive at 03:00Z is two hours after the 09:00+08:00 negative
    later_pos = pos("56888-1", "2026-06-03T03:00:00Z")
    earlier_neg = neg("56888-1", "2026-06-03T09:00:00+08:00")
    assert result(screen(earlier_neg, later_pos), "E9-hiv") == "met"
    assert result(screen(later_pos, earlier_neg), "E9-hiv") == "met"
    # agreeing results on one day are fine
    assert result(screen(neg("56888-1", d), neg("56888-1", d)), "E9-hiv") == "not-met"


def test_hl7_status_coding_wins_over_a_local_one(screen):
    c = cond("A15.0", ICD)
    c["verificationStatus"] = {"coding": [{"system": "http://hospital.example.org/vs", "code": "R"},
                                          {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}
    assert result(screen(c, neg("71773-6", "2026-06-01")), "E10-tb") == "not-met"
    d = cond("B59", ICD, clinical=None, onsetDateTime="2010-01-01")
    d["clinicalStatus"] = {"coding": [{"system": "http://hospital.example.org/cs", "code": "A"},
                                      {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}
    assert result(screen(d), "E5-immunodeficiency") == "met"


def test_e1_reason_given_only_as_text_is_unknown(screen):
    m = med("42316", status="stopped")
    m["statusReason"] = [{"text": "lack of efficacy"}]
    c = screen(m).by_id("E1-prior-3t-failure")
    assert c.result == "unknown" and "lack of efficacy" in c.reason


@pytest.mark.parametrize("value,expected", [("4+", "met"), ("＋＋＋", "met"), ("Ro52: -, MDA5: +++", "unknown"),
                                            ("Positive (++)", "met")])
def test_i3_grade_text_variants(screen, value, expected):
    assert result(screen(obs("82424-3", "2026-06-01", valueString=value)), "I3-mda5") == expected


@pytest.mark.parametrize("date,expected", [("2025-08-24", "not-met"), ("2025-08-25", "met"), ("2026-04-01", "met")])
def test_e13_pregnancy_status_counts_for_42_weeks(screen, date, expected):
    """294 days before 2026-06-15 is 2025-08-25: the day before, on, and well inside."""
    status = obs("82810-3", date, valueCodeableConcept=cc("77386006", SCT))
    assert result(screen(patient(birth="1960-01-01"), status), "E13-pregnancy") == expected


def test_dlco_ratio_is_compared_unrounded(screen):
    m = obs("19911-7", "2026-06-01", valueQuantity={"value": 79.96, "unit": "mL/min/mmHg"})
    p = obs("19910-9", "2026-06-01", valueQuantity={"value": 100, "unit": "mL/min/mmHg"})
    assert result(screen(m, p), "I4-dlco") == "met"


@pytest.mark.parametrize("patch", [
    {"gender": ["female"]}, {"birthDate": 19800101}, {"gender": 1},
])
def test_odd_patient_shapes_do_not_crash(screen, patch):
    r = screen(patient(**patch))
    assert len(r.criteria) == 22


def test_odd_resource_shapes_do_not_crash_the_run(screen):
    odd = [
        {"resourceType": "ResearchSubject", "id": "r", "status": ["on-study"], "study": "x", "individual": {"reference": "Patient/p1"}},
        {"resourceType": "Observation", "id": "o", "status": ["final"], "code": {"coding": "x"}, "subject": {"reference": "Patient/p1"}},
        {"resourceType": "QuestionnaireResponse", "id": "q", "status": "completed", "questionnaire": CHECKLIST,
         "subject": {"reference": "Patient/p1"}, "authored": "2026-06-01", "item": "x"},
        {"resourceType": "Consent", "id": "c", "status": "active", "patient": {"reference": "Patient/p1"}, "provision": [1]},
    ]
    r = screen(*odd)
    assert len(r.criteria) == 22


def test_unknown_names_the_latest_result_outside_the_window(screen):
    c = screen(neg("71773-6", "2026-05-17"), neg("71773-6", "2026-01-02")).by_id("E10-tb")
    assert c.result == "unknown"
    assert "the latest, on 2026-05-17, is outside it" in c.reason and "LOINC 71773-6" in c.reason


@pytest.mark.parametrize("coding", [
    {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"},
    {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"},
    {"system": "http://loinc.org", "code": "LA4489-6"},
])
def test_a_condition_coded_outside_condition_systems_is_unreadable(screen, coding):
    c = cond("C50.9", CM)
    c["code"] = {"coding": [coding], "text": "metastatic melanoma"}
    assert result(screen(c), "E6-malignancy") == "unknown"


def test_unreadable_records_that_could_not_change_the_answer_are_ignored(screen):
    old = cond("C50.9", CM, clinical="resolved", onsetDateTime="1999-01-01", abatementDateTime="1999-06-01",
               recordedDate="1999-01-01")
    old["code"] = {"text": "appendicitis"}
    r = screen(old)
    assert result(r, "E5-immunodeficiency") == "not-met"  # resolved, dated outside every window
    assert result(r, "E9-hiv") == "unknown"  # 'any HIV Condition, ever': it could be one
    drug = med("X", system="http://hospital.example.org/drugs", status="completed", start="2001-01-01", end="2001-02-01")
    assert result(screen(drug), "E3-depleting-agent") == "not-met"  # long over, whatever it was


def test_consent_named_by_a_subject_still_needs_to_be_usable(screen):
    deny = {"resourceType": "Consent", "id": "c1", "status": "active", "patient": {"reference": "Patient/p1"},
            "provision": {"type": "deny"}}
    named = research_subject(US, status="candidate", consent={"reference": "Consent/c1"})
    assert result(screen(deny, named), "I8-consent") == "unknown"
    ok = dict(deny, provision={"type": "permit"})
    assert result(screen(ok, named), "I8-consent") == "met"
    expired = dict(deny, provision={"type": "permit", "period": {"end": "2025-12-31"}})
    assert result(screen(expired, named), "I8-consent") == "unknown"
    withdrawn = research_subject(US, status="withdrawn", consent={"reference": "Consent/c1"})
    assert result(screen(ok, withdrawn), "I8-consent") == "unknown"
    absolute = research_subject(US, status="candidate", consent={"reference": "https://ehr.example.org/fhir/Consent/c1"})
    assert result(screen(ok, absolute), "I8-consent") == "met"


def test_our_nct_number_under_another_system_is_not_another_study(screen):
    rs = research_subject({"identifier": {"system": "urn:oid:1.2.3", "value": "NCT06438679"}}, status="on-study")
    assert result(screen(rs), "E4-investigational") == "unknown"
    rs = research_subject({"identifier": {"system": "https://www.clinicaltrials.gov", "value": "NCT06438679"}})
    assert result(screen(rs), "E4-investigational") == "not-met"


def test_later_same_day_result_is_never_skipped(screen):
    a = obs("82424-3", "2026-06-03T10:00:00+08:00", valueString="+++")
    b = obs("82424-3", "2026-06-03T09:00:00+08:00", valueString="+++")
    c = obs("82424-3", "2026-06-03", valueString="-")
    assert result(screen(a, b, c), "I3-mda5") == "unknown"


def test_the_source_local_day_orders_results_before_the_zoned_time(screen):
    """Each system's own calendar day decides which result is newer (issue 9): 4 June is after 3 June,
    whatever the UTC instants say."""
    a = obs("82424-3", "2026-06-03T23:30:00-05:00", valueString="-")    # 04:30Z on 4 June, local day 3 June
    b = obs("82424-3", "2026-06-04T01:00:00+08:00", valueString="+++")  # 17:00Z on 3 June, local day 4 June
    assert result(screen(a, b), "I3-mda5") == "met"


@pytest.mark.parametrize("value,expected", [("10+", "unknown"), ("12+", "unknown"), ("1-2+", "unknown"), ("2-3+", "met")])
def test_grade_numbers_and_ranges(screen, value, expected):
    assert result(screen(obs("82424-3", "2026-06-01", valueString=value)), "I3-mda5") == expected


def test_bad_coding_types_do_not_crash(screen):
    c = cond("C50.9", CM)
    c["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": ["38341003"]}]}
    o = obs("82424-3", "2026-06-01", valueString="++")
    o["code"]["coding"][0]["system"] = {"x": 1}
    r = screen(c, o)
    assert len(r.criteria) == 22 and result(r, "E6-malignancy") == "unknown"


def test_coordinator_notes_for_deceased_and_already_enrolled(screen):
    r = screen(patient(deceasedDateTime="2026-05-01T10:00:00+08:00"))
    assert r.notes == ("the patient is recorded as deceased on 2026-05-01",)
    assert screen(patient(deceasedDateTime="2026-07-01")).notes == ()  # after as_of: not yet
    assert screen(patient(deceasedBoolean=True)).notes == ("the patient is recorded as deceased",)
    on = research_subject(US, status="on-study")
    r = screen(on)
    assert len(r.notes) == 1 and r.notes[0].startswith("already on-study in NCT06438679")
    assert r.to_dict()["notes"] == list(r.notes)
    assert screen(research_subject(US, status="candidate")).notes == ()


@pytest.mark.parametrize("abatement", [
    {"abatementString": "2026-09"},                                        # a date in words R4 allows
    {"abatementDateTime": "2026-13-45"},                                   # not a date
    {"abatementPeriod": {"start": "2015-04-01", "end": "soon"}},           # an end that is not a date
    {"abatementAge": {"value": 45, "unit": "yrs old"}},                    # a unit fhir3t does not know
    {"abatementRange": {"low": {"value": 45, "unit": "decades"}}},         # likewise, as a Range
])
def test_a_condition_date_that_cannot_be_read_keeps_its_window_unknown(screen, abatement):
    # resolved long ago by its readable dates, but when it abated cannot be read: it may be inside the window
    c = cond("C50.911", CM, clinical="resolved", onsetDateTime="2010-03-01", recordedDate="2010-03-02", **abatement)
    e6 = screen(c).by_id("E6-malignancy")
    assert e6.result == "unknown" and f"Condition/{c['id']}" in e6.evidence
    assert "abatement date cannot be read" in e6.reason


def test_a_condition_date_that_cannot_be_read_does_not_hide_one_in_the_window(screen):
    c = cond("C50.911", CM, clinical="resolved", onsetDateTime="2010-03-01", abatementString="last spring",
             recordedDate="2026-05-01")
    assert result(screen(c), "E6-malignancy") == "met"
    # abatementBoolean says whether, not when: the readable dates decide, as with no abatement at all
    c = cond("C50.911", CM, clinical="resolved", onsetDateTime="2010-03-01", abatementBoolean=True,
             recordedDate="2010-03-02")
    assert result(screen(c), "E6-malignancy") == "not-met"


BIRTHSEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"


@pytest.mark.parametrize("extension,expected", [
    ({"url": BIRTHSEX, "valueCode": "F"}, "unknown"),        # male gender, female at birth: may be pregnant
    ({"url": BIRTHSEX, "valueCode": "X"}, "unknown"),        # a sex fhir3t cannot read
    ({"url": BIRTHSEX}, "unknown"),                          # no value at all
    ({"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex",
      "valueCoding": {"system": SCT, "code": "248152002"}}, "unknown"),
    ({"url": "http://hl7.org/fhir/StructureDefinition/patient-sexParameterForClinicalUse",
      "extension": [{"url": "value", "valueCodeableConcept": {"coding": [{"code": "female-typical"}]}}]}, "unknown"),
    ({"url": BIRTHSEX, "valueCode": "M"}, "not-met"),        # agrees with gender
    ({"url": BIRTHSEX, "valueCode": "UNK"}, "not-met"),      # says nothing beside gender
])
def test_a_sex_stated_beside_gender_decides_only_when_it_agrees(screen, extension, expected):
    man = patient(gender="male", extension=[extension])
    e13 = screen(man).by_id("E13-pregnancy")  # no hCG: for a man, gender alone decided 'not pregnant'
    assert e13.result == expected
    assert screen(patient(gender="female", extension=[extension]), neg("2106-3", "2026-06-10")).by_id(
        "E13-pregnancy").result == "not-met"  # a negative hCG decides whatever the sex


def test_a_record_coded_both_in_and_out_of_a_value_set_is_unknown(screen):
    # ICD-10-CM M33.00 (juvenile, left out on purpose) beside SNOMED CT 396230008 (dermatomyositis)
    dm = cond("M33.00", CM)
    dm["code"]["coding"].append({"system": SCT, "code": "396230008"})
    i2 = screen(dm).by_id("I2-dm")
    assert i2.result == "unknown" and f"Condition/{dm['id']}" in i2.evidence
    assert "ICD-10-CM M33.00" in i2.reason and "SNOMED CT 396230008" in i2.reason
    # the same for an exclusion: a thyroid cancer (not counted) also coded as a malignant neoplasm
    c = cond("C73", CM)
    c["code"]["coding"].append({"system": SCT, "code": "363346000"})
    assert result(screen(c), "E6-malignancy") == "unknown"
    # codings that agree decide as before
    ok = cond("M33.10", CM)
    ok["code"]["coding"].append({"system": SCT, "code": "396230008"})
    assert result(screen(ok), "I2-dm") == "met"
    resolved = cond("M33.00", CM, clinical="resolved")
    resolved["code"]["coding"].append({"system": SCT, "code": "396230008"})
    assert result(screen(resolved), "I2-dm") == "not-met"  # not active whichever coding is right
