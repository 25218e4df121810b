"""Dates of other shapes (issue 20, class 5).

`onsetAge` / `onsetRange` / `abatementAge` are a span of days counted from the birth date (40 years is
every day from the 40th birthday to the day before the 41st); a partial birth date widens it. A record
that can only matter inside a window but is dated wholly outside it cannot keep the criterion unknown
(a Z85.3 history with onset and abatement in 2020 for E6; an unreadable vaccination years ago for E12).
The day before, on and after the E6 window's first day (d1 - 5 years = 2021-11-16).
"""
from __future__ import annotations

import copy
from datetime import date

import orjson
import pytest

import fhir3t
from conftest import SAMPLES
from fhir3t.dates import Span, age_span, range_span
from fhir3t.errors import Problems

AS_OF = "2026-11-16"
P01 = orjson.loads((SAMPLES / "screening" / "01-eligible-classic.json").read_bytes())  # born 1980-04-12
BIRTH = date(1980, 4, 12)
WINDOW_START = date(2021, 11, 16)
ICD10 = "http://hl7.org/fhir/sid/icd-10"
CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def years(n, unit="a", **kw):
    return {"value": n, "unit": "years" if unit == "a" else unit, "system": "http://unitsofmeasure.org", "code": unit, **kw}


@pytest.mark.parametrize("age, want", [
    (years(40), Span(date(2020, 4, 12), date(2021, 4, 11))),
    (years(0), Span(BIRTH, date(1981, 4, 11))),
    (years(3, "mo"), Span(date(1980, 7, 12), date(1980, 8, 11))),
    (years(10, "d"), Span(date(1980, 4, 22), date(1980, 4, 22))),
    (years(2, "wk"), Span(date(1980, 4, 26), date(1980, 5, 2))),
    (years(40.5), Span(date(2020, 4, 12), date(2021, 4, 11))),
    (years(40, comparator="<"), None), (years(40, "s"), None), ({"value": "40", "code": "a"}, None), (years(-1), None),
])
def test_an_age_is_the_days_the_person_was_that_old(age, want):
    assert age_span(Span(BIRTH, BIRTH), age) == want


def test_a_partial_birth_date_widens_an_age_and_a_range_joins_its_ends():
    assert age_span(Span(date(1980, 1, 1), date(1980, 12, 31)), years(44)) == Span(date(2024, 1, 1), date(2025, 12, 30))
    assert range_span(Span(BIRTH, BIRTH), {"low": years(42), "high": years(43)}) == Span(date(2022, 4, 12), date(2024, 4, 11))
    assert range_span(Span(BIRTH, BIRTH), {"high": years(1)}) == Span(BIRTH, date(1982, 4, 11))
    assert range_span(Span(BIRTH, BIRTH), {"low": years(50), "high": years(40)}) is None


def screen_with(*resources: dict, birth: str | None = "1980-04-12") -> fhir3t.ScreeningResult:
    b = copy.deepcopy(P01)
    pat = b["entry"][0]["resource"]
    if birth is None:
        pat.pop("birthDate")
    else:
        pat["birthDate"] = birth
    b["entry"] += [{"resource": r} for r in resources]
    (r,) = fhir3t.screen([], as_of=AS_OF, problems=Problems(), documents=[("p01.json", b)])
    return r


def cancer(**dates) -> dict:
    return {"resourceType": "Condition", "id": "ca", "subject": {"reference": "Patient/p01"},
            "clinicalStatus": {"coding": [{"system": CLIN, "code": "resolved"}]},
            "code": {"coding": [{"system": ICD10, "code": "C50.9"}], "text": "breast cancer"}, **dates}


@pytest.mark.parametrize("offset, want", [(-1, "not-met"), (0, "met"), (1, "met")])
def test_an_onset_age_in_days_on_the_window_edge(offset, want):
    days = (WINDOW_START - BIRTH).days + offset
    r = screen_with(cancer(onsetAge=years(days, "d")))
    assert r.by_id("E6-malignancy").result == want


@pytest.mark.parametrize("dates, want", [
    ({"onsetAge": years(44)}, "met"),  # 2024-04-12..2025-04-11: inside the 5 years
    ({"onsetAge": years(41)}, "unknown"),  # 2021-04-12..2022-04-11: straddles 2021-11-16
    ({"onsetAge": years(40)}, "not-met"),  # 2020-04-12..2021-04-11: before it
    ({"onsetAge": years(30), "abatementAge": years(44)}, "met"),
    ({"onsetRange": {"low": years(42), "high": years(43)}}, "met"),
    ({"onsetRange": {"low": years(30), "high": years(35)}}, "not-met"),
    ({"onsetString": "in her forties"}, "unknown"),
])
def test_age_shaped_onsets_and_abatements_are_dated_from_the_birth_date(dates, want):
    r = screen_with(cancer(**dates))
    assert r.by_id("E6-malignancy").result == want


def test_an_age_without_a_birth_date_dates_nothing():
    r = screen_with(cancer(onsetAge=years(40)), birth=None)
    assert r.by_id("E6-malignancy").result == "unknown"


def test_a_partial_birth_date_widens_the_onset():
    assert screen_with(cancer(onsetAge=years(44)), birth="1980").by_id("E6-malignancy").result == "met"
    assert screen_with(cancer(onsetAge=years(41)), birth="1980").by_id("E6-malignancy").result == "unknown"


def history(**dates) -> dict:
    return {"resourceType": "Condition", "id": "hx", "subject": {"reference": "Patient/p01"},
            "clinicalStatus": {"coding": [{"system": CLIN, "code": "active"}]},
            "code": {"coding": [{"system": ICD10, "code": "Z85.3", "display": "Personal history of malignant neoplasm of breast"}],
                     "text": "history of breast cancer"}, **dates}


@pytest.mark.parametrize("dates, want", [
    ({"onsetDateTime": "2020-01-10", "abatementDateTime": "2020-06-30", "recordedDate": "2026-10-01"}, "not-met"),
    ({"onsetDateTime": "2021-11-15", "abatementDateTime": "2021-11-15"}, "not-met"),  # the day before the window
    ({"onsetDateTime": "2021-11-16T00:05:00+08:00"}, "met"),  # its first day, written in Hangzhou time
    ({"recordedDate": "2026-10-01"}, "unknown"),  # a history code's recordedDate is not the cancer's date
])
def test_a_history_code_dated_outside_the_window_cannot_keep_e6_unknown(dates, want):
    r = screen_with(history(**dates))
    assert r.by_id("E6-malignancy").result == want


@pytest.mark.parametrize("day, want", [("2026-08-23", "not-met"), ("2026-08-24", "unknown"), ("2026-11-16", "unknown")])
def test_an_unreadable_vaccination_counts_only_if_it_may_be_in_the_window(day, want):
    """E12's window is 84 days: 2026-08-24..2026-11-16. A vaccination whose status cannot be read counts
    only if its date may fall in it."""
    vax = {"resourceType": "Immunization", "id": "v9", "status": "Completed", "patient": {"reference": "Patient/p01"},
           "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "141"}]}, "occurrenceDateTime": day}
    assert screen_with(vax).by_id("E12-vaccination").result == want
