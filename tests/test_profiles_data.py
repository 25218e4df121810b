"""The reviewed data in profiles/ is consistent: criteria, value sets, checklist, schema."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT, SHARED
from fhir3t.criteria.load import load_criteria
from fhir3t.errors import ConfigError
from fhir3t.pipeline import Definition
from fhir3t.validate import validate_resource

PROFILES = ROOT / "profiles"
SPEC_IDS = ["I1-age", "I2-dm", "I3-mda5", "I4-dlco", "I5-ct", "I6-contraception", "I7-compliance", "I8-consent",
            "E1-prior-3t-failure", "E2-recent-immunomodulator", "E3-depleting-agent", "E4-investigational",
            "E5-immunodeficiency", "E6-malignancy", "E7-hbv", "E8-hcv", "E9-hiv", "E10-tb", "E11-hypersensitivity",
            "E12-vaccination", "E13-pregnancy", "E14-investigator"]


def test_criteria_ids_and_order_match_the_spec(definition: Definition):
    assert [c.id for c in definition.criteria.criteria] == SPEC_IDS


def test_spec_ids_are_those_in_shared_spec_when_available():
    spec = SHARED / "spec" / "eligibility.md"
    if not spec.is_file():
        pytest.skip("../shared not available")
    ids = re.findall(r"^\| `([IE]\d+-[a-z0-9-]+)`", spec.read_text(encoding="utf-8"), re.M)
    assert ids == SPEC_IDS


def test_checklist_questionnaire_has_every_linkid_the_criteria_ask(definition: Definition):
    q = json.loads((PROFILES / "Questionnaire-3t-screening-checklist.json").read_text())
    assert q["url"].endswith(definition.criteria.checklist)
    link_ids = {i["linkId"] for i in q["item"]}
    asked = set(re.findall(r'"link_id": "([^"]+)"', (PROFILES / "criteria" / "nct06438679.json").read_text()))
    assert asked == link_ids == {"contraception", "compliance", "consent", "investigator-ok"}
    assert all(i["type"] == "boolean" for i in q["item"])


@pytest.mark.parametrize("path", sorted((PROFILES / "valuesets").glob("*.json")) + [PROFILES / "Questionnaire-3t-screening-checklist.json"],
                         ids=lambda p: p.name)
def test_profile_resources_are_valid_fhir(path: Path):
    errors = [str(i) for i in validate_resource(json.loads(path.read_text())) if i.is_error]
    assert errors == []


def test_a_typo_in_the_criteria_fails_loudly(tmp_path, definition: Definition):
    data = json.loads((PROFILES / "criteria" / "nct06438679.json").read_text())
    data["criteria"][2]["rule"]["window"] = "screenng"
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="window 'screenng' is not defined"):
        load_criteria(definition.tx, bad)
    data["criteria"][2]["rule"]["window"] = "screening"
    data["criteria"][2]["rule"]["read"] = "grades"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="I3-mda5: rule 'observation': read: 'grades' is not one of"):
        load_criteria(definition.tx, bad)
    data["criteria"][2]["rule"]["read"] = "grade"
    data["criteria"][2]["rule"]["windw"] = "screening"  # a misspelt parameter is not ignored
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="I3-mda5: rule 'observation': Additional properties are not allowed"):
        load_criteria(definition.tx, bad)


def test_changing_a_threshold_is_a_data_edit(tmp_path, definition: Definition):
    """The study team moves the DLCO cut-off to 70 % by editing data: results follow."""
    from conftest import screen_bundle
    from factory import bundle, obs, patient

    data = json.loads((PROFILES / "criteria" / "nct06438679.json").read_text())
    data["criteria"][3]["rule"]["value"] = 70
    edited = tmp_path / "c.json"
    edited.write_text(json.dumps(data))
    custom = Definition.load(criteria_file=edited)
    b = bundle(patient(), obs("98130-8", "2026-06-01", valueQuantity={"value": 75, "unit": "%", "code": "%"}))
    [default] = screen_bundle(definition, b)
    [changed] = screen_bundle(custom, b)
    assert default.by_id("I4-dlco").result == "met" and changed.by_id("I4-dlco").result == "not-met"
    assert custom.criteria.digest != definition.criteria.digest


def test_a_title_that_restates_a_threshold_fails_to_load(tmp_path, definition):
    """Titles name criteria; what they ask is generated from the rule, so a title cannot drift from it."""
    data = json.loads((ROOT / "profiles" / "criteria" / "nct06438679.json").read_text())
    dlco = next(c for c in data["criteria"] if c["id"] == "I4-dlco")
    dlco["title"] = "DLCO below 80 % predicted"
    bad = tmp_path / "criteria.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="I4-dlco: the title repeats 80"):
        load_criteria(definition.tx, bad)


def test_descriptions_are_generated_from_the_rules_and_follow_their_thresholds(tmp_path, definition):
    dlco = next(c for c in definition.criteria.criteria if c.id == "I4-dlco")
    assert dlco.description == ("the most recent DLCO % predicted result within 28 days before the screening date "
                                "is below 80 %")
    data = json.loads((ROOT / "profiles" / "criteria" / "nct06438679.json").read_text())
    rule = next(c for c in data["criteria"] if c["id"] == "I4-dlco")["rule"]
    rule["value"], rule["op"] = 70, "<="
    edited = tmp_path / "criteria.json"
    edited.write_text(json.dumps(data))
    changed = next(c for c in load_criteria(definition.tx, edited).criteria if c.id == "I4-dlco")
    assert changed.description.endswith("is at most 70 %")
