"""CTCAE v5.0 grading at every boundary kind, unit conversion, reference range vs default limits."""
from __future__ import annotations

from decimal import Decimal

import pytest

from fhir3t.errors import Problems
from fhir3t.safety.grading import grade
from safety_helpers import lab, one, safety_engine

D = Decimal


def lab_test(tid: str):
    return next(t for t in safety_engine().config.tests if t.id == tid)


@pytest.mark.parametrize("tid, uln, cases", [
    # uln multiples: > ULN – 3×, > 3 – 5×, > 5 – 20×, > 20×
    ("alt", D(40), [(D(40), 0), (D("40.01"), 1), (D(120), 1), (D("120.01"), 2), (D(200), 2), (D("200.01"), 3),
                    (D(800), 3), (D("800.01"), 4)]),
    ("bilirubin", D(20), [(D(20), 0), (D(30), 1), (D("30.01"), 2), (D(60), 2), (D("60.01"), 3), (D(200), 3),
                          (D("200.01"), 4)]),
    ("creatinine", D(100), [(D(150), 1), (D("150.1"), 2), (D(300), 2), (D("300.1"), 3), (D(600), 3), (D("600.1"), 4)]),
    # absolute bounds above the ULN (hyperkalemia)
    ("potassium", D("5.3"), [(D("5.3"), 0), (D("5.4"), 1), (D("5.5"), 1), (D("5.51"), 2), (D("6.0"), 2),
                             (D("6.01"), 3), (D("7.0"), 3), (D("7.01"), 4)]),
])
def test_increase_boundaries(tid, uln, cases):
    t = lab_test(tid)
    assert [(v, grade(t, v, uln)) for v, _ in cases] == cases


@pytest.mark.parametrize("tid, lln, cases", [
    ("neutrophils", D("1.8"), [(D("1.8"), 0), (D("1.79"), 1), (D("1.5"), 1), (D("1.49"), 2), (D("1.0"), 2),
                               (D("0.99"), 3), (D("0.5"), 3), (D("0.49"), 4)]),
    ("platelets", D(125), [(D(125), 0), (D(75), 1), (D("74.9"), 2), (D(50), 2), (D(49), 3), (D(25), 3), (D(24), 4)]),
    ("hemoglobin", D(115), [(D(115), 0), (D(100), 1), (D("99.9"), 2), (D(80), 2), (D("79.9"), 3), (D(10), 3)]),
])
def test_decrease_boundaries(tid, lln, cases):
    t = lab_test(tid)
    assert [(v, grade(t, v, lln)) for v, _ in cases] == cases


def test_exactly_three_times_uln_is_grade_1_and_just_above_is_grade_2_end_to_end():
    o = one(lab("1742-6", "2026-02-01", 120, high=40), lab("1742-6", "2026-02-15", 40, high=40))
    assert [f.grade for f in o.findings] == [1]
    o = one(lab("1742-6", "2026-02-01", 120.1, high=40))
    assert [f.grade for f in o.findings] == [2]


def test_value_inside_lab_range_is_grade_0_even_below_an_absolute_bound():
    """LLN 1.2 (lab's own range): 1.3 is inside the range → no AE, though 1.3 < 1.5."""
    o = one(lab("751-8", "2026-02-01", 1.3, unit="10*9/L", low=1.2, high=6))
    assert o.findings == ()


def test_creatinine_mg_dl_converted_exactly_at_the_boundary():
    """ULN 1.0 mg/dL = 88.4 µmol/L; 1.5 mg/dL = exactly 1.5 × ULN → grade 1; 1.51 → grade 2."""
    o = one(lab("2160-0", "2026-02-01", 1.5, unit="mg/dL", high=1.0), lab("2160-0", "2026-02-15", 0.9, unit="mg/dL", high=1.0),
            lab("2160-0", "2026-03-01", 1.51, unit="mg/dL", high=1.0))
    assert [f.grade for f in o.findings] == [1, 2]
    assert "133.484 umol/L" in o.findings[1].detail


def test_mixed_units_range_in_other_unit_than_value():
    """Value in mg/dL, range in µmol/L (text unit with micro sign): converted to one unit first."""
    r = lab("2160-0", "2026-02-01", 2.0, unit="mg/dL")  # 176.8 µmol/L
    r["referenceRange"] = [{"high": {"value": 88.4, "unit": "µmol/L"}}]  # 2.0 × ULN → grade 2
    assert [f.grade for f in one(r).findings] == [2]


def test_haemoglobin_g_dl_and_counts_10_3_ul():
    o = one(lab("718-7", "2026-02-01", 9.9, unit="g/dL", low=11.5),  # 99 g/L → grade 2
            lab("777-3", "2026-02-01", 74, unit="10*3/uL", low=125),  # 74 10*9/L → grade 2
            lab("731-0", "2026-02-01", 450, unit="/uL", low=1100))  # 0.45 10*9/L → grade 3
    assert {f.term: f.grade for f in o.findings} == {"Anemia": 2, "Platelet count decreased": 2,
                                                     "Lymphocyte count decreased": 3}


def test_unit_text_aliases_without_ucum_code():
    o = one(lab("777-3", "2026-02-01", 60, unit="x10^9/L", ucum=False))  # default LLN 125 → grade 2
    assert [f.grade for f in o.findings] == [2]


def test_reference_range_wins_over_default_uln():
    """Female default ALT ULN 40: 100 U/L is 2.5 × (grade 1); with the lab's ULN 30 it is 3.33 × (grade 2)."""
    assert [f.grade for f in one(lab("1742-6", "2026-02-01", 100)).findings] == [1]
    assert [f.grade for f in one(lab("1742-6", "2026-02-01", 100, high=30)).findings] == [2]


def test_default_range_by_sex():
    """Default creatinine ULN: male 97, female 73 µmol/L. 90 is an AE for a woman only."""
    from factory import patient

    r = lab("2160-0", "2026-02-01", 90, unit="umol/L")
    assert [f.grade for f in one(r, pat=patient(gender="female")).findings] == [1]
    assert one(r, pat=patient(gender="male")).findings == ()
    assert one(r, pat=patient(gender=None)).findings == ()  # unknown sex: the wider (male) limit


@pytest.mark.parametrize("obs, message", [
    (lab("1742-6", "2026-02-01", 300, unit=None), "missing unit"),
    (lab("1742-6", "2026-02-01", "lots"), "unparseable value 'lots'"),
    (lab("1742-6", None, 300), "no date"),
    (lab("1742-6", "2026-02", 300), "not a full day"),
    (lab("2160-0", "2026-02-01", 3, unit="mg/L"), "unit 'mg/L' cannot be converted to umol/L"),
    (lab("1742-6", "2026-02-01", 300, valueQuantity={"value": 300, "unit": "U/L", "comparator": ">"}), "comparator"),
])
def test_bad_input_is_skipped_with_a_warning_naming_the_resource(obs, message):
    problems = Problems()
    o = one(obs, problems=problems)
    assert o.findings == ()  # never a silent AE
    [p] = [p for p in problems if p.skipped]
    assert message in p.message
    assert (obs["id"] in p.message) and "test.json#entry[" in p.where
