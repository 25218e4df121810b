"""`fhir3t subject`, `fhir3t log`, `screen --state` on the state file: what the coordinator types and reads, exit codes,
one-sentence refusals on stderr, escaping in every output, and no patient data in the log records."""
from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import SAMPLES
from fhir3t.cli import main

CMAP = str(SAMPLES / "conceptmaps" / "hospital-local.json")


@pytest.fixture
def state(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("FHIR3T_USER", "li.na")
    path = tmp_path / "3t.state.sqlite"
    assert main(["screen", str(SAMPLES / "screening"), "--as-of", "2026-11-16", "--concept-map", CMAP, "--no-progress",
                 "--format", "csv", "--out", str(tmp_path / "x.csv"), "--state", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"kept in the state file {path} (run 1): 25 results, 24 ResearchSubjects written" in err
    return str(path)


def subject(state, *args):
    return main(["subject", *args, "--state", state])


def test_the_coordinators_steps_and_the_timeline(state, capsys):
    assert subject(state, "MRN-100001", "contact", "--medium", "phone", "--date", "2026-11-16") == 0
    assert capsys.readouterr().out == "MRN-100001: contact attempt recorded (reached)\n"
    assert subject(state, "MRN-100001", "consent", "--date", "2026-11-16") == 0
    assert subject(state, "p01", "enrol", "--date", "2026-11-16", "--d1", "2026-11-20", "--by", "wang.fang") == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["MRN-100001: consent recorded (form 1.0); status pending-on-study",
                   "MRN-100001: enrolled as 3T-001, D1 2026-11-20; status on-study"]
    assert subject(state, "Patient/p01", "--show") == 0
    assert capsys.readouterr().out.splitlines() == [
        "MRN-100001 (Patient/p01): on-study, subject 3T-001, D1 2026-11-20",
        "  2026-11-16  screened: eligible",
        "  2026-11-16  contacted by phone  (by li.na)",
        "  2026-11-16  consent signed (form 1.0)  (by li.na)",
        "  2026-11-16  enrolled as 3T-001 (on-study), D1 2026-11-20  (by wang.fang)",
        "next: withdraw"]
    assert subject(state, "MRN-100001", "--show", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["subject_number"] == "3T-001" and data["next"] == ["withdraw"] and len(data["events"]) == 4


def test_refusals_exit_8_with_one_sentence(state, capsys):
    assert subject(state, "MRN-100007", "enrol", "--d1", "2026-11-20") == 8  # ineligible: never consented either
    assert capsys.readouterr().err.strip().splitlines() == ["fhir3t subject: cannot enrol a subject who is ineligible"]
    assert subject(state, "MRN-100003", "consent") == 0
    assert subject(state, "MRN-100003", "enrol", "--d1", "2026-11-20") == 8
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fhir3t subject: the patient's latest screening is candidate, unresolved: E7-hbv, E8-hcv, E9-hiv, "
                   "E10-tb: not enrolled; enrol with --override REASON if the investigator decided otherwise"]
    assert "MRN-100003" not in "".join(err)  # stderr goes to the logs: no patient identifiers
    assert subject(state, "MRN-100003", "enrol", "--d1", "2026-11-20", "--override", "PI decision, serology on paper") == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].startswith("MRN-100003: enrolled as 3T-001")
    assert out[1].startswith("note: enrolled against the latest screening (the patient's latest screening is candidate")
    assert out[1].endswith("override: PI decision, serology on paper")
    assert "serology" not in captured.err  # the override's words are the team's: not in the logs
    assert subject(state, "MRN-100001", "decline") == 2
    assert "decline needs --reason, one of patient-declined" in capsys.readouterr().err
    assert subject(state, "MRN-999", "contact") == 2
    assert "no such patient in" in capsys.readouterr().err
    assert subject(state, "MRN-100001", "consent", "--if-match", "7") == 8
    assert "was changed by someone else since it was read (version 7, now 1)" in capsys.readouterr().err


def test_the_log_in_every_format(state, tmp_path, capsys):
    assert subject(state, "MRN-100001", "contact") == 0
    assert subject(state, "MRN-100002", "decline", "--reason", "patient-declined") == 0
    capsys.readouterr()
    assert main(["log", "--state", state, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["rows"]) == 25 and data["flow"]["contacted"] == 1 and data["flow"]["screened"] == 25
    assert main(["log", "--state", state, "--format", "csv", "--out", str(tmp_path / "log.csv")]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "log.csv").read_text(encoding="utf-8-sig"))))
    p02 = next(r for r in rows if r["display_id"] == "MRN-100002")
    assert p02["status"] == "not-registered" and p02["not_enrolled_reason"] == "patient-declined"
    assert main(["log", "--state", state]) == 0
    table = capsys.readouterr().out
    assert "MRN-100001" in table and "screened: 25" in table and "    the patient declined: 1" in table
    assert main(["log", "--state", state, "--format", "html", "--out", str(tmp_path / "log.html")]) == 0
    page = (tmp_path / "log.html").read_text()
    assert "<script" not in page and "MRN-100002" in page and "Content-Security-Policy" in page


def test_record_text_is_escaped_in_every_output(tmp_path, monkeypatch, capsys):
    from factory import bundle, patient

    monkeypatch.setenv("FHIR3T_USER", "li.na")
    f = tmp_path / "x.json"
    f.write_text(json.dumps(bundle(patient(pid="x1", identifier=[{"system": "urn:mrn", "value": "=HYPERLINK(\"x\")"}]))))
    st = str(tmp_path / "s.sqlite")
    assert main(["screen", str(f), "--as-of", "2026-11-16", "--no-progress", "--format", "csv", "--out",
                 str(tmp_path / "o.csv"), "--id-system", "urn:mrn", "--state", st]) == 0
    assert main(["subject", "x1", "contact", "--note", "<script>alert(1)</script>\x1b[31m", "--state", st]) == 0
    capsys.readouterr()
    assert main(["subject", "x1", "--show", "--state", st]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "<script>alert(1)</script>" in shown  # text as written, no terminal escapes
    assert main(["log", "--state", st, "--format", "csv", "--out", str(tmp_path / "l.csv")]) == 0
    assert "'=HYPERLINK" in (tmp_path / "l.csv").read_text(encoding="utf-8-sig")
    assert main(["log", "--state", st, "--format", "html", "--out", str(tmp_path / "l.html")]) == 0
    assert "=HYPERLINK(&quot;x&quot;)" in (tmp_path / "l.html").read_text()


def test_the_log_records_of_a_step_name_no_patient(state, capsys):
    capsys.readouterr()
    assert main(["subject", "MRN-100001", "contact", "--note", "call her daughter", "--state", state, "-v",
                 "--log-format", "json"]) == 0
    err = capsys.readouterr().err
    records = [json.loads(line) for line in err.splitlines()]
    step = next(r for r in records if r.get("event") == "enrolment-step")
    assert step["action"] == "contact" and step["before"] == "eligible"
    assert "MRN-100001" not in err and "p01" not in err and "daughter" not in err


def test_the_default_state_file_is_said(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert main(["log", "--format", "json"]) == 0
    err = capsys.readouterr().err
    assert f"the state file is {tmp_path / 'xdg' / 'fhir3t' / 'nct06438679.state.sqlite'}" in err


def test_safety_and_report_read_the_subjects_and_the_flow_from_the_state(state, tmp_path, capsys):
    for args in (("MRN-100001", "consent"), ("MRN-100001", "enrol", "--d1", "2026-11-20"),
                 ("MRN-100002", "decline", "--reason", "patient-declined")):
        assert subject(state, *args, "--date", "2026-11-16") == 0
    assert main(["report", str(SAMPLES / "screening"), "--concept-map", CMAP, "--state", state, "--as-of", "2026-12-20",
                 "--out", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(d["subject"], d["d1"]) for d in report["disposition"]] == [("3T-001", "2026-11-20")]
    flow = report["screening_flow"]
    assert (flow["screened"], flow["eligible"], flow["ineligible"], flow["enrolled"]) == (25, 4, 18, 1)
    assert flow["team"]["enrolled"] == 1 and flow["team"]["steps"][1]["reasons"] == [
        {"reason": "not-contacted", "patients": 2}, {"reason": "patient-declined", "patients": 1}]
    page = (tmp_path / "r.html").read_text()
    assert "The study team&#x27;s steps" in page or "The study team's steps" in page
    assert "stopped before contacted: the patient declined" in page
    capsys.readouterr()
    assert main(["safety", str(SAMPLES / "screening"), "--concept-map", CMAP, "--state", state, "--as-of",
                 "2026-12-20"]) == 0
    assert "1 subjects on study" in capsys.readouterr().out
