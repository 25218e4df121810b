"""Exact intervals and the KM median against independent implementations (scipy, statsmodels, lifelines)."""
from __future__ import annotations

import random

import pytest

from fhir3t.report.km import kaplan_meier
from fhir3t.report.stats import betainc, clopper_pearson, gammainc, poisson_exact, rate_ci


def test_clopper_pearson_hand_values():
    """k = 0 and k = n have closed forms: (0, 1 - (a/2)^(1/n)) and ((a/2)^(1/n), 1)."""
    assert clopper_pearson(0, 6) == pytest.approx((0.0, 1 - 0.025 ** (1 / 6)))
    assert clopper_pearson(6, 6) == pytest.approx((0.025 ** (1 / 6), 1.0))
    lo, hi = clopper_pearson(5, 6)
    assert 0.3587 < lo < 0.3588 and 0.9957 < hi < 0.9958
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


@pytest.mark.parametrize("n", [1, 2, 6, 7, 30, 133])
def test_clopper_pearson_matches_statsmodels_and_scipy(n):
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    stats = pytest.importorskip("scipy.stats")
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n} & set(range(n + 1))):
        ours = clopper_pearson(k, n)
        sm = proportion.proportion_confint(k, n, alpha=0.05, method="beta")
        assert ours == pytest.approx(tuple(float(x) for x in sm), abs=1e-10), (k, n)
        if 0 < k < n:
            assert ours[0] == pytest.approx(float(stats.beta.ppf(0.025, k, n - k + 1)), rel=1e-9)


@pytest.mark.parametrize("k", [0, 1, 2, 5, 10, 12, 40, 133, 500])
def test_poisson_exact_matches_scipy_chi2(k):
    stats = pytest.importorskip("scipy.stats")
    lo, hi = poisson_exact(k)
    want_lo = 0.0 if k == 0 else float(stats.chi2.ppf(0.025, 2 * k)) / 2
    assert lo == pytest.approx(want_lo, rel=1e-9, abs=1e-12)
    assert hi == pytest.approx(float(stats.chi2.ppf(0.975, 2 * k + 2)) / 2, rel=1e-9)


def test_rate_ci_scales_by_exposure():
    lo, hi = poisson_exact(12)
    assert rate_ci(12, 200.0) == pytest.approx((100 * lo / 200, 100 * hi / 200))
    assert rate_ci(3, 0.0) is None


def test_special_functions_match_scipy():
    special = pytest.importorskip("scipy.special")
    rng = random.Random(7)
    for _ in range(200):
        a, b, x = rng.uniform(0.2, 150), rng.uniform(0.2, 150), rng.random()
        assert betainc(a, b, x) == pytest.approx(float(special.betainc(a, b, x)), rel=1e-9, abs=1e-13)
        g = rng.uniform(0.0, 300)
        assert gammainc(a, g) == pytest.approx(float(special.gammainc(a, g)), rel=1e-9, abs=1e-13)


# ---- KM median with CI ------------------------------------------------------------------------
def test_km_median_hand_computed():
    """S: 5/6 at 1, 2/3 at 2, 4/9 at 3 → median 3. The log-log lower band is already 0.273 at day 1
    (lower limit 1); the upper band never falls below 0.785, so the upper limit is not estimable."""
    km = kaplan_meier([1, 2, 2, 3, 4, 5], [True, True, False, True, False, False])
    assert km.steps[0].lo == pytest.approx(0.2731, abs=1e-4) and km.steps[-1].hi == pytest.approx(0.7849, abs=1e-4)
    assert km.quantile(0.5) == (3, 1, None)
    never = kaplan_meier([5, 6, 7], [True, False, False])
    assert never.quantile(0.5) == (None, 5, None)  # not reached, yet its lower limit is known


@pytest.mark.parametrize("seed", range(8))
def test_km_median_matches_lifelines(seed):
    lifelines = pytest.importorskip("lifelines")
    from lifelines.utils import median_survival_times

    rng = random.Random(100 + seed)
    n = rng.randint(10, 80)
    times = [rng.randint(1, 300) for _ in range(n)]
    events = [rng.random() < 0.6 for _ in range(n)]
    kmf = lifelines.KaplanMeierFitter().fit(times, [int(e) for e in events], alpha=0.05)
    median, lo, hi = kaplan_meier(times, events).quantile(0.5)

    def norm(x: float) -> float | None:
        return None if x == float("inf") else float(x)

    assert median == norm(kmf.median_survival_time_)
    ci = median_survival_times(kmf.confidence_interval_)
    assert (lo, hi) == (norm(ci.iloc[0, 0]), norm(ci.iloc[0, 1]))
