"""Dates, Kleene logic, terminology and concept maps: the pieces every criterion stands on."""
from __future__ import annotations

import json
from datetime import date
from itertools import product

import pytest

from conftest import SAMPLES
from fhir3t.dates import Duration, Span, Window, age_on, parse_date
from fhir3t.errors import ConfigError
from fhir3t.logic import MET, NOT_MET, RESULTS, UNKNOWN, k_and, k_either, k_not, k_or
from fhir3t.terminology import ConceptMaps, Terminology

# ------------------------------------------------------------------ Kleene logic
ORDER = {NOT_MET: 0, UNKNOWN: 1, MET: 2}


@pytest.mark.parametrize("a,b", list(product(RESULTS, RESULTS)))
def test_kleene_and_or_are_min_max(a, b):
    assert k_and([a, b]) == min(a, b, key=ORDER.get)
    assert k_or([a, b]) == max(a, b, key=ORDER.get)
    assert k_not(k_and([a, b])) == k_or([k_not(a), k_not(b)])  # De Morgan


def test_kleene_empty_and_either():
    assert k_and([]) == MET and k_or([]) == NOT_MET
    assert k_either([UNKNOWN, NOT_MET]) == NOT_MET
    assert k_either([NOT_MET, MET]) == MET
    assert k_either([UNKNOWN, UNKNOWN]) == UNKNOWN


# ------------------------------------------------------------------ dates
@pytest.mark.parametrize("text,lo,hi", [
    ("2024", "2024-01-01", "2024-12-31"), ("2024-02", "2024-02-01", "2024-02-29"), ("2023-02", "2023-02-01", "2023-02-28"),
    ("2024-05-06", "2024-05-06", "2024-05-06"), ("2024-05-06T23:30:00-05:00", "2024-05-06", "2024-05-06"),
    ("2024-05-06T01:00:00.123Z", "2024-05-06", "2024-05-06"),
])
def test_parse_date_spans(text, lo, hi):
    assert parse_date(text) == Span(date.fromisoformat(lo), date.fromisoformat(hi))


@pytest.mark.parametrize("bad", ["", "2024-13", "2024-02-30", "24-01-01", "yesterday", "2024-05-06X", 20240506])
def test_parse_date_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        parse_date(bad)


@pytest.mark.parametrize("d1,dur,start", [
    ("2026-08-31", "6mo", "2026-02-28"), ("2024-08-31", "6mo", "2024-02-29"), ("2026-06-15", "28d", "2026-05-18"),
    ("2026-06-15", "84d", "2026-03-23"), ("2026-06-15", "5y", "2021-06-15"), ("2028-02-29", "5y", "2023-02-28"),
    ("2026-06-15", "2w", "2026-06-01"),
])
def test_calendar_durations(d1, dur, start):
    assert Duration.parse(dur).before(date.fromisoformat(d1)) == date.fromisoformat(start)


def test_window_contains_is_three_valued():
    w = Window(date(2026, 5, 18), date(2026, 6, 15))
    assert w.contains(parse_date("2026-05-18")) == MET
    assert w.contains(parse_date("2026-05-17")) == NOT_MET
    assert w.contains(parse_date("2026-05")) == UNKNOWN
    assert w.contains(parse_date("2026-04")) == NOT_MET
    assert w.contains(parse_date("2026-06")) == UNKNOWN


def test_age_on_leap_day():
    b = date(2008, 2, 29)
    assert age_on(b, date(2026, 2, 28)) == 17
    assert age_on(b, date(2026, 3, 1)) == 18
    assert age_on(b, date(2028, 2, 29)) == 20


# ------------------------------------------------------------------ terminology
@pytest.fixture(scope="module")
def tx() -> Terminology:
    return Terminology.load()


@pytest.mark.parametrize("system,code,vs,inside", [
    ("http://hl7.org/fhir/sid/icd-10-cm", "M33.10", "dermatomyositis", True),
    ("http://hl7.org/fhir/sid/icd-10-cm", "m3319", "dermatomyositis", True),      # case and dots normalised
    ("urn:oid:2.16.840.1.113883.6.90", "M33.11", "dermatomyositis", True),        # OID alias
    ("http://hl7.org/fhir/sid/icd-10-cm", "M33.00", "dermatomyositis", False),
    ("http://hl7.org/fhir/sid/icd-10-cm", "M33", "dermatomyositis", False),
    ("http://www.whocc.no/atc", "L04AF03", "immunomodulators-e2", True),
    ("http://www.whocc.no/atc", "L04AF01", "immunomodulators-e2", False),         # compose.exclude
    ("http://hl7.org/fhir/sid/icd-10-cm", "C50.911", "malignancy", True),
    ("http://hl7.org/fhir/sid/icd-10-cm", "C98", "malignancy", False),
    ("http://hl7.org/fhir/sid/icd-10-cm", "C44.321", "malignancy", False),
    ("http://hl7.org/fhir/sid/icd-10-cm", "C44.321", "skin-bcc-scc", True),
    ("http://hl7.org/fhir/sid/icd-10-cm", "O9A.1", "pregnancy-condition", True),
    ("http://hl7.org/fhir/sid/cvx", "3", "live-vaccines", True),
    ("http://snomed.info/sct", "396230008", "dermatomyositis", True),
    ("http://loinc.org", "82424-3", "anti-mda5", True),
])
def test_value_set_membership(tx, system, code, vs, inside):
    codes = tx.codes({"coding": [{"system": system, "code": code}]})
    assert any(c in tx.valueset(vs) for c in codes) is inside


def test_half_life_is_read_from_value_set_data(tx):
    vs = tx.valueset("immunomodulators-e2")
    hl = vs.prop(("http://www.nlm.nih.gov/research/umls/rxnorm", "3008"), "half-life")
    assert hl["value"] > 0 and hl["code"] == "h"


def test_concept_map_translation(tx, tmp_path):
    cmap = {"resourceType": "ConceptMap", "status": "active", "group": [{
        "source": "http://lab.local", "target": "http://loinc.org",
        "element": [{"code": "MDA5", "target": [{"code": "82424-3", "equivalence": "equivalent"}]},
                    {"code": "NOPE", "target": [{"code": "82424-3", "equivalence": "disjoint"}]},
                    {"code": "NARROW", "target": [{"code": "82424-3", "equivalence": "narrower"}]}]}]}
    path = tmp_path / "cm.json"
    path.write_text(json.dumps(cmap))
    t = Terminology.load([path])
    vs = t.valueset("anti-mda5")
    assert any(c in vs for c in t.codes({"coding": [{"system": "http://lab.local", "code": "MDA5"}]}))
    assert not any(c in vs for c in t.codes({"coding": [{"system": "http://lab.local", "code": "NOPE"}]}))
    assert not any(c in vs for c in t.codes({"coding": [{"system": "http://lab.local", "code": "NARROW"}]}))
    assert t.unknown_systems({"coding": [{"system": "http://lab.local", "code": "X"}]}) == []
    assert tx.unknown_systems({"coding": [{"system": "http://lab.local", "code": "X"}]}) == ["http://lab.local"]


def test_bad_concept_map_is_a_config_error(tmp_path):
    path = tmp_path / "cm.json"
    path.write_text(json.dumps({"resourceType": "ValueSet"}))
    with pytest.raises(ConfigError, match="not a ConceptMap"):
        Terminology.load([path])
    path.write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Terminology.load([path])
    with pytest.raises(ConfigError, match="not found"):
        Terminology.load([tmp_path / "missing.json"])


def test_sample_concept_map_loads(tx):
    maps = ConceptMaps(tx.systems)
    n = maps.add(json.loads((SAMPLES / "conceptmaps" / "hospital-local.json").read_text()), "x")
    assert n >= 5


@pytest.mark.parametrize("text,expected", [
    ("2026-06-03T03:00:00Z", 1780455600.0), ("2026-06-03T11:00:00+08:00", 1780455600.0),
    ("2026-06-03", None), ("2026-06-03T11:00:00", None), ("2026-06-03T25:00:00Z", None), (None, None),
])
def test_instant_needs_a_time_and_a_zone(text, expected):
    from fhir3t.dates import instant

    assert instant(text) == expected
