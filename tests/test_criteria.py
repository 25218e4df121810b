"""Every criterion: met, not-met and unknown, and the day before / on / after each window edge.

as_of = d1 = 2026-06-15 unless a test says otherwise, so:
screening window 2026-05-18..2026-06-15; E2 14 days 2026-06-01..; E4 28 days 2026-05-18..;
E12 84 days 2026-03-23..; E3/E5 6 months 2025-12-15..; E6 5 years 2021-06-15..
"""
from __future__ import annotations

import pytest

from factory import ATC, CM, CVX, ICD, LOINC, RX, SCT, V3I, cc, checklist, cond, immunization, med, neg, obs, patient, pos, research_subject

US = {"identifier": {"system": "http://clinicaltrials.gov", "value": "NCT06438679"}}
OTHER = {"reference": "ResearchStudy/other", "display": "HX-2026-017"}


def result(r, cid):
    return r.by_id(cid).result


# ------------------------------------------------------------------ I1 age
@pytest.mark.parametrize("birth,expected", [
    ("2008-06-14", "met"),      # 18 the day before as_of
    ("2008-06-15", "met"),      # 18th birthday on as_of
    ("2008-06-16", "not-met"),  # turns 18 the day after
    ("2008-05", "met"),         # every day of May 2008 gives 18
    ("2008-06", "unknown"),     # June 2008: 17 or 18
    ("2008", "unknown"),
    ("1950", "met"),
])
def test_i1_age_boundaries_and_partial_dates(screen, birth, expected):
    r = screen(patient(birth=birth))
    assert result(r, "I1-age") == expected
    assert r.by_id("I1-age").evidence == ("Patient/p1",)


@pytest.mark.parametrize("as_of,expected", [("2026-02-28", "not-met"), ("2026-03-01", "met")])
def test_i1_leap_day_birthday_turns_over_on_1_march(screen, as_of, expected):
    assert result(screen(patient(birth="2008-02-29"), as_of=as_of), "I1-age") == expected


def test_i1_missing_birth_date_is_unknown_and_says_why(screen):
    c = screen(patient(birth=None)).by_id("I1-age")
    assert c.result == "unknown" and "birth date" in c.reason


# ------------------------------------------------------------------ I2 dermatomyositis
@pytest.mark.parametrize("code,system,clinical,verification,expected", [
    ("M33.1", ICD, "active", "confirmed", "met"),
    ("M33.19", CM, "active", None, "met"),
    ("M3310", CM, None, None, "met"),               # undotted code, no statuses
    ("396230008", SCT, "relapse", "confirmed", "met"),
    ("M33.1", ICD, "active", "provisional", "unknown"),
    ("M33.1", ICD, "active", "differential", "unknown"),
    ("M33.1", ICD, "resolved", "confirmed", "not-met"),
    ("M33.00", CM, "active", "confirmed", "not-met"),  # juvenile DM
    ("M33.2", ICD, "active", "confirmed", "not-met"),  # polymyositis
    ("M33.1", ICD, "active", "refuted", "not-met"),
    ("M33.1", ICD, "active", "entered-in-error", "not-met"),
])
def test_i2_dm(screen, code, system, clinical, verification, expected):
    assert result(screen(cond(code, system, clinical, verification)), "I2-dm") == expected


def test_i2_absent_is_not_met_with_reason(screen):
    c = screen().by_id("I2-dm")
    assert c.result == "not-met" and "no dermatomyositis record found" in c.reason and c.evidence == ()


# ------------------------------------------------------------------ I3 anti-MDA5
@pytest.mark.parametrize("value,expected", [
    ({"valueString": "++"}, "met"), ({"valueString": "+++"}, "met"), ({"valueString": "2+"}, "met"),
    ({"valueString": " 3+ "}, "met"), ({"valueString": "Positive (++)"}, "met"),
    ({"valueCodeableConcept": {"text": "+++"}}, "met"),
    ({"valueString": "+"}, "not-met"), ({"valueString": "1+"}, "not-met"), ({"valueString": "±"}, "not-met"),
    ({"valueString": "+/-"}, "not-met"), ({"valueString": "(+)"}, "not-met"), ({"valueString": "-"}, "not-met"),
    ({"valueString": "negative"}, "not-met"),
    ({"valueString": "positive"}, "unknown"),  # no grade
    ({"valueQuantity": {"value": 45, "unit": "U/mL"}}, "unknown"),  # no configured cut-off
    ({"interpretation": [{"text": "++"}]}, "met"),
])
def test_i3_mda5_grades(screen, value, expected):
    assert result(screen(obs("82424-3", "2026-06-01", **value)), "I3-mda5") == expected


@pytest.mark.parametrize("date,expected", [
    ("2026-05-17", "unknown"), ("2026-05-18", "met"), ("2026-06-15T23:59:00+08:00", "met"),
    ("2026-06-16", "unknown"),  # after as_of: ignored
])
def test_i3_screening_window_edges(screen, date, expected):
    assert result(screen(obs("82424-3", date, valueString="++")), "I3-mda5") == expected


def test_i3_unknown_says_what_would_settle_it(screen):
    c = screen().by_id("I3-mda5")
    assert c.result == "unknown"
    assert "2026-05-18..2026-06-15" in c.reason and "LOINC 82424-3" in c.reason


def test_i3_most_recent_in_window_decides(screen):
    r = screen(obs("82424-3", "2026-05-20", valueString="+++"), obs("82424-3", "2026-06-10", valueString="+"))
    assert result(r, "I3-mda5") == "not-met"
    r = screen(obs("82424-3", "2026-05-20", valueString="+"), obs("82424-3", "2026-06-10", valueString="++"))
    assert result(r, "I3-mda5") == "met"


def test_i3_partial_date_that_may_be_more_recent_leaves_it_open(screen):
    r = screen(obs("82424-3", "2026-06-01", valueString="++"), obs("82424-3", "2026-06", valueString="-"))
    assert result(r, "I3-mda5") == "unknown"


@pytest.mark.parametrize("status,expected", [("final", "met"), ("amended", "met"), ("corrected", "met"),
                                             ("preliminary", "met"), ("cancelled", "unknown"),
                                             ("entered-in-error", "unknown"), ("registered", "unknown")])
def test_i3_observation_status(screen, status, expected):
    assert result(screen(obs("82424-3", "2026-06-01", status=status, valueString="++")), "I3-mda5") == expected


# ------------------------------------------------------------------ I4 DLCO
@pytest.mark.parametrize("value,expected", [(79.9, "met"), (80, "not-met"), (85, "not-met"), (40, "met")])
def test_i4_dlco_threshold(screen, value, expected):
    o = obs("98130-8", "2026-06-01", valueQuantity={"value": value, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"})
    assert result(screen(o), "I4-dlco") == expected


def test_i4_dlco_from_measured_over_predicted_same_day(screen):
    m = obs("19911-7", "2026-06-01T09:00:00+08:00", valueQuantity={"value": 14.2, "unit": "mL/min/mmHg"})
    p = obs("19910-9", "2026-06-01T09:05:00+08:00", valueQuantity={"value": 24.5, "unit": "mL/min/mmHg"})
    c = screen(m, p).by_id("I4-dlco")
    assert c.result == "met" and set(c.evidence) == {m["id"] and f"Observation/{m['id']}", f"Observation/{p['id']}"}
    # different days do not pair
    p2 = obs("19910-9", "2026-06-02", valueQuantity={"value": 24.5})
    assert result(screen(m, p2), "I4-dlco") == "unknown"


def test_i4_comparator_decides_only_when_it_can(screen):
    less = obs("98130-8", "2026-06-01", valueQuantity={"value": 70, "comparator": "<", "unit": "%", "code": "%"})
    assert result(screen(less), "I4-dlco") == "met"
    vague = obs("98130-8", "2026-06-01", valueQuantity={"value": 90, "comparator": "<", "unit": "%", "code": "%"})
    assert result(screen(vague), "I4-dlco") == "unknown"


def test_i4_missing_is_unknown(screen):
    assert result(screen(), "I4-dlco") == "unknown"


# ------------------------------------------------------------------ I5 chest CT
def test_i5_ct(screen):
    ild = obs("24627-2", "2026-06-01", valueCodeableConcept=cc("233703007", SCT))
    assert result(screen(ild), "I5-ct") == "met"
    normal = obs("24627-2", "2026-06-01", valueCodeableConcept=cc("17621005", SCT))
    assert result(screen(normal), "I5-ct") == "not-met"
    uncoded = obs("24627-2", "2026-06-01", valueString="some ground glass")
    assert result(screen(uncoded), "I5-ct") == "unknown"
    assert result(screen(), "I5-ct") == "unknown"
    icd = obs("29252-4", "2026-06-01", valueCodeableConcept=cc("J84.10", CM))
    assert result(screen(icd), "I5-ct") == "met"


def test_i5_ct_as_diagnostic_report(screen):
    report = {"resourceType": "DiagnosticReport", "id": "ct1", "status": "final", "code": cc("24627-2", LOINC),
              "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-05-18",
              "conclusionCode": [cc("51615001", SCT)]}
    c = screen(report).by_id("I5-ct")
    assert c.result == "met" and c.evidence == ("DiagnosticReport/ct1",)
    report["effectiveDateTime"] = "2026-05-17"
    assert result(screen(report), "I5-ct") == "unknown"


# ------------------------------------------------------------------ I6-I8, E14 checklist
@pytest.mark.parametrize("cid,link", [("I6-contraception", "contraception"), ("I7-compliance", "compliance"),
                                      ("I8-consent", "consent")])
def test_checklist_inclusions(screen, cid, link):
    assert result(screen(checklist(**{link: True})), cid) == "met"
    assert result(screen(checklist(**{link: False})), cid) == "not-met"
    assert result(screen(), cid) == "unknown"
    assert result(screen(checklist(**{link: True}, status="in-progress")), cid) == "unknown"
    other = "compliance" if link != "compliance" else "consent"
    c = screen(checklist(**{other: True})).by_id(cid)
    assert c.result == "unknown" and link in c.reason


def test_e14_investigator(screen):
    assert result(screen(checklist(investigator_ok=False)), "E14-investigator") == "met"
    assert result(screen(checklist(investigator_ok=True)), "E14-investigator") == "not-met"
    assert result(screen(), "E14-investigator") == "unknown"


def test_checklist_most_recent_response_on_or_before_as_of_counts(screen):
    old = checklist(authored="2026-05-01", contraception=True)
    new = checklist(authored="2026-06-10", contraception=False)
    assert result(screen(old, new), "I6-contraception") == "not-met"
    future = checklist(authored="2026-06-16", contraception=False)
    assert result(screen(old, future), "I6-contraception") == "met"


def test_a_checklist_answering_an_item_two_ways_or_beside_an_unreadable_answer_is_unknown(screen):
    """A yes beside a no, or beside an answer that is no yes/no, is not a yes: reading the first would pass
    over the rest. The same item twice (in a group and at the top) counts as answering it twice."""
    def answers(*values: dict) -> dict:
        qr = checklist(contraception=True)
        qr["item"][0]["answer"] = list(values)
        return qr
    assert result(screen(answers({"valueBoolean": True}, {"valueBoolean": True})), "I6-contraception") == "met"
    for mixed in ([{"valueBoolean": True}, {"valueBoolean": False}],
                  [{"valueBoolean": True}, {"valueString": "no"}],
                  [{"valueBoolean": False}, {"valueBoolean": 0}]):
        c = screen(answers(*mixed)).by_id("I6-contraception")
        assert c.result == "unknown" and "contraception" in c.reason, mixed
    twice = checklist(contraception=True)
    twice["item"].append({"linkId": "group", "item": [{"linkId": "contraception", "answer": [{"valueBoolean": False}]}]})
    assert result(screen(twice), "I6-contraception") == "unknown"
    assert result(screen(twice), "I7-compliance") == "unknown"  # not answered at all: as before


def test_a_checklist_answer_of_the_wrong_shape_is_no_answer_and_the_patient_is_still_screened(screen):
    """`answer` is a list of objects: a number or a string there is no yes/no (the patient was not screened at all,
    for a TypeError); one object written without its array is read as the one answer."""
    for shape, want in ((5, "unknown"), ("yes", "unknown"), ({"valueBoolean": True}, "met")):
        qr = checklist(consent=True)
        qr["item"][0]["answer"] = shape
        qr["item"].append({"linkId": "group", "item": 7})
        assert result(screen(qr), "I8-consent") == want, shape


def test_checklists_of_the_same_time_that_disagree_leave_the_item_unknown(screen):
    """Neither is the most recent, so neither decides; agreeing ones decide together, and a later one decides."""
    yes, no = checklist(authored="2026-06-10", investigator_ok=True), checklist(authored="2026-06-10", investigator_ok=False)
    c = screen(yes, no).by_id("E14-investigator")
    assert c.result == "unknown" and set(c.evidence) == {f"QuestionnaireResponse/{yes['id']}",
                                                         f"QuestionnaireResponse/{no['id']}"}
    again = checklist(authored="2026-06-10", investigator_ok=True)
    assert result(screen(yes, again), "E14-investigator") == "not-met"
    later = checklist(authored="2026-06-11", investigator_ok=False)
    assert result(screen(yes, no, later), "E14-investigator") == "met"
    silent = checklist(authored="2026-06-10", compliance=True)  # the same time, not answering this item
    assert result(screen(yes, silent), "E14-investigator") == "not-met"


def test_checklist_requires_review_flag(screen):
    r = screen()
    assert r.by_id("I6-contraception").requires_review and not r.by_id("I1-age").requires_review


def test_i8_consent_resource_for_this_study(screen):
    consent = {"resourceType": "Consent", "id": "c1", "status": "active", "patient": {"reference": "Patient/p1"},
               "scope": cc("research", "http://terminology.hl7.org/CodeSystem/consentscope"),
               "category": [cc("59284-0", LOINC)],
               "provision": {"data": [{"meaning": "related", "reference": US}]}}
    c = screen(consent).by_id("I8-consent")
    assert c.result == "met" and c.evidence == ("Consent/c1",)
    generic = dict(consent, provision={})
    assert result(screen(generic), "I8-consent") == "unknown"
    assert result(screen(generic, checklist(consent=False)), "I8-consent") == "not-met"
    inactive = dict(consent, status="inactive")
    assert result(screen(inactive), "I8-consent") == "unknown"
    named = research_subject(US, status="candidate", consent={"reference": "Consent/c1"})
    assert result(screen(generic, named), "I8-consent") == "met"


# ------------------------------------------------------------------ E1 prior 3T failure
@pytest.mark.parametrize("status,reason,expected", [
    ("stopped", "58848006", "met"), ("completed", "62014003", "met"),
    ("stopped", None, "unknown"), ("completed", None, "unknown"),
    ("stopped", "105480006", "not-met"),  # another reason (refusal)
    ("active", None, "not-met"),
    ("entered-in-error", "58848006", "not-met"), ("not-taken", "58848006", "not-met"),
])
def test_e1_statement_status_reason(screen, status, reason, expected):
    assert result(screen(med("42316", status=status, reason=reason)), "E1-prior-3t-failure") == expected


def test_e1_request_and_atc_and_other_routes(screen):
    assert result(screen(med("L04AD02", ATC, "stopped", "MedicationRequest", reason="58848006")), "E1-prior-3t-failure") == "met"
    allergy = {"resourceType": "AllergyIntolerance", "id": "a1", "code": cc("10432", RX), "patient": {"reference": "Patient/p1"},
               "clinicalStatus": cc("resolved", "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical")}
    assert result(screen(allergy), "E1-prior-3t-failure") == "met"
    statement = med("1357536", status="completed", reason="105480006")
    ae = {"resourceType": "AdverseEvent", "id": "ae1", "actuality": "actual", "subject": {"reference": "Patient/p1"},
          "date": "2026-01-01", "suspectEntity": [{"instance": {"reference": f"MedicationStatement/{statement['id']}"}}]}
    c = screen(statement, ae).by_id("E1-prior-3t-failure")
    assert c.result == "met" and "AdverseEvent/ae1" in c.evidence
    assert result(screen(), "E1-prior-3t-failure") == "not-met"
    assert result(screen(med("L04AA37", ATC, "stopped", reason="58848006")), "E1-prior-3t-failure") == "not-met"


# ------------------------------------------------------------------ E2 recent immunomodulator (14 days)
@pytest.mark.parametrize("end,expected", [("2026-05-31", "not-met"), ("2026-06-01", "met"), ("2026-06-15", "met")])
def test_e2_window_edges(screen, end, expected):
    m = med("2047232", start="2025-01-01", end=end)
    assert result(screen(m), "E2-recent-immunomodulator") == expected


@pytest.mark.parametrize("code,system,expected", [
    ("L04AF02", ATC, "met"),   # baricitinib under 2024 ATC
    ("L04AF01", ATC, "not-met"),  # tofacitinib is allowed
    ("L04AA29", ATC, "not-met"),  # tofacitinib (older ATC) not in E2
    ("L01EJ01", ATC, "met"),   # ruxolitinib
    ("3008", RX, "met"), ("L04AD01", ATC, "met"), ("342369", RX, "met"),
])
def test_e2_drug_value_set(screen, code, system, expected):
    assert result(screen(med(code, system, status="active", start="2026-01-01")), "E2-recent-immunomodulator") == expected


def test_e2_last_exposure_rules(screen):
    # ongoing (active, no end) -> last exposure is as_of -> met
    assert result(screen(med("3008", status="active", start="2020-01-01")), "E2-recent-immunomodulator") == "met"
    # completed, only a start date
    assert result(screen(med("3008", status="completed", start="2026-06-05")), "E2-recent-immunomodulator") == "met"
    assert result(screen(med("3008", status="completed", start="2026-05-01")), "E2-recent-immunomodulator") == "not-met"
    # completed, no date at all -> unknown
    assert result(screen(med("3008", status="completed")), "E2-recent-immunomodulator") == "unknown"
    # dateAsserted fallback
    assert result(screen(med("3008", status="completed", dateAsserted="2026-06-10")), "E2-recent-immunomodulator") == "met"
    # partial end date straddling the window edge
    assert result(screen(med("3008", start="2025-01-01", end="2026-05")), "E2-recent-immunomodulator") == "not-met"
    # June 2026 ends on or after the window start (06-01): every possible day is exposure in the window
    assert result(screen(med("3008", start="2025-01-01", end="2026-06")), "E2-recent-immunomodulator") == "met"
    # with d1 06-20 the window starts 06-06: "some day in June" may be before it
    assert result(screen(med("3008", start="2025-01-01", end="2026-06"), as_of="2026-06-20"), "E2-recent-immunomodulator") == "unknown"


def test_e2_d1_moves_the_window(screen):
    m = med("3008", start="2025-01-01", end="2026-06-01")
    assert result(screen(m, d1="2026-06-15"), "E2-recent-immunomodulator") == "met"
    assert result(screen(m, d1="2026-06-16"), "E2-recent-immunomodulator") == "not-met"


# ------------------------------------------------------------------ E3 depleting agent (6 months)
@pytest.mark.parametrize("date,expected", [("2025-12-14", "not-met"), ("2025-12-15", "met"), ("2026-06-15", "met")])
def test_e3_window_edges(screen, date, expected):
    m = med("121191", rtype="MedicationAdministration", status="completed", effectiveDateTime=date)
    assert result(screen(m), "E3-depleting-agent") == expected


def test_e3_calendar_months_end_of_month(screen):
    # d1 2026-08-31 minus 6 months = 2026-02-28
    before = med("L01FA01", ATC, effectiveDateTime="2026-02-27", rtype="MedicationAdministration")
    on = med("L01FA01", ATC, effectiveDateTime="2026-02-28", rtype="MedicationAdministration")
    assert result(screen(before, as_of="2026-08-31"), "E3-depleting-agent") == "not-met"
    assert result(screen(on, as_of="2026-08-31"), "E3-depleting-agent") == "met"


def test_e3_contained_and_referenced_medication(screen):
    contained = {"resourceType": "MedicationStatement", "id": "ms1", "status": "completed",
                 "contained": [{"resourceType": "Medication", "id": "m", "code": cc("121191", RX)}],
                 "medicationReference": {"reference": "#m"}, "subject": {"reference": "Patient/p1"},
                 "effectiveDateTime": "2026-03-01"}
    assert result(screen(contained), "E3-depleting-agent") == "met"
    medication = {"resourceType": "Medication", "id": "ritux", "code": cc("L01FA01", ATC)}
    referenced = {"resourceType": "MedicationAdministration", "id": "ma1", "status": "completed",
                  "medicationReference": {"reference": "Medication/ritux"}, "subject": {"reference": "Patient/p1"},
                  "effectiveDateTime": "2026-03-01"}
    c = screen(medication, referenced).by_id("E3-depleting-agent")
    assert c.result == "met" and c.evidence == ("MedicationAdministration/ma1",)


# ------------------------------------------------------------------ E4 another study (28 days)
@pytest.mark.parametrize("end,expected", [("2026-05-17", "not-met"), ("2026-05-18", "met"), (None, "met")])
def test_e4_period_overlap_edges(screen, end, expected):
    study = {"resourceType": "ResearchStudy", "id": "other", "status": "active",
             "identifier": [{"system": "http://example.org", "value": "HX-2026-017"}]}
    rs = research_subject({"reference": "ResearchStudy/other"}, start="2026-01-01", end=end)
    assert result(screen(study, rs), "E4-investigational") == expected


def test_e4_status_start_and_study_identity(screen):
    study = {"resourceType": "ResearchStudy", "id": "other", "status": "active"}
    assert result(screen(study, research_subject({"reference": "ResearchStudy/other"}, status="off-study")), "E4-investigational") == "not-met"
    assert result(screen(study, research_subject({"reference": "ResearchStudy/other"}, start="2026-06-16")), "E4-investigational") == "not-met"
    assert result(screen(study, research_subject({"reference": "ResearchStudy/other"}, start="2026-06-15")), "E4-investigational") == "met"
    # this study does not count
    assert result(screen(research_subject(US)), "E4-investigational") == "not-met"
    # a study fhir3t cannot identify: unknown, not a silent yes or no
    assert result(screen(research_subject({"reference": "ResearchStudy/xyz"})), "E4-investigational") == "unknown"
    assert result(screen(), "E4-investigational") == "not-met"


# ------------------------------------------------------------------ E5 immunodeficiency (6 months)
@pytest.mark.parametrize("onset,expected", [("2025-12-14", "not-met"), ("2025-12-15", "met"), ("2026-06-15", "met")])
def test_e5_window_edges_inactive_condition(screen, onset, expected):
    c = cond("B59", ICD, clinical="resolved", onsetDateTime=onset, abatementDateTime=onset, recordedDate=onset)
    assert result(screen(c), "E5-immunodeficiency") == expected


def test_e5_active_counts_at_any_date_and_codes(screen):
    assert result(screen(cond("D84.9", CM, onsetDateTime="2010-01-01")), "E5-immunodeficiency") == "met"
    assert result(screen(cond("65553006", SCT, clinical="inactive", onsetDateTime="2010-01-01")), "E5-immunodeficiency") == "not-met"
    # abatement inside the window counts even if onset is older
    assert result(screen(cond("B44.1", ICD, clinical="resolved", onsetDateTime="2025-01-01",
                              abatementDateTime="2026-01-10")), "E5-immunodeficiency") == "met"
    assert result(screen(cond("B25.0", ICD)), "E5-immunodeficiency") == "not-met"  # CMV is not in the list


# ------------------------------------------------------------------ E6 malignancy (5 years)
@pytest.mark.parametrize("onset,expected", [("2021-06-14", "not-met"), ("2021-06-15", "met"), ("2026-06-15", "met")])
def test_e6_window_edges(screen, onset, expected):
    c = cond("C50.911", CM, clinical="remission", onsetDateTime=onset, recordedDate=onset)
    assert result(screen(c), "E6-malignancy") == expected


@pytest.mark.parametrize("code,system,expected", [
    ("C73", CM, "not-met"), ("C44.311", CM, "not-met"), ("C44.01", CM, "not-met"), ("C44.521", CM, "not-met"),
    ("C44.91", CM, "not-met"), ("C44.90", CM, "met"),  # unspecified histology in ICD-10-CM counts
    ("C44.3", ICD, "unknown"),  # WHO C44 has no histology
    ("254701007", SCT, "not-met"), ("363346000", SCT, "met"), ("C97", ICD, "met"), ("D06.9", CM, "not-met"),
    ("C00.0", ICD, "met"),
])
def test_e6_exceptions(screen, code, system, expected):
    assert result(screen(cond(code, system)), "E6-malignancy") == expected


def test_e6_skin_cancer_counts_when_metastatic_at_any_date(screen):
    bcc = cond("C44.311", CM)
    mets = cond("C79.9", CM, clinical="resolved", onsetDateTime="2001-01-01")
    assert result(screen(bcc, mets), "E6-malignancy") == "met"


def test_e6_personal_history_codes(screen):
    assert result(screen(cond("Z85.3", CM, recordedDate="2026-01-01")), "E6-malignancy") == "unknown"
    assert result(screen(cond("Z85.3", CM, onsetDateTime="2024-01-01")), "E6-malignancy") == "met"
    assert result(screen(cond("Z85.3", CM, onsetDateTime="2010-01-01", abatementDateTime="2012-01-01")), "E6-malignancy") == "not-met"


# ------------------------------------------------------------------ E7 HBV
def test_e7_hbv(screen):
    d = "2026-06-01"
    assert result(screen(pos("5196-1", d)), "E7-hbv") == "met"
    assert result(screen(neg("5196-1", d), pos("16933-4", d), pos("42595-9", d)), "E7-hbv") == "met"
    assert result(screen(neg("5196-1", d), pos("16933-4", d), neg("42595-9", d)), "E7-hbv") == "not-met"
    assert result(screen(neg("5196-1", d), neg("16933-4", d)), "E7-hbv") == "not-met"
    assert result(screen(neg("5196-1", d), pos("16933-4", d)), "E7-hbv") == "unknown"  # DNA missing
    assert result(screen(), "E7-hbv") == "unknown"
    assert result(screen(cond("B18.1", ICD)), "E7-hbv") == "met"
    assert result(screen(cond("B18.1", ICD, clinical="resolved"), neg("5196-1", d), neg("16933-4", d)), "E7-hbv") == "not-met"


def test_e7_viral_load_quantities(screen):
    d = "2026-06-01"
    dna = lambda **q: obs("42595-9", d, valueQuantity=q)  # noqa: E731
    base = (neg("5196-1", d), pos("16933-4", d))
    assert result(screen(*base, dna(value=350, unit="IU/mL")), "E7-hbv") == "met"
    assert result(screen(*base, dna(value=20, comparator="<", unit="IU/mL")), "E7-hbv") == "not-met"
    assert result(screen(*base, dna(value=0, unit="IU/mL")), "E7-hbv") == "not-met"


@pytest.mark.parametrize("date,expected", [("2026-05-17", "unknown"), ("2026-05-18", "met"), ("2026-06-16", "unknown")])
def test_e7_window_edges(screen, date, expected):
    assert result(screen(pos("5196-1", date)), "E7-hbv") == expected


# ------------------------------------------------------------------ E8 HCV (spec examples)
def test_e8_hcv_spec_examples(screen):
    d = "2026-06-01"
    assert result(screen(neg("11011-4", d)), "E8-hcv") == "not-met"  # unknown AND not-met
    assert result(screen(pos("13955-0", d)), "E8-hcv") == "unknown"
    assert result(screen(pos("13955-0", d), pos("11011-4", d)), "E8-hcv") == "met"
    assert result(screen(neg("13955-0", d)), "E8-hcv") == "not-met"
    assert result(screen(cond("B18.2", ICD)), "E8-hcv") == "met"
    assert result(screen(), "E8-hcv") == "unknown"


# ------------------------------------------------------------------ E9 HIV
def test_e9_hiv(screen):
    d = "2026-06-01"
    assert result(screen(pos("56888-1", d)), "E9-hiv") == "met"
    assert result(screen(neg("56888-1", d)), "E9-hiv") == "not-met"
    assert result(screen(), "E9-hiv") == "unknown"
    assert result(screen(cond("Z21", CM, clinical="inactive", onsetDateTime="2001-01-01"), neg("56888-1", d)), "E9-hiv") == "met"
    assert result(screen(obs("58900-2", d, valueString="Non-Reactive")), "E9-hiv") == "not-met"
    assert result(screen(obs("58900-2", d, valueString="阳性")), "E9-hiv") == "met"
    assert result(screen(obs("58900-2", d, valueString="indeterminate")), "E9-hiv") == "unknown"
    interp = obs("80387-4", d, interpretation=[cc("POS", V3I)])
    assert result(screen(interp), "E9-hiv") == "met"


# ------------------------------------------------------------------ E10 TB
def test_e10_tb(screen):
    d = "2026-06-01"
    tst = lambda v, unit="mm": obs("1648-5", d, valueQuantity={"value": v, "unit": unit, "code": unit})  # noqa: E731
    assert result(screen(pos("71773-6", d)), "E10-tb") == "met"
    assert result(screen(neg("71773-6", d)), "E10-tb") == "not-met"
    assert result(screen(tst(5)), "E10-tb") == "met"
    assert result(screen(tst(4.9)), "E10-tb") == "not-met"
    assert result(screen(tst(0.6, "cm")), "E10-tb") == "met"
    assert result(screen(tst(5, "in")), "E10-tb") == "unknown"
    assert result(screen(), "E10-tb") == "unknown"
    assert result(screen(neg("71773-6", d), cond("A15.0", ICD)), "E10-tb") == "met"
    assert result(screen(neg("71773-6", d), cond("A15.0", ICD, clinical="resolved")), "E10-tb") == "not-met"
    assert result(screen(neg("71773-6", d), cond("Z22.7", ICD)), "E10-tb") == "met"
    assert result(screen(neg("71773-6", d), cond("A31.0", ICD, clinical="resolved")), "E10-tb") == "met"  # NTM ever
    assert result(screen(cond("A15.0", ICD, clinical="resolved")), "E10-tb") == "unknown"
    # indeterminate IGRA but negative TST: the TST settles it
    assert result(screen(obs("71773-6", d, valueString="indeterminate"), tst(2)), "E10-tb") == "not-met"


# ------------------------------------------------------------------ E11 allergy
def test_e11_allergy(screen):
    def allergy(code, system=RX, clinical="active", verification=None):
        r = {"resourceType": "AllergyIntolerance", "id": "a1", "code": cc(code, system), "patient": {"reference": "Patient/p1"},
             "clinicalStatus": cc(clinical, "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical")}
        if verification:
            r["verificationStatus"] = cc(verification, "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification")
        return r
    assert result(screen(allergy("10432")), "E11-hypersensitivity") == "met"
    assert result(screen(allergy("L04AX02", ATC)), "E11-hypersensitivity") == "met"
    assert result(screen(allergy("10432", clinical="resolved")), "E11-hypersensitivity") == "not-met"
    assert result(screen(allergy("10432", verification="refuted")), "E11-hypersensitivity") == "not-met"
    assert result(screen(allergy("7980")), "E11-hypersensitivity") == "not-met"  # penicillin G
    assert result(screen(), "E11-hypersensitivity") == "not-met"


# ------------------------------------------------------------------ E12 vaccination (84 days)
@pytest.mark.parametrize("date,expected", [("2026-03-22", "not-met"), ("2026-03-23", "met"), ("2026-06-15", "met")])
def test_e12_window_edges(screen, date, expected):
    assert result(screen(immunization("141", date)), "E12-vaccination") == expected


def test_e12_status_and_recommendation(screen):
    assert result(screen(immunization("141", "2026-06-01", status="not-done")), "E12-vaccination") == "not-met"
    assert result(screen(immunization("141", "2026-06-16")), "E12-vaccination") == "not-met"  # after as_of
    rec = {"resourceType": "ImmunizationRecommendation", "id": "rec1", "patient": {"reference": "Patient/p1"},
           "date": "2026-06-01", "recommendation": [{"vaccineCode": [cc("21", CVX)],
                                                     "forecastStatus": cc("due", "http://terminology.hl7.org/CodeSystem/immunization-recommendation-status")}]}
    assert result(screen(rec), "E12-vaccination") == "met"
    rec["recommendation"][0]["vaccineCode"] = [cc("3", CVX)]  # CVX 03 written without the zero
    assert result(screen(rec), "E12-vaccination") == "met"
    rec["recommendation"][0]["vaccineCode"] = [cc("141", CVX)]  # inactivated influenza
    assert result(screen(rec), "E12-vaccination") == "not-met"
    rec["recommendation"][0]["vaccineCode"] = [cc("J07BF02", ATC)]
    assert result(screen(rec), "E12-vaccination") == "met"


# ------------------------------------------------------------------ E13 pregnancy
def test_e13_pregnancy(screen):
    d = "2026-06-01"
    young_f = patient(birth="1990-01-01", gender="female")
    assert result(screen(young_f, pos("2106-3", d)), "E13-pregnancy") == "met"
    assert result(screen(young_f, neg("2106-3", d)), "E13-pregnancy") == "not-met"
    assert result(screen(young_f), "E13-pregnancy") == "unknown"
    assert result(screen(patient(birth="1990-01-01", gender="male")), "E13-pregnancy") == "not-met"
    assert result(screen(patient(birth="1971-06-15", gender="female")), "E13-pregnancy") == "not-met"  # 55 today
    assert result(screen(patient(birth="1971-06-16", gender="female")), "E13-pregnancy") == "unknown"  # 54
    assert result(screen(patient(birth=None, gender="female")), "E13-pregnancy") == "unknown"
    assert result(screen(patient(birth=None, gender="female"), neg("2118-8", d)), "E13-pregnancy") == "not-met"
    assert result(screen(patient(birth="1990-01-01", gender=None)), "E13-pregnancy") == "unknown"
    assert result(screen(patient(birth="1960-01-01", gender="female"), cond("Z34.00", CM)), "E13-pregnancy") == "met"
    status = obs("82810-3", d, valueCodeableConcept=cc("77386006", SCT))
    assert result(screen(patient(birth="1960-01-01", gender="female"), status), "E13-pregnancy") == "met"
    # positive hCG dated after as_of is ignored
    assert result(screen(young_f, neg("2106-3", d), pos("2106-3", "2026-06-16")), "E13-pregnancy") == "not-met"


@pytest.mark.parametrize("date,expected", [("2026-05-17", "unknown"), ("2026-05-18", "not-met")])
def test_e13_hcg_window_edge(screen, date, expected):
    assert result(screen(patient(birth="1990-01-01"), neg("2106-3", date)), "E13-pregnancy") == expected


# ------------------------------------------------------------------ status mapping
def test_status_mapping_and_listed_unknowns(screen):
    r = screen()
    assert r.status == "ineligible"  # no DM diagnosis: I2 not-met
    assert "I2-dm" in r.failing
    r = screen(cond("M33.1", ICD))
    assert r.status == "candidate" and "I3-mda5" in r.unknown
    assert len(r.criteria) == 22
    assert [c.id for c in r.criteria][:3] == ["I1-age", "I2-dm", "I3-mda5"]


def test_e2_window_grows_to_five_half_lives_from_value_set_data(tmp_path):
    """A drug whose 5 half-lives exceed 14 days lengthens its own wash-out window (data only)."""
    import json
    import shutil

    from conftest import ROOT, screen_bundle
    from factory import bundle
    from fhir3t.pipeline import Definition

    # a study folder of its own: the bundled study with one value set edited
    for part in ("study.json", "criteria", "valuesets"):
        src = ROOT / "profiles" / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    vdir = tmp_path / "valuesets"
    path = vdir / "immunomodulators-e2.json"
    vs = json.loads(path.read_text())
    for inc in vs["compose"]["include"]:
        for c in inc.get("concept", []):
            if c["code"] == "3008":  # cyclosporine: pretend 100 h -> 5 x 100 h = 20.8 days -> 21 days
                for ext in c["extension"]:
                    if ext["url"].endswith("half-life"):
                        ext["valueDuration"]["value"] = 100
    path.write_text(json.dumps(vs))
    eng = Definition.load(tmp_path)
    # d1 2026-06-15 minus 21 days is 2026-05-25: the day before, on, and after the new edge
    for end, expected in (("2026-05-24", "not-met"), ("2026-05-25", "met"), ("2026-05-26", "met")):
        [r] = screen_bundle(eng, bundle(patient(), med("3008", start="2025-01-01", end=end)))
        assert result(r, "E2-recent-immunomodulator") == expected, end
    # baricitinib keeps the 14-day floor (12.5 h x 5 < 14 days)
    [r] = screen_bundle(eng, bundle(patient(), med("2047232", start="2025-01-01", end="2026-05-31")))
    assert result(r, "E2-recent-immunomodulator") == "not-met"


# every screening-window test result: the day before, on, and after each edge of 2026-05-18..2026-06-15
PERCENT = {"valueQuantity": {"value": 60, "unit": "%", "code": "%"}}
WINDOW_CASES = [
    ("I3-mda5", "82424-3", {"valueString": "+++"}, "met", "unknown"),
    ("I4-dlco", "98130-8", PERCENT, "met", "unknown"),
    ("I5-ct", "24627-2", {"valueCodeableConcept": cc("233703007", SCT)}, "met", "unknown"),
    ("E7-hbv", "5196-1", {"valueCodeableConcept": cc("10828004", SCT)}, "met", "unknown"),
    ("E9-hiv", "56888-1", {"valueCodeableConcept": cc("10828004", SCT)}, "met", "unknown"),
    ("E10-tb", "71773-6", {"valueCodeableConcept": cc("10828004", SCT)}, "met", "unknown"),
    ("E10-tb", "1648-5", {"valueQuantity": {"value": 8, "unit": "mm", "code": "mm"}}, "met", "unknown"),
]


@pytest.mark.parametrize("cid,code,value,inside,outside", WINDOW_CASES, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("day,where", [("2026-05-17", "out"), ("2026-05-18", "in"), ("2026-06-15", "in"),
                                       ("2026-06-16", "out")])
def test_screening_window_edges_for_every_test(screen, cid, code, value, inside, outside, day, where):
    assert result(screen(obs(code, day, **value)), cid) == (inside if where == "in" else outside)


@pytest.mark.parametrize("day,expected", [("2026-05-17", "unknown"), ("2026-05-18", "met"), ("2026-06-16", "unknown")])
def test_e8_window_edges_both_tests(screen, day, expected):
    assert result(screen(pos("13955-0", day), pos("11011-4", day)), "E8-hcv") == expected
