"""Exact small-sample intervals in pure Python: Clopper–Pearson for proportions, Garwood for Poisson counts.

A trial of at most ~133 subjects needs exact intervals, not normal approximations; scipy would
bring them but is a heavy runtime dependency for two quantile functions. The regularized incomplete
beta and gamma functions below follow the classic continued-fraction / series evaluations (Numerical
Recipes §6.2, §6.4) and are inverted by bisection, which is slow but cannot diverge; tests compare
every interval with scipy and statsmodels.
"""
from __future__ import annotations

import math
from collections.abc import Callable

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITER = 10_000


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITER):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError("incomplete beta: continued fraction did not converge")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (the Beta(a, b) CDF at x)."""
    if a <= 0 or b <= 0:
        raise ValueError("beta parameters must be positive")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def gammainc(a: float, x: float) -> float:
    """The regularized lower incomplete gamma function P(a, x) (the Gamma(a, 1) CDF at x)."""
    if a <= 0:
        raise ValueError("gamma shape must be positive")
    if x <= 0.0:
        return 0.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:  # series
        term = total = 1.0 / a
        ap = a
        for _ in range(_MAX_ITER):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                return total * math.exp(log_front)
        raise ArithmeticError("incomplete gamma: series did not converge")
    b = x + 1.0 - a  # continued fraction for Q(a, x), modified Lentz
    c, d = 1.0 / _TINY, 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return 1.0 - math.exp(log_front) * h
    raise ArithmeticError("incomplete gamma: continued fraction did not converge")


def _invert(cdf: Callable[[float], float], p: float, lo: float, hi: float) -> float:
    """x with cdf(x) = p for an increasing cdf on [lo, hi], by bisection to double precision."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if cdf(mid) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def beta_ppf(p: float, a: float, b: float) -> float:
    """Quantile of Beta(a, b)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    return _invert(lambda x: betainc(a, b, x), p, 0.0, 1.0)


def gamma_ppf(p: float, a: float) -> float:
    """Quantile of Gamma(a, 1) (chi-square with 2a degrees of freedom, halved)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    hi = max(1.0, a)
    while gammainc(a, hi) < p:
        hi *= 2.0
    return _invert(lambda x: gammainc(a, x), p, 0.0, hi)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided (1 - alpha) interval for a binomial proportion k / n (as statsmodels method='beta')."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0 (k={k}, n={n})")
    lo = 0.0 if k == 0 else beta_ppf(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else beta_ppf(1 - alpha / 2, k + 1, n - k)
    return lo, hi


def poisson_exact(k: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Garwood) two-sided interval for a Poisson mean given k observed events."""
    if k < 0:
        raise ValueError("a count cannot be negative")
    lo = 0.0 if k == 0 else gamma_ppf(alpha / 2, k)
    return lo, gamma_ppf(1 - alpha / 2, k + 1)


def rate_ci(k: int, exposure: float, per: float = 100.0, alpha: float = 0.05) -> tuple[float, float] | None:
    """Exact interval for k events per `per` units of exposure (None without exposure)."""
    if exposure <= 0:
        return None
    lo, hi = poisson_exact(k, alpha)
    return per * lo / exposure, per * hi / exposure
