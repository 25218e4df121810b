"""Kaplan–Meier survival with Greenwood variance (pure; no numpy needed for trial-sized data).

CI transform: "log-log" (default; Kalbfleisch–Prentice "exponential Greenwood", the one lifelines
uses, and it stays inside [0, 1]) or "plain" (S ± z·SE, clipped). At tied times, deaths are counted
before censorings (a subject censored on day t was at risk on day t).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

CI = Literal["log-log", "plain"]


@dataclass(frozen=True)
class Step:
    time: float
    at_risk: int
    events: int
    censored: int
    survival: float
    greenwood: float  # Σ d / (n (n - d)) up to this time (Var S = S² · greenwood)
    lo: float
    hi: float


@dataclass(frozen=True)
class KaplanMeier:
    times: tuple[float, ...]
    events: tuple[bool, ...]
    steps: tuple[Step, ...]  # one per distinct time (events or censorings), after t = 0
    ci: CI
    alpha: float

    @property
    def n(self) -> int:
        return len(self.times)

    @property
    def n_events(self) -> int:
        return sum(self.events)

    def at(self, t: float) -> tuple[float, float, float]:
        """(S(t), lo, hi): the step function's value at t (right-continuous)."""
        s, lo, hi = 1.0, 1.0, 1.0
        for st in self.steps:
            if st.time > t:
                break
            s, lo, hi = st.survival, st.lo, st.hi
        return s, lo, hi

    def at_risk(self, t: float) -> int:
        return sum(1 for x in self.times if x >= t)

    def events_by(self, t: float) -> int:
        return sum(1 for x, e in zip(self.times, self.events) if e and x <= t)

    def censored_before(self, t: float) -> int:
        """Censored before t (lost to follow-up before the horizon)."""
        return sum(1 for x, e in zip(self.times, self.events) if not e and x < t)

    def quantile(self, q: float = 0.5) -> tuple[float | None, float | None, float | None]:
        """(t_q, lo, hi): the first time S(t) <= q, and its CI (Brookmeyer–Crowley).

        The CI inverts the pointwise band, as R `survival` and lifelines do: the lower limit is
        the first time the lower band falls to q or below, the upper limit the first time the
        upper band does. None where a curve never gets there (median not reached; upper limit not
        estimable). Where S(t) equals q exactly over an interval, R reports the midpoint; this (as
        lifelines) reports its start.
        """
        def first(values: list[tuple[float, float]]) -> float | None:
            return next((t for t, v in values if v <= q), None)

        return (first([(s.time, s.survival) for s in self.steps]),
                first([(s.time, s.lo) for s in self.steps]),
                first([(s.time, s.hi) for s in self.steps]))


def confidence(s: float, greenwood: float, z: float, how: CI) -> tuple[float, float]:
    if s <= 0.0:
        return 0.0, 0.0
    if s >= 1.0 or greenwood == 0.0:
        return s, s
    if math.isinf(greenwood):
        return 0.0, 1.0
    if how == "plain":
        se = s * math.sqrt(greenwood)
        return max(0.0, s - z * se), min(1.0, s + z * se)
    log_s = math.log(s)
    sd = math.sqrt(greenwood / (log_s * log_s))
    centre = math.log(-log_s)
    return math.exp(-math.exp(centre + z * sd)), math.exp(-math.exp(centre - z * sd))


def kaplan_meier(times: Sequence[float], events: Sequence[bool], ci: CI = "log-log", alpha: float = 0.05) -> KaplanMeier:
    """Product-limit estimate S(t) = Π (1 - d_i / n_i) with Greenwood's variance."""
    if len(times) != len(events):
        raise ValueError("times and events differ in length")
    if any(t < 0 for t in times):
        raise ValueError("negative time")
    if ci not in ("log-log", "plain"):
        raise ValueError(f"unknown CI transform {ci!r}")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    pairs = sorted(zip(times, events))
    steps: list[Step] = []
    s, gw = 1.0, 0.0
    n = len(pairs)
    i = 0
    while i < len(pairs):
        t = pairs[i][0]
        d = c = 0
        while i < len(pairs) and pairs[i][0] == t:
            d += bool(pairs[i][1])
            c += not pairs[i][1]
            i += 1
        if d:
            s *= 1 - d / n
            gw = gw + d / (n * (n - d)) if n > d else math.inf
        lo, hi = confidence(s, gw, z, ci)
        steps.append(Step(t, n, d, c, s, gw, lo, hi))
        n -= d + c
    return KaplanMeier(tuple(float(t) for t in times), tuple(bool(e) for e in events), tuple(steps), ci, alpha)
