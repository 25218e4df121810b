"""Kaplan–Meier (hand-computed and against lifelines), endpoints JSON contract, offline HTML."""
from __future__ import annotations

import math
import re
from datetime import date

import pytest

from fhir3t.report import endpoints, kaplan_meier, render_html
from fhir3t.report.km import confidence

T = [1, 2, 2, 3, 4, 5]
E = [True, True, False, True, False, False]


def test_km_hand_computed():
    """S(1)=5/6; S(2)=5/6·4/5=2/3 (the tie: death before censoring); S(3)=2/3·2/3=4/9.
    Greenwood sum at 3: 1/(6·5) + 1/(5·4) + 1/(3·2) = 0.25."""
    km = kaplan_meier(T, E)
    assert [round(s.survival, 6) for s in km.steps] == [round(x, 6) for x in (5 / 6, 2 / 3, 4 / 9, 4 / 9, 4 / 9)]
    assert [s.at_risk for s in km.steps] == [6, 5, 3, 2, 1]
    assert km.steps[2].greenwood == pytest.approx(0.25)
    s, lo, hi = km.at(3.5)
    assert s == pytest.approx(4 / 9)
    # log-log: S^exp(±z·sqrt(gw)/|log S|)
    z = 1.959963984540054
    sd = math.sqrt(0.25) / abs(math.log(4 / 9))
    assert (lo, hi) == pytest.approx(((4 / 9) ** math.exp(z * sd), (4 / 9) ** math.exp(-z * sd)))
    assert (lo, hi) == pytest.approx((0.0662, 0.7849), abs=1e-4)
    plain = kaplan_meier(T, E, ci="plain")
    assert plain.at(3)[1:] == pytest.approx((4 / 9 - z * 4 / 9 * 0.5, 4 / 9 + z * 4 / 9 * 0.5))
    assert km.at(0.5) == (1.0, 1.0, 1.0) and km.at_risk(3) == 3 and km.events_by(3) == 3


def test_km_edges():
    assert kaplan_meier([5, 6], [False, False]).at(10) == (1.0, 1.0, 1.0)
    all_dead = kaplan_meier([1, 2], [True, True])
    assert all_dead.at(2)[0] == 0.0 and confidence(0.0, math.inf, 1.96, "log-log") == (0.0, 0.0)
    with pytest.raises(ValueError):
        kaplan_meier([1], [True, False])


@pytest.mark.parametrize("seed", range(5))
def test_km_matches_lifelines(seed):
    lifelines = pytest.importorskip("lifelines")
    import random

    rng = random.Random(seed)
    n = rng.randint(8, 60)
    times = [rng.randint(0, 250) for _ in range(n)]
    events = [rng.random() < 0.4 for _ in range(n)]
    ours = kaplan_meier(times, events)
    kmf = lifelines.KaplanMeierFitter().fit(times, [int(e) for e in events], alpha=0.05)
    ci = kmf.confidence_interval_
    for t in sorted(set(times)) + [182]:
        s, lo, hi = ours.at(t)
        assert s == pytest.approx(float(kmf.predict(t)), abs=1e-9)
        row = ci.loc[:t].iloc[-1]
        if 0 < s < 1:
            assert (lo, hi) == pytest.approx((float(row.iloc[0]), float(row.iloc[1])), abs=1e-9)


# ---- endpoints and HTML on the samples ------------------------------------------------------
@pytest.fixture(scope="module")
def sample_run():
    from conftest import SAMPLES
    from fhir3t.errors import Problems
    from fhir3t.safety import SafetyEngine, analyse

    problems = Problems()
    eng = SafetyEngine.load(problems=problems)
    outs = analyse([SAMPLES / "safety"], as_of=date(2026, 11, 16), engine=eng, problems=problems)
    return outs, eng, problems


def test_json_contract(sample_run):
    """Figures worked out by hand in samples/safety/README.md (from the spec and CTCAE v5.0)."""
    outs, eng, _ = sample_run
    rep = endpoints(outs, [d.id for d in eng.config.drugs], date(2026, 11, 16))
    sv = rep["survival"]
    assert {"subjects", "events", "censored", "day182"} <= set(sv)
    assert {"estimate", "ci95"} <= set(sv["day182"]) and len(sv["day182"]["ci95"]) == 2
    inc = rep["ae_incidence"]
    assert {"overall", "by_drug", "by_grade"} <= set(inc)
    assert set(inc["overall"]) >= {"subjects", "with_related_ae", "proportion"}
    assert set(inc["by_drug"]) == {"tofacitinib", "tacrolimus", "thalidomide"}
    assert (sv["subjects"], sv["events"], sv["censored"]) == (8, 1, 7)
    assert sv["day182"]["estimate"] == pytest.approx(6 / 7) and sv["day182"]["at_risk"] == 4
    assert sv["censored_at_withdrawal"] == 1  # s08, censored at withdrawal although it died later
    assert inc["overall"] == {"subjects": 8, "with_related_ae": 7, "proportion": pytest.approx(7 / 8),
                              "ci95": pytest.approx([0.4735, 0.9968], abs=1e-4)}  # Clopper-Pearson 7/8
    assert inc["conservative"]["overall"]["with_related_ae"] == 8  # + s06 (all unassessable)
    assert {d: s["with_related_ae"] for d, s in inc["by_drug"].items()} == {
        "tofacitinib": 6, "tacrolimus": 4, "thalidomide": 4}
    # worst related grade: s01 3 (ALT), s02 3 (lung infection, hospitalised), s03 3 (neutrophils), s07 3 (PJP,
    # hospitalised); s04 2 (K), s05 2 (lymphocytes, constipation), s08 2 (DVT)
    assert {g: s["with_related_ae"] for g, s in inc["by_grade"].items() if s["with_related_ae"]} == {"2": 3, "3": 4}
    assert rep["ae_rate"]["aes"] == 15 and rep["ae_rate"]["related_aes"] == 13
    assert rep["ae_rate"]["patient_weeks"] == pytest.approx(1444 / 7)


def test_html_renders_offline_with_plot_and_tables(sample_run):
    outs, eng, _ = sample_run
    rep = endpoints(outs, [d.id for d in eng.config.drugs], date(2026, 11, 16))
    page = render_html(rep, [f for o in outs for f in o.findings], [o.survival_days for o in outs if not o.event])
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<polyline" in page and "<polygon" in page
    assert page.count("<table") >= 5 and "Alanine aminotransferase increased" in page
    assert not re.search(r"(?:https?:)?//[a-z]", page) and "<script" not in page and "<link" not in page
    assert "0.857" in page


def test_html_escapes_data():
    from fhir3t.report.html import _table

    assert "<b>" not in _table(["x"], [["<b>bold</b>"]])


def test_page_margin_text_is_a_css_string_data_cannot_leave():
    from fhir3t.report.html import css_content, css_string

    assert css_string('a"b\\c</style><script>') == '"a\\22 b\\5c c\\3c /style\\3e \\3c script\\3e "'
    assert css_content("Page {page} of {pages}") == '"Page " counter(page) " of " counter(pages)'
    # a translated template keeps its own word order and literal text
    assert css_content("第 {page} 页，共 {pages} 页") == '"第 " counter(page) " 页，共 " counter(pages) " 页"'
    assert css_content("{study} v{version}", study='x"y', version="2") == '"x\\22 y" " v" "2"'
