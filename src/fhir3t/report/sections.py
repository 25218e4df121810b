"""The report's DSMB sections (pure, from the safety outcomes): baseline characteristics, exposure and dose
changes per drug, AEs by MedDRA system organ class then term, lab shift tables, adverse events of special
interest with time to first event, accrual against the target, and cumulative vs since-the-last-report
figures. Each returns the JSON object `fhir3t report --json` writes under its key.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from fhir3t.report.stats import clopper_pearson
from fhir3t.safety.engine import SubjectOutcome
from fhir3t.safety.findings import Finding
from fhir3t.safety.grading import LabTest
from fhir3t.safety.special import AesiList

GRADES = ("1", "2", "3", "4", "5", "ungraded")
SHIFT = ("0", "1", "2", "3", "4", "missing")
NOT_MAPPED = "SOC not mapped"


def share(k: int, n: int) -> dict[str, Any]:
    return {"subjects": k, "proportion": k / n if n else None, "ci95": list(clopper_pearson(k, n)) if n else None}


def summary(values: Sequence[float]) -> dict[str, Any]:
    """n, median, quartiles (inclusive method) and range of a sample; nulls when empty."""
    vals = sorted(values)
    if not vals:
        return {"n": 0, "median": None, "q1": None, "q3": None, "min": None, "max": None}
    q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive") if len(vals) > 1 else (vals[0], vals[0], vals[0])
    return {"n": len(vals), "median": statistics.median(vals), "q1": q1, "q3": q3, "min": vals[0], "max": vals[-1]}


def _worst(fs: Iterable[Finding]) -> str:
    graded = [f.grade for f in fs if f.grade is not None]
    return str(max(graded)) if graded else "ungraded"


# ---- baseline ------------------------------------------------------------------------------------------
def baseline(outcomes: Sequence[SubjectOutcome], tests: Sequence[LabTest], conditions: Sequence[tuple[str, str]]) -> dict[str, Any]:
    n = len(outcomes)
    bases = [o.baseline for o in outcomes if o.baseline is not None]
    sexes = {s: sum(1 for b in bases if b.sex == s) for s in ("female", "male", "unknown")}
    labs = []
    for t in tests:
        readings = [b.labs[t.id] for b in bases if t.id in b.labs]
        row = {"test": t.id, "term": t.term, "unit": readings[0].unit if readings else None,
               **summary([float(r.value) for r in readings]),
               "abnormal": sum(1 for r in readings if r.grade >= 1)}
        labs.append(row)
    return {
        "subjects": n,
        "age": summary([b.age for b in bases if b.age is not None]),
        "sex": {s: {"n": k, "proportion": k / n if n else None} for s, k in sexes.items()},
        "labs": labs,
        "conditions": [{"id": cid, "title": title, **share(sum(1 for b in bases if cid in b.conditions), n)}
                       for cid, title in conditions],
        "definition": "age in whole years at D1; labs: the last result on or before D1 within the look-back of "
                      "profiles/safety/baseline.json, in the canonical unit; abnormal = CTCAE grade >= 1 at baseline; "
                      "conditions present at D1 (onset on or before D1, not abated before it)",
    }


# ---- exposure ------------------------------------------------------------------------------------------
def exposure(outcomes: Sequence[SubjectOutcome], drugs: Sequence[str],
             terms_of: Callable[[SubjectOutcome, tuple[str, ...]], list[str]]) -> dict[str, Any]:
    by_drug = []
    changes = []
    for d in drugs:
        rows = [(o, e) for o in outcomes for e in o.exposure if e.drug == d]
        exposed = [(o, e) for o, e in rows if e.days > 0]
        kinds = {k: sum(1 for _, e in rows for c in e.changes if c.kind == k) for k in ("interruption", "reduction", "discontinuation")}
        by_drug.append({"drug": d, "subjects_exposed": len(exposed), "patient_weeks": sum(e.days for _, e in exposed) / 7,
                        "days": summary([e.days for _, e in exposed]),
                        "daily_doses": sorted({dose for _, e in exposed for dose in e.doses}),
                        **{f"{k}s": v for k, v in kinds.items()},
                        "subjects_with_change": sum(1 for _, e in rows if e.changes)})
        for o, e in rows:
            for c in e.changes:
                changes.append({"subject": o.subject.label, "patient": o.subject.patient, **c.to_dict(),
                                "study_day": (c.day - o.subject.d1).days if c.day else None,
                                "adverse_event_terms": terms_of(o, c.aes)})
    changes.sort(key=lambda r: (r["subject"], r["drug"], r["day"] or ""))
    return {"by_drug": by_drug, "dose_changes": changes,
            "definition": "days on drug from D1 to the end of the AE window (union of the subject's medication "
                          "records); interruption = a gap of at least a day between records or an on-hold record; "
                          "reduction = a lower daily dose than the record before; discontinuation = the drug's last "
                          "record stopped before the window's end, or stopped for an adverse reaction; the AE that "
                          "caused a change: the record's reasonReference, else the AEs related to the drug ongoing "
                          "that day when the reason is an adverse reaction"}


# ---- AEs by system organ class, then term -------------------------------------------------------------
def by_soc(outcomes: Sequence[SubjectOutcome], keep: Callable[[Finding], bool]) -> dict[str, Any]:
    n = len(outcomes)
    socs: dict[str, dict[str, dict[str, list[Finding]]]] = {}
    for o in outcomes:
        for f in o.findings:
            if keep(f):
                soc = f.ctcae.soc if f.ctcae else NOT_MAPPED
                socs.setdefault(soc, {}).setdefault(f.table_term, {}).setdefault(o.subject.patient, []).append(f)
    out = []
    for soc, terms in socs.items():
        subjects: dict[str, list[Finding]] = {}
        for per in terms.values():
            for p, fs in per.items():
                subjects.setdefault(p, []).extend(fs)
        rows = []
        for term, per in terms.items():
            grades = {g: 0 for g in GRADES}
            for fs in per.values():
                grades[_worst(fs)] += 1
            rows.append({"term": term, **share(len(per), n), "events": sum(len(fs) for fs in per.values()),
                         "by_worst_grade": grades})
        rows.sort(key=lambda r: (-r["subjects"], r["term"]))
        grades = {g: 0 for g in GRADES}
        for fs in subjects.values():
            grades[_worst(fs)] += 1
        out.append({"soc": soc, **share(len(subjects), n), "events": sum(r["events"] for r in rows),
                    "by_worst_grade": grades, "terms": rows})
    out.sort(key=lambda s: (s["soc"] == NOT_MAPPED, -s["subjects"], s["soc"]))
    return {"denominator": n, "socs": out}


# ---- lab shift tables -----------------------------------------------------------------------------------
def lab_shifts(outcomes: Sequence[SubjectOutcome], tests: Sequence[LabTest]) -> list[dict[str, Any]]:
    """Per graded lab: subjects by baseline grade (rows) x worst grade after D1 (columns)."""
    out = []
    for t in tests:
        matrix = {b: {w: 0 for w in SHIFT} for b in SHIFT}
        for o in outcomes:
            base = o.baseline.labs.get(t.id) if o.baseline else None
            b = str(base.grade) if base is not None else "missing"
            worst = o.worst_lab.get(t.id)
            w = str(worst) if worst is not None else "missing"
            matrix[b][w] += 1
        worse = sum(matrix[b][w] for b in SHIFT[:-1] for w in SHIFT[:-1] if int(w) > int(b))
        out.append({"test": t.id, "term": t.term, "max_grade": len(t.bounds), "matrix": matrix,
                    "worsened": worse, "subjects": len(outcomes)})
    return out


# ---- adverse events of special interest -------------------------------------------------------------------
def aesi(outcomes: Sequence[SubjectOutcome], aesis: AesiList) -> dict[str, Any]:
    n = len(outcomes)
    rows = []
    for a in aesis.items:
        hits = [(o, f) for o in outcomes for f in o.findings if a.id in f.aesi]
        firsts: dict[str, tuple[int, SubjectOutcome, Finding]] = {}
        for o, f in sorted(hits, key=lambda h: h[1].onset):
            firsts.setdefault(o.subject.patient, ((f.onset - o.subject.d1).days, o, f))
        days = [d for d, _, _ in firsts.values()]
        by_subject: dict[str, list[Finding]] = {}
        for o, f in hits:
            by_subject.setdefault(o.subject.patient, []).append(f)
        grades = {g: 0 for g in GRADES}
        for fs in by_subject.values():
            grades[_worst(fs)] += 1
        rows.append({**a.to_dict(), **share(len(firsts), n), "events": len(hits),
                     "serious": sum(1 for _, f in hits if f.serious),
                     "related": sum(1 for _, f in hits if f.treatment_related),
                     "by_worst_grade": grades,
                     "time_to_first_event_days": summary(days),
                     "first_events": [{"subject": o.subject.label, "patient": o.subject.patient, "study_day": d,
                                       "term": f.table_term, "grade": f.grade}
                                      for d, o, f in sorted(firsts.values(), key=lambda x: (x[0], x[1].subject.label))]})
    return {"denominator": n, "rows": rows,
            "definition": "subjects with >= 1 AE of the kind (profiles/safety/aesi.json: CTCAE terms, ICD-10 and "
                          "SNOMED CT codes, names, or a serious / grade >= 3 infection), exact 95 % CI; time to first "
                          "event in days from D1 among the subjects with one (median, quartiles, range)"}


# ---- accrual --------------------------------------------------------------------------------------------
def accrual(outcomes: Sequence[SubjectOutcome], target: int | None, as_of: date) -> dict[str, Any]:
    months: dict[str, int] = {}
    for o in outcomes:
        key = f"{o.subject.d1.year:04d}-{o.subject.d1.month:02d}"
        months[key] = months.get(key, 0) + 1
    rows = []
    if months:
        first = min(o.subject.d1 for o in outcomes)
        y, m = first.year, first.month
        total = 0
        while (y, m) <= (as_of.year, as_of.month):
            key = f"{y:04d}-{m:02d}"
            total += months.get(key, 0)
            rows.append({"month": key, "enrolled": months.get(key, 0), "cumulative": total,
                         "percent_of_target": 100 * total / target if target else None})
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return {"target": target, "enrolled": len(outcomes),
            "percent_of_target": 100 * len(outcomes) / target if target and outcomes is not None else None,
            "by_month": rows,
            "definition": "subjects on study by the calendar month of D1 (ResearchSubject.period.start), cumulative, "
                          "against the enrolment target of profiles/safety/study.json"}


# ---- cumulative vs since the last report -----------------------------------------------------------------
def interval(outcomes: Sequence[SubjectOutcome], since: date | None) -> dict[str, Any] | None:
    if since is None:
        return None

    def count(pred: Callable[[SubjectOutcome, Finding], bool], new: bool) -> int:
        return sum(1 for o in outcomes for f in o.findings if pred(o, f) and (not new or f.onset > since))

    metrics: Mapping[str, Callable[[SubjectOutcome, Finding], bool]] = {
        "adverse_events": lambda o, f: True,
        "treatment_related_aes": lambda o, f: f.treatment_related,
        "conservative_related_aes": lambda o, f: f.conservative_related,
        "grade_3_or_more": lambda o, f: (f.grade or 0) >= 3,
        "serious_adverse_events": lambda o, f: f.serious,
        "susars": lambda o, f: f.susar,
        "pending_assessment": lambda o, f: f.needs_assessment,
        "aesi_events": lambda o, f: bool(f.aesi),
    }
    rows = [{"metric": "subjects_enrolled", "cumulative": len(outcomes),
             "since": sum(1 for o in outcomes if o.subject.d1 > since)},
            {"metric": "deaths", "cumulative": sum(1 for o in outcomes if o.death is not None),
             "since": sum(1 for o in outcomes if o.death is not None and o.death > since)}]
    rows += [{"metric": k, "cumulative": count(p, False), "since": count(p, True)} for k, p in metrics.items()]
    rows.append({"metric": "subjects_with_ae", "cumulative": sum(1 for o in outcomes if o.findings),
                 "since": sum(1 for o in outcomes if any(f.onset > since for f in o.findings))})
    return {"since": since.isoformat(), "rows": rows,
            "definition": "cumulative: from the first D1 to the data cut-off; since: AEs with onset, deaths and D1s "
                          "after the --since day (the previous report's data cut-off), up to the data cut-off"}
