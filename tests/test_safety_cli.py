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

#: (subject, reported term, CTCAE term, grade, onset, end, outcome, treatment_related, source) as worked out in
#: samples/safety/README.md from the spec and CTCAE v5.0
EXPECTED = [
    ("3T-s01", "Alanine aminotransferase increased", "Alanine aminotransferase increased", 3, "2026-03-30", "2026-05-11", "resolved", True, "fhir3t"),
    ("3T-s01", "Zoster without complications", "Shingles", None, "2026-06-15", "2026-07-10", "resolved", True, "fhir3t"),
    ("3T-s02", "Creatinine increased", "Creatinine increased", 2, "2026-04-13", None, "recovering", True, "fhir3t"),
    # hospitalised: CTCAE grade 3 derived from the inpatient stay
    ("3T-s02", "Pneumonia, unspecified organism", "Lung infection", 3, "2026-05-20", None, "ongoing", True, "fhir3t"),
    # Patient.deceasedDateTime and the investigator's record of the death: one AE, causality unassessable
    ("3T-s02", "Death", "Death NOS", 5, "2026-07-20", "2026-07-20", "fatal", False, "both"),
    # the neutrophil episode and the investigator's "Neutropenia": one AE, the investigator's grade and causality
    ("3T-s03", "Neutrophil count decreased", "Neutrophil count decreased", 3, "2026-04-20", "2026-06-01", "resolved", True, "both"),
    ("3T-s03", "Anemia", "Anemia", 2, "2026-06-15", "2026-06-29", "resolved", True, "fhir3t"),
    ("3T-s03", "Neutrophil count decreased", "Neutrophil count decreased", 2, "2026-07-13", "2026-08-10", "resolved", True, "fhir3t"),
    ("3T-s04", "Hyperkalemia", "Hyperkalemia", 2, "2026-08-10", None, "ongoing", True, "fhir3t"),
    ("3T-s05", "Constipation, unspecified", "Constipation", 2, "2026-09-01", None, "ongoing", True, "fhir3t"),  # severity moderate
    ("3T-s05", "Lymphocyte count decreased", "Lymphocyte count decreased", 2, "2026-09-14", "2026-10-12", "resolved", True, "fhir3t"),
    ("3T-s06", "Influenza due to unidentified influenza virus", "Upper respiratory infection", None, "2026-10-05", "2026-10-15", "resolved", False, "fhir3t"),
    ("3T-s07", "Pneumocystosis", "Lung infection", 3, "2026-07-06", "2026-07-25", "resolved", True, "fhir3t"),
    ("3T-s08", "Acute embolism and thrombosis of unspecified deep veins of right lower extremity", "Thromboembolic event", 2, "2026-06-22", None, "ongoing", True, "fhir3t"),
    ("3T-s08", "Drug-induced polyneuropathy", "Peripheral sensory neuropathy", 1, "2026-08-03", None, "ongoing", True, "fhir3t"),
]


def test_safety_json_on_samples(capsys):
    assert main(["safety", SAFETY, *AS_OF, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    got = [(a["subject"], a["term"], a["ae_term"], a["grade"], a["onset"], a["end"], a["outcome"], a["treatment_related"],
            a["source"]) for a in out]
    assert got == EXPECTED
    keys = {"patient", "term", "code", "grade", "onset", "end", "outcome", "seriousness", "treatment_related",
            "suspects", "evidence", "ctcae", "grade_source", "source", "recorded", "causality_by", "hospitalisations"}
    assert all(keys <= set(a) for a in out)  # the contract only gains fields
    s02 = [a for a in out if a["patient"] == "Patient/s02"]
    assert [a["seriousness"] for a in s02] == ["SeriousResultsInHospitalization", "SeriousResultsInHospitalization",
                                              "SeriousResultsInDeath"]
    assert [a["seriousness_text"] for a in s02][-1] == "results in death"
    assert out[1]["suspects"] == {"tofacitinib": "Possible", "tacrolimus": "Unassessable-Unclassifiable",
                                  "thalidomide": "Unassessable-Unclassifiable"}
    death = s02[-1]
    assert (death["conservative_related"], death["needs_assessment"], death["recorded"]) == (
        True, True, ["AdverseEvent/s02-ae-death"])
    assert death["causality_by"] == {"tofacitinib": "investigator", "tacrolimus": "investigator", "thalidomide": "investigator"}
    pjp = out[12]
    assert pjp["suspects"]["tofacitinib"] == "Possible" and pjp["suspects"]["tacrolimus"] == "Possible"
    assert pjp["grade_rule"] == "hospitalisation" and set(pjp["aesi"]) == {"serious-infection", "opportunistic-infection", "pjp"}
    assert not pjp["susar"] and pjp["unexpected_for"] == ["thalidomide"]
    assert out[1]["aesi"] == ["herpes-zoster"] and out[13]["aesi"] == ["vte", "dvt"] and out[14]["aesi"] == ["peripheral-neuropathy"]


def test_safety_table_and_emit(tmp_path, capsys):
    target = tmp_path / "ae.json"
    assert main(["safety", SAFETY, *AS_OF, "--emit", str(target)]) == 0
    out = capsys.readouterr().out
    assert "Hyperkalemia" in out and "8 subjects on study; 15 AEs, 13 treatment-related (15 counting" in out
    assert "3T-s02" in out and "Patient/s02" not in out  # subject numbers, not FHIR ids
    assert "results in death" in out and "SeriousResults" not in out  # seriousness in words
    b = json.loads(target.read_text())
    assert [str(i) for i in validate_resource(b) if i.is_error] == []
    # the two AEs an investigator recorded stay theirs: fhir3t emits the other 13
    assert sum(e["resource"]["resourceType"] == "AdverseEvent" for e in b["entry"]) == 13
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
    assert data["survival"]["day182"]["estimate"] == pytest.approx(6 / 7)
    assert data["ae_incidence"]["overall"]["with_related_ae"] == 7
    page = html.read_text()
    assert "<svg" in page and "NCT06438679" in page
    assert "0.857" in capsys.readouterr().err
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle(patient())))
    assert main(["report", str(f), "--out", str(tmp_path / "x.html")]) == 4
