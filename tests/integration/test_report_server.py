"""`fhir3t report --server` against the real test server: the samples' endpoints equal the files', and an
AdverseEvent an investigator recorded there changes a causality (and the incidence) and is counted by source.

Runs on a server of its own (the other integration tests count what their server holds); the investigator's
AdverseEvents are deleted at the end all the same, for an external FHIR3T_TEST_SERVER.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests

from fhir3t.cli import main
from integration.conftest import AS_OF, SAMPLES, Server, as_transaction


@pytest.fixture(scope="module")
def safety_server(tmp_path_factory) -> Iterator[str]:
    external = os.environ.get("FHIR3T_TEST_SERVER")
    if external:
        yield external.rstrip("/")
        return
    srv = Server(tmp_path_factory.mktemp("sekmet-report"))
    try:
        yield srv.base
    finally:
        srv.stop()

CAUSALITY = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
STUDY = {"identifier": {"system": "http://clinicaltrials.gov", "value": "NCT06438679"}}


def _investigator_ae(aid: str, study: dict, causality: str) -> dict:
    return {"resourceType": "AdverseEvent", "id": aid, "actuality": "actual", "subject": {"reference": "Patient/s06"},
            "date": "2026-10-05", "study": [study],
            "event": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J11.1"}], "text": "Influenza"},
            "recorder": {"reference": "Practitioner/dr-li"},
            "suspectEntity": [{"instance": {"reference": "MedicationStatement/s06-tofacitinib"},
                               "causality": [{"assessment": {"coding": [{"system": CAUSALITY, "code": causality}]},
                                              "author": {"reference": "Practitioner/dr-li"}}]}]}


def test_report_from_the_server_with_an_investigator_assessment(safety_server, tmp_path, capsys):
    loaded_server = safety_server
    for path in sorted((SAMPLES / "safety").glob("*.json")):
        r = requests.post(loaded_server, json=as_transaction(json.loads(path.read_text())),
                          headers={"Content-Type": "application/fhir+json"}, timeout=60)
        assert r.status_code == 200, r.text[:300]
    ours = _investigator_ae("inv-s06-flu", STUDY, "Probably-Likely")
    other = _investigator_ae("inv-s06-other-study", {"identifier": {"system": "http://clinicaltrials.gov",
                                                                     "value": "NCT00000001"}}, "Certain")
    for ae in (ours, other):
        r = requests.put(f"{loaded_server}/AdverseEvent/{ae['id']}", json=ae,
                         headers={"Content-Type": "application/fhir+json"}, timeout=30)
        assert r.status_code in (200, 201), r.text[:300]
    try:
        files_js, server_js = tmp_path / "files.json", tmp_path / "server.json"
        assert main(["report", str(SAMPLES / "safety"), "--as-of", AS_OF, "--out", str(tmp_path / "f.html"),
                     "--json", str(files_js)]) == 0
        rc = main(["report", "--server", loaded_server, "--as-of", AS_OF, "--out", str(tmp_path / "s.html"),
                   "--json", str(server_js)])
        err = capsys.readouterr().err
        assert rc in (0, 3), err
        files, server = json.loads(files_js.read_text()), json.loads(server_js.read_text())
        # same subjects and survival as from the files
        assert server["survival"]["day182"] == files["survival"]["day182"]
        assert [d["subject"] for d in server["disposition"]] == [d["subject"] for d in files["disposition"]]
        # s06's influenza: fhir3t found it (unassessable); the investigator judged it Probably-Likely for tofacitinib.
        # The files already hold two AEs recorded and found (s02's death, s03's neutropenia: samples/safety/README.md)
        assert files["ae_incidence"]["overall"]["with_related_ae"] == 7
        assert server["ae_incidence"]["overall"]["with_related_ae"] == 8
        assert server["ae_incidence"]["by_drug"]["tofacitinib"]["with_related_ae"] == 7
        assert (files["ae_sources"]["both"], server["ae_sources"]["both"]) == (2, 3)
        assert server["ae_sources"]["investigator"] == 0
        assert server["ae_sources"]["causality_assessed_by_investigator"] == 3
        assert server["ae_sources"]["fhir3t"] == files["ae_sources"]["fhir3t"] - 1
        assert server["ae_rate"]["aes"] == files["ae_rate"]["aes"]  # one AE, recorded and found: not two
        assert "AEs found by fhir3t 12, recorded by investigators 0, both 3" in err
        page = (tmp_path / "s.html").read_text()
        assert "PL*" in page and "FHIR server http://127.0.0.1" in page
    finally:
        for ae in (ours, other):
            requests.delete(f"{loaded_server}/AdverseEvent/{ae['id']}", timeout=30)
    assert requests.get(f"{loaded_server}/AdverseEvent/inv-s06-flu", timeout=30).status_code in (404, 410)
