"""One valid resource and an invalid variant per rule family of the R4 definitions walk: the variant
must give an error of the expected code at the expected place, its valid twin none.
The closing figure (agreement on this set) is the share of variants caught with nothing on the twins."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from fhir3t.validate import validate_resource

PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "id": "p1", "active": True, "gender": "female", "birthDate": "1980-02-29",
    "multipleBirthInteger": 2, "name": [{"family": "Li", "given": ["Ann"]}],
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Ann Li</p></div>'},
    "contact": [{"name": {"family": "Wang"}, "period": {"start": "2020-01-01", "end": "2021-01-01"}}],
}
OBS: dict[str, Any] = {
    "resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
    "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 6.3, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"},
    "referenceRange": [{"low": {"value": 1, "unit": "U/L"}, "high": {"value": 40, "unit": "U/L"}}],
}
MEDIA: dict[str, Any] = {"resourceType": "Media", "status": "completed",
                         "content": {"contentType": "text/plain", "data": "aGVsbG8gd29ybGQ=", "size": 11}}


def put(path: str, value: Any) -> Callable[[dict], None]:
    def f(r: dict) -> None:
        *parts, last = path.split(".")
        for p in parts:
            r = r[int(p)] if p.isdigit() else r[p]
        if value is DELETE:
            del r[last]
        elif isinstance(r, list):
            r[int(last)] = value
        else:
            r[last] = value
    return f


DELETE = object()


def swap_value(r: dict, key: str, value: Any) -> None:
    """Replace an Observation's value[x] by another choice."""
    del r["valueQuantity"]
    r[key] = value

#: (rule family, base resource, change, issue code, expression of the issue)
VARIANTS = [
    ("json-type boolean", PATIENT, put("active", "true"), "structure", "Patient.active"),
    ("json-type integer", PATIENT, put("multipleBirthInteger", "2"), "structure", "Patient.multipleBirthInteger"),
    ("json-type decimal", OBS, put("valueQuantity.value", "6.3"), "structure", "Observation.valueQuantity.value"),
    ("integer range", PATIENT, put("multipleBirthInteger", 2**40), "value", "Patient.multipleBirthInteger"),
    ("regex date", PATIENT, put("birthDate", "29/02/1980"), "value", "Patient.birthDate"),
    ("calendar date", PATIENT, put("birthDate", "1981-02-29"), "value", "Patient.birthDate"),
    ("resource id syntax", PATIENT, put("id", "p_1!"), "value", "Patient.id"),
    ("resource id length", PATIENT, put("id", "x" * 65), "value", "Patient.id"),
    ("control character", PATIENT, put("name.0.family", "Li\x07"), "invalid", "Patient.name[0].family"),
    ("whitespace-only string", PATIENT, put("name.0.family", "   "), "invalid", "Patient.name[0].family"),
    ("unknown element", PATIENT, put("nickname", "A"), "structure", "Patient.nickname"),
    ("array where single", PATIENT, put("gender", ["female"]), "structure", "Patient.gender"),
    ("single where array", PATIENT, put("name", {"family": "Li"}), "structure", "Patient.name"),
    ("min cardinality", OBS, put("status", DELETE), "required", "Observation.status"),
    ("max cardinality (choice)", OBS, put("valueString", "x"), "structure", "Observation"),
    ("required binding code", PATIENT, put("gender", "F"), "code-invalid", "Patient.gender"),
    ("empty element ele-1", PATIENT, put("contact.0.name", {}), "invariant", "Patient.contact[0].name"),
    ("null ele-1", PATIENT, put("birthDate", None), "invariant", "Patient.birthDate"),
    ("invariant per-1 (FHIRPath)", PATIENT, put("contact.0.period.end", "2019-01-01"), "invariant", "Patient.contact[0].period"),
    ("invariant pat-1 (FHIRPath)", PATIENT, put("contact.0", {"period": {"start": "2020"}}), "invariant", "Patient.contact[0]"),
    ("invariant rng-2 (native)", OBS, lambda r: swap_value(r, "valueRange", {"low": {"value": 5}, "high": {"value": 1}}),
     "invariant", "Observation.valueRange"),
    ("invariant obs-3", OBS, put("referenceRange.0", {"text": "normal"}), None, None),  # valid: text alone is allowed
    ("narrative script", PATIENT, put("text.div", '<div xmlns="http://www.w3.org/1999/xhtml"><script>x()</script>a</div>'),
     "invariant", "Patient.text.div"),
    ("narrative event attribute", PATIENT, put("text.div", '<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">a</p></div>'),
     "invariant", "Patient.text.div"),
    ("narrative not well-formed", PATIENT, put("text.div", '<div xmlns="http://www.w3.org/1999/xhtml"><p>a</div>'),
     "invariant", "Patient.text.div"),
    ("narrative namespace", PATIENT, put("text.div", "<div><p>a</p></div>"), "invariant", "Patient.text.div"),
    ("reference target type", OBS, put("subject", {"reference": "Medication/m1"}), "structure", "Observation.subject.reference"),
    ("extension value type", PATIENT, put("extension", [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                                         "valueString": "10:00"}]), "structure", "Patient.extension[0]"),
    ("extension context", PATIENT, put("extension", [{"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix",
                                                      "valueString": "van"}]), "structure", "Patient.extension[0]"),
    ("unknown core extension", PATIENT, put("extension", [{"url": "http://hl7.org/fhir/StructureDefinition/no-such", "valueString": "x"}]),
     "structure", "Patient.extension[0]"),
    ("ext-1", PATIENT, put("extension", [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime"}]),
     "invariant", "Patient.extension[0]"),
    ("attachment size", MEDIA, put("content.size", 100), "structure", "Media.content"),
    ("base64", MEDIA, put("content.data", "not base64!"), "value", "Media.content.data"),
    ("contained dom-3", OBS, put("contained", [{"resourceType": "Patient", "id": "c1"}]), "invariant", "Observation.contained[0]"),
    ("contained dom-2", OBS, lambda r: r.update(contained=[{"resourceType": "Patient", "id": "c1", "contained": [
        {"resourceType": "Patient", "id": "c2"}]}], subject={"reference": "#c1"}), "invariant", "Observation"),
    ("unknown resource type", PATIENT, put("resourceType", "Patinet"), "structure", None),
]


@pytest.mark.parametrize("family, base, change, code, where", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_rule_family(family: str, base: dict, change: Callable[[dict], None], code: str | None, where: str | None) -> None:
    assert [str(i) for i in validate_resource(base) if i.is_error] == [], "the valid twin must stay valid"
    variant = copy.deepcopy(base)
    change(variant)
    errors = [i for i in validate_resource(variant) if i.is_error]
    if code is None:
        assert errors == []
        return
    assert any(i.code == code and i.expression == where for i in errors), [str(i) for i in errors]


def test_bundle_rule_families() -> None:
    """Bundle integrity: duplicate fullUrl (bdl-7), versioned reference resolves, fullUrl must be
    absolute and agree with the resource id, unresolvable urn:uuid, searchset ids, links once."""
    pat = {"resourceType": "Patient", "id": "1"}
    doc = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "http://ex.org/fhir/Patient/1", "resource": {**pat, "meta": {"versionId": "2"}}},
        {"fullUrl": "urn:uuid:7f1c3a4e-0000-4000-8000-000000000001",
         "resource": {**OBS, "subject": {"reference": "Patient/1/_history/2"}}}]}
    assert [i for i in validate_resource(doc) if i.severity != "information"] == []
    bad = copy.deepcopy(doc)
    bad["entry"][0]["fullUrl"] = "Patient/1"
    bad["entry"][1]["resource"]["performer"] = [{"reference": "urn:uuid:7f1c3a4e-0000-4000-8000-0000000000ff"}]
    bad["entry"].append({"fullUrl": "http://ex.org/fhir/Patient/2", "resource": pat})
    bad["entry"].append({"fullUrl": "http://ex.org/fhir/Patient/2", "resource": {**pat, "id": "2"}})
    got = {(i.code, i.expression) for i in validate_resource(bad) if i.is_error}
    assert ("invalid", "Bundle.entry[0].fullUrl") in got
    assert ("not-found", "Bundle.entry[1].resource.performer[0].reference") in got
    assert ("invalid", "Bundle.entry[2].fullUrl") in got  # RESTful fullUrl with another id
    assert ("invariant", "Bundle.entry[3].fullUrl") in got  # bdl-7
    search = {"resourceType": "Bundle", "type": "searchset", "link": [{"relation": "self", "url": "http://ex.org/a"},
                                                                     {"relation": "self", "url": "http://ex.org/b"}],
              "entry": [{"fullUrl": "http://ex.org/Patient/x", "resource": {"resourceType": "Patient"}, "search": {"mode": "match"}}]}
    got = {(i.code, i.expression) for i in validate_resource(search) if i.is_error}
    assert got == {("invalid", "Bundle.link[1]"), ("invalid", "Bundle.entry[0].resource")}


def test_json_comments_are_read_with_a_warning(tmp_path) -> None:
    from fhir3t.validate import validate_issues

    p = tmp_path / "c.json"
    p.write_text('{\n  // a comment\n  "resourceType": "Patient", /* another */ "gender": "female", "name": [{"text": "a // b"}]\n}\n')
    issues, tally = validate_issues([p])
    assert [(i.severity, i.code) for i in issues] == [("warning", "structure")] and tally.resources == 1


def test_an_invariant_that_cannot_be_evaluated_is_counted_not_passed(monkeypatch) -> None:
    from fhir3t.validate import Tally, fhirpath

    monkeypatch.setattr(fhirpath, "_compiled", lambda ident: (_ for _ in ()).throw(RuntimeError("boom")))
    tally = Tally()
    issues = validate_resource({"resourceType": "Patient", "contact": [{"gender": "male"}]}, tally=tally)
    assert any(i.code == "processing" and "pat-1" in i.diagnostics for i in issues)
    assert tally.constraints_not_evaluated.get("pat-1") == 1
