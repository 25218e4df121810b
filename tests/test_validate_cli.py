"""`fhir3t validate`: exit codes and output formats."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import fhir3t.cli as cli
from fhir3t.errors import EXIT_FINDINGS, EXIT_INPUT_FATAL, EXIT_OK, EXIT_USAGE
from fhir3t.validate import validate_resource

DATA = Path(__file__).parent / "data" / "validate"


@pytest.fixture(autouse=True)
def _only_available_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The other subcommands may not exist yet in a partial checkout; validate must still run."""
    present = {k: v for k, v in cli.COMMANDS.items() if importlib.util.find_spec(f"fhir3t.cli.{v}")}
    monkeypatch.setattr(cli, "COMMANDS", present)


def run_json(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict]:
    rc = cli.main(["validate", "--format", "json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_clean_file_exits_0_with_valid_outcome(capsys: pytest.CaptureFixture) -> None:
    rc, oo = run_json(capsys, str(DATA / "transaction-ok.json"), str(DATA / "adverse-event-ok.json"))
    assert rc == EXIT_OK
    assert oo["resourceType"] == "OperationOutcome"
    assert not [i for i in oo["issue"] if i["severity"] in ("error", "fatal")]
    assert validate_resource(oo) == []  # the report is itself valid FHIR


def test_errors_exit_1_and_report_every_issue(capsys: pytest.CaptureFixture) -> None:
    rc, oo = run_json(capsys, str(DATA / "transaction-bad.json"))
    assert rc == EXIT_FINDINGS
    assert validate_resource(oo) == []
    exprs = {e for i in oo["issue"] if i["severity"] == "error" for e in i.get("expression", [])}
    assert {"Bundle.entry[1].fullUrl", "Bundle.entry[1].resource.status", "Bundle.entry[4].resource.birthDate",
            "Bundle.entry[5].resource"} <= exprs
    assert all(i["diagnostics"].startswith(str(DATA / "transaction-bad.json")) for i in oo["issue"][:-1])


def test_text_format(capsys: pytest.CaptureFixture) -> None:
    rc = cli.main(["validate", str(DATA / "observations.ndjson")])
    out = capsys.readouterr().out.splitlines()
    assert rc == EXIT_FINDINGS
    assert any("observations.ndjson:3 Observation.status" in line and line.startswith("error") for line in out)
    assert out[-1].startswith("checked 5 document(s) (4 resource(s) in all): 5 error(s)")


def test_missing_path_exits_4(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert cli.main(["validate", str(tmp_path / "nope.json")]) == EXIT_INPUT_FATAL
    assert "nope.json" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate"])
    assert exc.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate", "--format", "xml", str(DATA / "transaction-ok.json")])
    assert exc.value.code == EXIT_USAGE


def test_bad_input_is_an_issue_not_a_traceback(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text("{")
    rc, oo = run_json(capsys, str(p), "--max-bytes", "1000")
    assert rc == EXIT_FINDINGS and oo["issue"][0]["severity"] == "fatal"
