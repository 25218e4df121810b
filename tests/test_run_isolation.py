"""A Definition serves many runs (issue 19): what one run is told must not depend on the runs before it.

The read filter shares its verdicts between runs (most labs repeat), so a verdict that told a run about codes
of a system nobody knows must tell the next run too; else a long-lived process (serve, watch, the Python API)
would say it once and never again.
"""
from __future__ import annotations

import json

import pytest

from fhir3t.dates import parse_day
from fhir3t.errors import Problems
from fhir3t.messages import render
from fhir3t.pipeline.base import FileInputs
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.run import Run
from fhir3t.pipeline.screening import screen_files

SYSTEM = "http://his.hospital.example/CodeSystem/lab-items"


def _export(folder, n: int = 3):
    pats, obs = [], []
    for i in range(n):
        pats.append({"resourceType": "Patient", "id": f"q{i}", "birthDate": "1970-01-01", "gender": "female"})
        # the same local lab on every patient: the first is judged, the others share its verdict
        obs.append({"resourceType": "Observation", "id": f"o{i}", "status": "final",
                    "code": {"coding": [{"system": SYSTEM, "code": "GLU-9", "display": "glucose"}]},
                    "subject": {"reference": f"Patient/q{i}"}, "effectiveDateTime": "2026-06-01",
                    "valueQuantity": {"value": 5.1, "unit": "mmol/L"}})
    (folder / "Patient.ndjson").write_text("\n".join(json.dumps(p) for p in pats) + "\n", encoding="utf-8")
    (folder / "Observation.ndjson").write_text("\n".join(json.dumps(o) for o in obs) + "\n", encoding="utf-8")


def _one_run(definition: Definition, folder) -> tuple[list[str], int]:
    problems = Problems()
    run = Run.start(definition, as_of=parse_day("2026-06-15"), problems=problems)
    results = list(screen_files(definition, run, FileInputs(paths=(folder,), store="memory", native="off")))
    assert len(results) == 3
    notes = [render(p.message, "en") if not isinstance(p.message, str) else p.message for p in problems]
    tally = sum(n for (rtype, system), n in run.filter.unknown_systems.items() if system == SYSTEM)
    return [n for n in notes if SYSTEM in n], tally


@pytest.mark.parametrize("runs", [2, 3])
def test_every_run_of_one_definition_hears_of_a_code_system_nobody_knows(tmp_path, runs):
    _export(tmp_path)
    definition = Definition.load()  # fresh: its verdict caches are empty before the first run
    told = [_one_run(definition, tmp_path) for _ in range(runs)]
    first_notes, first_tally = told[0]
    assert len(first_notes) == 1 and first_tally == 3  # said once, counted for each of the three labs
    assert all(t == told[0] for t in told[1:]), told
