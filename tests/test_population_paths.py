"""Every way of reading a population gives the same answers (issue 11): one generated population of
2 000 patients as type-split NDJSON, screened through the in-memory store, the on-disk store and two
processes, and re-written as a mixed export (half the patients as one Bundle each, a few patients as
one file per resource, the rest and the second system's labs as NDJSON). Statuses, criterion results and
evidence must be identical, and equal to the generator's truth."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import ROOT
from fhir3t.api import screen as screen_files
from fhir3t.errors import Problems
from fhir3t.fhirutil import patient_reference

sys.path.insert(0, str(ROOT / "benchmarks"))
import population
from check_truth import compare

AS_OF = "2026-11-16"


def _summary(results) -> dict:
    return {r.patient: (r.status, tuple((c.id, c.result, tuple(c.evidence)) for c in r.criteria)) for r in results}


@pytest.fixture(scope="module")
def pop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pop2k")
    population.generate(2000, out, seed=5, jobs=1, chunk=500, lines_per_file=40_000, hospital_fraction=0.1)
    return out


@pytest.fixture(scope="module")
def reference(pop: Path):
    results = list(screen_files([pop / "fhir"], as_of=AS_OF, store="memory", problems=Problems()))
    return results, _summary(results)


def test_the_population_is_screened_as_its_truth_says(pop, reference):
    results, _ = reference
    truth = [json.loads(line) for line in (pop / "truth.ndjson").read_text().splitlines()]
    report = compare([r.to_dict() for r in results], truth)
    assert len(results) == 2000 and not report["missing"] and not report["duplicated"]
    assert report["false_eligible"] == [] and report["wrong"] == [], report["wrong"][:3]
    assert {r.status for r in results} == {"eligible", "candidate", "ineligible"}


@pytest.mark.parametrize("how", [{"store": "disk"}, {"store": "auto"}, {"jobs": 2}])
def test_disk_store_and_two_processes_give_the_in_memory_answers(pop, reference, how):
    got = _summary(screen_files([pop / "fhir"], as_of=AS_OF, problems=Problems(), **how))
    assert got == reference[1]


def _mixed_export(src: Path, dst: Path) -> int:
    """Half the patients as one Bundle each (every tenth of those as a file per resource), the rest NDJSON."""
    by_patient: dict[str, list[dict]] = defaultdict(list)
    rest: dict[str, list[str]] = defaultdict(list)
    for path in sorted((src / "fhir").rglob("*.ndjson")):
        nested = path.parent != src / "fhir"
        for line in path.read_text(encoding="utf-8").splitlines():
            res = json.loads(line)
            ref = f"Patient/{res['id']}" if res["resourceType"] == "Patient" else patient_reference(res) or ""
            m = re.fullmatch(r"Patient/(p(\d+))", ref)
            if nested or m is None or int(m.group(2)) % 2:
                rest[str(path.relative_to(src / "fhir"))].append(line)
                continue
            by_patient[m.group(1)].append(res)
    for other in (src / "fhir").rglob("*.json"):  # the hospital's ConceptMap travels with the export
        (dst / other.relative_to(src / "fhir")).write_bytes(other.read_bytes())
    for rel, lines in rest.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_text("\n".join(lines) + "\n", encoding="utf-8")
    split = 0
    for key, resources in by_patient.items():
        if int(key[1:]) % 20 == 0:  # one file per resource, in a folder of its own
            split += 1
            for i, res in enumerate(resources):
                (dst / "singles" / key).mkdir(parents=True, exist_ok=True)
                (dst / "singles" / key / f"{i:03d}.json").write_text(json.dumps(res), encoding="utf-8")
        else:
            bundle = {"resourceType": "Bundle", "type": "collection",
                      "entry": [{"fullUrl": f"urn:uuid:{key}-{i}", "resource": r} for i, r in enumerate(resources)]}
            (dst / "bundles").mkdir(exist_ok=True)
            (dst / "bundles" / f"{key}.json").write_text(json.dumps(bundle), encoding="utf-8")
    return split


def test_a_mixed_export_of_bundles_single_files_and_ndjson_gives_the_same_answers(pop, reference, tmp_path):
    split = _mixed_export(pop, tmp_path)
    assert split >= 40 and len(list((tmp_path / "bundles").glob("*.json"))) >= 800
    problems = Problems()
    got = _summary(screen_files([tmp_path], as_of=AS_OF, problems=problems))
    assert got == reference[1]


def test_a_killed_run_leaves_nothing_that_changes_or_clutters_the_next(pop, reference, tmp_path):
    """SIGKILL mid-run: no cleanup can run. The next run reads only its own store, gives the same
    answers, and removes the killed run's folder."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-m", "fhir3t", "screen", str(pop / "fhir"), "--as-of", AS_OF, "--store", "disk",
           "--jobs", "1", "--format", "ndjson", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp.glob("fhir3t-group-*/0*.ndjson")) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    [left] = list(tmp.glob("fhir3t-group-*"))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert out.returncode in (0, 1), out.stderr[-2000:]
    got = {r["patient"]: r for r in map(json.loads, out.stdout.splitlines())}
    want = {r.patient: r.to_dict() for r in reference[0]}
    assert got == want
    assert not left.exists() and not list(tmp.glob("fhir3t-*"))
