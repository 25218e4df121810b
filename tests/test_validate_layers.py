"""Each validation layer: a failing example with the exact location and code, and a passing one."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fhir3t import canonical as C
from fhir3t.validate import Issue, Options, validate_resource

DATA = Path(__file__).parent / "data" / "validate"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.is_error]


def find(issues: list[Issue], expression: str, code: str) -> Issue:
    hits = [i for i in issues if i.expression == expression and i.code == code]
    assert hits, f"no {code} issue at {expression}; got {[(i.expression, i.code) for i in issues]}"
    return hits[0]


OK_OBS = {
    "resourceType": "Observation", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 35, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"},
}


# --- layer 1: structure ----------------------------------------------------------------------

def test_structure_passing() -> None:
    assert validate_resource(OK_OBS) == []


def test_structure_errors_are_located_not_tracebacks() -> None:
    obs = copy.deepcopy(OK_OBS)
    obs["code"]["coding"][0]["system"] = 42
    obs["effectiveDateTime"] = "2020-13-45"
    obs["foo"] = 1
    del obs["status"]
    issues = validate_resource(obs)
    find(issues, "Observation.code.coding[0].system", "structure")
    find(issues, "Observation.effectiveDateTime", "value")
    assert "unknown element 'foo'" in find(issues, "Observation.foo", "structure").diagnostics
    find(issues, "Observation.status", "required")
    assert all(i.severity == "error" for i in issues)


@pytest.mark.parametrize("obj, needle", [
    ({"resourceType": "Patinet"}, "unknown resourceType 'Patinet'"),
    ({"resourceType": "Citation"}, "unknown resourceType 'Citation'"),  # R4B-only, not R4
    ({"name": "x"}, "no resourceType"),
    ([1, 2], "expected a JSON object"),
])
def test_not_a_resource(obj: object, needle: str) -> None:
    issues = validate_resource(obj)
    assert len(issues) == 1 and issues[0].is_error and needle in issues[0].diagnostics


def test_r4_only_types_are_checked_by_the_r4_definitions() -> None:
    """MedicinalProduct exists in R4 but not in R4B: it is walked like any other type now."""
    assert validate_resource({"resourceType": "MedicinalProduct", "id": "x", "name": [{"productName": "a"}]}) == []
    (i,) = validate_resource({"resourceType": "MedicinalProduct", "id": "x"})
    assert (i.code, i.expression) == ("required", "MedicinalProduct.name")


def test_bundle_entries_are_checked_separately() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Observation", "code": {"text": "x"}}},
        {"fullUrl": "urn:uuid:b", "resource": {"resourceType": "Nope"}},
        {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Patient", "birthDate": "yesterday"}},
    ]}
    issues = errors(validate_resource(bundle))
    find(issues, "Bundle.entry[0].resource.status", "required")
    find(issues, "Bundle.entry[1].resource", "structure")
    find(issues, "Bundle.entry[2].resource.birthDate", "value")


def test_unknown_contained_type_does_not_crash() -> None:
    pat = {"resourceType": "Patient", "contained": [{"resourceType": "Nope", "id": "n"}],
           "generalPractitioner": [{"reference": "#n"}]}
    find(validate_resource(pat), "Patient.contained[0]", "structure")


# --- layer 2: bindings -------------------------------------------------------------------------

@pytest.mark.parametrize("resource, path", [
    ({"resourceType": "Patient", "gender": "M"}, "Patient.gender"),
    ({"resourceType": "Observation", "status": "done", "code": {"text": "x"}}, "Observation.status"),
    ({"resourceType": "ResearchSubject", "status": "enrolled", "study": {"reference": "ResearchStudy/s"},
      "individual": {"reference": "Patient/p"}}, "ResearchSubject.status"),
    ({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "FETCH", "url": "Patient"}}]},
     "Bundle.entry[0].request.method"),
    ({"resourceType": "Bundle", "type": "set"}, "Bundle.type"),
    ({"resourceType": "AdverseEvent", "actuality": "likely", "subject": {"reference": "Patient/p"}},
     "AdverseEvent.actuality"),
])
def test_code_binding_failing(resource: dict, path: str) -> None:
    find(validate_resource(resource), path, "code-invalid")


def test_codeable_concept_bindings() -> None:
    cond = {"resourceType": "Condition", "subject": {"reference": "Patient/p"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "acitve"}]},
            "verificationStatus": {"text": "confirmed"}}
    issues = validate_resource(cond)
    find(issues, "Condition.clinicalStatus.coding[0].code", "code-invalid")
    find(issues, "Condition.verificationStatus", "code-invalid")
    cond["clinicalStatus"]["coding"][0]["code"] = "active"
    cond["verificationStatus"] = {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]}
    assert validate_resource(cond) == []


def test_adverse_event_severity_and_outcome_bindings() -> None:
    ae = load("adverse-event-ok.json")
    assert errors(validate_resource(ae)) == []
    ae["severity"]["coding"][0]["code"] = "grave"
    ae["outcome"]["coding"][0]["system"] = "http://snomed.info/sct"
    issues = validate_resource(ae)
    find(issues, "AdverseEvent.severity.coding[0].code", "code-invalid")
    find(issues, "AdverseEvent.outcome", "code-invalid")


def test_binding_tables_are_data() -> None:
    table = json.loads((Path(__file__).resolve().parents[1] / "profiles" / "r4" / "valuesets.json").read_text())
    rs = table["http://hl7.org/fhir/ValueSet/research-subject-status"]["http://hl7.org/fhir/research-subject-status"]
    assert "on-study-intervention" in rs and "enrolled" not in rs


# --- layer 3: bundle integrity -------------------------------------------------------------------

def test_transaction_passing() -> None:
    issues = validate_resource(load("transaction-ok.json"))
    assert errors(issues) == []
    # relative references to server resources: one information issue, not an error each
    assert [(i.severity, i.code) for i in issues] == [("information", "not-found")]


def test_transaction_failing() -> None:
    issues = validate_resource(load("transaction-bad.json"))
    assert "bdl-7" in find(issues, "Bundle.entry[1].fullUrl", "invariant").diagnostics
    unresolved = find(issues, "Bundle.entry[2].resource.target[0].reference", "not-found")
    assert unresolved.severity == "error" and "urn:uuid:" in unresolved.diagnostics
    assert "bdl-3" in find(issues, "Bundle.entry[3]", "invariant").diagnostics
    find(issues, "Bundle.entry[0].request.ifNoneExist", "invalid")
    find(issues, "Bundle.entry[4].request.url", "invalid")
    find(issues, "Bundle.entry[5].request.url", "value")
    find(issues, "Bundle.entry[5].resource", "structure")
    find(issues, "Bundle.entry[1].resource.status", "code-invalid")
    find(issues, "Bundle.entry[4].resource.birthDate", "value")


def test_references_resolve_by_fullurl_and_type_id() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "http://ex.org/fhir/Patient/p1", "resource": {"resourceType": "Patient", "id": "p1"}},
        {"fullUrl": "urn:uuid:0b6b6f4e-5d7a-4d7e-9f5a-1c2b3d4e5f60", "resource": {**OK_OBS, "performer": [{"reference": "http://other.org/Practitioner/9"}]}},
        {"fullUrl": "http://ex.org/fhir/Observation/o2",
         "resource": {**OK_OBS, "id": "o2", "subject": {"reference": "Patient/p1"}}},
    ]}
    (ext,) = validate_resource(bundle)  # the performer on another server: outside the Bundle
    assert (ext.severity, ext.code) == ("information", "not-found") and "1 reference(s)" in ext.diagnostics
    bundle["entry"][2]["resource"]["subject"] = {"reference": "Patient/p2"}
    (w,) = validate_resource(bundle)
    assert (w.severity, w.code, w.expression) == ("information", "not-found", "Bundle.entry[1].resource.performer[0].reference")
    assert "2 reference(s) to 2 resource(s)" in w.diagnostics
    strict = validate_resource(bundle, Options(strict_refs=True))
    assert {i.expression for i in strict if i.is_error} == {"Bundle.entry[1].resource.performer[0].reference",
                                                           "Bundle.entry[2].resource.subject.reference"}


def test_put_url_must_match_resource() -> None:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "id": "a"}, "request": {"method": "PUT", "url": "Patient/b"}},
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Observation"}},
    ]}
    issues = validate_resource(bundle)
    find(issues, "Bundle.entry[0].resource.id", "value")
    find(issues, "Bundle.entry[1].request.url", "value")


def test_searchset_needs_no_request() -> None:
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [
        {"fullUrl": "http://ex.org/Patient/1", "resource": {"resourceType": "Patient", "id": "1"},
         "search": {"mode": "match"}}]}
    assert validate_resource(bundle) == []


# --- layer 4: invariants -------------------------------------------------------------------------

def test_obs6_and_obs7() -> None:
    obs = {**OK_OBS, "dataAbsentReason": {"text": "not done"}}
    assert "obs-6" in find(validate_resource(obs), "Observation", "invariant").diagnostics
    obs = {**OK_OBS, "component": [{"code": OK_OBS["code"], "valueQuantity": {"value": 1}}]}
    assert "obs-7" in find(validate_resource(obs), "Observation", "invariant").diagnostics
    obs = {k: v for k, v in OK_OBS.items() if k != "valueQuantity"}
    assert validate_resource({**obs, "dataAbsentReason": {"text": "not done"}}) == []


def test_bdl_invariants() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "total": 2, "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "search": {"mode": "match"},
         "response": {"status": "200"}},
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}}]}
    keys = {i.diagnostics[:5] for i in validate_resource(bundle) if i.code == "invariant"}
    assert {"bdl-1", "bdl-2", "bdl-4", "bdl-7"} <= keys
    resp = {"resourceType": "Bundle", "type": "transaction-response", "entry": [{"fullUrl": "urn:uuid:2"}]}
    assert "bdl-4" in find(validate_resource(resp), "Bundle.entry[0]", "invariant").diagnostics


def test_ref1_dom3_contained() -> None:
    issues = validate_resource(load("contained-bad.json"))
    assert "ref-1" in find(issues, "MedicationStatement.medicationReference.reference", "invariant").diagnostics
    assert "dom-3" in find(issues, "MedicationStatement.contained[1]", "invariant").diagnostics
    fixed = load("contained-bad.json")
    fixed["medicationReference"]["reference"] = "#med1"
    fixed["contained"].pop()
    assert validate_resource(fixed) == []


def test_ele1_and_ext1() -> None:
    pat = {"resourceType": "Patient", "name": [{}], "telecom": [], "birthDate": None,
           "extension": [{"url": "http://ex.org/x"}],
           "address": [{"line": ["a", None], "_line": [None, {"extension": [{"url": "http://ex.org/y",
                                                                             "valueString": "z"}]}]}]}
    issues = validate_resource(pat)
    for where in ("Patient.name[0]", "Patient.telecom", "Patient.birthDate"):
        assert "ele-1" in find(issues, where, "invariant").diagnostics
    assert "ext-1" in find(issues, "Patient.extension[0]", "invariant").diagnostics
    # the paired null/extension in address.line is fine; its extension is only unknown (a warning)
    assert [(i.severity, i.code) for i in issues if i.expression and i.expression.startswith("Patient.address")] == \
        [("warning", "extension")]


# --- layer 5: fhir3t profiles -----------------------------------------------------------------------

def test_research_subject_profile() -> None:
    ok = load("transaction-ok.json")["entry"][1]["resource"]
    assert errors(validate_resource(ok)) == []
    issues = validate_resource(load("research-subject-bad.json"))
    find(issues, "ResearchSubject.identifier", "required")
    assert "'result' must occur 1..1" in find(issues, "ResearchSubject.extension[0].extension", "structure").diagnostics
    assert "'reason' must occur" in find(issues, "ResearchSubject.extension[1].extension", "required").diagnostics
    find(issues, "ResearchSubject.extension[1].extension[1].valueCode", "value")


def test_research_subject_needs_a_criterion_result() -> None:
    rs = copy.deepcopy(load("transaction-ok.json")["entry"][1]["resource"])
    rs["extension"] = [{"url": "http://ex.org/other", "valueString": "x"}]
    issues = errors(validate_resource(rs))
    assert any(C.EXT_CRITERION_RESULT in i.diagnostics for i in issues)
    rs["meta"]["profile"] = []  # without the profile claim only the base rules apply
    assert errors(validate_resource({**rs, "meta": {"source": "x"}})) == []


def test_adverse_event_profile() -> None:
    issues = validate_resource(load("adverse-event-bad.json"))
    find(issues, "AdverseEvent.suspectEntity", "required")
    find(issues, "AdverseEvent.identifier.system", "value")
    assert "out of range" in find(issues, "AdverseEvent.extension[0].valueInteger", "value").diagnostics


def test_study_and_provenance_profiles() -> None:
    tx = load("transaction-ok.json")
    study, prov = tx["entry"][0]["resource"], tx["entry"][2]["resource"]
    assert errors(validate_resource(study)) == [] and errors(validate_resource(prov)) == []
    study = {**study, "identifier": [{"system": "http://clinicaltrials.gov", "value": "NCT00000000"}]}
    find(validate_resource(study), "ResearchStudy.identifier", "required")
    prov = {**prov, "entity": [{"role": "derivation", "what": {"reference": "Patient/p1"}}], "target": []}
    issues = validate_resource(prov)
    find(issues, "Provenance.entity[0].role", "value")
    find(issues, "Provenance.target", "invariant")  # ele-1: empty array
    find(issues, "Provenance.target", "required")  # profile: at least one target


def test_structure_definitions_are_valid_fhir() -> None:
    root = Path(__file__).resolve().parents[1] / "profiles"
    for name, url in (("criterion-result", C.EXT_CRITERION_RESULT), ("ctcae-grade", C.EXT_CTCAE_GRADE)):
        sd = json.loads((root / f"StructureDefinition-{name}.json").read_text())
        assert sd["url"] == url and sd["type"] == "Extension" and sd["derivation"] == "constraint"
        assert validate_resource(sd) == []


def test_missing_link_id_is_an_error_on_every_item() -> None:
    """R4 Questionnaire.item.linkId is 1..1 whatever the type (issue 27: the display leniency went)."""
    from fhir3t.validate import validate_resource

    q = {"resourceType": "Questionnaire", "status": "active",
         "item": [{"type": "display", "text": "intro"}, {"type": "boolean", "text": "ok?"}]}
    issues = [i for i in validate_resource(q) if (i.expression or "").endswith("linkId")]
    by_path = {i.expression: i.severity for i in issues}
    assert by_path == {"Questionnaire.item[0].linkId": "error", "Questionnaire.item[1].linkId": "error"}


def test_malformed_references_are_errors() -> None:
    from fhir3t.validate import validate_resource

    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "Patient/p 01"}, "performer": [{"reference": "urn:uuid:not-a-uuid"}],
           "basedOn": [{"reference": "ServiceRequest/sr-1"}],
           "derivedFrom": [{"reference": "https://ehr.example.org/fhir/Observation/o1/_history/2"}]}
    bad = {i.expression for i in validate_resource(obs) if i.is_error and "malformed reference" in i.diagnostics}
    assert bad == {"Observation.subject.reference", "Observation.performer[0].reference"}
