"""Safety table, SAEs, discontinuations, deaths, disposition and the screening flow on small hand-computed examples."""
from __future__ import annotations

import json
from datetime import date

import pytest

from factory import CM, ICD, cond, med, patient
from fhir3t.cli import main
from fhir3t.errors import Problems
from fhir3t.report import endpoints
from fhir3t.report.flow import parse_screening, screening_flow
from safety_helpers import D1, drug, enrolled, lab, one

AS_OF = date(2026, 6, 30)
ORDER = ["I1-age", "I2-dm", "E2-recent-immunomodulator", "E7-hbv"]


def three_subjects():
    """p1: ALT g1 then (after normal) g3, constipation (thalidomide Possible, ungraded), tofacitinib stopped
    for an adverse reaction while the ALT episode runs; p2: ALT g1 only, hospitalised; p3: influenza (not
    related) and death on 2026-04-01."""
    p1 = one(patient(pid="p1"), enrolled(pid="p1"), drug("tofacitinib", pid="p1"),
             lab("1742-6", "2026-02-01", 60, high=40, pid="p1"), lab("1742-6", "2026-02-15", 30, high=40, pid="p1"),
             lab("1742-6", "2026-03-01", 250, high=40, pid="p1"), lab("1742-6", "2026-03-15", 90, high=40, pid="p1"),
             cond("K59.0", ICD, onsetDateTime="2026-02-20", pid="p1"),
             med("1357536", status="stopped", start=D1, end="2026-03-10", reason="281647001", pid="p1"))
    hosp = {"resourceType": "Encounter", "id": "adm", "status": "finished", "class": {"code": "IMP"},
            "subject": {"reference": "Patient/p2"}, "period": {"start": "2026-02-01", "end": "2026-02-05"}}
    p2 = one(patient(pid="p2"), enrolled(pid="p2"), lab("1742-6", "2026-02-02", 70, high=40, pid="p2"), hosp)
    p3 = one(patient(pid="p3", deceasedDateTime="2026-04-01"), enrolled(pid="p3"),
             cond("J11.1", CM, onsetDateTime="2026-03-01", pid="p3"))
    return [p1, p2, p3]


@pytest.fixture(scope="module")
def report():
    outs = three_subjects()
    return endpoints(outs, ["tofacitinib", "tacrolimus", "thalidomide"], AS_OF, study="NCT06438679"), outs


def test_safety_table_counts_subjects_once_per_term_at_their_worst_grade(report):
    rep, _ = report
    table = rep["safety_table"]["related"]
    assert table["denominator"] == 3
    rows = {r["term"]: r for r in table["rows"]}
    assert list(rows) == ["Alanine aminotransferase increased", "Constipation"]  # by frequency (2, 1)
    alt = rows["Alanine aminotransferase increased"]
    # p1 had two ALT episodes (g1, then g3): counted once, at grade 3; p2 at grade 1
    assert alt["subjects"] == 2 and alt["by_worst_grade"] == {"1": 1, "2": 0, "3": 1, "4": 0, "5": 0, "ungraded": 0}
    assert alt["code"] == "10001551" and alt["ci95"] == pytest.approx([0.0943, 0.9916], abs=1e-4)  # Clopper-Pearson 2/3
    assert rows["Constipation"]["by_worst_grade"]["ungraded"] == 1
    assert table["any"]["subjects"] == 2 and table["any"]["by_worst_grade"]["3"] == 1
    every = {r["term"]: r["subjects"] for r in rep["safety_table"]["all"]["rows"]}
    # influenza J11.1 is counted under its CTCAE term (CTCAE v5.0 has no influenza term: upper respiratory infection)
    assert every == {"Alanine aminotransferase increased": 2, "Constipation": 1, "Upper respiratory infection": 1,
                     "Death NOS": 1}


def test_saes_deaths_discontinuations_and_disposition(report):
    rep, _ = report
    saes = {(r["patient"], r["term"]): r for r in rep["serious_adverse_events"]}
    assert set(saes) == {("Patient/p2", "Alanine aminotransferase increased"), ("Patient/p3", "Death NOS")}
    assert saes[("Patient/p2", "Alanine aminotransferase increased")]["seriousness_text"] == \
        "requires or prolongs inpatient hospitalization"
    assert saes[("Patient/p3", "Death NOS")]["causality"] == {"tofacitinib": "UA", "tacrolimus": "UA", "thalidomide": "UA"}
    [death] = rep["deaths"]
    assert (death["patient"], death["study_day"], death["cause"]) == ("Patient/p3", (date(2026, 4, 1) - date(2026, 1, 5)).days, None)
    [stop] = rep["discontinuations"]
    assert (stop["patient"], stop["drug"], stop["day"]) == ("Patient/p1", "tofacitinib", "2026-03-10")
    assert stop["adverse_event_terms"] == ["Alanine aminotransferase increased"]  # the g3 episode ran on 03-10
    disp = {r["patient"]: r for r in rep["disposition"]}
    assert disp["Patient/p3"]["status_day182"] == "died (day 86)" and disp["Patient/p3"]["event_or_censoring"] == "death"
    assert disp["Patient/p1"]["status_day182"].startswith("day 182 not reached")
    assert [m["grade"] for m in disp["Patient/p1"]["ae_markers"]] == [1, None, 3]
    assert disp["Patient/p1"]["drug_stops"] == [{"day": 64, "drug": "tofacitinib"}]
    assert rep["ae_sources"] == {"fhir3t": 6, "investigator": 0, "both": 0, "causality_assessed_by_investigator": 0,
                                 "definition": rep["ae_sources"]["definition"]}
    assert rep["grading"]["ungraded"] == 2  # constipation and influenza


def test_rate_and_incidence_cis(report):
    rep, _ = report
    stats = pytest.importorskip("scipy.stats")
    rate = rep["ae_rate"]
    weeks = rate["patient_weeks"]
    lo, hi = rate["per_100_patient_weeks_ci95"]
    assert lo == pytest.approx(100 * stats.chi2.ppf(0.025, 2 * rate["aes"]) / 2 / weeks, rel=1e-9)
    assert hi == pytest.approx(100 * stats.chi2.ppf(0.975, 2 * rate["aes"] + 2) / 2 / weeks, rel=1e-9)
    assert rep["ae_incidence"]["by_grade"]["3"]["ci95"] == pytest.approx(
        [float(stats.beta.ppf(0.025, 1, 3)), float(stats.beta.ppf(0.975, 2, 2))])


SCREENING = [
    {"patient": "Patient/p1", "status": "eligible", "criteria": [{"id": "I1-age", "kind": "inclusion", "result": "met"}]},
    {"patient": "Patient/p2", "status": "candidate", "criteria": [{"id": "I2-dm", "kind": "inclusion", "result": "unknown"}]},
    {"patient": "Patient/p4", "status": "ineligible", "criteria": [
        {"id": "I1-age", "kind": "inclusion", "result": "not-met"}, {"id": "E7-hbv", "kind": "exclusion", "result": "met"}]},
    # listed E7 before E2, but the written order puts E2 first
    {"patient": "Patient/p5", "status": "ineligible", "criteria": [
        {"id": "E7-hbv", "kind": "exclusion", "result": "met"},
        {"id": "E2-recent-immunomodulator", "kind": "exclusion", "result": "met"},
        {"id": "I2-dm", "kind": "inclusion", "result": "met"}]},
    {"patient": "Patient/p6", "status": "ineligible", "criteria": []},
    {"status": "eligible"},
]


def test_screening_flow_hand_computed():
    problems = Problems()
    screened = parse_screening([(x, f"run.json[{i}]") for i, x in enumerate(SCREENING)], ORDER, problems)
    flow = screening_flow(screened, ["Patient/p1", "Patient/p2", "Patient/p3"], ORDER,
                          {"I1-age": "Adult", "E2-recent-immunomodulator": "Recent immunomodulator"})
    assert (flow["screened"], flow["eligible"], flow["candidate"], flow["ineligible"]) == (5, 1, 1, 3)
    assert [(r["criterion"], r["patients"]) for r in flow["ineligible_by_first_criterion"]] == [
        ("I1-age", 1), ("E2-recent-immunomodulator", 1), (None, 1)]
    assert flow["ineligible_by_first_criterion"][0]["title"] == "Adult"
    assert flow["enrolled"] == 3 and flow["enrolled_by_screening_status"] == {
        "eligible": 1, "candidate": 1, "ineligible": 0, "not_in_screening_run": 1}
    assert flow["eligible_not_enrolled"] == 0
    where = [p.where for p in problems]
    assert "run.json[5]" in where and "run.json[4]" in where  # not a result; ineligible without a reason


def test_report_cli_reads_a_screening_run_as_ndjson(tmp_path, capsys):
    from conftest import SAMPLES

    run = tmp_path / "screening.ndjson"
    run.write_text("\n".join(json.dumps(x) for x in SCREENING[:5]) + "\n{not json\n")
    html, js = tmp_path / "r.html", tmp_path / "r.json"
    rc = main(["report", str(SAMPLES / "safety"), "--as-of", "2026-11-16", "--screening", str(run),
               "--out", str(html), "--json", str(js)])
    assert rc == 3  # the broken line is skipped and said
    assert "screening.ndjson:6" in capsys.readouterr().err
    flow = json.loads(js.read_text())["screening_flow"]
    assert flow["screened"] == 5 and flow["enrolled"] == 8
    assert flow["enrolled_by_screening_status"]["not_in_screening_run"] == 8
    assert "Screened  n = 5" in html.read_text()
