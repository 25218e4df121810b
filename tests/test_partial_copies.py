"""Copies a server labels as not the whole record (meta.tag SUBSETTED after a _summary or _elements search,
meta.security REDACTED or MASKED): what they lack may be what a rule reads, so the criteria that read them stay
unknown (naming the record and the label), never decided as if the missing elements were absent.

Each case starts from an eligible patient (samples/screening/01-eligible-classic.json) and labels one record.
"""
from __future__ import annotations

import pytest

from conftest import eligible_p01, resource_in, screen_one

AS_OF = "2026-11-16"
OBSV = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"


_patient, _res, _screen = eligible_p01, resource_in, screen_one


def _label(resource: dict, element: str, coding: dict) -> None:
    resource.setdefault("meta", {}).setdefault(element, []).append(coding)


def test_the_base_patient_is_eligible(definition):
    assert _screen(definition, _patient()).status == "eligible"


@pytest.mark.parametrize("element,coding", [
    ("tag", {"system": OBSV, "code": "SUBSETTED"}),                      # a _summary / _elements search result
    ("tag", {"system": "http://hl7.org/fhir/v3/ObservationValue", "code": "SUBSETTED"}),  # STU3's system URI
    ("tag", {"code": "SUBSETTED"}),                                      # no system
    ("security", {"system": OBSV, "code": "REDACTED"}),
    ("security", {"system": OBSV, "code": "MASKED"}),
])
@pytest.mark.parametrize("rid,cid", [
    ("p01-hiv", "E9-hiv"),                             # a negative result whose value may be what was left out
    ("p01-dm", "I2-dm"),                               # a diagnosis whose verificationStatus may be what was left out
    ("p01-cyclosporine", "E2-recent-immunomodulator"),  # a drug record whose period may be what was left out
])
def test_a_copy_labelled_as_part_of_the_record_leaves_its_criteria_unknown(definition, element, coding, rid, cid):
    b = _patient()
    r = _res(b, rid)
    _label(r, element, coding)
    out = _screen(definition, b)
    c = out.by_id(cid)
    assert c.result == "unknown", c.reason
    assert f"{r['resourceType']}/{rid}" in c.evidence and coding["code"] in c.reason and f"meta.{element}" in c.reason
    assert out.status == "candidate"


def test_a_subsetted_medication_a_drug_record_points_at_leaves_the_record_unread(definition):
    b = _patient()
    r = _res(b, "p01-cyclosporine")
    _label(r["contained"][0], "tag", {"system": OBSV, "code": "SUBSETTED"})
    c = _screen(definition, b).by_id("E2-recent-immunomodulator")
    assert c.result == "unknown" and "Medication.meta.tag" in c.reason, c.reason


@pytest.mark.parametrize("element,coding", [
    ("security", {"system": OBSV, "code": "PSEUDED"}),     # pseudonymised: the clinical content is whole
    ("security", {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}),
    ("tag", {"system": "http://lis.example.org/tags", "code": "SUBSETTED"}),  # a local system's code of that name
])
def test_labels_that_do_not_say_content_was_left_out_change_nothing(definition, element, coding):
    b = _patient()
    for rid in ("p01-hiv", "p01-dm", "p01-cyclosporine", "p01"):
        _label(_res(b, rid), element, coding)
    assert _screen(definition, b).status == "eligible"


@pytest.mark.parametrize("change", [
    lambda p: _label(p, "tag", {"system": OBSV, "code": "SUBSETTED"}),
    lambda p: _label(p, "security", {"system": OBSV, "code": "REDACTED"}),
    lambda p: p.update(modifierExtension=[{"url": "http://his.example.org/ext/test-patient", "valueBoolean": True}]),
    lambda p: p.update(implicitRules="http://his.example.org/rules/v2"),
])
def test_a_patient_that_cannot_be_read_whole_leaves_age_and_sex_unknown(definition, change):
    b = _patient()
    change(_res(b, "p01"))
    out = _screen(definition, b)
    age = out.by_id("I1-age")
    assert age.result == "unknown" and "Patient/p01" in age.evidence, age.reason
    assert out.status != "eligible"


def _man_without_hcg() -> dict:
    b = _patient()
    _res(b, "p01")["gender"] = "male"
    b["entry"] = [e for e in b["entry"] if e["resource"].get("id") != "p01-hcg"]
    return b


def test_a_subsetted_patient_leaves_a_criterion_decided_by_sex_unknown(definition):
    assert _screen(definition, _man_without_hcg()).by_id("E13-pregnancy").result == "not-met"  # the control
    b = _man_without_hcg()
    _label(_res(b, "p01"), "tag", {"system": OBSV, "code": "SUBSETTED"})
    c = _screen(definition, b).by_id("E13-pregnancy")
    assert c.result == "unknown" and "SUBSETTED" in c.reason, c.reason
