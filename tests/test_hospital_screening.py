"""The engine against the hospital-shaped corpus (tests/hospital.py): Chinese LIS panels with
components, local codes with Chinese display text, +08:00 times around window edges, RxNorm product
codes, DLCO in the units lung-function systems write, Chinese grade strings, records split over a
multi-system export. The truth comes from the spec, not from fhir3t (see tests/hospital.py).
No patient may come out eligible who is not, and no criterion may be answered outside what the
truth accepts, whichever layout the export has."""
from __future__ import annotations

import sys

import pytest

import hospital
from conftest import ROOT
from fhir3t.api import screen as screen_files
from fhir3t.errors import Problems

sys.path.insert(0, str(ROOT / "benchmarks"))
from check_truth import compare


@pytest.fixture(scope="module")
def corpus():
    return hospital.corpus(seed=0)


@pytest.mark.parametrize("layout", ["ndjson", "bundles"])
def test_no_false_eligible_and_every_answer_accepted(corpus, layout, tmp_path):
    (hospital.write_ndjson if layout == "ndjson" else hospital.write_bundles)(corpus, tmp_path)
    results = [r.to_dict() for r in screen_files([tmp_path], as_of=hospital.AS_OF, problems=Problems())]
    report = compare(results, [c.truth() for c in corpus])
    assert report["false_eligible"] == [], report["false_eligible"][:5]
    assert not report["missing"] and not report["duplicated"]
    assert report["wrong"] == [], report["wrong"][:5]
