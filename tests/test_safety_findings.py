"""Episodes, the AE window around D1, clinical AEs and causality, death, seriousness, who is a subject."""
from __future__ import annotations

import csv
from datetime import date

import pytest

from factory import ICD, cond, patient
from fhir3t.errors import InputError, Problems, UsageError
from fhir3t.safety import parse_d1_options, read_d1_csv
from safety_helpers import D1, drug, enrolled, lab, one, run

ALT = "1742-6"


def alt(day: str, value: float) -> dict:
    return lab(ALT, day, value, high=40)


# ---- episodes ----------------------------------------------------------------------------------
def test_episode_start_end_worst_grade_and_resolved():
    o = one(alt("2026-01-19", 30), alt("2026-02-02", 130), alt("2026-02-16", 210), alt("2026-03-02", 90),
            alt("2026-03-16", 35), alt("2026-03-30", 30))
    [f] = o.findings
    assert (f.onset, f.end, f.grade, f.outcome) == (date(2026, 2, 2), date(2026, 3, 16), 3, "resolved")
    assert f.severity == "severe" and len(f.evidence) == 4  # three abnormal results + the one that ended it


def test_episode_recovering_and_ongoing():
    o = one(alt("2026-02-02", 130), alt("2026-02-16", 90))
    assert [(f.grade, f.outcome, f.end) for f in o.findings] == [(2, "recovering", None)]
    o = one(alt("2026-02-02", 90), alt("2026-02-16", 130))
    assert [(f.grade, f.outcome) for f in o.findings] == [(2, "ongoing")]


def test_new_abnormal_after_an_ended_episode_is_a_new_ae():
    o = one(alt("2026-02-02", 90), alt("2026-02-16", 30), alt("2026-03-02", 130))
    assert [(f.onset.isoformat(), f.grade, f.outcome) for f in o.findings] == [
        ("2026-02-02", 1, "resolved"), ("2026-03-02", 2, "ongoing")]
    assert o.findings[0].id != o.findings[1].id


def test_results_are_ordered_by_date_not_by_input_order():
    o = one(alt("2026-03-02", 30), alt("2026-02-02", 130))
    assert [(f.onset.isoformat(), f.outcome) for f in o.findings] == [("2026-02-02", "resolved")]


# ---- window ------------------------------------------------------------------------------------
def test_a_lab_on_d1_is_not_an_ae():
    o = one(alt(D1, 500), alt("2026-01-19", 30))
    assert o.findings == ()
    o = one(alt(D1 + "T23:59:00+08:00", 500), alt("2026-01-06", 500))  # the day after D1 is
    assert [f.onset.isoformat() for f in o.findings] == ["2026-01-06"]


def test_data_after_as_of_is_ignored():
    assert one(alt("2026-07-01", 500), as_of="2026-06-30").findings == ()


def test_off_study_window_is_period_end_plus_30_days():
    rs = enrolled(status="off-study", end="2026-03-01")
    o = one(rs, alt("2026-03-30", 130), alt("2026-03-31", 500))  # end + 29 counts; end + 30 does not
    assert [(f.onset.isoformat(), f.grade, f.outcome) for f in o.findings] == [("2026-03-30", 2, "ongoing")]


# ---- clinical AEs and causality ---------------------------------------------------------------
def test_herpes_zoster_is_possible_for_tofacitinib_only():
    o = one(cond("B02.9", ICD, onsetDateTime="2026-03-10"), drug("tofacitinib"))
    [f] = o.findings
    assert {s.drug: s.causality for s in f.suspects} == {
        "tofacitinib": "Possible", "tacrolimus": "Unassessable-Unclassifiable",
        "thalidomide": "Unassessable-Unclassifiable"}
    assert f.treatment_related and f.grade is None and f.outcome == "ongoing"
    assert f.suspects[0].instance and f.suspects[0].instance.startswith("MedicationStatement/")
    assert f.suspects[1].instance is None  # no tacrolimus record: the emitter contains a Medication


@pytest.mark.parametrize("code, drugs", [
    ("N17.9", {"tacrolimus"}), ("R25.1", {"tacrolimus"}), ("E11.9", {"tacrolimus"}),
    ("G62.0", {"thalidomide"}), ("K59.00", {"thalidomide"}), ("R00.1", {"thalidomide"}),
    ("I26.99", {"tofacitinib", "thalidomide"}), ("I82.40", {"tofacitinib", "thalidomide"}),
    ("J11.1", set()),
])
def test_causality_mapping_from_known_reaction_value_sets(code, drugs):
    [f] = one(cond(code, onsetDateTime="2026-02-01")).findings
    assert {s.drug for s in f.suspects if s.causality == "Possible"} == drugs
    assert f.treatment_related == bool(drugs)


@pytest.mark.parametrize("tid_code, drugs", [
    ("1742-6", {"tofacitinib", "tacrolimus", "thalidomide"}), ("2160-0", {"tacrolimus"}),
    ("751-8", {"tofacitinib"}), ("777-3", {"tofacitinib", "thalidomide"}),
])
def test_lab_causality_from_data(tid_code, drugs):
    unit = {"1742-6": "U/L", "2160-0": "umol/L", "751-8": "10*9/L", "777-3": "10*9/L"}[tid_code]
    value = {"1742-6": 500, "2160-0": 500, "751-8": 0.4, "777-3": 20}[tid_code]
    [f] = one(lab(tid_code, "2026-02-01", value, unit=unit)).findings
    assert {s.drug for s in f.suspects if s.causality == "Possible"} == drugs


def test_condition_before_or_on_d1_is_not_an_ae_and_recorded_date_is_the_fallback():
    o = one(cond("B02.9", ICD, onsetDateTime=D1), cond("B02.9", ICD, recordedDate="2026-02-01"),
            cond("K59.0", ICD, recordedDate="2025-12-01"))
    assert [f.onset.isoformat() for f in o.findings] == ["2026-02-01"]


def test_condition_outcome_from_clinical_status():
    o = one(cond("B02.9", ICD, clinical="resolved", onsetDateTime="2026-02-01", abatementDateTime="2026-02-20"),
            cond("R21", ICD, clinical="remission", onsetDateTime="2026-03-01"),
            cond("R40.0", ICD, clinical="active", onsetDateTime="2026-04-01"))
    assert [(f.outcome, f.end) for f in o.findings] == [("resolved", date(2026, 2, 20)), ("resolved", None),
                                                        ("ongoing", None)]


def test_refuted_condition_is_never_an_ae():
    assert one(cond("B02.9", ICD, verification="refuted", onsetDateTime="2026-02-01")).findings == ()


def test_partial_onset_straddling_d1_is_reported_not_counted():
    problems = Problems()
    assert one(cond("B02.9", ICD, onsetDateTime="2026-01"), problems=problems).findings == ()
    assert any("may be before or after D1" in p.message for p in problems)


# ---- death ---------------------------------------------------------------------------------------
def test_death_after_d1_is_a_fatal_grade_5_ae_and_the_survival_event():
    o = one(alt("2026-02-01", 30), pat=patient(deceasedDateTime="2026-03-15T10:00:00+08:00"))
    [f] = o.findings
    assert (f.kind, f.grade, f.outcome, f.seriousness) == ("death", 5, "fatal", "SeriousResultsInDeath")
    assert f.code == {"system": "http://snomed.info/sct", "code": "419620001", "display": "Death"}
    assert o.event and o.survival_days == (date(2026, 3, 15) - date(2026, 1, 5)).days


def test_deceased_boolean_dates_death_at_last_known_alive():
    problems = Problems()
    o = one(alt("2026-02-01", 30), pat=patient(deceasedBoolean=True), problems=problems)
    assert o.event and o.death == date(2026, 2, 1) and o.findings[0].kind == "death"
    assert any("deceasedBoolean" in p.message and not p.skipped for p in problems)


def test_death_on_or_before_d1_is_not_an_ae():
    problems = Problems()
    o = one(pat=patient(deceasedDateTime="2026-01-05"), problems=problems)
    assert o.findings == () and not o.event
    assert any("not after D1" in p.message for p in problems)


def test_censoring_at_last_known_alive_capped_at_as_of():
    o = one(alt("2026-02-01", 30), cond("Z00.0", ICD, recordedDate="2026-09-01"), as_of="2026-06-30")
    assert not o.event and o.last_alive == date(2026, 6, 30)
    o = one(alt("2026-02-01", 30))
    assert o.survival_days == (date(2026, 2, 1) - date(2026, 1, 5)).days


# ---- seriousness ---------------------------------------------------------------------------------
def inpatient(start: str, end: str, code: str = "IMP") -> dict:
    return {"resourceType": "Encounter", "id": f"enc-{start}-{code}", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code},
            "subject": {"reference": "Patient/p1"}, "period": {"start": start, "end": end}}


def test_seriousness_from_grade_and_inpatient_overlap():
    o = one(alt("2026-02-01", 900), alt("2026-02-15", 30))  # 22.5 × ULN → grade 4
    assert [(f.grade, f.seriousness) for f in o.findings] == [(4, "SeriousIsLifeThreatening")]
    o = one(cond("J18.9", ICD, onsetDateTime="2026-02-01", clinical="resolved", abatementDateTime="2026-02-10"),
            inpatient("2026-02-09", "2026-02-12"))
    assert o.findings[0].seriousness == "SeriousResultsInHospitalization"
    o = one(cond("J18.9", ICD, onsetDateTime="2026-02-01", clinical="resolved", abatementDateTime="2026-02-10"),
            inpatient("2026-02-11", "2026-02-12"), inpatient("2026-02-01", "2026-02-03", "AMB"))
    assert o.findings[0].seriousness == "Non-serious"


# ---- subjects --------------------------------------------------------------------------------------
def test_statuses_that_make_a_subject():
    # a withdrawn subject was on study: its AEs up to withdrawal (+ 30 days) count, survival is censored there
    for status in ("on-study", "on-study-intervention", "follow-up", "off-study", "withdrawn"):
        assert len(run(enrolled(status=status), alt("2026-02-01", 130), with_subject=False)) == 1
    for status in ("candidate", "eligible", "screening", "not-registered"):
        assert run(enrolled(status=status), alt("2026-02-01", 130), with_subject=False) == []


def test_other_study_is_not_this_one():
    from factory import research_subject

    other = research_subject({"identifier": {"system": "http://clinicaltrials.gov", "value": "NCT00000001"}})
    assert run(other, alt("2026-02-01", 130), with_subject=False) == []


def test_subject_without_d1_is_skipped_with_a_warning_unless_d1_is_given():
    problems = Problems()
    assert run(enrolled(start=None), alt("2026-02-01", 130), with_subject=False, problems=problems) == []
    assert any("no period.start" in p.message and p.skipped for p in problems)
    [o] = run(enrolled(start=None), alt("2026-02-01", 130), with_subject=False, d1={"Patient/p1": date(2026, 1, 20)})
    assert o.subject.d1 == date(2026, 1, 20) and o.subject.source == "--d1"


def test_given_d1_overrides_and_works_without_research_subject():
    [o] = run(alt("2026-02-01", 130), with_subject=False, d1=parse_d1_options(["p1=2026-02-01"]))
    assert o.findings == ()  # the lab is on the given D1
    problems = Problems()
    run(alt("2026-02-01", 130), d1={"Patient/nobody": date(2026, 1, 1)}, problems=problems)
    assert any("Patient/nobody" in p.message for p in problems)


def test_d1_options_and_csv(tmp_path):
    assert parse_d1_options(["p1=2026-01-05", "Patient/p2=2026-02-01"]) == {
        "Patient/p1": date(2026, 1, 5), "Patient/p2": date(2026, 2, 1)}
    with pytest.raises(UsageError):
        parse_d1_options(["p1"])
    with pytest.raises(UsageError):
        parse_d1_options(["p1=2026-13-01"])
    f = tmp_path / "d1.csv"
    with f.open("w", newline="") as fh:
        csv.writer(fh).writerows([["patient", "d1"], ["p1", "2026-01-05"], ["Patient/p2", "2026-02-01"]])
    assert read_d1_csv(f) == {"Patient/p1": date(2026, 1, 5), "Patient/p2": date(2026, 2, 1)}
    f.write_text("patient,d1\np1,\n")
    with pytest.raises(InputError):
        read_d1_csv(f)


def test_planned_visits_do_not_prove_the_subject_alive():
    planned = {"resourceType": "Encounter", "id": "next", "status": "planned", "subject": {"reference": "Patient/p1"},
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "period": {"start": "2026-06-20"}}
    o = one(alt("2026-02-01", 30), planned, as_of="2026-06-30")
    assert o.last_alive == date(2026, 2, 1)
    planned["status"] = "finished"
    assert one(alt("2026-02-01", 30), planned, as_of="2026-06-30").last_alive == date(2026, 6, 20)


def test_a_zero_reference_limit_falls_back_to_the_default_range():
    problems = Problems()
    o = one(lab(ALT, "2026-02-02", 45, high=0), problems=problems)
    [f] = o.findings  # 45 U/L against the default ULN is grade 1, not "45 x ULN" grade 4
    assert f.grade == 1 and f.seriousness == "Non-serious"
    assert any("no usable value" in p.message for p in problems)
