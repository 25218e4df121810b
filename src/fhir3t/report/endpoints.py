"""The trial's endpoints from safety results (pure): 26-week survival, AE incidence with exact CIs (and
the conservative causality line beside it), the ICH E3 safety tables (AEs by term and worst grade, by
system organ class, SAEs with expectedness, deaths, discontinuations), the DSMB sections of
fhir3t.report.sections, narratives, per-subject disposition and the screening flow. `endpoints()` builds
the JSON report the HTML page renders.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from fhir3t.enrolment import Status
from fhir3t.messages import Text, Words, render, table
from fhir3t.report import sections
from fhir3t.report.km import CI, KaplanMeier, kaplan_meier
from fhir3t.report.narratives import narratives
from fhir3t.report.stats import clopper_pearson, rate_ci
from fhir3t.safety.config import SafetyConfig
from fhir3t.safety.engine import SubjectOutcome
from fhir3t.safety.findings import BY_INVESTIGATOR, Finding, seriousness_text
from fhir3t.version import __version__

HORIZON_DAYS = 182  # 26 weeks
GRADES = ("1", "2", "3", "4", "5", "ungraded")
TEXTS = table("report.text", {
    "censoring": "Survival from D1 to death. Subjects withdrawn from the study are censored at withdrawal "
                 "(ResearchSubject.period.end), whatever the record shows later; all other subjects without a death "
                 "(lost to follow-up, off study, or on study at the data cut-off) are censored at their last contact: "
                 "the latest dated resource of their record, capped at the data cut-off.",
    "methods": "Small-sample methods (n is at most ~133): proportions with exact Clopper–Pearson 95 % intervals; AE "
               "rates per 100 patient-weeks with exact Poisson (Garwood) 95 % intervals; Kaplan–Meier survival with "
               "Greenwood variance and a {ci} 95 % band; the median survival and its 95 % interval by inverting that "
               "band (Brookmeyer–Crowley, as R survival and lifelines do).",
    "ci-method": "Greenwood variance, {ci} transform, 95 %",
    "by-investigator": "assessed by an investigator",
    "not-assessed": "not assessed",
})
CENSORING_RULE = TEXTS["censoring"].en
CAUSALITY_SHORT = {
    "Certain": "C", "Probably-Likely": "PL", "Possible": "P", "Unlikely": "U",
    "Conditional-Classified": "CC", "Unassessable-Unclassifiable": "UA",
}
METHODS = TEXTS["methods"].en


def survival_fit(outcomes: Sequence[SubjectOutcome], ci: CI = "log-log") -> KaplanMeier:
    return kaplan_meier([o.survival_days for o in outcomes], [o.event for o in outcomes], ci)


def _share(n: int, k: int) -> dict[str, Any]:
    return {"subjects": n, "with_related_ae": k, "proportion": (k / n) if n else None,
            "ci95": list(clopper_pearson(k, n)) if n else None}


def subject_label(o: SubjectOutcome) -> str:
    """The study subject number, else the patient reference (never a name)."""
    return o.subject.number or o.subject.patient


def _worst(fs: Sequence[Finding]) -> str:
    graded = [f.grade for f in fs if f.grade is not None]
    return str(max(graded)) if graded else "ungraded"


def term_table(outcomes: Sequence[SubjectOutcome], related_only: bool) -> dict[str, Any]:
    """Subjects with >= 1 AE of each term, at the worst grade of that term (ICH E3 14.3.1 style)."""
    n = len(outcomes)
    by_term: dict[str, dict[str, list[Finding]]] = {}
    meta: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        for f in o.findings:
            if related_only and not f.treatment_related:
                continue
            by_term.setdefault(f.table_term, {}).setdefault(o.subject.patient, []).append(f)
            meta.setdefault(f.table_term, {"code": f.ctcae.code if f.ctcae else None,
                                           "soc": f.ctcae.soc if f.ctcae else None, "ctcae": f.ctcae is not None})
    rows = []
    for term, subjects in by_term.items():
        grades = {g: 0 for g in GRADES}
        for fs in subjects.values():
            grades[_worst(fs)] += 1
        k = len(subjects)
        rows.append({"term": term, **meta[term], "subjects": k, "proportion": k / n if n else None,
                     "ci95": list(clopper_pearson(k, n)) if n else None, "by_worst_grade": grades})
    rows.sort(key=lambda r: (-r["subjects"], r["term"]))
    anyone = [o for o in outcomes if any(f.treatment_related or not related_only for f in o.findings)]
    any_grades = {g: 0 for g in GRADES}
    for o in anyone:
        any_grades[_worst([f for f in o.findings if f.treatment_related or not related_only])] += 1
    return {"denominator": n, "any": {"subjects": len(anyone), "proportion": len(anyone) / n if n else None,
                                      "ci95": list(clopper_pearson(len(anyone), n)) if n else None,
                                      "by_worst_grade": any_grades},
            "rows": rows}


def causality_short(f: Finding) -> dict[str, str]:
    """drug → short label (C, PL, P, U, CC, UA; '*' marks an investigator's assessment, '–' not assessed)."""
    out = {}
    for s in f.suspects:
        if s.assessor == "not-assessed":
            out[s.drug] = "–"
        else:
            out[s.drug] = CAUSALITY_SHORT.get(s.causality, s.causality) + ("*" if s.assessor == BY_INVESTIGATOR else "")
    return out


def causality_word(code: str, lang: str = "en") -> str:
    """A WHO-UMC causality category as written (English: the code, as the legend has always shown it)."""
    if lang == "en":
        return code
    from fhir3t.report.narratives import CAUSALITY

    m = CAUSALITY.get(code)
    return render(m(), lang) if m is not None else code


def _ae_row(o: SubjectOutcome, f: Finding, since: date | None = None, lang: str = "en") -> dict[str, Any]:
    return {"subject": subject_label(o), "patient": o.subject.patient, "id": f.id, "term": f.table_term,
            "reported_term": f.term, "onset": f.onset.isoformat(), "study_day": (f.onset - o.subject.d1).days,
            "end": f.end.isoformat() if f.end else None, "grade": f.grade, "grade_source": f.grade_source,
            "grade_rule": f.grade_rule,
            "seriousness": f.seriousness, "seriousness_text": seriousness_text(f.seriousness, lang),
            "outcome": f.outcome, "related": f.treatment_related, "causality": causality_short(f), "source": f.source,
            "conservative_related": f.conservative_related, "needs_assessment": f.needs_assessment,
            "causality_pending": list(f.pending), "expected": {s.drug: s.drug not in f.unexpected_for for s in f.suspects},
            "susar": f.susar, "aesi": list(f.aesi), "recorded": list(f.recorded),
            "new_since": (f.onset > since) if since is not None else None}


#: The disposition's words: the JSON carries them in the report's language (English for --json) and the page shows
#: them
MESSAGES = table("report.disposition", {
    "status.died": "died (day {day})",
    "status.alive": "alive at day {horizon}",
    "status.withdrawn": "censored before day {horizon} (withdrawn, day {day})",
    "status.not_reached": "day {horizon} not reached by the data cut-off (last contact day {day})",
    "status.censored": "censored before day {horizon} (last contact day {day})",
    "reason.death": "death",
    "reason.death.undated": "death (date unknown: last day known alive)",
    "reason.withdrawal": "censored at withdrawal on {day}",
    "reason.withdrawal.died_after": "censored at withdrawal on {day} (died {death}, after withdrawal)",
    "reason.lost": "censored at last contact; lost to follow-up",
    "reason.off_study": "censored at last contact; off study since {day}",
    "reason.on_study": "censored at last contact; on study at the data cut-off",
})


def disposition(o: SubjectOutcome, horizon: int = HORIZON_DAYS, lang: str = "en") -> dict[str, Any]:
    """One subject's line: D1, last contact, status at day 182, event or censoring reason, follow-up (in `lang`)."""
    w = Words(MESSAGES, lang)
    s = o.subject
    days = o.survival_days
    on_study = False
    if o.event:
        at_horizon = w("status.died", day=days) if days <= horizon else w("status.alive", horizon=horizon)
        reason = w("reason.death") if o.death_date_known else w("reason.death.undated")
    else:
        off = s.end is not None and s.end <= o.as_of
        if days >= horizon:
            at_horizon = w("status.alive", horizon=horizon)
        elif o.censored_at == "withdrawal":
            at_horizon = w("status.withdrawn", horizon=horizon, day=days)
        elif (o.as_of - s.d1).days < horizon and not off:
            at_horizon = w("status.not_reached", horizon=horizon, day=days)
        else:
            at_horizon = w("status.censored", horizon=horizon, day=days)
        if o.censored_at == "withdrawal" and s.end:
            reason = (w("reason.withdrawal.died_after", day=s.end.isoformat(), death=o.death.isoformat())
                      if o.death is not None else w("reason.withdrawal", day=s.end.isoformat()))
        elif s.disposition == "lost-to-follow-up":
            reason = w("reason.lost")
        else:
            on_study = not (off and s.end)
            reason = w("reason.off_study", day=s.end.isoformat()) if off and s.end else w("reason.on_study")
    markers = [{"day": (f.onset - s.d1).days, "grade": f.grade, "related": f.treatment_related, "term": f.table_term,
                "serious": f.serious} for f in o.findings if f.kind != "death"]
    stops = [{"day": (st.day - s.d1).days, "drug": st.drug} for st in o.stops if st.day]
    return {"subject": subject_label(o), "patient": s.patient, "d1": s.d1.isoformat(),
            "last_contact": o.last_alive.isoformat(), "status_day182": at_horizon, "event": o.event,
            "event_or_censoring": reason, "on_study_at_cutoff": on_study, "follow_up_days": days, "status": s.status,
            "off_study": s.end.isoformat() if s.end else None, "ae_markers": markers, "drug_stops": stops,
            "censored_at": o.censored_at, "disposition": s.disposition,
            Status.WITHDRAWN.value: s.end.isoformat() if s.withdrawn and s.end else None}


def _median(km: KaplanMeier) -> dict[str, Any]:
    t, lo, hi = km.quantile(0.5)
    return {"days": t, "reached": t is not None, "ci95": [lo, hi],
            "method": "first day S(t) <= 0.5; CI by inverting the pointwise band (Brookmeyer–Crowley); "
                      "null where a limit is not reached (not estimable)"}


def _terms_of(o: SubjectOutcome, ids: tuple[str, ...]) -> list[str]:
    return [f.table_term for f in o.findings if f.id in ids]


def endpoints(outcomes: Sequence[SubjectOutcome], drugs: Sequence[str], as_of: date,
              ci: CI = "log-log", *, study: str = "", header: Mapping[str, Any] | None = None,
              flow: Mapping[str, Any] | None = None, config: SafetyConfig | None = None,
              since: date | None = None, lang: str = "en", names: Mapping[str, Text] | None = None) -> dict[str, Any]:
    """The JSON report (public contract: keys are only ever added; survival / ae_incidence fixed by issue 5).

    With `config` (the safety data the outcomes came from) the report also has the sections that need it:
    baseline, lab shifts, AESIs, accrual against the target, expectedness; `since` adds the interval figures.
    `lang`: the language of the sentences a page shows (methods, censoring rule, disposition, narratives, the
    seriousness in words); the JSON written for programs is English (the default)."""
    t = Words(TEXTS, lang)
    horizon = HORIZON_DAYS
    outcomes = sorted(outcomes, key=lambda o: (o.subject.label, o.subject.patient))  # listings by subject number
    km = survival_fit(outcomes, ci)
    s, lo, hi = km.at(horizon)
    n = len(outcomes)
    events = km.n_events
    curve = [{"day": 0, "at_risk": n, "events": 0, "censored": 0, "estimate": 1.0, "ci95": [1.0, 1.0]}]
    curve += [{"day": int(st.time), "at_risk": st.at_risk, "events": st.events, "censored": st.censored,
               "estimate": st.survival, "ci95": [st.lo, st.hi]} for st in km.steps]
    related = [[f for f in o.findings if f.treatment_related] for o in outcomes]
    conservative = [[f for f in o.findings if f.conservative_related] for o in outcomes]
    by_drug = {d: _share(n, sum(1 for fs in related if any(f.related_to(d) for f in fs))) for d in drugs}
    cons_by_drug = {d: _share(n, sum(1 for fs in conservative if any(f.related_to(d) or d in f.pending for f in fs)))
                    for d in drugs}
    worst = [_worst(fs) for fs in related if fs]
    by_grade = {g: _share(n, worst.count(g)) for g in GRADES}
    findings = [f for o in outcomes for f in o.findings]
    all_aes = len(findings)
    related_aes = sum(len(fs) for fs in related)
    conservative_aes = sum(len(fs) for fs in conservative)
    weeks = sum(o.exposure_days for o in outcomes) / 7
    rate, rel_rate = rate_ci(all_aes, weeks), rate_ci(related_aes, weeks)
    cons_rate = rate_ci(conservative_aes, weeks)
    by_source = {src: sum(1 for f in findings if f.source == src) for src in ("fhir3t", "investigator", "both")}
    graded_by: dict[str, int] = {}
    derived: dict[str, int] = {}
    for f in findings:
        key = f.grade_source or "ungraded"
        graded_by[key] = graded_by.get(key, 0) + 1
        if f.grade_rule:
            derived[f.grade_rule] = derived.get(f.grade_rule, 0) + 1
    ungraded = sum(1 for f in findings if f.grade is None)
    flagged = [_ae_row(o, f, since, lang) for o in outcomes for f in o.findings if f.needs_assessment]
    tests = config.tests if config else ()
    return {
        "study": study,
        "as_of": as_of.isoformat(),
        "generated_by": f"fhir3t {__version__}",
        "header": dict(header or {}),
        "methods": t("methods", ci=ci),
        "survival": {
            "subjects": n,
            "events": events,
            "censored": n - events,
            "censored_at_withdrawal": sum(1 for o in outcomes if o.censored_at == "withdrawal"),
            "lost_to_follow_up": sum(1 for o in outcomes if o.subject.disposition == "lost-to-follow-up" and not o.event),
            "censoring_rule": t("censoring"),
            "horizon_days": horizon,
            "ci_method": t("ci-method", ci=ci),
            "day182": {
                "estimate": s, "ci95": [lo, hi], "at_risk": km.at_risk(horizon),
                "events": km.events_by(horizon), "censored_before": km.censored_before(horizon),
            },
            "median": _median(km),
            "curve": curve,
        },
        "ae_incidence": {
            "overall": _share(n, sum(1 for fs in related if fs)),
            "by_drug": by_drug,
            "by_grade": by_grade,
            "ci_method": "exact Clopper–Pearson, 95 %",
            "definition": "subjects with >= 1 treatment-related AE (causality Certain, Probably-Likely or Possible "
                          "for >= 1 3T drug) / subjects on study; by_grade counts each subject once, at the worst "
                          "grade of its treatment-related AEs",
            "conservative": {
                "overall": _share(n, sum(1 for fs in conservative if fs)),
                "by_drug": cons_by_drug,
                "definition": "sensitivity line: AEs whose causality is Unassessable-Unclassifiable or "
                              "Conditional-Classified for a 3T drug (by the investigator, or not yet assessed) are "
                              "also counted as treatment-related",
            },
        },
        "ae_rate": {
            "aes": all_aes,
            "related_aes": related_aes,
            "patient_weeks": weeks,
            "per_100_patient_weeks": (100 * all_aes / weeks) if weeks else None,
            "related_per_100_patient_weeks": (100 * related_aes / weeks) if weeks else None,
            "per_100_patient_weeks_ci95": list(rate) if rate else None,
            "related_per_100_patient_weeks_ci95": list(rel_rate) if rel_rate else None,
            "conservative_related_aes": conservative_aes,
            "conservative_related_per_100_patient_weeks": (100 * conservative_aes / weeks) if weeks else None,
            "conservative_related_per_100_patient_weeks_ci95": list(cons_rate) if cons_rate else None,
            "ci_method": "exact Poisson (Garwood), 95 %",
            "exposure": "D1 to the end of the AE window (as_of, or period.end + 30 days off study), or death",
        },
        "safety_table": {
            "related": term_table(outcomes, related_only=True),
            "all": term_table(outcomes, related_only=False),
            "definition": "subjects with >= 1 AE of the term (CTCAE v5.0 term where one is mapped, else the "
                          "reported term), each counted once at the worst grade of that term; sorted by frequency",
        },
        "serious_adverse_events": [_ae_row(o, f, since, lang) for o in outcomes for f in o.findings if f.serious],
        "pending_assessment": {
            "rows": flagged,
            "definition": "deaths and serious AEs counted as not treatment-related only because their causality is "
                          "unassessable, conditional or not yet assessed: flagged for the investigator's assessment",
        },
        "expectedness": {
            "rsi_version": config.rsi.version if config else None,
            "susars": [_ae_row(o, f, since, lang) for o in outcomes for f in o.findings if f.susar],
            "definition": "a serious AE suspected (Certain, Probably-Likely or Possible) for a 3T drug whose reference "
                          "safety information (profiles/safety/reference-safety-information.json) does not list it is "
                          "a suspected unexpected serious adverse reaction (SUSAR)",
        },
        "discontinuations": [
            {"subject": subject_label(o), "patient": o.subject.patient, **st.to_dict(),
             "study_day": (st.day - o.subject.d1).days if st.day else None,
             "adverse_event_terms": [f.table_term for f in o.findings if f.id in st.aes]}
            for o in outcomes for st in o.stops],
        "deaths": [
            {"subject": subject_label(o), "patient": o.subject.patient, "day": o.death.isoformat(),
             "study_day": (o.death - o.subject.d1).days, "date_known": o.death_date_known,
             "cause": o.death_cause, "survival_event": o.event,
             "needs_assessment": any(f.needs_assessment for f in o.findings if f.outcome == "fatal"),
             "causality": next((causality_short(f) for f in o.findings if f.outcome == "fatal"), None)}
            for o in outcomes if o.death is not None],
        "grading": {"by_source": graded_by, "ungraded": ungraded, "derived": derived,
                    "derived_rules": [{"id": r.id, "grade": r.grade, "ctcae": r.ctcae, "socs": sorted(r.socs)}
                                      for r in config.grading.rules] if config else [],
                    "rule": "labs: CTCAE v5.0 tables; clinical AEs: a CTCAE grade the investigator recorded, else the "
                            "higher of the recorded severity (mild/moderate/severe -> 1/2/3) and the grade the record "
                            "shows (derived: inpatient stay 3, IV anti-infective for an infection 3, intensive care, "
                            "urgent intervention or life-threatening 4, death from it 5; see derived_rules), else "
                            "ungraded (counted in the 'ungraded' column)"},
        "ae_sources": {**by_source,
                       "causality_assessed_by_investigator": sum(
                           1 for f in findings if any(s.assessor == BY_INVESTIGATOR for s in f.suspects)),
                       "definition": "fhir3t: found in the data by fhir3t; investigator: an AdverseEvent recorded "
                                     "by an investigator that fhir3t did not find; both: the same AE, recorded and "
                                     "found (the investigator's causality wins)"},
        "causality_legend": {**{v: causality_word(k, lang) for k, v in CAUSALITY_SHORT.items()},
                             "*": t("by-investigator"), "–": t("not-assessed")},
        "disposition": [disposition(o, horizon, lang) for o in outcomes],
        "baseline": sections.baseline(outcomes, tests, [(c.id, c.title) for c in config.baseline.conditions])
        if config else None,
        "exposure": sections.exposure(outcomes, drugs, _terms_of),
        "ae_by_soc": {"all": sections.by_soc(outcomes, lambda f: True),
                      "related": sections.by_soc(outcomes, lambda f: f.treatment_related),
                      "definition": "subjects with >= 1 AE in the MedDRA system organ class (of its CTCAE v5.0 term), "
                                    "then by term, each counted once at its worst grade; events = AEs"},
        "lab_shifts": {"tables": sections.lab_shifts(outcomes, tests),
                       "definition": "subjects by CTCAE grade at baseline (last result on or before D1) and worst "
                                     "grade after D1 in the AE window; missing = no gradable result"},
        "aesi": sections.aesi(outcomes, config.aesi) if config else None,
        "accrual": sections.accrual(outcomes, config.target_enrolment if config else None, as_of),
        "interval": sections.interval(outcomes, since),
        "narratives": narratives(outcomes, lang, names),
        "screening_flow": dict(flow) if flow is not None else {
            "screened": None, "enrolled": n,
            "note": "no screening run given (fhir3t report --screening FILE, from fhir3t screen --format json)"},
    }
