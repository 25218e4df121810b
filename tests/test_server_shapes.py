"""Data as FHIR servers and interface engines hand it over: Bundles inside Bundles, resources an operation's
Parameters carry, transactions and batch answers, references to other servers. What fhir3t cannot read
keeps the criterion unknown (naming the record), never decides it towards eligibility.

Each case starts from an eligible patient (samples/screening/01-eligible-classic.json) and changes one
thing the way a server or an interface engine writes it.
"""
from __future__ import annotations

import copy
import json

import orjson
import pytest

from conftest import SAMPLES, screen_bundle
from fhir3t.dates import parse_day
from fhir3t.errors import Problems
from fhir3t.pipeline import Run, screen_records
from fhir3t.sources.grouping import GroupingSource

AS_OF = "2026-11-16"
BASE = json.loads((SAMPLES / "screening" / "01-eligible-classic.json").read_text(encoding="utf-8"))
SCT = "http://snomed.info/sct"
POSITIVE = {"coding": [{"system": SCT, "code": "10828004", "display": "Positive"}]}


def _patient() -> dict:
    return copy.deepcopy(BASE)


def _res(bundle: dict, rid: str) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"].get("id") == rid)


def _hiv_positive(rid: str = "x-hiv") -> dict:
    """A later HIV screen of the base patient, positive: read, it makes the patient ineligible."""
    r = copy.deepcopy(_res(BASE, "p01-hiv"))
    r.update(id=rid, effectiveDateTime="2026-11-10", valueCodeableConcept=POSITIVE)
    r.pop("issued", None)
    r.pop("encounter", None)
    return r


def _screen(definition, bundle: dict, problems: Problems | None = None):
    results = screen_bundle(definition, bundle, AS_OF, problems=problems)
    assert len(results) == 1
    return results[0]


def test_the_base_patient_is_eligible_and_a_later_positive_hiv_screen_read_makes_it_ineligible(definition):
    assert _screen(definition, _patient()).status == "eligible"
    b = _patient()
    b["entry"].append({"resource": _hiv_positive()})
    assert _screen(definition, b).status == "ineligible"


# ---------------------------------------------------------------- Bundles inside Bundles
def _searchset(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}


@pytest.mark.parametrize("wrap", ["collection", "batch-response", "twice"])
def test_a_bundle_inside_the_bundle_is_read_as_part_of_it(definition, wrap):
    """A batch of searches answers with a batch-response whose entries are searchsets; engines collect
    such answers into one Bundle. What the inner Bundles hold is the patient's record."""
    inner = _searchset(_hiv_positive())
    if wrap == "batch-response":
        inner = {"resourceType": "Bundle", "type": "batch-response",
                 "entry": [{"resource": inner, "response": {"status": "200 OK"}}]}
    elif wrap == "twice":
        inner = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": _searchset(inner)}]}
    b = _patient()
    b["entry"].append({"resource": inner})
    out = _screen(definition, b)
    assert out.status == "ineligible"
    assert out.by_id("E9-hiv").result == "met" and "Observation/x-hiv" in out.by_id("E9-hiv").evidence


def test_a_bundle_of_several_patients_answers_inside_a_batch_response_files_each_under_its_patient(definition):
    b = _patient()
    other = copy.deepcopy(_res(BASE, "p01"))
    other["id"] = "p02"
    b["entry"].append({"resource": {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"resource": _searchset(other), "response": {"status": "200 OK"}},
        {"resource": _searchset(_hiv_positive()), "response": {"status": "200 OK"}}]}})
    results = {r.patient: r for r in screen_bundle(definition, b, AS_OF)}
    assert results["Patient/p01"].status == "ineligible"
    assert results["Patient/p02"].by_id("E9-hiv").result != "met"


def test_a_history_bundle_inside_the_bundle_reads_its_newest_version(definition):
    old = _hiv_positive("hx")
    old.update(meta={"versionId": "1"}, valueCodeableConcept=_res(BASE, "p01-hiv")["valueCodeableConcept"])
    new = _hiv_positive("hx")
    new["meta"] = {"versionId": "2"}
    b = _patient()
    b["entry"].append({"resource": {"resourceType": "Bundle", "type": "history",
                                    "entry": [{"resource": new}, {"resource": old}]}})
    out = _screen(definition, b)
    assert out.by_id("E9-hiv").result == "met" and out.status == "ineligible"


def test_bundles_nested_past_the_limit_keep_what_they_could_decide_unknown(definition):
    inner = _searchset(_hiv_positive())
    for _ in range(12):
        inner = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]}
    b = _patient()
    b["entry"].append({"resource": inner})
    problems = Problems()
    out = _screen(definition, b, problems)
    assert out.status == "candidate"
    c = out.by_id("E9-hiv")
    assert c.result == "unknown" and "nested too deep" in c.reason
    assert any("nested more than" in str(p) for p in problems.items)


def test_a_bundle_written_as_one_ndjson_line_with_a_searchset_inside_is_read(definition, tmp_path):
    b = _patient()
    b["entry"].append({"resource": _searchset(_hiv_positive())})
    (tmp_path / "x.ndjson").write_bytes(orjson.dumps(b) + b"\n")
    run = Run.start(definition, as_of=parse_day(AS_OF))
    src = GroupingSource([tmp_path], run.problems, run.filter, store="memory")
    out = list(screen_records(definition, run, src, src.shared))
    assert [r.status for r in out] == ["ineligible"]


# ---------------------------------------------------------------- resources an operation's Parameters carry
def _parameters(resource: dict, nested: str = "") -> dict:
    if nested == "part":
        return {"resourceType": "Parameters", "parameter": [{"name": "submission", "part": [
            {"name": "resource", "resource": resource}]}]}
    if nested == "bundle":
        return {"resourceType": "Parameters", "parameter": [{"name": "return", "resource": _searchset(resource)}]}
    return {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": resource}]}


@pytest.mark.parametrize("nested", ["", "part", "bundle"])
def test_a_record_an_operations_parameters_carry_keeps_its_criterion_unknown(definition, nested):
    """`$submit-data`, a message's payload, an engine's operation call: the resource in a Parameters is no
    record of its own, and fhir3t does not guess what the operation does with it. It is neither read as the
    patient's record nor ignored: the criteria it could decide stay unknown, naming it."""
    b = _patient()
    b["entry"].append({"resource": _parameters(_hiv_positive(), nested)})
    problems = Problems()
    out = _screen(definition, b, problems)
    c = out.by_id("E9-hiv")
    assert c.result == "unknown" and "Parameters" in c.reason
    assert out.status == "candidate"
    assert any("held inside an operation's Parameters" in str(p) for p in problems.items)


def test_a_parameters_resource_as_its_own_file_or_line_keeps_the_criterion_unknown(definition, tmp_path):
    (tmp_path / "p.json").write_bytes(orjson.dumps(_patient()))
    (tmp_path / "op.ndjson").write_bytes(orjson.dumps(_parameters(_hiv_positive())) + b"\n")
    run = Run.start(definition, as_of=parse_day(AS_OF))
    src = GroupingSource([tmp_path], run.problems, run.filter, store="memory")
    out = list(screen_records(definition, run, src, src.shared))
    assert [r.status for r in out] == ["candidate"]
    assert out[0].by_id("E9-hiv").result == "unknown"


def test_a_parameters_resource_carrying_what_no_rule_reads_changes_nothing(definition):
    b = _patient()
    other = copy.deepcopy(_res(BASE, "p01-omeprazole"))
    other["id"] = "om2"
    b["entry"].append({"resource": _parameters(other)})
    assert _screen(definition, b).status == "eligible"


# ---------------------------------------------------------------- what a transaction or a server's answer says is missing
def _as(bundle: dict, kind: str) -> dict:
    bundle["type"] = kind
    for e in bundle["entry"]:
        r = e["resource"]
        if kind in ("transaction", "batch"):
            e["request"] = {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}
        elif kind.endswith("-response"):
            e["response"] = {"status": "200 OK"}
        else:
            e["search"] = {"mode": "match"}
    return bundle


FHIRPATH_PATCH = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
    {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Observation.valueCodeableConcept"},
    {"name": "value", "valueCodeableConcept": POSITIVE}]}]}


@pytest.mark.parametrize("entry,kind,says", [
    ({"resource": FHIRPATH_PATCH, "request": {"method": "PATCH", "url": "Observation/p01-hiv"}},
     "transaction", "by a PATCH"),
    ({"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": "W10="},
      "request": {"method": "PATCH", "url": "Observation?identifier=http://lis.example.org|A1"}},
     "batch", "by a PATCH"),
    ({"request": {"method": "DELETE", "url": "Observation?patient=p01&code=http://loinc.org|56888-1"}},
     "transaction", "conditional DELETE"),
    ({"response": {"status": "500 Internal Server Error", "outcome": {
        "resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}}},
     "batch-response", "failed request (HTTP 500)"),
    ({"response": {"status": "403 Forbidden"}}, "batch-response", "failed request (HTTP 403)"),
    ({"resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "warning", "code": "suppressed", "diagnostics": "results restricted by consent"}]},
      "search": {"mode": "outcome"}}, "searchset", "OperationOutcome suppressed"),
    ({"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "too-costly"}]},
      "search": {"mode": "outcome"}}, "searchset", "OperationOutcome too-costly"),
])
def test_an_entry_that_changes_or_leaves_out_records_in_a_way_fhir3t_does_not_apply_keeps_them_unknown(
        definition, entry, kind, says):
    """A PATCH or a conditional DELETE may turn the negative HIV screen positive or remove it; a failed search
    of a batch, or a searchset whose server says it suppressed or cut results, has left records out: the
    criteria they could decide stay unknown for the Bundle's patient, naming the entry."""
    b = _as(_patient(), kind)
    b["entry"].append(entry)
    problems = Problems()
    out = _screen(definition, b, problems)
    c = out.by_id("E9-hiv")
    assert c.result == "unknown" and says in c.reason, c.reason
    assert out.status == "candidate"
    assert any(p.where.endswith(f"#entry[{len(b['entry']) - 1}]") for p in problems.items)


@pytest.mark.parametrize("entry,kind", [
    ({"resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational", "diagnostics": "2 matches"}]},
      "search": {"mode": "outcome"}}, "searchset"),
    ({"request": {"method": "DELETE", "url": "Observation/p01-other"}}, "transaction"),
    ({"response": {"status": "201 Created", "location": "Observation/p01-new/_history/1"}}, "transaction-response"),
    ({"resource": FHIRPATH_PATCH, "request": {"method": "PATCH", "url": "Practitioner/dr-1"}}, "transaction"),
])
def test_an_answer_that_leaves_nothing_out_or_a_change_no_rule_reads_changes_nothing(definition, entry, kind):
    b = _as(_patient(), kind)
    b["entry"].append(entry)
    assert _screen(definition, b).status == "eligible"


def test_a_failed_search_inside_a_batch_response_of_searchsets_keeps_the_patients_criteria_unknown(definition):
    b = _patient()
    b["entry"].append({"resource": {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"resource": _searchset(), "response": {"status": "200 OK"}},
        {"response": {"status": "504 Gateway Timeout"}}]}})
    out = _screen(definition, b)
    assert out.status == "candidate" and "HTTP 504" in out.by_id("E6-malignancy").reason


# ---------------------------------------------------------------- absolute references to another server
OTHER = "https://other-hospital.example.org/fhir"


def test_a_result_about_a_patient_of_another_server_with_the_same_id_is_not_this_patients(definition):
    """The Bundle's Patient is http://ehr.example.org/fhir/Patient/p01; an anti-MDA5 result names
    https://other-hospital.example.org/fhir/Patient/p01, someone else on another server. It must not
    meet this patient's inclusion criterion; whose it is cannot be told, so the criterion is unknown."""
    b = _patient()
    _res(b, "p01-mda5")["subject"] = {"reference": f"{OTHER}/Patient/p01"}
    problems = Problems()
    out = _screen(definition, b, problems)
    c = out.by_id("I3-mda5")
    assert c.result == "unknown" and "another server" in c.reason
    assert out.status == "candidate"
    assert any("another server" in str(p) for p in problems.items)


@pytest.mark.parametrize("ref", ["https://ehr.example.org/fhir/Patient/p01", "http://EHR.example.org/fhir/Patient/p01",
                                 "http://ehr.example.org/fhir/Patient/p01/_history/3", "Patient/p01"])
def test_a_reference_to_the_patients_own_server_is_read(definition, ref):
    b = _patient()
    _res(b, "p01-mda5")["subject"] = {"reference": ref}
    assert _screen(definition, b).status == "eligible"


def test_an_absolute_reference_is_read_by_its_id_when_the_input_does_not_say_which_server_the_patient_is_on(definition):
    b = _patient()
    for e in b["entry"]:
        e.pop("fullUrl", None)
    _res(b, "p01-mda5")["subject"] = {"reference": f"{OTHER}/Patient/p01"}
    assert _screen(definition, b).status == "eligible"


def _recent_cyclosporine(b: dict, ref: str, full_url: str | None) -> None:
    """The cyclosporine record made current, its drug a Medication of the Bundle named by `ref`; the Bundle's
    Medication/m1 is omeprazole (at `full_url`)."""
    stmt = _res(b, "p01-cyclosporine")
    stmt.update(status="active", effectivePeriod={"start": "2026-10-01"}, medicationReference={"reference": ref})
    stmt.pop("contained")
    omeprazole = {"resourceType": "Medication", "id": "m1", "code": _res(b, "p01-omeprazole")["medicationCodeableConcept"]}
    b["entry"].append({"resource": omeprazole, **({"fullUrl": full_url} if full_url else {})})


def test_a_drug_named_on_another_server_is_not_the_medication_of_the_same_id_here(definition):
    b = _patient()
    _recent_cyclosporine(b, f"{OTHER}/Medication/m1", "http://ehr.example.org/fhir/Medication/m1")
    out = _screen(definition, b)
    c = out.by_id("E2-recent-immunomodulator")
    assert c.result == "unknown" and "does not resolve" in c.reason
    assert out.status == "candidate"


@pytest.mark.parametrize("ref,full_url", [
    ("Medication/m1", "http://ehr.example.org/fhir/Medication/m1"),
    ("https://ehr.example.org/fhir/Medication/m1", "http://ehr.example.org/fhir/Medication/m1"),
    (f"{OTHER}/Medication/m1", None),  # the Medication's server is not said: read by its id, as before
])
def test_a_drug_named_on_its_own_server_or_by_id_alone_is_read(definition, ref, full_url):
    b = _patient()
    _recent_cyclosporine(b, ref, full_url)
    out = _screen(definition, b)
    assert out.by_id("E2-recent-immunomodulator").result == "not-met" and out.status == "eligible"


def test_a_record_on_another_system_of_the_hospital_naming_its_own_servers_patient_is_read(definition):
    """A multi-system export: the PACS writes its report under its own base and names the patient there, by
    the id the hospital's systems share (samples/hospital). The entry's own fullUrl says which server it is on."""
    b = _patient()
    mda5 = next(e for e in b["entry"] if e["resource"]["id"] == "p01-mda5")
    mda5["fullUrl"] = f"{OTHER}/Observation/p01-mda5"
    mda5["resource"]["subject"] = {"reference": f"{OTHER}/Patient/p01"}
    assert _screen(definition, b).status == "eligible"


# ---------------------------------------------------------------- a primitive's data-absent-reason beside its value
DAR = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked"}]}


@pytest.mark.parametrize("rid,where,element,cid", [
    ("p01", None, "birthDate", "I1-age"),                   # a masked birth date written as a placeholder
    ("p01-dlco", "valueQuantity", "value", "I4-dlco"),      # the number of a Quantity
    ("p01-hiv", None, "status", "E9-hiv"),                  # the result's status
    ("p01-hiv", None, "effectiveDateTime", "E9-hiv"),       # its date (issued removed: the date is then unknown)
])
def test_a_value_written_beside_a_data_absent_reason_is_read_as_absent(definition, rid, where, element, cid):
    """R4's data-absent-reason on a primitive (`_birthDate`) says its value is missing: an interface engine that
    masks a birth date or fills a placeholder writes both. The value beside it is no value to decide on."""
    b = _patient()
    r = _res(b, rid)
    if element == "effectiveDateTime":
        r.pop("issued")
    target = r[where] if where else r
    target[f"_{element}"] = copy.deepcopy(DAR)
    out = _screen(definition, b)
    assert out.by_id(cid).result == "unknown", out.by_id(cid).reason
    assert out.status == "candidate"


def test_an_extension_on_a_primitive_that_is_no_data_absent_reason_changes_nothing(definition):
    b = _patient()
    _res(b, "p01")["_birthDate"] = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                                   "valueDateTime": "1990-04-12T08:00:00+08:00"}]}
    assert _screen(definition, b).status == "eligible"


# ---------------------------------------------------------------- contained resources no criterion reads through
def _hiv_diagnosis(rid: str) -> dict:
    d = copy.deepcopy(_res(BASE, "p01-dm"))
    d.update(id=rid, code={"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "B20",
                                       "display": "HIV disease"}], "text": "HIV disease"})
    d.pop("subject")  # a contained resource often leaves its patient to its container
    return d


def _container(kind: str) -> tuple[dict | None, str]:
    """(a new record of the patient containing an HIV diagnosis, or None when an existing one does, its ref)."""
    c = _hiv_diagnosis("c1")
    subject = {"reference": "Patient/p01"}
    if kind == "problem-list":
        return {"resourceType": "List", "id": "pl", "status": "current", "mode": "snapshot", "subject": subject,
                "contained": [c], "entry": [{"item": {"reference": "#c1"}}]}, "List/pl#c1"
    if kind == "document":
        return {"resourceType": "Composition", "id": "dc", "status": "final", "type": {"text": "Discharge summary"},
                "subject": subject, "date": "2026-11-05", "title": "Discharge summary", "author": [{"display": "ward"}],
                "contained": [c], "section": [{"title": "Problems", "entry": [{"reference": "#c1"}]}]}, "Composition/dc#c1"
    return None, "MedicationStatement/p01-omeprazole#c1"


@pytest.mark.parametrize("kind", ["problem-list", "document", "drug-reason"])
def test_a_diagnosis_contained_in_a_record_no_criterion_reads_it_through_keeps_its_criterion_unknown(definition, kind):
    """A problem List or a document Composition whose Conditions are contained, a drug record whose reason is a
    contained Condition: the HIV diagnosis was dropped with its container. It is kept as unread, by its code:
    the criteria it could decide (HIV, immunodeficiency) stay unknown, naming it; the others are untouched."""
    b = _patient()
    record, ref = _container(kind)
    if record is None:
        om = _res(b, "p01-omeprazole")
        om["contained"] = [_hiv_diagnosis("c1")]
        om["reasonReference"] = [{"reference": "#c1"}]
    else:
        b["entry"].append({"resource": record})
    out = _screen(definition, b)
    c = out.by_id("E9-hiv")
    assert c.result == "unknown" and ref in c.evidence and "contained" in c.reason, c.reason
    assert out.by_id("I2-dm").result == "met" and out.by_id("E6-malignancy").result == "not-met"
    assert out.status == "candidate"


def test_a_contained_resource_no_criterion_concerns_and_a_reports_contained_results_change_nothing(definition):
    b = _patient()
    om = _res(b, "p01-omeprazole")
    gerd = _hiv_diagnosis("c1")
    gerd["code"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "K21.9"}], "text": "GERD"}
    om["contained"] = [gerd]
    om["reasonReference"] = [{"reference": "#c1"}]
    assert _screen(definition, b).status == "eligible"
    b = _patient()  # a report whose result is contained: read as the report's result (the builder adopts it)
    hiv = _hiv_positive("c2")
    hiv.pop("subject")
    b["entry"].append({"resource": {"resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
                                    "code": {"text": "Infection screen"}, "subject": {"reference": "Patient/p01"},
                                    "effectiveDateTime": "2026-11-10", "contained": [hiv],
                                    "result": [{"reference": "#c2"}]}})
    assert _screen(definition, b).by_id("E9-hiv").result == "met"


def test_a_record_in_parameters_keeps_unknown_only_the_criteria_its_code_could_decide(definition):
    b = _patient()
    b["entry"].append({"resource": _parameters(_hiv_positive())})
    out = _screen(definition, b)
    assert out.by_id("E9-hiv").result == "unknown"
    assert out.by_id("I3-mda5").result == "met" and out.by_id("E7-hbv").result == "not-met"


def test_a_contained_diagnosis_is_kept_unknown_through_the_disk_store_and_two_processes(definition, tmp_path):
    import fhir3t

    b = _patient()
    record, _ = _container("problem-list")
    b["entry"].append({"resource": record})
    (tmp_path / "p.json").write_bytes(orjson.dumps(b))
    for jobs in (1, 2):
        (r,) = fhir3t.screen([tmp_path], as_of=AS_OF, jobs=jobs, store="disk")
        assert r.by_id("E9-hiv").result == "unknown" and r.by_id("I2-dm").result == "met", jobs


@pytest.mark.parametrize("native", ["off", "on"])
def test_a_problem_list_line_of_a_bulk_export_with_a_contained_diagnosis_keeps_it_unknown(definition, tmp_path, native):
    """A type no rule reads is skipped on its bytes in NDJSON (and natively): not when it contains resources."""
    import fhir3t
    from fhir3t.sources import native as native_pass

    if native == "on" and not native_pass.available():
        pytest.skip("the native extra is not installed")
    b = _patient()
    record, _ = _container("problem-list")
    (tmp_path / "Patient.ndjson").write_bytes(b"".join(orjson.dumps(e["resource"]) + b"\n" for e in b["entry"]))
    (tmp_path / "List.ndjson").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in (
        {"resourceType": "List", "id": "empty", "status": "current", "mode": "snapshot",
         "subject": {"reference": "Patient/p01"}}, record)))
    (r,) = fhir3t.screen([tmp_path], as_of=AS_OF, native=native)
    assert r.by_id("E9-hiv").result == "unknown" and "List/pl#c1" in r.by_id("E9-hiv").evidence


# ---------------------------------------------------------------- Reference.type
@pytest.mark.parametrize("kind", ["Group", "Device", "http://hl7.org/fhir/StructureDefinition/RelatedPerson"])
def test_a_reference_whose_type_names_another_resource_type_than_it_points_at_is_not_the_patients(definition, kind):
    """`{"reference": "Patient/p01", "type": "Group"}` contradicts itself (R4: the type SHALL match the
    reference's): whether the result is p01's or a group's cannot be told, so it does not meet I3."""
    b = _patient()
    _res(b, "p01-mda5")["subject"] = {"reference": "Patient/p01", "type": kind}
    out = _screen(definition, b)
    assert out.by_id("I3-mda5").result == "unknown" and out.status == "candidate"


@pytest.mark.parametrize("kind", ["Patient", "http://hl7.org/fhir/StructureDefinition/Patient"])
def test_a_reference_typed_patient_is_read(definition, kind):
    b = _patient()
    _res(b, "p01-mda5")["subject"] = {"reference": "Patient/p01", "type": kind}
    _res(b, "p01-hiv")["subject"] = {"identifier": {"system": "http://hospital.example.org/mrn", "value": "MRN-100001"},
                                     "type": kind}
    assert _screen(definition, b).status == "eligible"


# ---------------------------------------------------------------- elements of another FHIR version
@pytest.mark.parametrize("rid,element,value,cid", [
    # STU3: taken "n" says the drug was NOT taken; R4 has no such element (status not-taken instead)
    ("p01-cyclosporine", "taken", "n", "E2-recent-immunomodulator"),
    # R5: an Observation that instantiates a protocol; unknown to R4
    ("p01-hiv", "instantiatesCanonical", "http://lis.example.org/fhir/PlanDefinition/hiv-screen", "E9-hiv"),
    # STU3 Condition.assertedDate (R4: recordedDate)
    ("p01-dm", "assertedDate", "2026-08-20", "I2-dm"),
])
def test_a_record_carrying_an_element_r4_does_not_define_is_unreadable(definition, rid, element, value, cid):
    """Another FHIR version's element (or a misspelt one) may change what the record means, as a modifier would
    (STU3 MedicationStatement.taken = n, Immunization.notGiven, Consent.except): the record keeps the criteria
    that read it unknown, naming the element. (A cost: a harmless one, STU3's assertedDate, does the same.)"""
    b = _patient()
    r = _res(b, rid)
    if rid == "p01-cyclosporine":  # made current, so that read as taken it would exclude
        r.update(status="active", effectivePeriod={"start": "2026-10-01"})
    r[element] = value
    out = _screen(definition, b)
    c = out.by_id(cid)
    assert c.result == "unknown" and f"{r['resourceType']}.{element}" in c.reason, c.reason
    assert out.status == "candidate"


def test_stu3_json_comments_and_a_primitives_extensions_are_no_unknown_element(definition):
    b = _patient()
    r = _res(b, "p01-hiv")
    r["fhir_comments"] = ["exported by the LIS"]
    r["_status"] = {"extension": [{"url": "http://lis.example.org/fhir/StructureDefinition/verified-by",
                                   "valueString": "lab"}]}
    assert _screen(definition, b).status == "eligible"


# ---------------------------------------------------------------- one fullUrl for two Patients
def test_a_fullurl_two_patients_of_a_bundle_share_names_neither_of_them(definition):
    """An engine that reuses one urn:uuid for two Patients of a Bundle: a record naming that urn:uuid may be
    either's. It was filed under the last one read (who became eligible on the other's record); now each keeps
    what the records naming it could decide unknown."""
    urn = "urn:uuid:8f6a1c2e-0000-4000-8000-000000000001"
    b = _patient()
    other = copy.deepcopy(_res(b, "p01"))
    other.update(id="p02", identifier=[{"system": "http://hospital.example.org/mrn", "value": "MRN-100002"}])
    for e in b["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Patient":
            e["fullUrl"] = urn
        for f in ("subject", "patient"):
            if f in r:
                r[f] = {"reference": urn}
    b["entry"].append({"fullUrl": urn, "resource": other})
    results = {r.patient: r for r in screen_bundle(definition, b, AS_OF)}
    assert set(results) == {"Patient/p01", "Patient/p02"}
    for r in results.values():
        assert r.status == "candidate" and r.by_id("I3-mda5").result == "unknown"


def test_a_bundle_inside_the_bundle_whose_entries_cannot_be_read_keeps_what_it_could_decide_unknown(definition):
    b = _patient()
    b["entry"].append({"resource": {"resourceType": "Bundle", "type": "searchset", "entry": {"resource": _hiv_positive()}}})
    problems = Problems()
    out = _screen(definition, b, problems)
    assert out.status == "candidate" and "could not be read" in out.by_id("E6-malignancy").reason
    assert any("entry is not a list" in str(p) for p in problems.items)


# ---------------------------------------------------------------- FHIR content carried by a Binary
def _binary(content: dict | bytes, content_type: str = "application/fhir+json") -> dict:
    import base64

    raw = content if isinstance(content, bytes) else orjson.dumps(content)
    return {"resourceType": "Binary", "id": "payload", "contentType": content_type,
            "securityContext": {"reference": "Patient/p01"}, "data": base64.b64encode(raw).decode()}


@pytest.mark.parametrize("payload", ["resource", "bundle", "json+fhir"])
def test_fhir_content_carried_by_a_binary_keeps_what_it_could_decide_unknown(definition, payload):
    """An interface engine forwards a message as a Binary whose content is a FHIR Bundle or resource. What it
    carries is no record of its own, nor is it absent: its criteria stay unknown, naming it."""
    content = _hiv_positive() if payload != "bundle" else _searchset(_hiv_positive())
    b = _patient()
    b["entry"].append({"resource": _binary(content, "application/json+fhir; charset=utf-8" if payload == "json+fhir"
                                           else "application/fhir+json")})
    out = _screen(definition, b)
    c = out.by_id("E9-hiv")
    assert c.result == "unknown" and "Binary" in c.reason, c.reason
    assert out.by_id("I3-mda5").result == "met" and out.status == "candidate"


def test_a_binary_that_says_fhir_but_cannot_be_decoded_keeps_what_absence_decides_unknown(definition):
    b = _patient()
    b["entry"].append({"resource": _binary(b"\x00not json")})
    out = _screen(definition, b)
    assert out.status == "candidate" and "cannot be decoded" in out.by_id("E6-malignancy").reason


def test_a_binary_of_other_content_changes_nothing(definition):
    b = _patient()
    b["entry"].append({"resource": _binary(b"%PDF-1.7 ...", "application/pdf")})
    assert _screen(definition, b).status == "eligible"


@pytest.mark.parametrize("native", ["off", "on"])
def test_a_binary_line_of_a_bulk_export_carrying_fhir_content_is_read(definition, tmp_path, native):
    import fhir3t
    from fhir3t.sources import native as native_pass

    if native == "on" and not native_pass.available():
        pytest.skip("the native extra is not installed")
    b = _patient()
    (tmp_path / "Patient.ndjson").write_bytes(b"".join(orjson.dumps(e["resource"]) + b"\n" for e in b["entry"]))
    (tmp_path / "Binary.ndjson").write_bytes(orjson.dumps(_binary(_hiv_positive())) + b"\n")
    (r,) = fhir3t.screen([tmp_path], as_of=AS_OF, native=native)
    assert r.by_id("E9-hiv").result == "unknown"


# ---------------------------------------------------------------- one page of a search
def _pages(tmp_path, *, second: bool, self_link: bool = True) -> list:
    """p01's record as a search saved page by page: page 1 (the Patient and the labs) links to page 2 (the
    rest); with `second`, page 2 is saved too."""
    url = "https://ehr.example.org/fhir/Patient/p01/$everything?_getpages=a1b2&_getpagesoffset=12&_count=12"
    entries = [{"resource": e["resource"], "search": {"mode": "match"}} for e in _patient()["entry"]]
    first = {"resourceType": "Bundle", "type": "searchset", "entry": entries[:12],
             "link": [{"relation": "self", "url": "https://ehr.example.org/fhir/Patient/p01/$everything"},
                      {"relation": "next", "url": url}]}
    (tmp_path / "page1.json").write_bytes(orjson.dumps(first))
    if second:
        rest = {"resourceType": "Bundle", "type": "searchset", "entry": entries[12:],
                "link": [{"relation": "self", "url": url}] if self_link else []}
        (tmp_path / "page2.json").write_bytes(orjson.dumps(rest))
    return entries


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_search_page_whose_next_page_is_not_in_the_input_keeps_what_absence_decides_unknown(definition, tmp_path,
                                                                                             jobs):
    """A search result saved one page only: the diagnoses, drugs and allergies of the next pages are missing, so
    'no record found' cannot be said."""
    import fhir3t

    _pages(tmp_path, second=False)
    problems = Problems()
    (r,) = fhir3t.screen([tmp_path], as_of=AS_OF, jobs=jobs, problems=problems)
    assert r.status == "candidate" and "next page is not in the input" in r.by_id("E6-malignancy").reason
    assert any("next page" in str(p) for p in problems.items)


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_page_of_a_search_in_the_input_reads_it_whole(definition, tmp_path, jobs):
    import fhir3t

    _pages(tmp_path, second=True)
    (r,) = fhir3t.screen([tmp_path], as_of=AS_OF, jobs=jobs)
    assert r.status == "eligible"


def test_a_next_page_saved_without_its_self_link_cannot_be_told_to_be_it(definition, tmp_path):
    """(A cost: the pages may all be there, but nothing says the second one is the page the first links to.)"""
    import fhir3t

    _pages(tmp_path, second=True, self_link=False)
    (r,) = fhir3t.screen([tmp_path], as_of=AS_OF)
    assert r.status == "candidate"


# ---------------------------------------------------------------- the Patient itself
@pytest.mark.parametrize("element,value,says", [
    ("modifierExtension", [{"url": "http://mpi.example.org/fhir/StructureDefinition/record-merged-away",
                            "valueBoolean": True}], "modifier extension"),
    ("implicitRules", "http://mpi.example.org/fhir/rules/test-patients", "implicitRules"),
    ("animal", {"species": {"text": "canine"}}, "Patient.animal"),  # STU3: this patient is an animal
])
def test_a_patient_that_carries_a_modifier_or_an_element_r4_does_not_define_keeps_age_and_sex_unknown(
        definition, element, value, says):
    """Records carrying these were unreadable; the Patient was read as if they were absent (eligible)."""
    b = _patient()
    _res(b, "p01")[element] = value
    out = _screen(definition, b)
    c = out.by_id("I1-age")
    assert c.result == "unknown" and says in c.reason and "Patient/p01" in c.evidence, c.reason
    assert out.status == "candidate"


# ---------------------------------------------------------------- a document that does not hold what it lists
def _document(refs: list[str]) -> dict:
    b = _patient()
    b["type"] = "document"
    b["entry"].insert(0, {"fullUrl": "urn:uuid:0b1c2d3e-0000-4000-8000-0000000000c0", "resource": {
        "resourceType": "Composition", "status": "final", "type": {"text": "Discharge summary"},
        "subject": {"reference": "Patient/p01"}, "date": "2026-11-05", "title": "Discharge summary",
        "author": [{"display": "Rheumatology ward"}],
        "section": [{"title": "Problems", "section": [{"title": "Active", "entry": [{"reference": r} for r in refs]}]}]}})
    return b


def test_a_document_whose_composition_lists_a_diagnosis_its_bundle_does_not_hold_keeps_it_unknown(definition):
    """A document Bundle holds everything its Composition references (R4 bdl-11): a problem it lists but does not
    hold (an engine that dropped it) is missing, not absent."""
    out = _screen(definition, _document(["Condition/p01-dm", "Condition/p01-hiv-dx"]))
    c = out.by_id("E9-hiv")
    assert c.result == "unknown" and "does not hold" in c.reason
    assert out.by_id("I2-dm").result == "met" and out.status == "candidate"


def test_a_document_that_holds_what_its_composition_lists_is_read_as_usual(definition):
    refs = ["Condition/p01-dm", "http://ehr.example.org/fhir/Observation/p01-hiv", "#local", "Practitioner/dr-1"]
    assert _screen(definition, _document(refs)).status == "eligible"
