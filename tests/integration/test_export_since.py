"""`fhir3t export --store-dir` against the real test server (issue 28): the second export asks only for
what changed since the first began (Bulk Data `_since`), fetches only the changed resources, merges them
into the store, and `fhir3t screen --store-dir` then screens only the patients they belong to, with the
results a full export and screen gives."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fhir3t.cli import main
from fhir3t.sources.statestore import PatientState
from integration.conftest import AS_OF, CONCEPT_MAP, Server, load_samples


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    srv = Server(tmp_path_factory.mktemp("sekmet-since"))  # its own: this test changes patient data
    try:
        load_samples(srv.base)
        yield srv.base
    finally:
        srv.stop()


class Counted:
    """Every HTTP request fhir3t makes (the real ones, to the real server), by kind."""

    def __init__(self, monkeypatch) -> None:
        self.requests: list[tuple[str, str]] = []
        real = requests.Session.send

        def send(session, req, **kw):
            self.requests.append((req.method, req.url))
            return real(session, req, **kw)

        monkeypatch.setattr(requests.Session, "send", send)

    def files(self) -> list[str]:
        return [u for _, u in self.requests if "/bulk-files/" in u]

    def kickoffs(self) -> list[str]:
        return [u for _, u in self.requests if "$export" in u]


def lines(folder: Path) -> list[dict]:
    return [json.loads(x) for f in sorted(folder.glob("*.ndjson")) for x in f.read_text().splitlines() if x.strip()]


def screened(path: Path) -> dict[str, dict]:
    return {r["patient"]: r for r in (json.loads(x) for x in path.read_text().splitlines() if x.strip())}


def test_export_since_fetches_only_what_changed_and_screens_only_its_patients(server, tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    screen = ["screen", "--store-dir", str(store), "--as-of", AS_OF, "--concept-map", str(CONCEPT_MAP),
              "--format", "ndjson", "--no-progress"]
    first = Counted(monkeypatch)
    assert main(["export", "--server", server, "--store-dir", str(store), str(tmp_path / "e1")]) == 0
    everything = lines(tmp_path / "e1")
    assert len(everything) > 50 and len(first.kickoffs()) == 1
    assert "_since" not in first.kickoffs()[0]  # a new store: everything
    assert main([*screen, "--out", str(tmp_path / "r1.ndjson")]) in (0, 3)
    capsys.readouterr()

    # tonight's changes: a new IGRA result for p03, a corrected DLCO (a new version), one Encounter deleted
    igra = {"resourceType": "Observation", "id": "p03-igra-new", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "71773-6"}]},
            "subject": {"reference": "Patient/p03"}, "effectiveDateTime": "2026-11-10T09:30:00+08:00",
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}]}}
    assert requests.put(f"{server}/Observation/p03-igra-new", json=igra, timeout=30).status_code in (200, 201)
    dlco = requests.get(f"{server}/Observation/p03-dlco", timeout=30).json()
    dlco["valueQuantity"]["value"] = 88
    assert requests.put(f"{server}/Observation/p03-dlco", json=dlco, timeout=30).status_code == 200

    second = Counted(monkeypatch)
    assert main(["export", "--server", server, "--store-dir", str(store), str(tmp_path / "e2")]) == 0
    err = capsys.readouterr().err
    delta = lines(tmp_path / "e2")
    # only the changed resources were fetched: two, in one file of their type, after one kick-off
    assert sorted((r["resourceType"], r["id"]) for r in delta) == [("Observation", "p03-dlco"),
                                                                    ("Observation", "p03-igra-new")]
    assert len(second.kickoffs()) == 1 and "_since" in second.kickoffs()[0]
    assert len(second.files()) == 1
    assert len(second.requests) < len(first.requests)
    assert "2 lines merged (1 new, 1 replaced" in err
    with capsys.disabled():
        print(f"\nexport requests: full {len(first.requests)} ({len(everything)} resources), "
              f"since {len(second.requests)} ({len(delta)} resources)")

    state = PatientState(store)
    assert state.dirty() == {"p03"}
    row = state.db.execute("SELECT body FROM res WHERE id = 'p03-dlco'").fetchone()
    assert json.loads(row[0])["valueQuantity"]["value"] == 88
    state.close()

    assert main([*screen, "--out", str(tmp_path / "r2.ndjson")]) in (0, 3)
    assert "1 patients screened again" in capsys.readouterr().err
    # what a full export and screen of the server gives now
    assert main(["export", "--server", server, str(tmp_path / "full")]) == 0
    assert main(["screen", str(tmp_path / "full"), "--as-of", AS_OF, "--concept-map", str(CONCEPT_MAP),
                 "--format", "ndjson", "--no-progress", "--out", str(tmp_path / "rf.ndjson")]) in (0, 3)
    inc, full = screened(tmp_path / "r2.ndjson"), screened(tmp_path / "rf.ndjson")
    assert inc.keys() == full.keys()
    assert {p: (r["status"], r["criteria"]) for p, r in inc.items()} == \
           {p: (r["status"], r["criteria"]) for p, r in full.items()}
    before = screened(tmp_path / "r1.ndjson")
    assert [p for p in inc if inc[p]["criteria"] != before[p]["criteria"]] == ["Patient/p03"]
