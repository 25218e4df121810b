"""`fhir3t safety` and `fhir3t report`: output contracts, exit codes, the samples' expected AEs."""
from __future__ import annotations

import json

import pytest

from conftest import SAMPLES
from factory import bundle, patient
from fhir3t.cli import main
from fhir3t.validate import validate_resource
from safety_helpers import enrolled, lab

SAFETY = str(SAMPLES / "safety")
AS_OF = ["--as-of", "2026-11-16"]

#: (patient, term, grade, onset, end, outcome, treatment_related) as documented in samples/safety/README.md
EXPECTED = [
    ("Patient/s01", "Alanine aminotransferase increased", 3, "2026-03-30", "2026-05-11", "resolved", True),
    ("Patient/s01", "Zoster without complications", None, "2026-06-15", "2026-07-10", "resolved", True),
    ("Patient/s02", "Creatinine increased", 2, "2026-04-13", None, "recovering", True),
    ("Patient/s02", "Pneumonia, unspecified organism", None, "2026-05-20", None, "ongoing", True),
    ("Patient/s02", "Death", 5, "2026-07-20", "2026-07-20", "fatal", False),
    ("Patient/s03", "Neutrophil count decreased", 3, "2026-04-20", "2026-06-01", "resolved", True),
    ("Patient/s03", "Anemia", 2, "2026-06-15", "2026-06-29", "resolved", True),
    ("Patient/s03", "Neutrophil count decreased", 2, "2026-07-13", "2026-08-10", "resolved", True),
    ("Patient/s04", "Hyperkalemia", 2, "2026-08-10", None, "ongoing", True),
    ("Patient/s05", "Constipation, unspecified", 2, "2026-09-01", None, "ongoing", True),  # Condition.severity moderate
    ("Patient/s05", "Lymphocyte count decreased", 2, "2026-09-14", "2026-10-12", "resolved", True),
    ("Patient/s06", "Influenza due to unidentified influenza virus", None, "2026-10-05", "2026-10-15", "resolved", False),
]


def test_safety_json_on_samples(capsys):
    assert main(["safety", SAFETY, *AS_OF, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    got = [(a["patient"], a["term"], a["grade"], a["onset"], a["end"], a["outcome"], a["treatment_related"]) for a in out]
    assert got == EXPECTED
    keys = {"patient", "term", "code", "grade", "onset", "end", "outcome", "seriousness", "treatment_related",
            "suspects", "evidence"}
    assert all(keys <= set(a) for a in out)
    s02 = [a for a in out if a["patient"] == "Patient/s02"]
    assert [a["seriousness"] for a in s02] == ["SeriousResultsInHospitalization", "SeriousResultsInHospitalization",
                                              "SeriousResultsInDeath"]
    assert out[1]["suspects"] == {"tofacitinib": "Possible", "tacrolimus": "Unassessable-Unclassifiable",
                                  "thalidomide": "Unassessable-Unclassifiable"}


def test_safety_table_and_emit(tmp_path, capsys):
    target = tmp_path / "ae.json"
    assert main(["safety", SAFETY, *AS_OF, "--emit", str(target)]) == 0
    out = capsys.readouterr().out
    assert "Hyperkalemia" in out and "6 subjects on study; 12 AEs, 10 treatment-related" in out
    b = json.loads(target.read_text())
    assert [str(i) for i in validate_resource(b) if i.is_error] == []
    assert sum(e["resource"]["resourceType"] == "AdverseEvent" for e in b["entry"]) == 12
    assert main(["validate", str(target), "--no-warnings"]) == 0


def test_safety_exit_codes(tmp_path, capsys):
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle(patient(), enrolled(), lab("1742-6", "2026-02-01", 300, unit=None))))
    assert main(["safety", str(f), "--as-of", "2026-06-30"]) == 3  # a lab without unit: skipped, said so
    assert "missing unit" in capsys.readouterr().err
    f.write_text(json.dumps(bundle(patient())))
    assert main(["safety", str(f), "--as-of", "2026-06-30"]) == 4  # nobody on study
    assert main(["safety", str(f), "--as-of", "2026-06-30", "--d1", "p1=2026-01-01"]) == 0
    assert main(["safety", str(tmp_path / "missing")]) == 4
    with pytest.raises(SystemExit) as exc:
        main(["safety", str(f), "--as-of", "2026-99-01"])
    assert exc.value.code == 2
    assert main(["safety", str(f), "--d1", "p1"]) == 2


def test_report_writes_html_and_json(tmp_path, capsys):
    html, js = tmp_path / "report.html", tmp_path / "report.json"
    assert main(["report", SAFETY, *AS_OF, "--out", str(html), "--json", str(js)]) == 0
    data = json.loads(js.read_text())
    assert data["survival"]["day182"]["estimate"] == pytest.approx(0.8)
    assert data["ae_incidence"]["overall"]["with_related_ae"] == 5
    page = html.read_text()
    assert "<svg" in page and "NCT06438679" in page
    assert "0.800" in capsys.readouterr().err
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle(patient())))
    assert main(["report", str(f), "--out", str(tmp_path / "x.html")]) == 4
