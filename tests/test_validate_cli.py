"""`fhir3t validate`: exit codes and output formats."""
from __future__ import annotations

import importlib.util
import json
import re
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
    status = next(i for i, line in enumerate(out) if "observations.ndjson:3 Observation.status" in line)
    assert out[status - 1].startswith("error") and "1×" in out[status - 1] and "'done'" in out[status - 1]
    assert out[-1].startswith("checked 5 document(s) (4 resource(s) in all): 5 error(s)")


def test_text_groups_issues_by_kind_and_min_severity_filters(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """600 bad codes on one element read as one line with a count; the JSON keeps every issue."""
    lines = "".join(json.dumps({"resourceType": "Patient", "gender": f"g{i}"}) + "\n" for i in range(600))
    (tmp_path / "p.ndjson").write_text(lines + json.dumps({"resourceType": "Patient", "telecom": [
        {"system": "email", "value": "a@b"}], "extension": [{"url": "http://hospital.example/x", "valueString": "v"}]}) + "\n")
    assert cli.main(["validate", str(tmp_path / "p.ndjson")]) == EXIT_FINDINGS
    out = capsys.readouterr().out.splitlines()
    heads = [line for line in out if not line.startswith(" ")]
    assert heads[0].startswith("error") and "600×" in heads[0] and "code-invalid" in heads[0]
    assert sum("... and 595 more" in line for line in out) == 1
    assert any(line.startswith("warning") and "extension" in line for line in heads)
    assert cli.main(["validate", "--min-severity", "error", str(tmp_path / "p.ndjson")]) == EXIT_FINDINGS
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]
    rc, oo = run_json(capsys, str(tmp_path / "p.ndjson"))
    assert rc == EXIT_FINDINGS
    assert sum(i["severity"] == "error" for i in oo["issue"]) == 600
    assert all(i["expression"] == ["Patient.gender"] for i in oo["issue"] if i["severity"] == "error")
    assert cli.main(["validate", "--allow-extension-domain", "http://hospital.example/", str(tmp_path / "p.ndjson")]) == 1
    assert "0 warning(s)" in capsys.readouterr().out.splitlines()[-1]


def test_screening_bundle_is_summarised_not_flooded(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """fhir3t's own screening Bundle: the evidence references are one information line, and the
    summary counts the entries (it used to print 665 warnings and 'checked 1 resource(s)')."""
    out_file = tmp_path / "s.json"
    assert cli.main(["screen", str(Path(__file__).parents[1] / "samples" / "screening"), "--as-of", "2026-11-16",
                     "--emit", str(out_file)]) in (0, 3)
    capsys.readouterr()
    assert cli.main(["validate", str(out_file)]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    heads = [line for line in out if not line.startswith(" ")]
    assert len(heads) == 2 and heads[0].startswith("information") and "outside this Bundle" in heads[0]
    n = len(json.loads(out_file.read_text())["entry"])
    assert f"with {n} Bundle entries" in heads[1] and "0 error(s), 0 warning(s)" in heads[1]
    assert cli.main(["validate", "--strict-refs", "--min-severity", "error", str(out_file)]) == EXIT_FINDINGS


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


def test_issue_texts_are_said_in_the_run_language_and_diagnostics_stay_english(capsys: pytest.CaptureFixture) -> None:
    """zh-CN: each issue's details.text and the grouped report are Chinese; diagnostics, codes and expressions are
    the English ones (programs and the HL7 comparisons read them). English adds no details (byte-identical)."""
    bad = str(DATA / "transaction-bad.json")
    rc, english = run_json(capsys, bad)
    assert all("details" not in i for i in english["issue"])
    assert cli.main(["--lang", "zh-CN", "validate", "--format", "json", bad]) == rc
    chinese = json.loads(capsys.readouterr().out)
    assert [(i["severity"], i["code"], i["diagnostics"], i.get("expression")) for i in chinese["issue"]] == \
        [(i["severity"], i["code"], i["diagnostics"], i.get("expression")) for i in english["issue"]]
    assert all(re.search(r"[\u4e00-\u9fff]", i["details"]["text"]) for i in chinese["issue"])
    assert all(i["details"]["text"].startswith(bad) for i in chinese["issue"][:-1])  # the source, as in diagnostics
    assert validate_resource(chinese) == []  # still a valid OperationOutcome
    assert cli.main(["--lang", "zh-CN", "validate", str(DATA / "observations.ndjson")]) == EXIT_FINDINGS
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("已检查 5 个文档（共 4 个资源）：5 个错误")
    assert any(line.startswith("error") and re.search(r"[\u4e00-\u9fff]", line) for line in out)
