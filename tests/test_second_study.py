"""Screening another trial is a new profiles folder, not new Python: a tiny second study
(tests/data/second-study: study.json, three criteria, five value sets) screened through the same CLI."""
from __future__ import annotations

import json

from conftest import ROOT
from factory import bundle, cond, obs, patient
from fhir3t.cli import main

STUDY = ROOT / "tests" / "data" / "second-study"
ICD = "http://hl7.org/fhir/sid/icd-10"


def _write(tmp_path, *resources):
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle(*resources)))
    return path


def test_another_study_screens_with_its_own_criteria(tmp_path, capsys):
    old_ok = _write(tmp_path, patient(birth="1950-01-01"), cond("I10", ICD))
    assert main(["screen", str(old_ok), "--profiles", str(STUDY), "--as-of", "2026-11-16", "--format", "json"]) == 0
    [r] = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in r["criteria"]] == ["I1-age", "I2-hypertension", "E1-diabetes"]
    assert r["status"] == "eligible"


def test_another_study_applies_its_exclusions_and_value_sets(tmp_path, capsys):
    diabetic = _write(tmp_path, patient(birth="1950-01-01"), cond("I10", ICD),
                      obs("4548-4", "2026-06-01", valueQuantity={"value": 7.1, "unit": "%", "code": "%"}))
    assert main(["screen", str(diabetic), "--profiles", str(STUDY), "--as-of", "2026-11-16", "--format", "json"]) == 0
    [r] = json.loads(capsys.readouterr().out)
    e1 = next(c for c in r["criteria"] if c["id"] == "E1-diabetes")
    assert r["status"] == "ineligible" and e1["result"] == "met" and "7.1" in e1["reason"]


def test_another_study_emits_its_own_research_study(tmp_path, capsys):
    young = _write(tmp_path, patient(birth="1990-01-01"), cond("I10", ICD))
    out = tmp_path / "emit.json"
    main(["screen", str(young), "--profiles", str(STUDY), "--as-of", "2026-11-16", "--format", "json", "--emit", str(out)])
    capsys.readouterr()
    study = json.loads(out.read_text())["entry"][0]["resource"]
    assert study["identifier"] == [{"system": "http://clinicaltrials.gov", "value": "NCT00000001"}]
    assert study["title"].startswith("A made-up study")
    assert "3T" not in json.dumps(study)


def test_the_bundled_study_is_back_after(tmp_path, capsys):
    path = _write(tmp_path, patient(birth="1950-01-01"), cond("M33.1", ICD))
    assert main(["screen", str(path), "--as-of", "2026-11-16", "--format", "json"]) in (0, 3)
    [r] = json.loads(capsys.readouterr().out)
    assert len(r["criteria"]) == 22  # the bundled NCT06438679 criteria


def test_a_second_studys_profiles_do_not_change_the_process(tmp_path, capsys):
    """--profiles is a value handed to the Definition, not a process-wide switch: the next command in the
    same process screens the bundled study again."""
    b = _write(tmp_path, patient(birth="1950-01-01"), cond("I10", ICD))
    assert main(["screen", str(b), "--profiles", str(STUDY), "--as-of", "2026-11-16", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["criteria"]) == 3
    main(["screen", str(b), "--as-of", "2026-11-16", "--format", "json"])
    assert len(json.loads(capsys.readouterr().out)[0]["criteria"]) == 22
