"""The official HL7 R4 examples validate without errors; the official R4 JSON Schema agrees with
us on hand-broken fixtures. Skipped when ../shared is absent (it is never needed to run fhir3t)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fhir3t.r4defs import resource_types, type_def, types, value_sets
from fhir3t.validate import validate_resource

SHARED = Path(os.environ.get("FHIR3T_SHARED") or Path(__file__).resolve().parents[2] / "shared")
EXAMPLES = SHARED / "data" / "hl7-examples"
SCHEMA = EXAMPLES / "schema" / "fhir.schema.json"

#: Known errors in the examples themselves (the HL7 validator reports them too), asserted exactly so
#: that any other error fails: a Reference whose type R4 does not allow for the element.
KNOWN: dict[str, set[tuple[str, str]]] = {
    "medicationrequest0301.json": {("structure", "reference")},  # dispenseRequest.performer: Practitioner
    "observation-example-clinical-gender.json": {("structure", "reference")},  # performer: Encounter
    # fhir-test-cases' bundle-questionnaire.json: display items without linkId (R4 Questionnaire.item.linkId
    # is 1..1 whatever the item type; the Java validator does not report it)
    "bundle-questionnaire.json": {("required", "linkId")},
}


def example_files() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    return sorted(p for d in ("r4-spec", "fhir-test-cases-r4") for p in (EXAMPLES / d).glob("*.json"))


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/data/hl7-examples not available")
def test_hl7_examples_have_no_errors() -> None:
    files = example_files()
    assert len(files) >= 140
    unexpected = {}
    for f in files:
        errs = [i for i in validate_resource(json.loads(f.read_text())) if i.is_error]
        allowed = KNOWN.get(f.name, set())
        bad = [i for i in errs if (i.code, (i.expression or "").rsplit(".", 1)[-1]) not in allowed]
        if bad:
            unexpected[f.name] = [str(i) for i in bad[:5]]
        if allowed:
            assert errs, f"{f.name}: expected known deviation is gone; update KNOWN"
    assert unexpected == {}


@pytest.fixture(scope="module")
def official():
    if not SCHEMA.is_file():
        pytest.skip("official R4 JSON Schema not available")
    import jsonschema

    return jsonschema.Draft6Validator(json.loads(SCHEMA.read_text()))


BROKEN = [
    {"resourceType": "Patient", "gender": "M"},
    {"resourceType": "Observation", "status": "final"},
    {"resourceType": "Observation", "status": "done", "code": {"text": "x"}},
    {"resourceType": "Patient", "active": "yes-ish", "unknownElement": 1},
    {"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "FETCH", "url": "x"}}]},
    {"resourceType": "ResearchSubject", "status": "enrolled", "study": {"reference": "ResearchStudy/s"},
     "individual": {"reference": "Patient/p"}},
    {"resourceType": "AdverseEvent", "actuality": "maybe", "subject": {"reference": "Patient/p"}},
    {"resourceType": "Patinet"},
]


@pytest.mark.parametrize("doc", BROKEN, ids=lambda d: d["resourceType"])
def test_oracle_agrees_on_broken_fixtures(official, doc: dict) -> None:
    assert not official.is_valid(doc), "fixture should be invalid per the official schema"
    assert any(i.is_error for i in validate_resource(doc))


def test_code_lists_match_official_schema(official) -> None:
    """Every required `code` binding's derived code list equals the official JSON Schema's enum
    (two independent derivations of the same R4 value sets agree)."""
    defs = official.schema["definitions"]
    checked = 0
    for name in sorted(resource_types()):
        t = type_def(name)
        assert t is not None
        for path, el in t.elements.items():
            if not el.binding or el.binding[0] != "required" or el.types != ("code",) or "." in path:
                continue
            prop = defs.get(name, {}).get("properties", {}).get(el.name, {})
            enum = prop.get("items", prop).get("enum")
            codes = value_sets().get(el.binding[1])
            if enum is None or codes is None:
                continue
            assert sorted(enum) == sorted({c for cs in codes.values() for c in cs}), f"{name}.{path}"
            checked += 1
    assert checked >= 100
    assert sorted(resource_types()) == sorted(official.schema["discriminator"]["mapping"])
    assert len(types()) > 200
