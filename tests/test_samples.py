"""The bundled samples give the results documented (by hand, from the spec) in samples/screening/README.md."""
from __future__ import annotations

import json
import re

import pytest

from conftest import SAMPLES
from fhir3t import screen
from fhir3t.errors import Problems

SCREENING = SAMPLES / "screening"

AS_OF = "2026-11-16"
CONCEPT_MAP = SAMPLES / "conceptmaps" / "hospital-local.json"


def _expected() -> dict:
    text = (SCREENING / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Machine-readable expectations.*?```json\n(.*?)```", text, re.S)
    assert block, "samples/screening/README.md lost its machine-readable expectations"
    return json.loads(block.group(1))


EXPECTED = _expected()


def _default(cid: str) -> str:
    return "met" if cid.startswith("I") else "not-met"


@pytest.fixture(scope="module")
def results():
    problems = Problems()
    out = {r.patient: r for r in screen([SCREENING], as_of=AS_OF, concept_maps=[CONCEPT_MAP], problems=problems)}
    assert not problems.any_skipped, [str(p) for p in problems]
    return out


def _key(pid: str, results) -> str:
    if f"Patient/{pid}" in results:
        return f"Patient/{pid}"
    matches = [k for k in results if k.startswith("urn:uuid:")]
    assert len(matches) == 1
    return matches[0]


@pytest.mark.parametrize("pid", sorted(EXPECTED))
def test_sample_patient_matches_documented_expectation(results, pid):
    exp = EXPECTED[pid]
    r = results[_key(pid, results)]
    assert r.status == exp["status"]
    for c in r.criteria:
        assert c.result == exp["criteria"].get(c.id, _default(c.id)), (c.id, c.reason)
        assert c.reason, c.id
        if c.result == "unknown":
            assert any(w in c.reason for w in ("order", "record", "answer", "confirm", "give", "check")), c.reason


def test_samples_show_every_status(results):
    statuses = {r.status for r in results.values()}
    assert statuses == {"eligible", "ineligible", "candidate"}
    assert len(results) >= 12


def test_local_codes_need_the_concept_map():
    problems = Problems()
    [r] = list(screen([SCREENING / "22-local-codes.json"], as_of=AS_OF, problems=problems))
    expected = EXPECTED["p22"]["without_concept_map"]
    assert r.status == expected["status"]
    for c in r.criteria:
        assert c.result == expected["criteria"].get(c.id, _default(c.id)), (c.id, c.reason)
    assert "Condition/p22-dm has no code fhir3t can read" in r.by_id("I2-dm").reason
    assert problems.any_skipped
    assert any("hospital.example.org/CodeSystem/lab" in str(p) and "--concept-map" in str(p) for p in problems)
    [r] = list(screen([SCREENING / "22-local-codes.json"], as_of=AS_OF, concept_maps=[CONCEPT_MAP]))
    assert r.status == "eligible"
