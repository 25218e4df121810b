"""The Spark runner gives the single-machine results (skipped unless pyspark is installed)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import fhir3t
from conftest import ROOT

pytest.importorskip("pyspark")
pytestmark = pytest.mark.spark

from fhir3t import spark as fspark  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
import population  # noqa: E402


@pytest.fixture(scope="module")
def session():
    s = fspark.session("local[2]", app="fhir3t-test")
    yield s
    s.stop()


def run_both(session, inputs: list[Path], out: Path, as_of: str) -> tuple[dict, dict]:
    job, _ = fspark.make_job([str(p) for p in inputs], fspark.date.fromisoformat(as_of), None, [])
    counts = fspark.run(session, [str(p) for p in inputs], str(out), job, fspark.read_types(job), partitions=3)
    on_spark = {r["patient"]: r for r in fspark.read_results(out)}
    assert counts["results"] == len(on_spark)
    single = {r.patient: r.to_dict() for r in fhir3t.screen(inputs, as_of=as_of)}
    return on_spark, single


def test_samples_ndjson_same_results_as_screen(session, tmp_path: Path) -> None:
    on_spark, single = run_both(session, [ROOT / "tests" / "data" / "ndjson"], tmp_path / "out", "2026-06-15")
    assert len(single) == 3
    assert on_spark == single


def test_generated_population_same_results_as_screen(session, tmp_path: Path) -> None:
    population.generate(400, tmp_path / "pop", seed=11, chunk=200, lines_per_file=4000, hospital_fraction=0.25)
    on_spark, single = run_both(session, [tmp_path / "pop" / "fhir"], tmp_path / "out", "2026-11-16")
    assert len(single) == 400
    assert {r["status"] for r in single.values()} == {"eligible", "ineligible", "candidate"}
    assert on_spark == single


def test_results_are_written_sorted_by_patient_and_problems_named(session, tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    src = (ROOT / "tests" / "data" / "ndjson" / "Observation.ndjson").read_text(encoding="utf-8")
    (data / "Observation.ndjson").write_text(src + '{"resourceType": "Observation", "status": \n', encoding="utf-8")
    for name in ("Patient.ndjson", "Condition.ndjson"):
        (data / name).write_text((ROOT / "tests" / "data" / "ndjson" / name).read_text(encoding="utf-8"), encoding="utf-8")
    job, _ = fspark.make_job([str(data)], fspark.date.fromisoformat("2026-06-15"), None, [])
    fspark.run(session, [str(data)], str(tmp_path / "out"), job, fspark.read_types(job), partitions=2)
    patients = [r["patient"] for r in fspark.read_results(tmp_path / "out")]
    assert patients == sorted(patients) and len(patients) == 3
    problems = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "out" / "problems").glob("part-*"))
    assert "not valid JSON" in problems and "Observation.ndjson" in problems
