"""Emitted AdverseEvents: valid against R4 + the fhir3t profile, stable ids, suspects, PUT requests."""
from __future__ import annotations

import copy
from datetime import UTC, datetime

from factory import ICD, cond, patient
from fhir3t.criteria.load import load_criteria
from fhir3t.emit.adverse_event import adverse_event, safety_bundle
from fhir3t.emit.screening import research_study
from fhir3t.validate import validate_resource
from safety_helpers import drug, lab, one, safety_engine

WHEN = datetime(2026, 7, 1, tzinfo=UTC)


def inputs() -> list[dict]:
    return [lab("1742-6", "2026-02-01", 130, high=40), lab("1742-6", "2026-02-15", 30, high=40),
            cond("B02.9", ICD, onsetDateTime="2026-03-10"), drug("tofacitinib"),
            drug("tacrolimus", rtype="MedicationRequest"), patient(deceasedDateTime="2026-05-01")]


def findings(resources: list[dict] | None = None):
    return list(one(*(resources or inputs())).findings)


def bundle_of(fs):
    eng = safety_engine()
    return safety_bundle(fs, research_study(load_criteria(eng.tx)), eng.config.digest, WHEN)[0]


def test_emitted_bundle_and_every_adverse_event_validate_without_errors():
    b = bundle_of(findings())
    errors = [str(i) for i in validate_resource(b) if i.is_error]
    assert errors == []
    aes = [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "AdverseEvent"]
    assert len(aes) == 3
    for ae in aes:
        assert [str(i) for i in validate_resource(ae) if i.is_error] == []


def test_puts_to_deterministic_ids_and_reruns_give_the_same_ids():
    same = inputs()
    b1, b2 = bundle_of(findings(copy.deepcopy(same))), bundle_of(findings(copy.deepcopy(same)))
    ids1 = [e["request"]["url"] for e in b1["entry"]]
    assert ids1 == [e["request"]["url"] for e in b2["entry"]]
    assert b1 == b2  # same input, same recorded time → byte-identical Bundle (Provenance id included)
    ae_entries = [e for e in b1["entry"] if e["resource"]["resourceType"] == "AdverseEvent"]
    assert all(e["request"]["method"] == "PUT" and e["request"]["url"] == f"AdverseEvent/{e['resource']['id']}"
               for e in ae_entries)
    assert all(e["resource"]["identifier"]["value"] == e["resource"]["id"] for e in ae_entries)
    study = b1["entry"][0]
    assert study["request"]["ifNoneExist"] == "identifier=http://clinicaltrials.gov|NCT06438679"


def test_adverse_event_content():
    lab_f, cond_f, death_f = findings()
    ae = adverse_event(lab_f, "ResearchStudy/x", "2026-07-01")
    assert ae["extension"] == [{"url": "https://fhir3t.github.io/fhir/StructureDefinition/ctcae-grade", "valueInteger": 2}]
    assert ae["severity"]["coding"][0]["code"] == "moderate" and ae["outcome"]["coding"][0]["code"] == "resolved"
    # the event is the CTCAE v5.0 term with its MedDRA code; the test's LOINC stays on the evidence Observations
    assert ae["event"] == {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/mdr", "code": "10001551",
                                       "display": "Alanine aminotransferase increased"}],
                           "text": "Alanine aminotransferase increased"}
    assert len(ae["subjectMedicalHistory"]) == 2 and ae["actuality"] == "actual" and ae["date"] == "2026-02-01"
    suspects = {s["instance"]["display"]: s for s in ae["suspectEntity"]}
    assert suspects["tofacitinib"]["instance"]["reference"].startswith("MedicationStatement/")
    # tacrolimus known only from a MedicationRequest (not allowed as suspectEntity.instance in R4): contained
    assert suspects["tacrolimus"]["instance"]["reference"] == "#med-tacrolimus"
    assert {c["id"] for c in ae["contained"]} == {"med-tacrolimus", "med-thalidomide"}
    assert all(s["causality"][0]["assessment"]["coding"][0]["code"] == "Possible" for s in ae["suspectEntity"])
    c = adverse_event(cond_f, "ResearchStudy/x", "2026-07-01")
    assert "extension" not in c and "severity" not in c and c["resultingCondition"][0]["reference"].startswith("Condition/")
    d = adverse_event(death_f, "ResearchStudy/x", "2026-07-01")
    assert d["seriousness"]["coding"][0]["code"] == "SeriousResultsInDeath" and d["outcome"]["coding"][0]["code"] == "fatal"


def test_ids_change_with_the_episode_start_but_not_with_its_later_course():
    a = one(lab("1742-6", "2026-02-01", 130, high=40)).findings[0]
    b = one(lab("1742-6", "2026-02-01", 130, high=40), lab("1742-6", "2026-02-15", 300, high=40)).findings[0]
    c = one(lab("1742-6", "2026-02-02", 130, high=40)).findings[0]
    assert a.id == b.id != c.id


def test_profile_rejects_a_graded_ae_without_severity():
    ae = adverse_event(findings()[0], "ResearchStudy/x", "2026-07-01")
    bad = copy.deepcopy(ae)
    del bad["severity"]
    assert any("severity" in i.diagnostics for i in validate_resource(bad) if i.is_error)
