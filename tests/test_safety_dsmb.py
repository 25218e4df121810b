"""What the DSMB report relies on, one behaviour at a time: grades derived from the record (CTCAE v5.0), one event one
AE, conservative causality and its flag, opportunistic infections as known reactions, CTCAE terms for infections and
the regimen's risks, AESIs, expectedness, withdrawal censoring, exposure and dose changes, baseline."""
from __future__ import annotations

from datetime import date

import pytest

from factory import CM, ICD, RX, SCT, cc, cond, patient
from fhir3t.canonical import EXT_CTCAE_GRADE
from safety_helpers import D1, drug, enrolled, lab, one
from test_safety_recorded import MDR, investigator_ae

V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def stay(start: str, end: str, klass: str = "IMP", **extra) -> dict:
    r = {"resourceType": "Encounter", "id": f"enc-{start}-{klass}", "status": "finished", "class": {"system": V3_ACT, "code": klass},
         "subject": {"reference": "Patient/p1"}, "period": {"start": start, "end": end}}
    r.update(extra)
    return r


def given(name: str, code: tuple[str, str], start: str, end: str, route: dict) -> dict:
    return {"resourceType": "MedicationAdministration", "id": f"ma-{start}", "status": "completed",
            "medicationCodeableConcept": {"coding": [{"system": code[0], "code": code[1]}], "text": name},
            "subject": {"reference": "Patient/p1"}, "effectivePeriod": {"start": start, "end": end}, "dosage": {"route": route}}


IV = cc("47625008", SCT, "Intravenous route")


# ---- grades derived from the record ---------------------------------------------------------------------
def test_hospitalisation_grades_a_clinical_ae_3_and_only_while_it_runs():
    inside = one(cond("J18.9", ICD, onsetDateTime="2026-03-01"), stay("2026-03-02", "2026-03-09"))
    [f] = inside.findings
    assert (f.grade, f.grade_rule, f.seriousness) == (3, "hospitalisation", "SeriousResultsInHospitalization")
    before = one(cond("J18.9", ICD, onsetDateTime="2026-03-01", clinical="resolved", abatementDateTime="2026-03-05"),
                 stay("2026-03-06", "2026-03-09"))
    assert before.findings[0].grade is None  # the stay came after the AE ended: ungraded, never grade 1
    day_case = one(cond("J18.9", ICD, onsetDateTime="2026-03-01"), stay("2026-03-02", "2026-03-02", "AMB"))
    assert day_case.findings[0].grade is None


def test_iv_anti_infective_grades_infections_3_but_not_other_aes():
    zoster = one(cond("B02.9", ICD, onsetDateTime="2026-03-01"), given("阿昔洛韦", (RX, "281"), "2026-03-01", "2026-03-05", IV))
    assert (zoster.findings[0].grade, zoster.findings[0].grade_rule, zoster.findings[0].seriousness) == (
        3, "iv-anti-infective", "Non-serious")
    # by the hospital's names only: a formulary code, the drug and the route written in Chinese
    named = one(cond("B02.9", ICD, onsetDateTime="2026-03-01"),
                given("注射用更昔洛韦", ("http://zj2h.example.org/fhir/CodeSystem/formulary", "F-GCV"), "2026-03-02", "2026-03-03",
                      {"text": "静脉滴注"}))
    assert named.findings[0].grade == 3
    oral = one(cond("B02.9", ICD, onsetDateTime="2026-03-01"), given("阿昔洛韦", (RX, "281"), "2026-03-01", "2026-03-05",
                                                                     {"text": "口服"}))
    assert oral.findings[0].grade is None
    rash = one(cond("R21", ICD, onsetDateTime="2026-03-01"), given("阿昔洛韦", (RX, "281"), "2026-03-01", "2026-03-05", IV))
    assert rash.findings[0].grade is None  # not an infection: the IV rule is CTCAE's for infections only


def test_icu_urgent_intervention_and_cause_of_death_grade_4_and_5():
    icu = one(cond("I26.9", ICD, onsetDateTime="2026-03-01"), stay("2026-03-01", "2026-03-04", serviceType={"text": "重症医学科"}))
    assert (icu.findings[0].grade, icu.findings[0].grade_rule, icu.findings[0].seriousness) == (4, "icu", "SeriousIsLifeThreatening")
    ventilated = one(cond("J18.9", ICD, onsetDateTime="2026-03-01"), stay("2026-03-01", "2026-03-20"),
                     {"resourceType": "Procedure", "id": "mv", "status": "completed", "code": cc("40617009", SCT),
                      "subject": {"reference": "Patient/p1"}, "performedDateTime": "2026-03-03"})
    assert (ventilated.findings[0].grade, ventilated.findings[0].grade_rule) == (4, "urgent-intervention")
    c = cond("J18.9", ICD, onsetDateTime="2026-03-01")
    cause = {"resourceType": "Observation", "id": "cod", "status": "final", "code": cc("69453-9", "http://loinc.org"),
             "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-03-10",
             "valueCodeableConcept": cc("J18.9", ICD)}
    died = one(c, cause, pat=patient(deceasedDateTime="2026-03-10"))
    [f] = died.findings  # the death is that AE's grade 5, not a second 'Death NOS'
    assert (f.table_term, f.grade, f.outcome, f.seriousness, f.grade_rule) == (
        "Lung infection", 5, "fatal", "SeriousResultsInDeath", "cause-of-death")
    assert died.event and died.death_cause == "Lung infection" and "Patient/p1" in f.evidence


def test_a_recorded_ctcae_grade_is_kept_and_severity_is_a_floor():
    recorded = cond("J18.9", ICD, onsetDateTime="2026-03-01", extension=[{"url": EXT_CTCAE_GRADE, "valueInteger": 2}])
    assert one(recorded, stay("2026-03-01", "2026-03-05")).findings[0].grade == 2  # the investigator's, as recorded
    severe = cond("B02.9", ICD, onsetDateTime="2026-03-01", severity=cc("24484000", SCT, "Severe"))
    assert one(severe).findings[0].grade == 3
    mild = cond("J18.9", ICD, onsetDateTime="2026-03-01", severity=cc("255604002", SCT, "Mild"))
    graded = one(mild, stay("2026-03-01", "2026-03-05")).findings[0]
    assert (graded.grade, graded.grade_rule) == (3, "hospitalisation")  # the record shows more than 'mild'


# ---- one event, one AE ---------------------------------------------------------------------------------
def test_investigator_record_of_the_derived_death_is_the_same_ae_only_on_that_day():
    pat = patient(deceasedDateTime="2026-04-01T22:00:00+08:00")
    same = investigator_ae("2026-04-01", code="419620001", system=SCT,
                           causality={"tofacitinib": "Unassessable-Unclassifiable"},
                           seriousness=cc("SeriousResultsInDeath", "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"))
    [f] = one(same, pat=pat).findings
    assert (f.kind, f.source, f.table_term, f.grade) == ("death", "both", "Death NOS", 5)
    assert not f.treatment_related and f.conservative_related and f.needs_assessment
    other_day = investigator_ae("2026-03-20", text="死亡")
    assert sorted(x.source for x in one(other_day, pat=pat).findings) == ["fhir3t", "investigator"]


def test_investigator_duplicate_of_a_lab_episode_merges_by_equivalent_term_inside_the_episode():
    labs = [lab("751-8", day, v, unit="10*9/L", low=1.8) for day, v in
            (("2026-02-02", 1.2), ("2026-02-16", 0.9), ("2026-03-02", 2.2))]
    by_code = investigator_ae("2026-02-16", code="10029354", system=MDR, causality={"tofacitinib": "Probably-Likely"},
                              extension=[{"url": EXT_CTCAE_GRADE, "valueInteger": 4}])
    [f] = one(*labs, by_code).findings
    assert (f.source, f.grade, f.grade_source) == ("both", 4, "investigator: CTCAE grade extension")  # its grade wins
    assert f.evidence == tuple(x["id"] and f"Observation/{x['id']}" for x in labs)  # fhir3t's evidence stays
    by_text = investigator_ae("2026-02-20", text="中性粒细胞减少")
    assert [x.source for x in one(*labs, by_text).findings] == ["both"]
    after = investigator_ae("2026-03-05", text="Neutropenia")  # after the episode ended: another event
    assert sorted(x.source for x in one(*labs, after).findings) == ["fhir3t", "investigator"]


# ---- conservative causality, flag, known reactions, expectedness ----------------------------------------
@pytest.mark.parametrize("assessment, related, conservative, flagged", [
    ("Unassessable-Unclassifiable", False, True, True),
    ("Conditional-Classified", False, True, True),
    ("Unlikely", False, False, False),
    ("Possible", True, True, False),
])
def test_conservative_line_and_the_flag_for_serious_aes(assessment, related, conservative, flagged):
    sae = cond("L40.0", CM, onsetDateTime="2026-03-01")  # psoriasis: in no known-reaction set
    ae = investigator_ae("2026-03-01", code="L40.0", system=CM, causality={d: assessment for d in
                                                                          ("tofacitinib", "tacrolimus", "thalidomide")})
    [f] = one(sae, ae, stay("2026-03-01", "2026-03-04")).findings
    assert (f.serious, f.treatment_related, f.conservative_related, f.needs_assessment) == (True, related, conservative, flagged)


def test_opportunistic_infections_are_known_reactions_of_tofacitinib_and_tacrolimus():
    for code in ("B59", "B25.9", "A15.0", "A19.9", "B44.1", "B45.9"):
        [f] = one(cond(code, ICD, onsetDateTime="2026-03-01"), drug("tofacitinib")).findings
        assert {s.drug: s.causality for s in f.suspects if s.causality == "Possible"} == {
            "tofacitinib": "Possible", "tacrolimus": "Possible"}, code
        assert "opportunistic-infection" in f.aesi, code


@pytest.mark.parametrize("code, term, aesi", [
    ("B02.9", "Shingles", {"herpes-zoster"}),
    ("I82.4", "Thromboembolic event", {"vte", "dvt"}),
    ("I26.9", "Thromboembolic event", {"vte", "pe"}),
    ("G62.0", "Peripheral sensory neuropathy", {"peripheral-neuropathy"}),
    ("B25.9", "Cytomegalovirus infection reactivation", {"opportunistic-infection", "cmv"}),
    ("A15.0", "Infections and infestations - Other, specify: tuberculosis", {"opportunistic-infection", "tb"}),
    ("E11.9", "Hyperglycemia", {"hyperglycaemia"}),
    ("E78.1", "Hypertriglyceridemia", {"lipid-increase"}),
    ("J84.9", "Pneumonitis", {"ild-progression"}),
    ("J84.10", "Pulmonary fibrosis", {"ild-progression"}),
    ("N17.9", "Acute kidney injury", {"nephrotoxicity"}),
])
def test_ctcae_terms_and_aesis_of_the_regimens_risks(code, term, aesi):
    [f] = one(cond(code, ICD, onsetDateTime="2026-03-01")).findings
    assert f.table_term == term and set(f.aesi) == aesi


def test_a_serious_reaction_not_in_the_drugs_reference_safety_information_is_a_susar():
    aki = cond("N17.9", ICD, onsetDateTime="2026-03-01")
    ae = investigator_ae("2026-03-01", code="N17.9", system=ICD, causality={"thalidomide": "Probably-Likely"})
    [f] = one(aki, ae, stay("2026-03-01", "2026-03-04")).findings
    assert f.susar and "thalidomide" in f.unexpected_for and "tacrolimus" not in f.unexpected_for
    [g] = one(cond("N17.9", ICD, onsetDateTime="2026-03-01"), stay("2026-03-01", "2026-03-04")).findings
    assert not g.susar  # related to tacrolimus only (known reaction), which lists it


# ---- withdrawal, exposure, baseline ----------------------------------------------------------------------
def test_withdrawn_subject_is_censored_at_withdrawal_unless_it_died_before():
    rs = enrolled(status="withdrawn", end="2026-03-01")
    later = one(rs, stay("2026-05-01", "2026-05-02", "AMB"), pat=patient(deceasedDateTime="2026-05-10"))
    assert (later.event, later.censored_at, later.survival_days) == (False, "withdrawal", (date(2026, 3, 1) - date(2026, 1, 5)).days)
    assert later.findings == ()  # the death is outside the AE window (period.end + 30 days)
    before = one(enrolled(status="withdrawn", end="2026-03-01"), pat=patient(deceasedDateTime="2026-02-20"))
    assert before.event and before.censored_at is None
    no_end = one(enrolled(status="withdrawn"), stay("2026-04-01", "2026-04-01", "AMB"))
    assert no_end.censored_at == "last-contact"  # no withdrawal day: said in Problems, censored at last contact


def _stmt(rid: str, start: str, end: str | None, status: str, mg: float, freq: int, unit: str = "d", **extra) -> dict:
    r = {"resourceType": "MedicationStatement", "id": rid, "status": status,
         "medicationCodeableConcept": cc("1357536", RX), "subject": {"reference": "Patient/p1"},
         "effectivePeriod": {"start": start, **({"end": end} if end else {})},
         "dosage": [{"timing": {"repeat": {"frequency": freq, "period": 1, "periodUnit": unit}},
                     "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg"}}]}]}
    r.update(extra)
    return r


def test_exposure_interruption_reduction_and_discontinuation_with_their_ae():
    adverse = [cc("281647001", SCT, "Adverse reaction")]
    records = [_stmt("m1", D1, "2026-02-10", "stopped", 5, 2, statusReason=adverse),
               _stmt("m2", "2026-02-20", "2026-03-31", "completed", 5, 1),
               _stmt("m3", "2026-04-01", "2026-04-30", "stopped", 5, 1, statusReason=adverse)]
    neut = [lab("751-8", "2026-02-09", 0.9, unit="10*9/L", low=1.8), lab("751-8", "2026-03-01", 2.5, unit="10*9/L", low=1.8),
            lab("751-8", "2026-04-28", 1.2, unit="10*9/L", low=1.8)]
    o = one(*records, *neut, as_of="2026-06-30")
    [tofa] = [e for e in o.exposure if e.drug == "tofacitinib"]
    assert [(c.kind, c.day.isoformat(), c.until.isoformat() if c.until else None) for c in tofa.changes] == [
        ("interruption", "2026-02-11", "2026-02-19"), ("reduction", "2026-02-20", None), ("discontinuation", "2026-04-30", None)]
    reduction = tofa.changes[1]
    assert (reduction.from_dose, reduction.to_dose) == ("10 mg/day", "5 mg/day")
    first, second = (f for f in o.findings if f.term == "Neutrophil count decreased")
    assert tofa.changes[0].aes == (first.id,) and tofa.changes[2].aes == (second.id,)
    assert tofa.days == (date(2026, 2, 10) - date(2026, 1, 5)).days + 1 + (date(2026, 4, 30) - date(2026, 2, 20)).days + 1
    assert [s.drug for s in o.stops] == ["tofacitinib"]  # the first stop was followed by a restart: not a discontinuation


def test_baseline_age_labs_and_conditions():
    o = one(lab("1742-6", D1, 95, high=40), lab("1742-6", "2025-11-01", 300, high=40),  # too early for the baseline
            cond("M33.10", ICD, onsetDateTime="2025-06-01"), cond("J84.9", ICD, onsetDateTime="2025-07-01",
                                                                   abatementDateTime="2025-12-01"),
            pat=patient(birth="1980-01-06"))
    b = o.baseline
    assert b is not None and b.age == 45 and b.labs["alt"].grade == 1 and "ast" not in b.labs
    assert b.conditions == ("dermatomyositis",)  # the ILD abated before D1
    assert one(pat=patient(birth="1980")).baseline.age is None  # a year only: 45 or 46 at D1


def test_a_condition_known_only_by_its_words_is_named_by_the_ctcae_term_they_contain():
    local = "http://zj2h.example.org/fhir/CodeSystem/his-diagnosis"
    words = {"resourceType": "Condition", "id": "nod", "code": {"coding": [{"system": local, "code": "X-001"}],
                                                                 "text": "New-onset diabetes on tacrolimus"},
             "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2026-03-01"}
    fn = dict(words, id="fn", code={"text": "Febrile neutropenia"})
    by = {f.term: f for f in one(words, fn).findings}
    assert by["New-onset diabetes on tacrolimus"].table_term == "Hyperglycemia"
    assert by["Febrile neutropenia"].table_term == "Febrile neutropenia"  # the longest term it contains, not 'neutropenia'
    # an investigator's "Febrile neutropenia" is not the neutrophil-count episode fhir3t found
    labs = [lab("751-8", "2026-02-02", 0.9, unit="10*9/L", low=1.8), lab("751-8", "2026-02-16", 2.2, unit="10*9/L", low=1.8)]
    got = one(*labs, investigator_ae("2026-02-02", text="Febrile neutropenia")).findings
    assert sorted((f.source, f.table_term) for f in got) == [("fhir3t", "Neutrophil count decreased"),
                                                             ("investigator", "Febrile neutropenia")]
