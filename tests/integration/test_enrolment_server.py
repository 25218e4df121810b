"""The coordinator's workflow on a real FHIR server (sekmet, its own instance: these tests change team statuses):
screen and push; contact, consent and enrol an eligible patient (subject number, D1); decline another; withdraw a
third; a second nightly `screen --push` leaves every team status; `fhir3t log` counts the flow; `fhir3t safety` and
`fhir3t report` find the enrolled subjects from their D1. Then the same flow in the SQLite state file, pushed to
another server twice with no duplicate; and the refusals (ineligible, forbidden, stale If-Match) writing nothing."""
from __future__ import annotations

import json

import pytest
import requests

from fhir3t.canonical import ID_SUBJECT_NUMBER
from fhir3t.cli import main
from integration.conftest import AS_OF, CONCEPT_MAP, SAMPLES, Server, load_samples

CM = str(CONCEPT_MAP)
TYPES = ("ResearchStudy", "ResearchSubject", "Communication", "Consent", "Provenance")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import os

    if os.environ.get("FHIR3T_TEST_SERVER"):
        pytest.skip("these tests change team statuses: they run on their own sekmet instance")
    srv = Server(tmp_path_factory.mktemp("sekmet-enrolment"))
    try:
        load_samples(srv.base)
        yield srv.base
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _user(monkeypatch, tmp_path):
    monkeypatch.setenv("FHIR3T_USER", "li.na")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


def count(base: str, rtype: str, **params: str) -> int:
    r = requests.get(f"{base}/{rtype}", params={"_summary": "count", **params}, timeout=30)
    r.raise_for_status()
    return int(r.json()["total"])


def counts(base: str) -> dict[str, int]:
    return {t: count(base, t) for t in TYPES}


def subject_of(base: str, patient: str) -> dict:
    found = requests.get(f"{base}/ResearchSubject", params={"individual": f"Patient/{patient}"}, timeout=30).json()
    subjects = [e["resource"] for e in found.get("entry", [])]
    assert len(subjects) == 1, subjects  # one subject per patient and study, whatever was written
    return subjects[0]


def screen_push(base: str, as_of: str = AS_OF) -> int:
    return main(["screen", "--server", base, "--push", base, "--as-of", as_of, "--concept-map", CM, "--no-progress",
                 "--format", "csv", "--out", "/dev/null"])


def subject(base: str, *args: str) -> int:
    return main(["subject", *args, "--server", base, "--concept-map", CM])


def test_the_coordinators_workflow_on_the_server(server, capsys, tmp_path):
    assert screen_push(server) == 0
    capsys.readouterr()
    # an eligible patient: called, consented, enrolled with a subject number and D1
    assert subject(server, "MRN-100001", "contact", "--medium", "phone", "--date", AS_OF) == 0
    assert subject(server, "MRN-100001", "consent", "--date", AS_OF) == 0
    assert subject(server, "MRN-100001", "enrol", "--date", AS_OF, "--d1", "2026-11-20") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "MRN-100001: enrolled as 3T-001, D1 2026-11-20; status on-study"
    rs = subject_of(server, "p01")
    assert rs["status"] == "on-study" and rs["period"]["start"] == "2026-11-20"
    assert {"system": ID_SUBJECT_NUMBER, "value": "3T-001"} in rs["identifier"]
    consent = requests.get(f"{server}/{rs['consent']['reference']}", timeout=30).json()
    assert consent["status"] == "active" and consent["scope"]["coding"][0]["code"] == "research"
    provs = requests.get(f"{server}/Provenance", params={"target": f"ResearchSubject/{rs['id']}"}, timeout=30).json()
    steps = sorted(p["resource"]["activity"]["coding"][0]["code"] for p in provs["entry"]
                   if p["resource"].get("activity", {}).get("coding"))
    assert steps == ["consent", "contact", "enrol"]
    # another declines; a third is enrolled, and withdraws later
    assert subject(server, "MRN-100002", "decline", "--reason", "patient-declined", "--date", AS_OF) == 0
    assert subject(server, "MRN-100006", "consent", "--date", AS_OF) == 0
    assert subject(server, "MRN-100006", "enrol", "--date", AS_OF, "--d1", "2026-11-20") == 0
    assert subject(server, "MRN-100006", "withdraw", "--reason", "adverse-event", "--date", "2026-12-01") == 0
    capsys.readouterr()
    before = {p: subject_of(server, p)["status"] for p in ("p01", "p02", "p06")}
    assert before == {"p01": "on-study", "p02": "not-registered", "p06": "withdrawn"}
    # the next night's screening leaves every team status as it is, and says so per patient
    assert screen_push(server) == 0
    err = capsys.readouterr().err
    for patient, status in (("p01", "on-study"), ("p02", "not-registered"), ("p06", "withdrawn")):
        assert f"note: Patient/{patient} is {status} in this study" in err
    assert {p: subject_of(server, p)["status"] for p in ("p01", "p02", "p06")} == before
    assert subject_of(server, "p06")["period"] == {"start": "2026-11-20", "end": "2026-12-01"}
    # the log
    assert main(["log", "--server", server, "--format", "json"]) == 0
    log = json.loads(capsys.readouterr().out)
    flow = {k: log["flow"][k] for k in ("screened", "eligible", "contacted", "consented", "enrolled")}
    assert flow == {"screened": 24, "eligible": 4, "contacted": 2, "consented": 2, "enrolled": 2}
    rows = {r["display_id"]: r for r in log["rows"]}
    assert (rows["MRN-100001"]["subject_number"], rows["MRN-100001"]["d1"]) == ("3T-001", "2026-11-20")
    assert rows["MRN-100002"]["not_enrolled_reason"] == "patient-declined"
    assert (rows["MRN-100006"]["left"], rows["MRN-100006"]["left_reason"]) == ("2026-12-01", "adverse-event")
    # a server keeps the screenings the push wrote: both nights for a patient in a screening status, and for one the
    # team holds, those before the team took over (the push keeps the team's subject as it is)
    assert (rows["MRN-100008"]["screenings"], rows["MRN-100001"]["screenings"]) == (2, 1)
    assert rows["MRN-100001"]["first_screened"] == AS_OF and rows["MRN-100008"]["last_screened"] == AS_OF
    assert log["flow"]["withdrawal_reasons"] == [{"reason": "adverse-event", "patients": 1}]
    # the safety half reads what this wrote: both enrolled subjects, by subject number, from D1
    assert main(["report", "--server", server, "--as-of", "2026-12-20", "--out", str(tmp_path / "r.html"),
                 "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    disposition = {d["subject"]: d for d in report["disposition"]}
    assert set(disposition) == {"3T-001", "3T-002"}
    assert disposition["3T-001"]["d1"] == "2026-11-20" and disposition["3T-002"]["disposition"] == "withdrawn"
    assert report["screening_flow"]["screened"] == 24 and report["screening_flow"]["team"]["enrolled"] == 2
    assert main(["safety", "--server", server, "--as-of", "2026-12-20"]) == 0
    assert "2 subjects on study" in capsys.readouterr().out
    # the timeline
    assert subject(server, "MRN-100006", "--show") == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == "MRN-100006 (Patient/p06): withdrawn, subject 3T-002, D1 2026-11-20"
    assert "  2026-12-01  withdrawn: an adverse event  (by li.na)" in shown


def test_refusals_on_the_server_write_nothing(server, capsys):
    assert screen_push(server) == 0
    capsys.readouterr()
    before = counts(server)
    rs = subject_of(server, "p07")  # ineligible: cannot be enrolled, not even consented first
    assert subject(server, "MRN-100007", "enrol", "--d1", "2026-11-20", "--date", AS_OF) == 8
    assert subject(server, "MRN-100007", "withdraw", "--reason", "other") == 8
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fhir3t subject: cannot enrol a subject who is ineligible",
                   "fhir3t subject: cannot withdraw a subject who is ineligible"]
    # a stale version: someone changed the subject since the page (version) this coordinator saw
    seen = subject_of(server, "p22")["meta"]["versionId"]
    assert subject(server, "MRN-100022", "contact", "--date", AS_OF) == 0
    assert subject(server, "MRN-100022", "consent", "--date", AS_OF, "--if-match", seen) == 0  # now one version on
    mid = counts(server)
    assert subject(server, "MRN-100022", "decline", "--reason", "other", "--if-match", seen) == 8
    assert "was changed by someone else since it was read" in capsys.readouterr().err
    assert counts(server) == mid and subject_of(server, "p22")["status"] == "pending-on-study"
    assert subject_of(server, "p07") == rs
    assert {k: v for k, v in mid.items() if k not in ("Communication", "Consent", "Provenance")} == \
        {k: v for k, v in before.items() if k not in ("Communication", "Consent", "Provenance")}


def test_a_stale_if_match_the_server_refuses_is_a_conflict(server):
    """The server's own If-Match check (a write racing another between the read and the transaction)."""
    from fhir3t.enrolment.refused import Conflict
    from fhir3t.state import Entry, ServerState
    from fhir3t.transport.http import FhirClient

    store = ServerState(FhirClient(server))
    try:
        rs = subject_of(server, "p04")
        version = rs["meta"]["versionId"]
        n = count(server, "Communication")
        entry = Entry({**rs, "status": "screening"}, if_match=str(int(version) - 1 if int(version) > 1 else 99))
        comm = Entry({"resourceType": "Communication", "id": "race-1", "status": "completed",
                      "subject": {"reference": "Patient/p04"}})
        with pytest.raises(Conflict, match=r"If-Match version .* refused\): nothing was written"):
            store.commit([comm, entry])
        assert count(server, "Communication") == n and subject_of(server, "p04")["meta"]["versionId"] == version
    finally:
        store.close()


def test_the_same_flow_in_the_state_file_then_pushed_twice(tmp_path, capsys):
    import os

    if os.environ.get("FHIR3T_TEST_SERVER"):
        pytest.skip("pushes to a fresh server of its own")
    state = str(tmp_path / "3t.state.sqlite")
    assert main(["screen", str(SAMPLES / "screening"), "--as-of", AS_OF, "--concept-map", CM, "--no-progress",
                 "--format", "csv", "--out", "/dev/null", "--state", state]) == 0
    for args in (("MRN-100001", "contact", "--medium", "phone"), ("MRN-100001", "consent"),
                 ("MRN-100001", "enrol", "--d1", "2026-11-20"), ("MRN-100002", "decline", "--reason", "patient-declined"),
                 ("MRN-100006", "consent"), ("MRN-100006", "enrol", "--d1", "2026-11-20"),
                 ("MRN-100006", "withdraw", "--reason", "adverse-event", "--date", "2026-12-01")):
        date = [] if "--date" in args else ["--date", AS_OF]
        assert main(["subject", *args, *date, "--state", state]) == 0, args
    assert main(["screen", str(SAMPLES / "screening"), "--as-of", AS_OF, "--concept-map", CM, "--no-progress",
                 "--format", "csv", "--out", "/dev/null", "--state", state]) == 0  # the next night: teams kept
    capsys.readouterr()
    assert main(["log", "--state", state, "--format", "json"]) == 0
    flow = json.loads(capsys.readouterr().out)["flow"]
    assert {k: flow[k] for k in ("screened", "eligible", "contacted", "consented", "enrolled")} == \
        {"screened": 25, "eligible": 4, "contacted": 2, "consented": 2, "enrolled": 2}
    (tmp_path / "srv").mkdir()
    srv = Server(tmp_path / "srv")
    try:
        load_samples(srv.base)
        base = srv.base
        loaded = counts(base)
        assert main(["push", "--state", state, "--server", base]) == 0
        first = counts(base)
        added = {t: first[t] - loaded[t] for t in TYPES}
        # the study is there already (the samples hold it); a subject per screened patient with an id, less the two the
        # hospital had made (p02, p06: written in place); the team's contact and two consents; a Provenance per step
        # and one for the screening runs (the second run said the same, so it has the same id)
        assert added == {"ResearchStudy": 0, "ResearchSubject": 22, "Communication": 1, "Consent": 2, "Provenance": 8}
        assert main(["push", "--state", state, "--server", base]) == 0  # sent twice: nothing duplicated
        assert counts(base) == first
        statuses = {p: subject_of(base, p)["status"] for p in ("p01", "p02", "p06")}
        assert statuses == {"p01": "on-study", "p02": "not-registered", "p06": "withdrawn"}
        rs = subject_of(base, "p01")
        assert {"system": ID_SUBJECT_NUMBER, "value": "3T-001"} in rs["identifier"]
        consent = requests.get(f"{base}/{rs['consent']['reference']}", timeout=30).json()
        study = requests.get(f"{base}/ResearchStudy", params={"identifier": "http://clinicaltrials.gov|NCT06438679"},
                             timeout=30).json()["entry"]
        assert len(study) == 1 and consent["provision"]["data"][0]["reference"]["reference"] == \
            f"ResearchStudy/{study[0]['resource']['id']}"  # the hospital's study, not a second one
        # the server and the state file read the same: the timeline is the same from both
        capsys.readouterr()
        assert main(["subject", "MRN-100001", "--show", "--state", state]) == 0
        from_state = capsys.readouterr().out
        assert main(["subject", "MRN-100001", "--show", "--server", base]) == 0
        from_server = capsys.readouterr().out
        assert from_server.splitlines()[0] == from_state.splitlines()[0]
        team = [ln for ln in from_state.splitlines() if "(by " in ln]
        assert team and all(ln in from_server for ln in team)
        # the nightly screening on the server now keeps what the team did in the file
        assert screen_push(base) == 0
        assert {p: subject_of(base, p)["status"] for p in ("p01", "p02", "p06")} == statuses
        assert main(["safety", "--server", base, "--as-of", "2026-12-20"]) == 0
        assert "2 subjects on study" in capsys.readouterr().out
    finally:
        srv.stop()
