"""Clinical grades, CTCAE terms, subject numbers, drug stops, and AdverseEvents an investigator recorded."""
from __future__ import annotations

import dataclasses
from datetime import date

from factory import CM, ICD, RX, SCT, cc, cond, med
from fhir3t.canonical import EXT_CTCAE_GRADE, ID_ADVERSE_EVENT
from fhir3t.errors import Problems
from safety_helpers import D1, STUDY, drug, enrolled, lab, one, safety_definition

MDR = "http://terminology.hl7.org/CodeSystem/mdr"
CAUSALITY = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"


def investigator_ae(day: str, *, code: str | None = None, system: str = MDR, text: str | None = None,
                    causality: dict[str, str] | None = None, pid: str = "p1", **extra) -> dict:
    """An AdverseEvent as an investigator records it: suspects as contained Medications, assessed by a Practitioner."""
    ae: dict = {"resourceType": "AdverseEvent", "id": f"inv-{day}-{code or text}", "actuality": "actual",
                "subject": {"reference": f"Patient/{pid}"}, "date": day, "event": {}}
    if code:
        ae["event"]["coding"] = [{"system": system, "code": code}]
    if text:
        ae["event"]["text"] = text
    rx = {"tofacitinib": "1357536", "tacrolimus": "42316", "thalidomide": "10432"}
    contained, suspects = [], []
    for name, assessment in (causality or {}).items():
        contained.append({"resourceType": "Medication", "id": name, "code": cc(rx[name], RX)})
        suspects.append({"instance": {"reference": f"#{name}"},
                         "causality": [{"assessment": cc(assessment, CAUSALITY),
                                        "author": {"reference": "Practitioner/dr-li"}}]})
    if contained:
        ae["contained"], ae["suspectEntity"] = contained, suspects
    ae.update(extra)
    return ae


# ---- grades and terms of clinical AEs ------------------------------------------------------
def test_condition_grade_from_extension_then_severity_else_ungraded():
    ext = cond("K59.0", ICD, onsetDateTime="2026-02-01", extension=[{"url": EXT_CTCAE_GRADE, "valueInteger": 4}])
    sev = cond("R21", ICD, onsetDateTime="2026-02-02", severity=cc("6736007", SCT, "Moderate"))
    bare = cond("J11.1", CM, onsetDateTime="2026-02-03")
    odd = cond("R25.1", ICD, onsetDateTime="2026-02-04", extension=[{"url": EXT_CTCAE_GRADE, "valueInteger": 9}])
    by = {f.term: f for f in one(ext, sev, bare, odd).findings}
    assert (by["K59.0"].grade, by["K59.0"].grade_source, by["K59.0"].seriousness) == (
        4, "CTCAE grade extension", "SeriousIsLifeThreatening")
    assert (by["R21"].grade, by["R21"].severity) == (2, "moderate") and "severity" in by["R21"].grade_source
    assert by["J11.1"].grade is None and by["J11.1"].grade_source is None
    assert by["R25.1"].grade is None  # a grade outside 1..5 is no grade


def test_ctcae_term_and_meddra_code_on_the_event():
    o = one(cond("K59.00", CM, onsetDateTime="2026-02-01"), cond("L40.0", CM, onsetDateTime="2026-02-02"),
            lab("1742-6", "2026-02-01", 130, high=40))
    by = {f.kind + f.term: f for f in o.findings}
    constipation = by["conditionK59.00"]
    assert constipation.ctcae is not None and constipation.table_term == "Constipation"
    assert constipation.event["coding"][0] == {"system": MDR, "code": "10010774", "display": "Constipation"}
    assert {"system": CM, "code": "K59.00"} in constipation.event["coding"]  # the condition's own code stays
    psoriasis = by["conditionL40.0"]
    assert psoriasis.ctcae is None and psoriasis.table_term == "L40.0"  # not mapped: counted under its own term
    alt = by["labAlanine aminotransferase increased"]
    assert alt.event["coding"] == [{"system": MDR, "code": "10001551", "display": "Alanine aminotransferase increased"}]
    assert alt.to_dict()["ctcae"]["code"] == "10001551" and alt.grade_source.endswith("lab grading")


def test_subject_number_is_the_sites_identifier_not_the_fhir_id():
    rs = enrolled()
    rs["identifier"] = [{"system": "https://fhir3t.github.io/fhir/NamingSystem/research-subject", "value": "abc"},
                        {"system": "http://hospital.example.org/trial-subject", "value": "3T-017"}]
    assert one(rs).subject.number == "3T-017"
    assert one(enrolled()).subject.number is None


def test_related_causality_comes_from_the_study_config():
    shared = safety_definition()
    strict = dataclasses.replace(shared, config=dataclasses.replace(shared.config, related=frozenset({"Certain"})))
    [f] = one(lab("1742-6", "2026-02-01", 130, high=40), definition=strict).findings
    assert {s.causality for s in f.suspects} == {"Possible"} and not f.treatment_related
    [f] = one(lab("1742-6", "2026-02-01", 130, high=40)).findings
    assert f.treatment_related


# ---- discontinuations ----------------------------------------------------------------------
def test_drug_stopped_for_an_adverse_reaction_after_d1_links_the_ongoing_related_ae():
    stopped = med("1357536", status="stopped", start=D1, end="2026-02-20", reason="281647001")
    other = med("42316", status="stopped", start=D1, end="2026-02-20", reason="266721009")  # not an AE reason
    before = med("10432", status="stopped", start="2025-06-01", end="2026-01-01", reason="281647001")
    o = one(stopped, other, before, lab("731-0", "2026-02-01", 0.7, unit="10*9/L", low=1.1),
            lab("731-0", "2026-03-01", 1.5, unit="10*9/L", low=1.1))
    [stop] = o.stops
    lymph = next(f for f in o.findings if f.term == "Lymphocyte count decreased")
    assert (stop.drug, stop.day, stop.reason, stop.aes) == ("tofacitinib", date(2026, 2, 20), "Adverse reaction", (lymph.id,))


def test_stop_without_a_day_is_listed_and_said():
    problems = Problems()
    o = one(med("1357536", status="stopped", reason="281647001"), problems=problems)
    assert [s.day for s in o.stops] == [None]
    assert any("without a stop day" in p.message for p in problems)


# ---- investigator-recorded AdverseEvents ---------------------------------------------------
def test_investigator_assessment_overrides_the_inferred_causality_of_the_same_ae():
    flu = cond("J11.1", CM, onsetDateTime="2026-03-01")
    ae = investigator_ae("2026-03-01", code="J11.1", system=CM, causality={"tofacitinib": "Probably-Likely"})
    plain = one(flu, drug("tofacitinib")).findings[0]
    assert not plain.treatment_related
    o = one(flu, drug("tofacitinib"), ae)
    [f] = o.findings
    assert f.source == "both" and f.recorded == (f"AdverseEvent/{ae['id']}",) and f.treatment_related
    s = {x.drug: x for x in f.suspects}
    assert (s["tofacitinib"].causality, s["tofacitinib"].assessor) == ("Probably-Likely", "investigator")
    assert s["tofacitinib"].author == {"reference": "Practitioner/dr-li"}
    assert (s["tacrolimus"].causality, s["tacrolimus"].assessor) == ("Unassessable-Unclassifiable", "fhir3t")
    assert f.id == plain.id  # still fhir3t's AE (same stable id), now with the investigator's word


def test_investigator_ae_fhir3t_did_not_find_is_counted_as_its_own():
    ae = investigator_ae("2026-03-03", code="10028813", text="Nausea",
                         causality={"thalidomide": "Possible"}, severity=cc("mild", "http://terminology.hl7.org/CodeSystem/adverse-event-severity"),
                         seriousness=cc("Non-serious", "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"),
                         outcome=cc("resolved", "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"))
    [f] = one(ae).findings
    assert (f.kind, f.source, f.term, f.grade, f.outcome, f.seriousness) == (
        "recorded", "investigator", "Nausea", 1, "resolved", "Non-serious")
    assert f.related_to("thalidomide") and not f.related_to("tofacitinib")
    assert {s.drug: s.assessor for s in f.suspects}["tofacitinib"] == "not-assessed"
    assert f.id == ae["id"] and f.to_dict()["source"] == "investigator"


def test_recorded_aes_that_do_not_count():
    problems = Problems()
    pre = investigator_ae("2026-01-02", text="Rash")  # before D1 (2026-01-05)
    other = investigator_ae("2026-02-01", text="Headache",
                            study=[{"identifier": {"system": "http://clinicaltrials.gov", "value": "NCT00000001"}}])
    potential = investigator_ae("2026-02-01", text="Fall", actuality="potential")
    undated = investigator_ae("2026-02-01", text="Cough")
    del undated["date"]
    ours = investigator_ae("2026-02-02", text="Fatigue", study=[STUDY])
    o = one(pre, other, potential, undated, ours, problems=problems)
    assert [f.term for f in o.findings] == ["Fatigue"]
    text = " ".join(p.message for p in problems)
    assert "not after D1" in text and "no date" in text


def test_fhir3t_ae_read_back_keeps_an_authored_assessment_only():
    alt = lab("1742-6", "2026-02-01", 130, high=40)
    [f] = one(alt, drug("tofacitinib")).findings
    back = investigator_ae("2026-02-01", code="10001551", causality={"tofacitinib": "Unlikely", "tacrolimus": "Certain"})
    back["id"] = f.id
    back["identifier"] = {"system": ID_ADVERSE_EVENT, "value": f.id}
    del back["suspectEntity"][1]["causality"][0]["author"]  # an unauthored value is fhir3t's own, not a reassessment
    [g] = one(alt, drug("tofacitinib"), back).findings
    s = {x.drug: (x.causality, x.assessor) for x in g.suspects}
    assert s["tofacitinib"] == ("Unlikely", "investigator") and s["tacrolimus"] == ("Possible", "fhir3t")
    assert g.source == "fhir3t" and g.id == f.id


def test_investigator_aes_are_not_emitted_as_fhir3t_copies():
    from fhir3t.emit.adverse_event import safety_bundle
    from fhir3t.messages import render

    flu = cond("J11.1", CM, onsetDateTime="2026-03-01")
    o = one(flu, investigator_ae("2026-03-01", code="J11.1", system=CM, causality={"tofacitinib": "Possible"}),
            investigator_ae("2026-03-05", text="Nausea"))
    study = {"resourceType": "ResearchStudy", "id": "s", "status": "active",
             "identifier": [{"system": "http://clinicaltrials.gov", "value": "NCT06438679"}]}
    bundle, notes = safety_bundle(list(o.findings), study, "d")
    assert not any(e["resource"]["resourceType"] == "AdverseEvent" for e in bundle["entry"])
    assert any("recorded by an investigator" in render(n) for n in notes)  # a note is a message: its English
