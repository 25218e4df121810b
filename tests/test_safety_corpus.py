"""The hospital-shaped safety corpus (tests/safety_corpus.py) against its truth, written from the spec and CTCAE v5.0:
every subject's AEs (term, grade and how it was derived, onset, outcome, seriousness, causality primary and
conservative, flags, AESIs, source), survival time and censoring, dose changes; and the report's figures, each
recomputed from the truth (not from fhir3t's output)."""
from __future__ import annotations

import json
from datetime import date

import pytest

import safety_corpus
from fhir3t.cli import main
from fhir3t.report.stats import clopper_pearson

AS_OF = "2026-11-16"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("safety-corpus")
    safety_corpus.write(out)
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))["subjects"]
    return out, truth


@pytest.fixture(scope="module")
def outcomes(corpus):
    from fhir3t.errors import Problems
    from fhir3t.safety import analyse

    out, _ = corpus
    problems = Problems()
    outs = analyse([out / "data"], as_of=date(2026, 11, 16), problems=problems)
    return {o.subject.patient.split("/")[1]: o for o in outs}, problems


@pytest.fixture(scope="module")
def report(corpus, tmp_path_factory):
    out, _ = corpus
    js = tmp_path_factory.mktemp("corpus-report") / "report.json"
    assert main(["report", str(out / "data"), "--as-of", AS_OF, "--since", "2026-08-16", "--report-version", "3",
                 "--out", str(js.with_suffix(".html")), "--json", str(js)]) == 0
    return json.loads(js.read_text())


def _got(o):
    return sorted(({"term": f.table_term, "grade": f.grade, "onset": f.onset.isoformat(), "outcome": f.outcome,
                    "seriousness": f.seriousness, "related": f.treatment_related, "conservative": f.conservative_related,
                    "pending": f.needs_assessment, "source": f.source,
                    "related_drugs": sorted(s.drug for s in f.suspects if s.causality in f.related_set),
                    "aesi": sorted(f.aesi), "susar": f.susar, "grade_rule": f.grade_rule} for f in o.findings),
                  key=lambda x: (x["onset"], x["term"]))


def test_every_subject_is_analysed_with_its_subject_number(corpus, outcomes):
    _, truth = corpus
    outs, problems = outcomes
    assert set(outs) == set(truth)
    assert {p: o.subject.number for p, o in outs.items()} == {p: t["number"] for p, t in truth.items()}
    assert not problems.any_skipped, [p.message for p in problems]


@pytest.mark.parametrize("pid", [s.pid for s in safety_corpus.scenarios()])
def test_scenario_aes_match_the_truth(corpus, outcomes, pid):
    _, truth = corpus
    outs, _ = outcomes
    want = sorted(truth[pid]["aes"], key=lambda x: (x["onset"], x["term"]))
    assert _got(outs[pid]) == want


def test_fillers_have_no_ae_and_are_censored_at_their_last_visit(corpus, outcomes):
    _, truth = corpus
    outs, _ = outcomes
    for pid, t in truth.items():
        o = outs[pid]
        if pid.startswith("f"):
            assert o.findings == ()
        assert (o.survival_days, o.event, o.censored_at) == (t["survival_days"], t["event"], t["censored_at"]), pid


def test_dose_changes_and_the_aes_that_caused_them(corpus, outcomes):
    _, truth = corpus
    outs, _ = outcomes
    for pid, t in truth.items():
        o = outs[pid]
        changes = [c for e in o.exposure for c in e.changes]
        assert sorted([c.drug, c.kind] for c in changes) == sorted(t["changes"]), pid
        for c in changes:  # each was caused by the subject's one AE (reasonReference, or an adverse-reaction hold)
            assert c.aes == tuple(f.id for f in o.findings), pid
    z03 = next(c for e in outs["z03"].exposure for c in e.changes)
    assert (z03.from_dose, z03.to_dose) == ("2 mg/day", "1 mg/day")


def test_withdrawal_censoring(corpus, outcomes):
    outs, _ = outcomes
    z09 = outs["z09"]  # died on 10-05, after withdrawing on 08-01: censored at withdrawal, no AE for the death
    assert z09.death == date(2026, 10, 5) and not z09.event and z09.censored_at == "withdrawal"
    assert z09.survival_days == (date(2026, 8, 1) - date(2026, 3, 16)).days and z09.findings == ()
    assert outs["z10"].subject.withdrawn  # off-study, withdrawn by the progress extension's reason
    assert outs["z11"].subject.disposition == "lost-to-follow-up" and outs["z11"].censored_at == "last-contact"


def test_report_figures_recomputed_from_the_truth(corpus, report):
    _, truth = corpus
    n = len(truth)
    related = [p for p, t in truth.items() if any(a["related"] for a in t["aes"])]
    conservative = [p for p, t in truth.items() if any(a["conservative"] for a in t["aes"])]
    inc = report["ae_incidence"]
    assert inc["overall"]["with_related_ae"] == len(related) and inc["overall"]["subjects"] == n
    assert inc["overall"]["ci95"] == pytest.approx(list(clopper_pearson(len(related), n)))
    assert inc["conservative"]["overall"]["with_related_ae"] == len(conservative) > len(related)
    for drug in ("tofacitinib", "tacrolimus", "thalidomide"):
        k = sum(1 for t in truth.values() if any(drug in a["related_drugs"] for a in t["aes"]))
        assert inc["by_drug"][drug]["with_related_ae"] == k, drug
    every = [a for t in truth.values() for a in t["aes"]]
    assert report["ae_rate"]["aes"] == len(every)
    assert len(report["serious_adverse_events"]) == sum(a["seriousness"] != "Non-serious" for a in every)
    assert [r["subject"] for r in report["pending_assessment"]["rows"]] == ["3T-001"]  # the unassessable death
    assert [(r["subject"], r["term"]) for r in report["expectedness"]["susars"]] == [("3T-015", "Acute kidney injury")]
    sv = report["survival"]
    assert sv["events"] == sum(t["event"] for t in truth.values()) == 2
    assert sv["censored_at_withdrawal"] == sum(t["censored_at"] == "withdrawal" for t in truth.values()) == 2
    assert "censored at withdrawal" in sv["censoring_rule"]
    # AESI: subjects, and time to first event from D1, from the truth
    rows = {r["id"]: r for r in report["aesi"]["rows"]}
    for aesi_id, row in rows.items():
        firsts = {}
        for t in truth.values():
            days = [(date.fromisoformat(a["onset"]) - date.fromisoformat(t["d1"])).days for a in t["aes"] if aesi_id in a["aesi"]]
            if days:
                firsts[t["number"]] = min(days)
        assert row["subjects"] == len(firsts), aesi_id
        assert {e["subject"]: e["study_day"] for e in row["first_events"]} == firsts, aesi_id
    for required in ("herpes-zoster", "pjp", "cmv", "tb", "vte", "pe", "peripheral-neuropathy", "nephrotoxicity",
                     "hyperglycaemia", "cytopenia", "lipid-increase", "ild-progression", "serious-infection"):
        assert rows[required]["subjects"] >= 1, required
    # the grades derived from the record, by rule
    rules: dict[str, int] = {}
    for a in every:
        if a["grade_rule"]:
            rules[a["grade_rule"]] = rules.get(a["grade_rule"], 0) + 1
    assert report["grading"]["derived"] == rules and set(rules) == {
        "cause-of-death", "hospitalisation", "icu", "iv-anti-infective", "urgent-intervention"}
    # accrual against the target, by month of D1
    acc = report["accrual"]
    assert acc["target"] == 133 and acc["enrolled"] == n and acc["by_month"][-1]["cumulative"] == n
    months: dict[str, int] = {}
    for t in truth.values():
        months[t["d1"][:7]] = months.get(t["d1"][:7], 0) + 1
    assert {m["month"]: m["enrolled"] for m in acc["by_month"] if m["enrolled"]} == months
    # cumulative vs since the last report (onset after 2026-08-16)
    since = {r["metric"]: r for r in report["interval"]["rows"]}
    assert since["adverse_events"]["since"] == sum(a["onset"] > "2026-08-16" for a in every)
    assert since["deaths"]["since"] == 2  # z02 (09-05) and z09 (10-05, after withdrawal)
    assert report["header"]["report_version"] == "3"


def test_narratives_and_shift_tables(report):
    texts = {(r["subject"], r["kind"]): r["text"] for r in report["narratives"]}
    death = texts[("3T-002", "death")]
    assert "cause: Sepsis" in death and "grade 5" in death and "注射用美罗培南 1g (IV)" in death
    assert "tofacitinib possible (investigator)" in death
    flagged = texts[("3T-001", "death")]
    assert "the investigator's assessment is required" in flagged
    assert not any("Patient/" in t for t in texts.values())  # subjects by number in what a person reads
    alt = next(t for t in report["lab_shifts"]["tables"] if t["test"] == "alt")
    assert alt["matrix"]["2"]["2"] == 1  # z19: baseline grade 2 (the 23:50 panel on D1), worst grade 2 after D1
    crea = next(t for t in report["lab_shifts"]["tables"] if t["test"] == "creatinine")
    assert crea["matrix"]["0"]["3"] == 1 and crea["worsened"] == 1
