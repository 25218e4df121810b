"""What every subcommand shares: -v anywhere, JSON logs with a run id and no patient data, usage errors
in one sentence with a suggestion, help texts that say what the options do."""
from __future__ import annotations

import json

import pytest

from conftest import SAMPLES
from fhir3t.cli import main

SCREENING = SAMPLES / "screening"
P01 = str(SCREENING / "01-eligible-classic.json")
P22 = str(SCREENING / "22-local-codes.json")
AS_OF = ["--as-of", "2026-11-16", "--no-progress"]


def usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_verbose_is_accepted_before_and_after_the_subcommand(capsys):
    assert main(["screen", P01, *AS_OF, "--format", "ndjson"]) == 0
    assert "INFO" not in capsys.readouterr().err
    assert main(["screen", P01, *AS_OF, "--format", "ndjson", "-v"]) == 0
    after = capsys.readouterr().err
    assert main(["-v", "screen", P01, *AS_OF, "--format", "ndjson"]) == 0
    before = capsys.readouterr().err
    assert "INFO fhir3t: exit 0" in after and "INFO fhir3t: exit 0" in before


def test_json_logs_one_object_per_line_with_one_run_id_and_no_patient_data(capsys, monkeypatch):
    monkeypatch.setenv("FHIR3T_RUN_ID", "nightly-42")
    code = main(["screen", P01, P22, *AS_OF, "--format", "ndjson", "--log-format", "json", "-v"])
    assert code == 3  # p22's local codes are skipped without the ConceptMap
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert len(lines) >= 4 and {o["run_id"] for o in lines} == {"nightly-42"}
    assert all({"time", "level", "message", "command"} <= set(o) for o in lines)
    start, end = lines[0], lines[-1]
    assert start["event"] == "run-start" and end["event"] == "run-end" and end["exit_code"] == 3
    assert end["patients"] == 2 and end["candidate"] == 1 and end["eligible"] == 1
    # a degraded result (input skipped): the run-end is a warning, and so is each skipped entry
    assert end["level"] == "warning" and end["outcome"] == "input-skipped"
    warnings = [o for o in lines[:-1] if o["level"] == "warning"]
    assert warnings and all("22-local-codes.json#entry[" in o["message"] and o["event"] == "input-skipped" for o in warnings)
    # the patients' names, MRNs and birth dates are in the input and the results, never in the log
    for phi in ("Verhoeven", "MRN-100001", "1980-04-12", "MRN-100022"):
        assert phi in (SCREENING / "01-eligible-classic.json").read_text() + (SCREENING / "22-local-codes.json").read_text()
        assert phi not in captured.err
    assert len(captured.out.splitlines()) == 2  # results still on stdout


def test_json_logs_are_the_default_of_a_config_and_the_run_id_is_random(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FHIR3T_RUN_ID", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[log]\nformat = "json"\n')
    ids = []
    for _ in range(2):
        assert main(["--config", str(cfg), "screen", P01, *AS_OF, "--format", "ndjson"]) == 0
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
        assert [o.get("event") for o in (lines[0], lines[-1])] == ["run-start", "run-end"]
        assert lines[0]["config"] == str(cfg)
        ids.append(lines[0]["run_id"])
    assert ids[0] != ids[1] and all(len(i) == 32 for i in ids)


def test_errors_are_json_too(capsys, tmp_path):
    assert main(["screen", str(tmp_path / "missing"), "--log-format", "json"]) == 4
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert any("no such file" in o["message"] for o in lines) and lines[-1]["exit_code"] == 4


def test_mistyped_option_gets_a_suggestion(capsys):
    err = usage_error(capsys, ["screen", P01, "--as-off", "2026-11-16"])
    assert "unknown option --as-off; did you mean --as-of?" in err and err.startswith("fhir3t screen:")


def test_mistyped_subcommand_gets_a_suggestion(capsys):
    err = usage_error(capsys, ["scren", P01])
    assert "unknown command 'scren'; did you mean 'screen'?" in err


def test_bad_choice_and_missing_value_are_one_sentence(capsys):
    assert "--format 'jsn' is not one of" in usage_error(capsys, ["screen", P01, "--format", "jsn"])
    assert "did you mean 'json'?" in usage_error(capsys, ["screen", P01, "--format", "jsn"])
    assert "--as-of needs a value" in usage_error(capsys, ["screen", P01, "--as-of"])
    assert "expected a date YYYY-MM-DD" in usage_error(capsys, ["screen", P01, "--as-of", "16/11/2026"])


def test_safety_help_says_push_sends_adverse_events(capsys):
    with pytest.raises(SystemExit):
        main(["safety", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    push = out.split("--push URL ", 1)[1][:120]  # the help line (the usage line has "--push URL]")
    assert "AdverseEvents" in push and "ResearchSubject" not in push


def test_report_help_matches_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out
    assert "--server URL" in out and "--push" not in out  # it reads from a server, never writes to one
    assert max(len(line) for line in out.splitlines()) <= 110


def test_every_subcommand_accepts_the_general_options(capsys):
    from fhir3t.cli import build_parser

    parser = build_parser()
    for name, sub in parser.parse_args(["screen"])._commands.items():
        flags = {s for a in sub._actions for s in a.option_strings}
        assert {"-v", "--log-format", "--config", "--no-config"} <= flags, name


def test_safety_says_when_as_of_defaults_to_today(capsys):
    from fhir3t.dates import today_utc

    main(["safety", str(SAMPLES / "safety"), "--format", "json"])
    err = capsys.readouterr().err
    assert f"fhir3t safety: as-of {today_utc()} (today, UTC)" in err
    assert main(["safety", str(SAMPLES / "safety"), "--format", "json", "--as-of", "2026-11-16"]) == 0
    assert "today, UTC" not in capsys.readouterr().err
