"""`fhir3t codes`: the list an integration engineer writes the hospital's ConceptMap from."""
from __future__ import annotations

import csv
import io
import json

from conftest import SAMPLES
from factory import LOINC, bundle, cc, cond, obs, patient
from fhir3t.cli import main

LOCAL = "http://hospital.example.org/CodeSystem/lab"


def _input(tmp_path):
    res = [patient(pid="c1", name=[{"family": "Wang", "given": ["Li"]}], identifier=[{"value": "MRN-778899"}]),
           obs("5196-1", "2026-11-01", pid="c1", valueString="negative"),
           {**obs("HBSAG", "2026-11-02", system=LOCAL, pid="c1", valueString="阳性"), "code": cc("HBSAG", LOCAL, "乙肝表面抗原")},
           obs("X9", "2026-11-02", system="urn:oid:9.9.9", pid="c1", valueString="5"),
           obs("8302-2", "2026-11-02", pid="c1", valueQuantity={"value": 170}),
           cond("C5O.9", "http://hl7.org/fhir/sid/icd-10-cm", pid="c1")]
    path = tmp_path / "in.json"
    path.write_text(json.dumps(bundle(*res), ensure_ascii=False))
    return path


def test_codes_classify_what_to_map(tmp_path, capsys):
    assert main(["codes", str(_input(tmp_path)), "--format", "json"]) == 0
    rows = {(r["type"], r["code"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("Observation", "5196-1")]["verdict"] == "matched" and rows[("Observation", "5196-1")]["valuesets"] == ["hbsag"]
    assert rows[("Observation", "HBSAG")]["verdict"] == "unknown system"  # a local lab system: map it
    assert rows[("Observation", "X9")]["verdict"] == "unknown system"
    assert rows[("Condition", "C5O.9")]["verdict"] == "malformed"
    assert ("Observation", "8302-2") not in rows  # a body height matters to no criterion: only with --all


def test_codes_name_suspects_and_carry_no_patient_data(tmp_path, capsys):
    src = _input(tmp_path)
    assert main(["codes", str(src), "--all", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert any(r["code"] == "8302-2" and r["verdict"] == "-" for r in rows)
    for secret in ("Wang", "MRN-778899", "c1", "阳性", "negative"):
        assert secret not in out


def test_codes_of_the_samples_with_their_concept_map(capsys):
    assert main(["codes", str(SAMPLES / "screening" / "22-local-codes.json"), "--concept-map",
                 str(SAMPLES / "conceptmaps" / "hospital-local.json"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["verdict"] == "matched" for r in rows if r["system"].startswith("http://hospital.example.org"))
    assert LOINC not in {r["system"] for r in rows if r["verdict"] == "unknown system"}
