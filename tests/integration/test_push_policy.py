"""The push policy (enrolment/policy.py) against a real FHIR server: a screening run never replaces a
status the study team set, says so per patient, adds no second subject, and is not blocked by
another study's subjects.

Patients here are children (I1 not met): every screening says `ineligible`, the case where a silent
overwrite of a consented or enrolled patient would do the most harm.
"""
from __future__ import annotations

import pytest
import requests

from fhir3t.cli import main
from fhir3t.emit.screening import research_study
from fhir3t.pipeline import Definition
from integration.conftest import AS_OF, Server

JSON = {"Content-Type": "application/fhir+json"}
STUDY = ("http://clinicaltrials.gov", "NCT06438679")
TEAM = ["pending-on-study", "on-study", "withdrawn", "not-registered"]


def put(base: str, res: dict) -> dict:
    r = requests.put(f"{base}/{res['resourceType']}/{res['id']}", json=res, headers=JSON, timeout=30)
    assert r.status_code in (200, 201), r.text[:400]
    return r.json()


def child(pid: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "birthDate": "2015-03-01", "gender": "female"}


def subjects_of(base: str, pid: str) -> list[dict]:
    found: dict[str, dict] = {}
    for ref in (f"Patient/{pid}", f"{base}/Patient/{pid}"):
        bundle = requests.get(f"{base}/ResearchSubject", params={"individual": ref}, timeout=30).json()
        for e in bundle.get("entry") or []:
            found[e["resource"]["id"]] = e["resource"]
    return list(found.values())


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """A server of this module's own: its patients must not show up in the other modules' screenings."""
    import os

    if os.environ.get("FHIR3T_TEST_SERVER"):
        pytest.skip("writes test patients: runs only on the server the suite starts")
    srv = Server(tmp_path_factory.mktemp("sekmet-policy"))
    try:
        yield srv.base
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def our_study(server_url: str) -> str:
    """Our ResearchStudy on the server (created as the study team would, before any push)."""
    found = requests.get(f"{server_url}/ResearchStudy", params={"identifier": "|".join(STUDY)}, timeout=30).json()
    if found.get("entry"):
        return f"ResearchStudy/{found['entry'][0]['resource']['id']}"
    study = research_study(Definition.load().criteria)
    return f"ResearchStudy/{put(server_url, study)['id']}"


def screen_push(base: str, *patients: str, capsys) -> str:
    capsys.readouterr()
    args = ["screen", "--server", base, "--as-of", AS_OF, "--format", "json", "--no-progress", "--no-check",
            "--push", base]
    for p in patients:
        args += ["--patient", p]
    assert main(args) == 0
    return capsys.readouterr().err


@pytest.mark.parametrize("status", TEAM)
def test_a_team_status_survives_the_push_of_a_now_ineligible_patient_and_the_run_says_so(server_url, our_study,
                                                                                          status, capsys):
    pid = f"pol-{status}"
    put(server_url, child(pid))
    subject = put(server_url, {"resourceType": "ResearchSubject", "id": f"team-{status}", "status": status,
                               "study": {"reference": our_study}, "individual": {"reference": f"Patient/{pid}"}})
    err = screen_push(server_url, pid, capsys=capsys)
    assert f"Patient/{pid} is {status} in this study (ResearchSubject/{subject['id']})" in err
    assert "today's screening says ineligible" in err
    now = subjects_of(server_url, pid)
    assert [s["status"] for s in now] == [status]  # unchanged, and no second subject beside it
    assert now[0]["meta"]["versionId"] == subject["meta"]["versionId"]


def test_a_subject_naming_the_patient_by_absolute_url_gets_no_second_subject(server_url, our_study, capsys):
    pid = "pol-absolute"
    put(server_url, child(pid))
    put(server_url, {"resourceType": "ResearchSubject", "id": "hospital-made", "status": "candidate",
                     "study": {"reference": our_study}, "individual": {"reference": f"{server_url}/Patient/{pid}"}})
    screen_push(server_url, pid, capsys=capsys)
    screen_push(server_url, pid, capsys=capsys)  # twice: still one
    now = subjects_of(server_url, pid)
    assert len(now) == 1 and now[0]["id"] == "hospital-made"
    assert now[0]["status"] == "ineligible"  # a screening status, updated in place


def test_another_studys_subject_does_not_block_the_push(server_url, our_study, capsys):
    pid = "pol-other-study"
    put(server_url, child(pid))
    other = put(server_url, {"resourceType": "ResearchStudy", "id": "another-trial", "status": "active",
                             "identifier": [{"system": "http://clinicaltrials.gov", "value": "NCT00000001"}]})
    put(server_url, {"resourceType": "ResearchSubject", "id": "other-study-subject", "status": "on-study",
                     "study": {"reference": f"ResearchStudy/{other['id']}"}, "individual": {"reference": f"Patient/{pid}"}})
    # and one whose study is a relative reference to an id the server does not hold: not ours either
    put(server_url, {"resourceType": "ResearchSubject", "id": "dangling-study-subject", "status": "on-study",
                     "study": {"reference": "ResearchStudy/no-such-study"}, "individual": {"reference": f"Patient/{pid}"}})
    err = screen_push(server_url, pid, capsys=capsys)
    assert "cannot be resolved" not in err
    now = {s["id"]: s for s in subjects_of(server_url, pid)}
    ours = [s for s in now.values() if s["study"]["reference"].endswith(our_study.split("/")[1])]
    assert len(ours) == 1 and ours[0]["status"] == "ineligible"
    assert now["other-study-subject"]["status"] == "on-study" and now["dangling-study-subject"]["status"] == "on-study"
