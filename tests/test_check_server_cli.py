"""`fhir3t check-server` from the command line (exit codes, text and JSON, escaping) and the quiet
pre-check at the start of `screen --server` (one warning each, once; --no-check skips it)."""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from fake_fhir import FakeFhir, loopback_server, populated
from fhir3t.cli import main


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    with loopback_server() as s:
        yield s


@pytest.fixture
def fake(server) -> Iterator[FakeFhir]:
    server.clear()
    yield populated(server)
    server.clear()


def test_text_output_is_one_line_a_check_with_a_summary_and_exit_0(fake, capsys):
    assert main(["check-server", fake.url, "--no-export"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"fhir3t check-server {fake.url}"
    starts = [ln.split(" ", 1)[0] for ln in out[1:-1] if not ln.startswith(" ")]
    assert set(starts) <= {"ok", "warning", "fail"} and "ok" in starts
    assert all(len(ln) <= 80 for ln in out[1:-1])  # wrapped for an 80-column terminal (pytest's stdout is not a tty)
    assert out[-1].endswith(f"({len(fake.log)} requests to the server)") and ", 0 fails" in out[-1]


def test_a_failed_check_exits_1(fake, capsys):
    fake.everything_drops.add("Consent")
    assert main(["check-server", fake.url, "--no-export"]) == 1
    assert "fail     record: Consent: Patient/$everything leaves out Consent" in capsys.readouterr().out


def test_json_output_keeps_its_documented_fields(fake, capsys):
    fake.ignore.add(("ResearchSubject", "study"))
    code = main(["check-server", "--server", fake.url, "--format", "json", "--no-export"])
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"server", "write_test", "checks", "counts", "requests", "error", "exit_code"}
    assert doc["exit_code"] == code == 0 and doc["error"] is None and doc["write_test"] is False
    assert all(set(c) >= {"id", "title", "status", "message", "details"} for c in doc["checks"])
    assert doc["counts"]["warning"] == sum(c["status"] == "warning" for c in doc["checks"]) >= 1
    study = next(c for c in doc["checks"] if c["id"] == "search-subject-study")
    assert study["status"] == "warning" and study["details"]["applied"] is False


def test_what_the_server_says_is_escaped_in_the_terminal(fake, capsys):
    fake.software = "evil\x1b[2J\x1b]8;;http://x\x07link\u202egnp.exe"
    main(["check-server", fake.url, "--no-export"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "evil?[2J?]8;;http://x?link?gnp.exe" in out


def test_an_unreachable_server_is_exit_5_naming_it(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["check-server", f"http://127.0.0.1:{port}/fhir", "--timeout", "5"]) == 5
    captured = capsys.readouterr()
    assert f"127.0.0.1:{port}" in captured.err and "stopped" in captured.out


def test_refused_credentials_are_exit_6(server, capsys):
    server.clear()
    server.expect_request("/fhir/metadata").respond_with_data("", status=401)
    assert main(["check-server", server.url_for("/fhir"), "--token", "t0ken-value"]) == 6
    captured = capsys.readouterr()
    assert "t0ken-value" not in captured.out + captured.err
    server.clear()


@pytest.mark.parametrize("argv", [["check-server"], ["check-server", "http://127.0.0.1:1/fhir", "--patient", "a/../b"]])
def test_usage_errors_are_exit_2(argv, capsys):
    assert main(argv) == 2


def test_help_says_the_write_test_is_for_test_servers_only(capsys):
    with pytest.raises(SystemExit):
        main(["check-server", "--help"])
    assert "ONLY ON A TEST SERVER" in capsys.readouterr().out


# ---- screen --server: the quiet pre-check -------------------------------------------------------
def _screen(fake: FakeFhir, *extra: str) -> int:
    return main(["screen", "--server", fake.url, "--as-of", "2026-11-16", "--no-progress", "--format", "json", *extra])


def test_screen_warns_once_for_what_the_server_will_not_give(fake, capsys):
    fake.undeclared.add("ImmunizationRecommendation")
    assert _screen(fake) == 0
    err = capsys.readouterr().err.splitlines()
    checks = [ln for ln in err if "server check:" in ln]
    assert checks == [
        "fhir3t screen: server check: warning: resource types: not declared by the server: ImmunizationRecommendation "
        "(E12-vaccination would take it as none recorded, so a patient could come out eligible wrongly)",
        "fhir3t screen: server check: 'fhir3t check-server URL' tries it all (--no-check skips this)"]


def test_screen_says_nothing_of_a_server_with_everything(fake, capsys):
    assert _screen(fake) == 0
    assert "server check" not in capsys.readouterr().err


def test_no_check_skips_the_precheck_and_its_request(fake, capsys):
    fake.ignore.add(("Condition", "code"))
    _screen(fake)
    assert "server check: fail: Condition?code (candidates): ignored" in capsys.readouterr().err
    nothing = [p for _, p in fake.log if "check-server:nothing" in p]
    assert len(nothing) == 1
    fake.log.clear()
    _screen(fake, "--no-check")
    assert "server check" not in capsys.readouterr().err
    assert not [p for _, p in fake.log if "check-server:nothing" in p]


def test_screen_checks_push_features_only_when_pushing_to_the_same_server(fake, capsys):
    fake.transaction = False
    _screen(fake)
    assert "transaction" not in capsys.readouterr().err
    _screen(fake, "--push", fake.url, "--dry-run")
    assert "server check: warning: transaction / batch: batch only" in capsys.readouterr().err
