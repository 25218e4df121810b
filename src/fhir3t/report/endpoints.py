"""The trial's endpoints from safety results: 26-week survival and AE incidence (pure)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from fhir3t import __version__
from fhir3t.report.km import CI, KaplanMeier, kaplan_meier
from fhir3t.safety.engine import SubjectOutcome

HORIZON_DAYS = 182  # 26 weeks


def survival_fit(outcomes: Sequence[SubjectOutcome], ci: CI = "log-log") -> KaplanMeier:
    return kaplan_meier([o.survival_days for o in outcomes], [o.event for o in outcomes], ci)


def _share(n: int, k: int) -> dict[str, Any]:
    return {"subjects": n, "with_related_ae": k, "proportion": (k / n) if n else None}


def endpoints(outcomes: Sequence[SubjectOutcome], drugs: Sequence[str], as_of: date,
              ci: CI = "log-log") -> dict[str, Any]:
    """The JSON report (public contract: survival / ae_incidence keys are fixed by issue 5)."""
    horizon = HORIZON_DAYS
    km = survival_fit(outcomes, ci)
    s, lo, hi = km.at(horizon)
    n = len(outcomes)
    events = km.n_events
    curve = [{"day": 0, "at_risk": n, "events": 0, "censored": 0, "estimate": 1.0, "ci95": [1.0, 1.0]}]
    curve += [{"day": int(st.time), "at_risk": st.at_risk, "events": st.events, "censored": st.censored,
               "estimate": st.survival, "ci95": [st.lo, st.hi]} for st in km.steps]
    related = [[f for f in o.findings if f.treatment_related] for o in outcomes]
    by_drug = {d: _share(n, sum(1 for fs in related if any(f.related_to(d) for f in fs))) for d in drugs}
    by_grade: dict[str, dict[str, Any]] = {str(g): _share(n, 0) for g in range(1, 6)}
    by_grade["ungraded"] = _share(n, 0)
    for fs in related:
        if not fs:
            continue
        graded = [f.grade for f in fs if f.grade is not None]
        key = str(max(graded)) if graded else "ungraded"
        by_grade[key] = _share(n, by_grade[key]["with_related_ae"] + 1)
    all_aes = sum(len(o.findings) for o in outcomes)
    related_aes = sum(len(fs) for fs in related)
    weeks = sum(o.exposure_days for o in outcomes) / 7
    return {
        "study": "NCT06438679",
        "as_of": as_of.isoformat(),
        "generated_by": f"fhir3t {__version__}",
        "survival": {
            "subjects": n,
            "events": events,
            "censored": n - events,
            "horizon_days": horizon,
            "ci_method": f"Greenwood variance, {ci} transform, 95 %",
            "day182": {
                "estimate": s, "ci95": [lo, hi], "at_risk": km.at_risk(horizon),
                "events": km.events_by(horizon), "censored_before": km.censored_before(horizon),
            },
            "curve": curve,
        },
        "ae_incidence": {
            "overall": _share(n, sum(1 for fs in related if fs)),
            "by_drug": by_drug,
            "by_grade": by_grade,
            "definition": "subjects with >= 1 treatment-related AE (causality Certain, Probably-Likely or Possible "
                          "for >= 1 3T drug) / subjects on study; by_grade counts each subject once, at the worst "
                          "grade of its treatment-related AEs",
        },
        "ae_rate": {
            "aes": all_aes,
            "related_aes": related_aes,
            "patient_weeks": weeks,
            "per_100_patient_weeks": (100 * all_aes / weeks) if weeks else None,
            "related_per_100_patient_weeks": (100 * related_aes / weeks) if weeks else None,
            "exposure": "D1 to the end of the AE window (as_of, or period.end + 30 days off study), or death",
        },
    }
