"""Logs an operator can alert on (issue 26): `error` for failures, `warning` for degraded results, a stable
`event` name on every JSON record, and a `run-end` record with the exit code and its outcome word."""
from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES
from fake_fhir import FakeFhir, loopback_server, populated
from fhir3t.cli import main
from fhir3t.cli.logs import EVENTS
from fhir3t.errors import OUTCOMES

P01 = str(SAMPLES / "screening" / "01-eligible-classic.json")


def records(err: str) -> list[dict]:
    out = [json.loads(line) for line in err.splitlines()]
    assert all(r["event"] in EVENTS for r in out), [r["event"] for r in out if r["event"] not in EVENTS]
    return out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    with loopback_server() as s:
        yield s


@pytest.fixture
def fake(server) -> Iterator[FakeFhir]:
    server.clear()
    yield populated(server)
    server.clear()


def test_a_failing_server_run_logs_errors_with_the_reason_and_the_outcome(capsys):
    url = f"http://127.0.0.1:{closed_port()}/fhir"
    assert main(["screen", "--server", url, "--timeout", "2", "--no-progress", "--log-format", "json"]) == 5
    recs = records(capsys.readouterr().err)
    errors = [r for r in recs if r["level"] == "error"]
    assert [r["event"] for r in errors] == ["run-failed", "run-end"]
    assert "cannot reach" in errors[0]["message"] and errors[0]["exit_code"] == 5
    assert errors[1]["outcome"] == "server-error" and errors[1]["exit_code"] == 5
    assert recs[0]["event"] == "run-start" and recs[0]["level"] == "info"


def test_a_server_that_hides_a_type_a_criterion_reads_is_a_warning(fake, capsys):
    fake.undeclared.add("ImmunizationRecommendation")
    code = main(["screen", "--server", fake.url, "--as-of", "2026-11-16", "--no-progress", "--format", "json",
                 "--log-format", "json"])
    assert code == 0
    recs = records(capsys.readouterr().err)
    checks = [r for r in recs if r["event"] == "server-check" and r["level"] == "warning"]
    assert len(checks) == 1 and "could come out eligible wrongly" in checks[0]["message"]
    assert "ImmunizationRecommendation" in checks[0]["message"]
    assert recs[-1]["event"] == "run-end" and recs[-1]["level"] == "info" and recs[-1]["outcome"] == "ok"


def test_a_server_with_everything_logs_nothing_above_info(fake, capsys):
    assert main(["screen", "--server", fake.url, "--as-of", "2026-11-16", "--no-progress", "--format", "json",
                 "--log-format", "json"]) == 0
    assert {r["level"] for r in records(capsys.readouterr().err)} == {"info"}


def test_an_internal_error_is_an_error_record_naming_it(monkeypatch, capsys):
    import fhir3t.cli.codes as codes

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(codes, "run", broken)
    assert main(["codes", P01, "--log-format", "json"]) == 70
    recs = records(capsys.readouterr().err)
    bug = [r for r in recs if r["event"] == "internal-error"]
    assert len(bug) == 1 and bug[0]["level"] == "error" and "a bug in fhir3t" in bug[0]["message"]
    assert recs[-1]["outcome"] == "internal-error" and recs[-1]["level"] == "error"


def test_in_text_the_failure_is_the_one_line_it_always_was(capsys):
    url = f"http://127.0.0.1:{closed_port()}/fhir"
    assert main(["screen", "--server", url, "--timeout", "2", "--no-progress"]) == 5
    err = capsys.readouterr().err.splitlines()
    assert [ln for ln in err if ln.startswith("fhir3t screen: cannot reach")] and not [ln for ln in err if "ERROR" in ln]


def test_a_missing_optional_module_deep_in_a_command_names_its_extra_and_exits_2(monkeypatch, capsys):
    import fhir3t.cli.codes as codes

    def needs_uvicorn(args):
        raise ModuleNotFoundError("No module named 'uvicorn.config'", name="uvicorn.config")

    monkeypatch.setattr(codes, "run", needs_uvicorn)
    assert main(["codes", P01]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['fhir3t codes: needs Starlette and uvicorn for the HTTP service, which are not installed: '
                   'pip install "fhir3t[service]"']

    def needs_something_else(args):
        raise ModuleNotFoundError("No module named 'nope'", name="nope")

    monkeypatch.setattr(codes, "run", needs_something_else)
    assert main(["codes", P01]) == 70  # not an extra's module: a bug, said as one


def test_every_event_name_in_the_code_is_in_the_catalogue_and_every_outcome_has_a_level():
    names: set[str] = set()
    for path in (ROOT / "src" / "fhir3t").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'"event": ?"([a-z-]+)"', text)) | set(re.findall(r'event="([a-z-]+)"', text))
    assert names and names <= set(EVENTS), names - set(EVENTS)
    from fhir3t.cli.logs import outcome_level

    assert {outcome_level(code) for code in OUTCOMES} == {20, 30, 40}
    assert len(set(OUTCOMES.values())) == len(OUTCOMES)


def test_the_watch_state_keeps_statuses_by_pseudonym_only(tmp_path):
    from fhir3t.service.watch import WatchState

    st = WatchState(tmp_path / "w.json", "http://127.0.0.1:1/fhir", statuses={"rs-1": "eligible"})
    st.save()
    back = WatchState.load(Path(st.path), st.server)
    assert back.statuses == {"rs-1": "eligible"}
