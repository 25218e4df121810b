"""The no-regression rule and "never trust server-side filtering" against a real FHIR server.

A sekmet of its own (the shared one's subjects must stay as test_server.py expects them), loaded
with the samples, then given what a hospital really has: an enrolled subject of ANOTHER study, and
a ResearchStudy of this trial registered without the identifier system, so that fhir3t's
`ResearchStudy?identifier=system|value` search finds nothing.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from fhir3t.cli import main
from integration.conftest import AS_OF, CONCEPT_MAP, Server, load_samples

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def hospital(tmp_path_factory) -> Iterator[str]:
    if os.environ.get("FHIR3T_TEST_SERVER"):
        pytest.skip("writes other studies' subjects: runs only against its own sekmet")
    srv = Server(tmp_path_factory.mktemp("sekmet-studies"))
    try:
        load_samples(srv.base)
        yield srv.base
    finally:
        srv.stop()


def put(base: str, resource: dict) -> None:
    r = requests.put(f"{base}/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON, timeout=30)
    assert r.status_code in (200, 201), r.text[:300]


def subjects_of(base: str, patient: str) -> list[dict]:
    got = requests.get(f"{base}/ResearchSubject", params={"individual": patient}, timeout=30).json()
    return [e["resource"] for e in got.get("entry", [])]


def test_another_studys_enrolled_subject_does_not_block_ours_and_an_unsystemed_study_still_protects(hospital, tmp_path, capsys):
    put(hospital, {"resourceType": "ResearchStudy", "id": "OTHER", "status": "active",
                   "identifier": [{"system": "http://clinicaltrials.gov", "value": "NCT00000001"}]})
    put(hospital, {"resourceType": "ResearchSubject", "id": "other-p01", "status": "on-study",
                   "study": {"reference": "ResearchStudy/OTHER"}, "individual": {"reference": "Patient/p01"}})
    # this trial, registered by the hospital without the identifier system: identifier=system|value misses it
    put(hospital, {"resourceType": "ResearchStudy", "id": "HOSP-3T", "status": "active", "identifier": [{"value": "NCT06438679"}]})
    put(hospital, {"resourceType": "ResearchSubject", "id": "hosp-p07", "status": "on-study",
                   "study": {"reference": "ResearchStudy/HOSP-3T"}, "individual": {"reference": "Patient/p07"}})
    before_p07 = subjects_of(hospital, "Patient/p07")
    capsys.readouterr()
    code = main(["screen", "--server", hospital, "--as-of", AS_OF, "--concept-map", str(CONCEPT_MAP), "--format", "json",
                 "--out", str(tmp_path / "r.json"), "--push", hospital, "--no-progress"])
    err = capsys.readouterr().err
    assert code in (0, 3), err
    # p01 is enrolled in another study: ineligible by E4, and that is written to its subject of THIS study
    # (the other study's on-study subject does not block it, and is left untouched)
    p01 = {s["id"]: s for s in subjects_of(hospital, "Patient/p01")}
    assert p01["other-p01"]["status"] == "on-study" and p01["other-p01"]["meta"]["versionId"] == "1"
    ours = [s for s in p01.values() if s["id"] != "other-p01" and s["study"].get("reference", "").startswith("ResearchStudy/")
            and s["study"]["reference"] != "ResearchStudy/OTHER"]
    assert [s["status"] for s in ours] == ["ineligible"], p01
    # p07 (screened ineligible) is on-study in this trial: not downgraded, and no second subject added
    after_p07 = subjects_of(hospital, "Patient/p07")
    assert [(s["id"], s["status"], s["meta"]["versionId"]) for s in after_p07] == \
        [(s["id"], s["status"], s["meta"]["versionId"]) for s in before_p07]
    assert "Patient/p07 is on-study in this study (ResearchSubject/hosp-p07)" in err
