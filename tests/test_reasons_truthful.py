"""Reasons that tell the truth (issue 20, class 6).

A contained Medication coded only by ingredient is in the input (its reason says so, and names the
ingredients); a Medication that is really missing is said to be missing; a text-only drug record that
names its drug is said to name it; a reason never cuts a text inside a bracket (textnorm.clip, checked
as a property over generated texts).
"""
from __future__ import annotations

import copy

import orjson
from hypothesis import given, seed, settings
from hypothesis import strategies as st

import fhir3t
from conftest import SAMPLES
from fhir3t.errors import Problems
from fhir3t.messages import render
from fhir3t.records.concepts import describe_concept
from fhir3t.textnorm import _CLOSE, _OPEN, clip

AS_OF = "2026-11-16"
P01 = orjson.loads((SAMPLES / "screening" / "01-eligible-classic.json").read_bytes())
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"


def screen_with(*resources: dict, extra_docs=()) -> fhir3t.ScreeningResult:
    b = copy.deepcopy(P01)
    b["entry"] += [{"resource": r} for r in resources]
    (r,) = fhir3t.screen([], as_of=AS_OF, problems=Problems(), documents=[("p01.json", b), *extra_docs])
    return r


def statement(med: dict, **extra) -> dict:
    return {"resourceType": "MedicationStatement", "id": "ms1", "status": "completed", "subject": {"reference": "Patient/p01"},
            "effectivePeriod": {"start": "2026-10-01", "end": "2026-11-13"}, **med, **extra}


def test_a_contained_medication_coded_only_by_ingredient_is_in_the_input():
    med = {"resourceType": "Medication", "id": "m", "ingredient": [{"itemCodeableConcept": {"text": "奥美拉唑"}},
                                                                    {"itemReference": {"display": "magnesium"}}]}
    r = screen_with(statement({"medicationReference": {"reference": "#m"}}, contained=[med]))
    reason = r.by_id("E2-recent-immunomodulator").reason
    assert r.by_id("E2-recent-immunomodulator").result == "unknown"
    assert "its Medication is in the input but has no code (it is named only by its ingredients: 奥美拉唑, magnesium)" in reason
    assert "not in the input" not in reason


def test_a_medication_that_is_not_in_the_input_is_said_to_be_missing():
    r = screen_with(statement({"medicationReference": {"reference": "Medication/nowhere"}}))
    assert "the Medication is not in the input" in r.by_id("E2-recent-immunomodulator").reason


def test_a_text_only_medication_that_names_its_drug_is_said_to_name_it():
    r = screen_with(statement({"medicationCodeableConcept": {"text": "来那度胺胶囊(瑞复美) 10mg"}}))
    c = r.by_id("E2-recent-immunomodulator")
    assert c.result == "unknown"
    assert "text only: '来那度胺胶囊(瑞复美) 10mg'), and its text names 来那度胺" in c.reason
    # the drug it names is not a 3T drug: E1 and E3 are not held open by it
    assert r.by_id("E1-prior-3t-failure").result == "not-met" and r.by_id("E3-depleting-agent").result == "not-met"


def test_a_long_drug_text_is_never_cut_inside_its_brackets():
    text = "环孢素软胶囊 25mg 每日两次 口服 连续服用至复诊 (新山地明 Neoral, 诺华制药 批号 20260311 有效期至2028年)"
    shown = render(describe_concept({"text": text}))
    assert "(新山地明" not in shown and shown.endswith("…'") and len(shown) < len(text)


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
    return depth <= 0


@seed(20261201)
@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(["来那度胺", "胶囊", " ", "(", ")", "（", "）", "[", "]", "10mg", "Revlimid", "瑞复美", ","]),
                max_size=40).map("".join), st.integers(8, 70))
def test_clip_never_cuts_inside_a_bracket(text, limit):
    out = clip(text, limit)
    assert len(out) <= max(limit, 1)
    if _balanced(text.strip()) and out.endswith("…"):
        # every bracket the clipped text opens, it closes: no half of '(瑞复美)'
        body = out[:-1]
        depth = 0
        for ch in body:
            if ch in _OPEN:
                depth += 1
            elif ch in _CLOSE:
                depth = max(0, depth - 1)
        assert depth == 0, (text, limit, out)
    if len(text.strip()) <= limit:
        assert out == text.strip()
