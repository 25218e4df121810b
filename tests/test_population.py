"""benchmarks/population.py writes what it says: deterministic whatever the worker count, split at
the line count, a truth line per patient, patients spread over two systems, valid FHIR R4."""
from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from fhir3t.validate import validate_resource

sys.path.insert(0, str(ROOT / "benchmarks"))
import population


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def lines(folder: Path) -> list[dict]:
    out = []
    for p in sorted(folder.rglob("*.ndjson*")):
        opener = gzip.open if p.name.endswith(".gz") else open
        with opener(p, "rt", encoding="utf-8") as fh:
            out.extend(json.loads(x) for x in fh if x.strip())
    return out


@pytest.fixture(scope="module")
def pop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pop")
    population.generate(600, out, seed=7, jobs=1, chunk=200, lines_per_file=5000, hospital_fraction=0.1)
    return out


def test_same_seed_same_bytes_for_any_number_of_jobs(pop: Path, tmp_path: Path) -> None:
    population.generate(600, tmp_path, seed=7, jobs=2, chunk=200, lines_per_file=5000, hospital_fraction=0.1)
    assert digest(tmp_path) == digest(pop)
    other = tmp_path / "other"
    population.generate(600, other, seed=8, jobs=1, chunk=200, lines_per_file=5000, hospital_fraction=0.1)
    assert digest(other / "fhir") != digest(pop / "fhir")


def test_files_are_type_split_and_cut_at_the_line_count(pop: Path) -> None:
    files = sorted((pop / "fhir").glob("*.ndjson"))
    for f in files:
        rows = f.read_text(encoding="utf-8").splitlines()
        assert 0 < len(rows) <= 5000
        assert {json.loads(r)["resourceType"] for r in rows} == {f.name.split(".")[0]}
    obs = [f for f in files if f.name.startswith("Observation.0000.")]
    assert len(obs) >= 2  # 200 patients x ~56 Observations: more than one part


def test_about_100_resources_per_patient_and_a_truth_line_each(pop: Path) -> None:
    res = lines(pop / "fhir")
    patients = [r["id"] for r in res if r["resourceType"] == "Patient"]
    truth = [json.loads(x) for x in (pop / "truth.ndjson").read_text(encoding="utf-8").splitlines()]
    assert [t["patient"] for t in truth] == [f"Patient/p{i:07d}" for i in range(600)]
    assert set(patients) == {t["patient"].split("/")[1] for t in truth}
    assert 85 <= len(res) / 600 <= 115
    kinds = {t["scenario"] for t in truth}
    assert {"population-background", "population-dm"} <= kinds and len(kinds) > 10  # hospital scenarios mixed in
    for t in truth:
        assert t["status"] == population.status_of(t["criteria"]) or t["scenario"] not in ("population-background", "population-dm")
        if t["scenario"] == "population-background":
            assert t["status"] == "ineligible" and t["criteria"]["I2-dm"] == "not-met"


def test_some_patients_are_spread_over_a_second_system(pop: Path) -> None:
    lis = lines(pop / "fhir" / "lis")
    main_ids = {r["subject"]["reference"].split("/")[-1] for f in (pop / "fhir").glob("Observation.*.ndjson")
                for r in map(json.loads, f.read_text(encoding="utf-8").splitlines())}
    lis_ids = {r["subject"]["reference"].split("/")[-1] for r in lis if "subject" in r}
    assert lis and all(r["subject"]["reference"].startswith(("http://", "Patient/")) for r in lis if "subject" in r)
    both = main_ids & lis_ids
    assert 0.03 * 600 < len(both) < 0.5 * 600  # vitals here, labs there


def test_dm_patients_carry_the_screening_tests_their_truth_describes(pop: Path) -> None:
    truth = {t["patient"]: t for t in map(json.loads, (pop / "truth.ndjson").read_text(encoding="utf-8").splitlines())}
    by_patient: dict[str, list[dict]] = {}
    for r in lines(pop / "fhir"):
        ref = (r.get("subject") or r.get("patient") or {}).get("reference", "")
        by_patient.setdefault("Patient/" + ref.split("/")[-1], []).append(r)
    dm = [t for t in truth.values() if t["scenario"] == "population-dm"]
    assert len(dm) >= 15
    for t in dm:
        codes = {c["code"] for r in by_patient[t["patient"]] if r["resourceType"] == "Observation" for c in r["code"]["coding"]}
        assert ("82424-3" in codes) == (t["criteria"]["I3-mda5"] != "unknown" or any(
            r.get("valueString") == "positive" for r in by_patient[t["patient"]]))
        assert ("5196-1" in codes) == (t["criteria"]["E7-hbv"] != "unknown")


def test_every_resource_is_valid_fhir_r4(pop: Path) -> None:
    seen: dict[tuple, dict] = {}
    for r in lines(pop / "fhir"):
        seen.setdefault((r["resourceType"], tuple(sorted(r))), r)
    errors = {k: [str(i) for i in validate_resource(r) if i.is_error][:2] for k, r in seen.items()}
    assert not {k: v for k, v in errors.items() if v}


def test_gzip_output_holds_the_same_lines(tmp_path: Path) -> None:
    population.generate(50, tmp_path / "plain", seed=1, chunk=50)
    population.generate(50, tmp_path / "gz", seed=1, chunk=50, gz=True)
    assert all(p.name.endswith(".gz") for p in (tmp_path / "gz" / "fhir").rglob("*.ndjson*"))
    assert lines(tmp_path / "gz" / "fhir") == lines(tmp_path / "plain" / "fhir")
