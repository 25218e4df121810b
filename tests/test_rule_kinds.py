"""Each rule kind on its own (as OHDSI Circe keeps a fixture per check): tests/data/kinds/<kind>.json holds
one rule of the kind and cases (resources -> expected result), screened through the whole pipeline with
a one-criterion definition. Adding a kind means adding its fixture: a test fails until it is there.

The as-of date (and D1) is 2026-06-15: the cases sit on either side of the window edges.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, screen_bundle
from factory import bundle
from fhir3t.criteria.kinds import KINDS
from fhir3t.criteria.load import load_criteria
from fhir3t.pipeline import Definition

KINDS_DIR = ROOT / "tests" / "data" / "kinds"
BUNDLED = json.loads((ROOT / "profiles" / "criteria" / "nct06438679.json").read_text(encoding="utf-8"))


def _fixtures() -> list[tuple[str, dict]]:
    return [(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(KINDS_DIR.glob("*.json"))]


def test_every_rule_kind_has_a_fixture_and_every_fixture_a_kind():
    assert {name for name, _ in _fixtures()} == set(KINDS)


def _definition(definition: Definition, rule: dict, tmp_path: Path) -> Definition:
    window = rule.get("window")
    data = {key: BUNDLED[key] for key in ("id", "version", "title", "study", "checklist", "readings")}
    data["windows"] = {window: BUNDLED["windows"][window]} if window else {}
    data["criteria"] = [{"id": "I1-kind", "kind": "inclusion", "title": "The kind under test", "rule": rule}]
    path = tmp_path / "criteria.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return Definition.from_parts(definition.tx, load_criteria(definition.tx, path))


CASES = [(name, case["name"], fixture["rule"], case) for name, fixture in _fixtures() for case in fixture["cases"]]


@pytest.mark.parametrize("kind,case_name,rule,case", CASES, ids=[f"{k}: {c}" for k, c, _, _ in CASES])
def test_the_kind_gives_the_expected_result(definition, tmp_path, kind, case_name, rule, case):
    one = _definition(definition, rule, tmp_path)
    [result] = screen_bundle(one, bundle(*case["resources"]))
    [c] = result.criteria
    assert c.result == case["expect"], c.reason
    assert c.reason and "{" not in c.reason  # a sentence, every placeholder filled
    assert one.criteria.criteria[0].description  # and the kind describes itself


@pytest.mark.parametrize("name,fixture", _fixtures(), ids=[n for n, _ in _fixtures()])
def test_each_kind_has_a_met_and_a_not_met_case(name, fixture):
    assert {"met", "not-met"} <= {c["expect"] for c in fixture["cases"]}
