"""`fhir3t screen` end to end: the JSON contract, the table, exit codes, --out, --emit."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import SAMPLES
from fhir3t.cli import main

SCREENING = SAMPLES / "screening"
CMAP = str(SAMPLES / "conceptmaps" / "hospital-local.json")
BASE = ["screen", str(SCREENING), "--as-of", "2026-11-16", "--concept-map", CMAP, "--no-progress"]


def test_json_contract(capsys):
    assert main([*BASE, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list) and len(data) == 25
    for obj in data:
        assert set(obj) >= {"patient", "status", "criteria"}
        assert obj["status"] in {"eligible", "ineligible", "candidate"}
        assert len(obj["criteria"]) == 22
        for c in obj["criteria"]:
            assert set(c) >= {"id", "kind", "result", "evidence", "reason"}
            assert c["kind"] == ("inclusion" if c["id"].startswith("I") else "exclusion")
            assert c["result"] in {"met", "not-met", "unknown"}
            assert isinstance(c["evidence"], list) and all(isinstance(e, str) for e in c["evidence"])
            assert c["reason"]
    p01 = next(o for o in data if o["patient"] == "Patient/p01")
    assert p01["criteria"][0] == {"id": "I1-age", "kind": "inclusion", "result": "met", "evidence": ["Patient/p01"],
                                  "reason": p01["criteria"][0]["reason"], "requires_review": False}


def test_ndjson_is_one_object_per_line_and_matches_json(capsys):
    assert main([*BASE, "--format", "ndjson"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert main([*BASE, "--format", "json"]) == 0
    assert [json.loads(line) for line in lines] == json.loads(capsys.readouterr().out)


def test_table_lists_each_patient_and_counts(capsys):
    assert main(BASE) == 0
    out = capsys.readouterr().out
    assert "Patient/p03" in out and "E7-hbv" in out
    assert "25 patients: 4 eligible, 18 ineligible, 3 candidate" in out


def test_out_file(tmp_path, capsys):
    target = tmp_path / "r.json"
    assert main([*BASE, "--format", "json", "--out", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert len(json.loads(target.read_text())) == 25


def test_exit_codes(tmp_path, capsys):
    # skipped input -> 3, rest still screened
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "p.json").write_text((SCREENING / "01-eligible-classic.json").read_text())
    assert main(["screen", str(tmp_path), "--as-of", "2026-11-16", "--format", "json", "--no-progress"]) == 3
    captured = capsys.readouterr()
    assert "bad.json" in captured.err and "not valid JSON" in captured.err and "Traceback" not in captured.err
    assert json.loads(captured.out)[0]["patient"] == "Patient/p01"
    # no such path -> 4
    assert main(["screen", str(tmp_path / "missing")]) == 4
    assert "no such file" in capsys.readouterr().err
    # folder without patients -> 4
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["screen", str(empty)]) == 4
    # a bad concept map -> 4 with the file named
    assert main(["screen", str(SCREENING), "--concept-map", str(tmp_path / "bad.json")]) == 4
    assert "bad.json" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["screen", str(SCREENING), "--as-of", "16/11/2026"])
    assert exc.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert main(["screen"]) == 2  # one sentence, no usage block
    err = capsys.readouterr().err
    assert "give PATH" in err and "usage:" not in err


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["screen", "--help"])
    out = capsys.readouterr().out
    for word in ("--as-of", "--d1", "--concept-map", "--format", "Exit codes"):
        assert word in out


def test_console_script_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "fhir3t", "screen", str(SCREENING / "05-candidate-partial-birthdate.json"),
                           "--as-of", "2026-11-16", "--format", "ndjson"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "candidate"


def test_jobs_option_gives_the_same_json(capsys):
    assert main([*BASE, "--format", "json", "--jobs", "1"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main([*BASE, "--format", "json", "--jobs", "2"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert sorted(one, key=lambda o: o["patient"]) == sorted(two, key=lambda o: o["patient"])
    for bad in ("x", "0", "1000000"):  # a usage error (exit 2): more processes than MAX_JOBS would never start
        with pytest.raises(SystemExit) as exc:
            main([*BASE, "--jobs", bad])
        assert exc.value.code == 2
    assert "--jobs: must be between 1 and 64, not 1000000" in capsys.readouterr().err


def test_unwritable_emit_path_is_a_usage_error(capsys, tmp_path):
    assert main([*BASE, "--format", "ndjson", "--emit", str(tmp_path / "no" / "such" / "b.json")]) == 2
    assert "cannot write" in capsys.readouterr().err
