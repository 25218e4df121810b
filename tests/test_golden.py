"""Screening results stay identical across refactors: the samples and a synthetic corpus against a snapshot.

The snapshot (tests/data/golden/) was taken with fhir3t 0.1.0 before the pipeline was restructured.
A behaviour change that is meant (a new reading of the spec) regenerates it with
`python tests/data/golden/make_golden.py` from the project folder, in its own commit that says why.
"""
from __future__ import annotations

import random
import sys

import orjson
import pytest

import fhir3t
from conftest import ROOT, SHARED
from fhir3t.errors import Problems

GOLDEN = ROOT / "tests" / "data" / "golden"
AS_OF = "2026-11-16"


def _load(name: str) -> dict[str, dict]:
    return {r["patient"]: r for r in map(orjson.loads, (GOLDEN / f"{name}.ndjson").read_bytes().splitlines())}


def _run(paths, **kw) -> dict[str, dict]:
    out = {}
    for r in fhir3t.screen(paths, as_of=AS_OF, problems=Problems(), **kw):
        assert r.patient not in out, f"{r.patient} screened twice"
        out[r.patient] = r.to_dict()
    return out


def _same(got: dict[str, dict], want: dict[str, dict]) -> None:
    """Every field of the snapshot is there with the same value (fields may be added, never changed)."""
    assert sorted(got) == sorted(want)
    for key in want:
        assert {k: got[key].get(k) for k in want[key]} == want[key], key


@pytest.mark.parametrize("name, paths, kw", [
    ("samples-screening", ["samples/screening"], {}),
    ("samples-screening-nomaps", ["samples/screening"], {"discover_maps": False}),
    ("samples-screening-d1", ["samples/screening"], {"d1": "2026-12-20"}),
    ("ndjson", ["tests/data/ndjson"], {}),
    ("samples-safety", ["samples/safety"], {}),
])
def test_samples_screen_as_in_the_snapshot(name, paths, kw, monkeypatch):
    monkeypatch.chdir(ROOT)
    _same(_run(paths, **kw), _load(name))


def test_synthetic_corpus_screens_as_in_the_snapshot(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_screen import make_patient

    rng = random.Random(7)
    for i in range(120):
        (tmp_path / f"p{i:04d}.json").write_bytes(orjson.dumps(make_patient(i, rng)))
    _same(_run([tmp_path]), _load("synthetic-120"))


def test_real_bulk_export_screens_as_in_the_snapshot():
    bulk = SHARED / "data" / "bulk" / "smart-sample-bulk-10-patients"
    if not bulk.is_dir():
        pytest.skip("../shared/data/bulk is not here")
    _same(_run([bulk]), _load("shared-bulk"))
