"""`fhir3t serve` and `fhir3t watch` as commands: the process, its JSON logs, graceful shutdown, config errors."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from cds_helpers import ROOT, SERVICE, Recorder, hook_request
from fhir3t.cli import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def empty(path: str):
    return 200, {"resourceType": "Bundle", "type": "searchset", "entry": []}, 1.5 if "Observation" in path else 0.0


def test_serve_logs_json_lines_and_finishes_the_call_in_flight_on_sigterm(tmp_path):
    slow = Recorder(empty)
    port = free_port()
    (tmp_path / "fhir3t.toml").write_text(
        f'[serve]\nport = {port}\nstate_dir = "state"\nbudget_ms = 6000\nfhir_servers = ["{slow.base}"]\n', encoding="utf-8")
    env = {**os.environ, "FHIR3T_CONFIG": str(tmp_path / "fhir3t.toml"), "FHIR3T_RUN_ID": "run-42"}
    proc = subprocess.Popen([sys.executable, "-m", "fhir3t", "serve", "--log-format", "json", "--as-of", "2026-11-16"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if requests.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("fhir3t serve did not start: " + proc.stderr.read() if proc.poll() is not None else "timeout")
        answer: dict = {}

        def in_flight() -> None:
            r = requests.post(f"{url}/cds-services/{SERVICE}", json=hook_request("p77", fhirServer=slow.base), timeout=30)
            answer.update(status=r.status_code, body=r.json())

        t = threading.Thread(target=in_flight)
        t.start()
        for _ in range(100):  # the call is waiting on the slow server's Observation query
            if any("Observation" in p for p, _a in slow.seen):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        t.join(timeout=30)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        slow.stop()
    assert answer == {"status": 200, "body": {"cards": []}}  # finished, not cut off (no record of p77 there: no card)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines()]
    assert all(r["run_id"] == "run-42" and r["command"] == "serve" for r in records)
    events = [r.get("event") for r in records]
    assert events[0] == "run-start" and events[-1] == "run-end" and records[-1]["exit_code"] == 0
    calls = [r for r in records if r.get("event") == "cds-call"]
    assert calls and calls[0]["route"] == "/cds-services/{service_id}" and calls[0]["fetch_requests"] >= 10
    assert any("SIGTERM" in r["message"] for r in records)
    assert "p77" not in err


def test_serve_refuses_a_misspelt_serve_table(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("[serve]\nprot = 8000\n", encoding="utf-8")
    assert main(["serve", "--config", str(tmp_path / "c.toml")]) == 4
    assert "unknown key 'prot'; did you mean 'port'?" in capsys.readouterr().err


def test_serve_feedback_prints_the_study_teams_summary(tmp_path, capsys):
    assert main(["serve", "--no-config", "--state-dir", str(tmp_path), "--feedback"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cards_shown"] == 0 and summary["accepted"] == 0


def test_serve_feedback_rows_show_the_coordinator_who_declined_by_patient(tmp_path, capsys):
    from fhir3t.service.bodies import FeedbackItem
    from fhir3t.service.store import Rule, Store

    store = Store(tmp_path, Rule())
    for card, pid in (("c1", "p01"), ("c2", "p03")):
        store.shown(card, "svc", store.patient_key("", pid), "eligible", "h", user="Practitioner/dr-wang",
                    patient_ref=f"Patient/{pid}", server="https://ehr.hospital.example")
        store.feedback("svc", FeedbackItem(card, "overridden", "2026-11-16T09:00:00Z", reason_code="patient-declines",
                                           comment=f"said no ({pid})"))
    store.close()
    assert main(["serve", "--no-config", "--state-dir", str(tmp_path), "--feedback-rows", "--patient", "p03"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["patient"], row["user"], row["reason_code"], row["comment"]) == (
        "Patient/p03", "Practitioner/dr-wang", "patient-declines", "said no (p03)")


def test_watch_needs_a_server_and_a_positive_interval(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["watch", "--no-config", "--once"])
    assert exc.value.code == 2
    assert main(["watch", "--no-config", "--server", "http://127.0.0.1:9/fhir", "--interval", "0"]) == 2
    assert "--interval must be positive" in capsys.readouterr().err
