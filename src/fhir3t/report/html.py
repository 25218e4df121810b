"""A self-contained HTML safety report: inline CSS and inline SVG (fhir3t.report.svg); opens offline.

Everything from the data is escaped; the page loads nothing (no scripts, fonts or images by URL).
The print stylesheet lays it out on A4: every printed page carries the confidentiality mark, the report
version, the data cut-off and "page N of M" (CSS page-margin boxes); tables wrap inside the page width
(no clipped column), rows, figures and their legends are never cut across pages; the font stack falls
back to CJK fonts so Chinese text (a hospital's terms today, the zh-CN catalog of issue 23 tomorrow)
renders and wraps.

Every word a person reads is a template in MESSAGES (message id -> English with named placeholders);
`render_html(..., messages=catalog, lang="zh-CN")` takes another catalog's templates.
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from fhir3t.enrolment import Status
from fhir3t.enrolment.log import STEPS, reason_msg
from fhir3t.messages import render
from fhir3t.report.endpoints import causality_short
from fhir3t.report.svg import Words, accrual_svg, flow_svg, km_svg, swimmer_parts
from fhir3t.safety.findings import Finding, seriousness_text

MESSAGES: dict[str, str] = {
    # page furniture (also printed in the page margins)
    "page.title": "{study} safety and endpoints report",
    "page.heading": "{study}{title} — safety and endpoints report",
    "page.confidential": "CONFIDENTIAL — for the Data Monitoring Committee only",
    "page.version": "{study} report version {version}",
    "page.cutoff": "Data cut-off {cutoff}",
    "page.number": "Page {page} of {pages}",
    "meta.version": "report version",
    "meta.cutoff": "data cut-off",
    "meta.since": "previous report's cut-off",
    "meta.generated": "generated",
    "meta.inputs": "inputs",
    "meta.subjects": "subjects",
    "meta.sources": "AE sources",
    "meta.software": "software",
    "meta.hash": "{name} sha256",
    "note.methods": "{methods} Synthetic or EHR-derived data; the investigators' assessment of causality is required.",
    # summary
    "h.summary": "Summary",
    "summary.enrolled": "subjects enrolled (target {target})",
    "summary.deaths": "deaths (survival events)",
    "summary.km": "KM survival at day {day} (95 % CI)",
    "summary.related": "subjects with a treatment-related AE (95 % CI)",
    "summary.conservative": "sensitivity: counting unassessable / conditional / not yet assessed as related",
    "summary.saes": "serious AEs",
    "summary.pending": "deaths / SAEs pending the investigator's causality assessment",
    "summary.susars": "suspected unexpected serious adverse reactions (SUSARs)",
    "summary.aesi": "subjects with an adverse event of special interest",
    "h.interval": "Cumulative and since the last report",
    "interval.head.metric": "",
    "interval.head.cumulative": "cumulative",
    "interval.head.since": "since {since}",
    "interval.subjects_enrolled": "subjects enrolled",
    "interval.deaths": "deaths",
    "interval.adverse_events": "adverse events",
    "interval.treatment_related_aes": "treatment-related AEs",
    "interval.conservative_related_aes": "AEs related under the conservative line",
    "interval.grade_3_or_more": "AEs of grade 3 or more",
    "interval.serious_adverse_events": "serious AEs",
    "interval.susars": "SUSARs",
    "interval.pending_assessment": "SAEs pending causality assessment",
    "interval.aesi_events": "AESI events",
    "interval.subjects_with_ae": "subjects with an AE",
    # screening, enrolment, accrual
    "h.screening": "Screening and enrolment",
    "flow.none": "Enrolled (ResearchSubjects on study): {n}. No screening run given (fhir3t report --screening FILE, "
                 "from fhir3t screen --format json).",
    "flow.row.screened": "screened",
    "flow.row.eligible": "Eligible",
    "flow.row.candidate": "candidate (review)",
    "flow.row.ineligible": "Ineligible",
    "flow.row.reason": "  ineligible: {criterion} {title}",
    "flow.row.enrolled": "enrolled (on study)",
    "flow.row.came": "  of them eligible / candidate / ineligible in the run",
    "flow.row.outside": "  of them not in the screening run",
    "flow.row.not_enrolled": "eligible, not enrolled",
    "flow.head.patients": "patients",
    "flow.team.head": "The study team's steps (from the enrolment log)",
    "flow.team.step": "{step}",
    "flow.team.stopped": "  stopped before {step}: {reason}",
    "flow.team.withdrawn": "  withdrawn after enrolment: {reason}",
    "flow.definition": "Screened = patients in the screening run; ineligible by the first criterion that rules the "
                       "patient out in the criteria's written order; enrolled = subjects with a ResearchSubject on "
                       "study, matched to the run by patient. Arrow counts add up to the box they leave or enter.",
    "h.accrual": "Accrual against the target",
    "accrual.note": "{enrolled} of {target} subjects enrolled ({percent}), by calendar month of D1.",
    "accrual.head.month": "month",
    "accrual.head.enrolled": "enrolled",
    "accrual.head.cumulative": "cumulative",
    "accrual.head.percent": "% of target",
    # baseline
    "h.baseline": "Baseline characteristics",
    "baseline.head.item": "",
    "baseline.head.value": "subjects (n = {n})",
    "baseline.age": "age at D1, years: median (IQR) [range]",
    "baseline.sex": "sex: {sex}",
    "baseline.condition": "{title} at D1",
    "baseline.age.value": "{median} ({q1} – {q3}) [{min} – {max}], n = {n}",
    "baseline.lab": "{term}: {unit} at baseline, median [range] (n); abnormal",
    "baseline.lab.value": "{median} [{min} – {max}] ({n}); {abnormal}",
    "baseline.note": "Age in whole years at D1. Labs: the last result on or before D1 within the look-back of "
                     "profiles/safety/baseline.json; abnormal = CTCAE grade 1 or more at baseline.",
    # exposure
    "h.exposure": "Exposure and dose changes",
    "exposure.head.drug": "drug",
    "exposure.head.exposed": "subjects exposed",
    "exposure.head.weeks": "patient-weeks",
    "exposure.head.days": "days on drug, median [range]",
    "exposure.head.doses": "daily doses recorded",
    "exposure.head.interruptions": "interruptions",
    "exposure.head.reductions": "reductions",
    "exposure.head.discontinuations": "discontinuations",
    "changes.head.subject": "subject",
    "changes.head.drug": "drug",
    "changes.head.kind": "change",
    "changes.head.day": "from",
    "changes.head.study_day": "study day",
    "changes.head.detail": "detail",
    "changes.head.reason": "reason",
    "changes.head.aes": "AE that caused it",
    "changes.kind.interruption": "interruption",
    "changes.kind.reduction": "reduction",
    "changes.kind.discontinuation": "discontinuation",
    "changes.until": "until {day}",
    "changes.dose": "{from_dose} → {to_dose}",
    "changes.none_ae": "none linked",
    "changes.none": "No interruption, reduction or discontinuation recorded.",
    "exposure.note": "Days on drug from D1 to the end of the AE window (union of the subject's medication records). "
                     "Interruption: a gap of a day or more between records, or an on-hold record; reduction: a lower "
                     "daily dose than the record before; discontinuation: the last record stopped before the window's "
                     "end, or stopped for an adverse reaction. The AE that caused a change: the record's "
                     "reasonReference, else the AEs related to the drug ongoing that day when the reason is an "
                     "adverse reaction.",
    # survival
    "h.survival": "26-week survival (Kaplan–Meier from D1)",
    "survival.band": "Shaded band: 95 % CI ({method}). Ticks: censored subjects. Dashed line: day {day}.",
    "survival.rule": "Censoring rule: {rule}",
    "survival.subjects": "subjects",
    "survival.events": "deaths (events)",
    "survival.censored": "censored",
    "survival.withdrawn": "of them censored at withdrawal",
    "survival.lost": "of them lost to follow-up (censored at last contact)",
    "survival.at_risk": "at risk on day {day}",
    "survival.deaths_by": "deaths by day {day}",
    "survival.censored_before": "censored before day {day}",
    "survival.km": "KM survival at day {day} (95 % CI)",
    "survival.median": "median survival (95 % CI)",
    "survival.median.not_reached": "not reached",
    "survival.median.day": "day {day}",
    "survival.head.value": "value",
    "survival.km_table": "KM table",
    "km.head": "day|at risk|deaths|censored|S(t)|95 % CI",
    # incidence
    "h.incidence": "Treatment-related AE incidence",
    "incidence.note": "Subjects with at least one treatment-related AE (causality Certain, Probably-Likely or Possible "
                      "for a 3T drug) / subjects on study. 95 % CI: exact Clopper–Pearson.",
    "incidence.conservative.note": "Sensitivity line (conservative causality): AEs whose causality is "
                                   "Unassessable-Unclassifiable or Conditional-Classified (by the investigator, or not "
                                   "yet assessed) are also counted as treatment-related.",
    "incidence.head": "suspect|subjects with related AE|subjects on study|proportion|95 % CI",
    "incidence.any": "any 3T drug",
    "incidence.conservative.any": "any 3T drug, conservative",
    "incidence.conservative.drug": "{drug}, conservative",
    "h.by_grade": "By worst grade",
    "by_grade.head": "worst grade|subjects|subjects on study|proportion|95 % CI",
    "by_grade.grade": "grade {grade}",
    "by_grade.ungraded": "ungraded",
    "h.rate": "AEs per 100 patient-weeks",
    "rate.note": "{weeks} patient-weeks (D1 to the end of the AE window, or death). 95 % CI: exact Poisson (Garwood).",
    "rate.head": "|count|per 100 patient-weeks|95 % CI",
    "rate.all": "AEs",
    "rate.related": "treatment-related AEs",
    "rate.conservative": "related, conservative line",
    # safety tables
    "h.safety": "Safety tables",
    "h.by_term": "Treatment-related AEs by term and worst grade: subjects, n (%)",
    "by_term.note": "n = {n} subjects on study. Subjects with at least one AE of the term (CTCAE v5.0 term; † not "
                    "mapped: the reported term), each counted once at its worst grade; by frequency.",
    "by_term.head": "term (CTCAE v5.0)|any grade|grade 1|grade 2|grade 3|grade 4|grade 5|ungraded",
    "by_term.any": "any AE",
    "h.by_soc": "All AEs by MedDRA system organ class, then term: subjects, n (%)",
    "by_soc.note": "Each subject counted once per system organ class and once per term, at the worst grade; events = "
                   "number of AEs.",
    "by_soc.head": "system organ class / term|subjects|events|grade 1|grade 2|grade 3|grade 4|grade 5|ungraded",
    "by_soc.unmapped": "SOC not mapped",
    "grading.note": "Grades: labs by the CTCAE v5.0 tables; clinical AEs as the investigator recorded them, else the "
                    "higher of the recorded severity and the grade the record shows: {rules}. {derived} grade(s) "
                    "derived from the record; {ungraded} AE(s) ungraded.",
    "grading.rule": "{id}: {ctcae}",
    "h.aesi": "Adverse events of special interest",
    "aesi.note": "Definitions in profiles/safety/aesi.json (CTCAE terms, ICD-10 and SNOMED CT codes, names; serious "
                 "infection = an infection that is serious or of grade 3 or more). Time to first event: days from D1 "
                 "among the subjects with one. 95 % CI: exact Clopper–Pearson.",
    "aesi.head": "AESI (regimen risk)|subjects, n (%)|95 % CI|events|serious|related|worst grade ≥ 3|days to first, "
                 "median [range]",
    "aesi.child": "  – {title}",
    "h.shifts": "Laboratory shift tables: baseline grade → worst grade after D1",
    "shifts.note": "Subjects by CTCAE grade at baseline (the last result on or before D1) and the worst grade after D1 "
                   "in the AE window; missing = no gradable result.",
    "shifts.head.baseline": "{term}: baseline ↓ / worst →",
    "shifts.grade": "grade {grade}",
    "shifts.missing": "missing",
    # SAEs, pending, SUSARs, stops, deaths, narratives
    "h.saes": "Serious adverse events",
    "saes.head": "subject|AE|onset|study day|grade|seriousness|outcome|related|expected|flags",
    "saes.flag.pending": "causality pending",
    "saes.flag.susar": "SUSAR",
    "saes.flag.new": "new",
    "saes.expected.yes": "yes",
    "saes.expected.no": "not for {drugs}",
    "h.pending": "Deaths and serious AEs pending the investigator's causality assessment",
    "pending.note": "Counted as not treatment-related only because their causality is unassessable, conditional or not "
                    "yet assessed; the conservative line counts them as related.",
    "pending.head": "subject|AE|onset|grade|seriousness|causality pending for",
    "h.susars": "Suspected unexpected serious adverse reactions",
    "susars.note": "Serious AEs suspected for a 3T drug whose reference safety information ({rsi}) does not list "
                   "them.",
    "h.stops": "AEs that led to stopping a 3T drug",
    "stops.head": "subject|drug|stopped|study day|reason|AE(s) ongoing then",
    "stops.none_ae": "none ongoing on that day",
    "stops.unknown": "unknown",
    "stops.none": "None recorded (a 3T medication record stopped after D1 with an adverse-reaction reason).",
    "h.deaths": "Deaths",
    "deaths.head": "subject|date|study day|cause|survival event|causality",
    "deaths.last_alive": "{day} (last day known alive)",
    "deaths.not_coded": "not coded",
    "deaths.after_withdrawal": "no: after withdrawal",
    "h.narratives": "SAE and death narratives",
    "narratives.note": "Assembled from the record: onset, course, treatment, action with the 3T drugs, outcome, "
                       "causality. To be completed by the investigator.",
    "narrative.kind.death": "Death — {subject}",
    "narrative.kind.sae": "Serious AE — {subject}, {term}",
    "h.disposition": "Disposition per subject",
    "disposition.head": "subject|D1|last contact|status at day 182|event or censoring|follow-up (days)",
    "h.listing": "Adverse events",
    "listing.head": "subject|AE (CTCAE v5.0)|grade|onset|end|outcome|seriousness|related",
    "listing.head.source": "source",
    "listing.legend": "Causality: {legend}. Drugs: {drugs}. Source: {sources}.",
    "word.yes": "yes",
    "word.no": "no",
    "word.none": "None.",
    "word.dash": "–",
}
FONTS = ('system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC","Noto Sans SC",'
         '"Source Han Sans SC","PingFang SC","Hiragino Sans GB","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif')
CSS = "body{font-family:" + FONTS + ";" + """margin:2em auto;max-width:1100px;color:#222;padding:0 1em;line-height:1.35}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
h3{font-size:1.02em;margin:1.1em 0 .3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em;max-width:100%}
th,td{border:1px solid #ccc;padding:.22em .55em;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f2f2f2}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}td.d{white-space:nowrap}
tr.soc td{background:#f7f7f7;font-weight:600}
.note{color:#555;font-size:.85em}.yes{color:#a00;font-weight:600}
.mark{color:#a00;font-weight:600;letter-spacing:.02em}
.furniture{display:flex;justify-content:space-between;flex-wrap:wrap;gap:.5em;font-size:.8em;color:#555;
 border-bottom:1px solid #ddd;padding-bottom:.3em}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;font-size:.85em;color:#333;margin:.5em 0}
.meta dt{color:#666}.meta dd{margin:0;word-break:break-all}
.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:.6em 0}
p.narrative{font-size:.9em}
svg text{font-family:inherit;font-size:12px}
svg{max-width:100%;height:auto}
@media print{
 body{margin:0;max-width:none;padding:0;font-size:9.5pt}
 .furniture{display:none}
 table{width:100%;font-size:8.5pt}
 table.wide{font-size:7.5pt}
 th,td{padding:.15em .35em}
 h2{break-after:avoid-page}h3{break-after:avoid-page}
 .keep,svg,figure,tr,p.narrative{break-inside:avoid-page}
 thead{display:table-header-group}
 .plots{display:block}
 details>summary{display:none}
}
"""
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_CSS_UNSAFE = re.compile(r'[\\"<>\x00-\x1f\x7f]')


def css_string(text: str) -> str:
    """A CSS string literal holding `text` (quotes, backslashes, angle brackets and controls escaped: data cannot
    end the string or the <style> element)."""
    return '"' + _CSS_UNSAFE.sub(lambda m: f"\\{ord(m.group(0)):x} ", text) + '"'


def css_content(template: str, **values: str) -> str:
    """A `content:` value from a message template: {page} and {pages} become CSS page counters, other placeholders
    their (escaped) values; literal text stays whole, so a translated template keeps its word order."""
    out = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        if literal:
            out.append(css_string(literal))
        if field in ("page", "pages"):
            out.append(f"counter({field})")
        elif field:
            out.append(css_string(str(values.get(field, ""))))
    return " ".join(out) or '""'


def page_css(w: Words, study: str, version: str, cutoff: str) -> str:
    """@page rules: A4, and in its margins the confidentiality mark, the version, the cut-off and the page number."""
    small = "font-family:" + FONTS + ";font-size:7.5pt;color:#444"
    return (f"@page{{size:A4;margin:15mm 12mm 14mm 12mm;"
            f"@top-left{{content:{css_content(w.template('page.confidential'))};{small};color:#a00;font-weight:600}}"
            f"@top-right{{content:{css_content(w.template('page.version'), study=study, version=version)};{small}}}"
            f"@bottom-left{{content:{css_content(w.template('page.cutoff'), cutoff=cutoff)};{small}}}"
            f"@bottom-right{{content:{css_content(w.template('page.number'))};{small}}}}}")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _ci(ci: Sequence[float | None] | None, pct: bool = True, digits: int = 1) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "–"
    if pct:
        return f"{100 * ci[0]:.{digits}f} – {100 * ci[1]:.{digits}f} %"
    return f"{ci[0]:.{digits}f} – {ci[1]:.{digits}f}"


def _n_pct(k: int, n: int) -> str:
    return f"{k} ({100 * k / n:.1f} %)" if n else str(k)


def _num(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{x:.0f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (), cls: str = "",
           row_classes: Sequence[str] | None = None) -> str:
    th = "".join(f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>" for i, h in enumerate(head))
    body = []
    for j, r in enumerate(rows):
        tds = "".join(f'<td class="n">{escape(str(v))}</td>' if i in numeric else
                      f'<td class="d">{escape(str(v))}</td>' if _DAY.fullmatch(str(v)) else f"<td>{escape(str(v))}</td>"
                      for i, v in enumerate(r))
        rc = f' class="{row_classes[j]}"' if row_classes and row_classes[j] else ""
        body.append(f"<tr{rc}>{tds}</tr>")
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _keep(*html: str) -> str:
    return f'<div class="keep">{"".join(html)}</div>'


def drug_abbreviations(drugs: Sequence[str]) -> dict[str, str]:
    """Short column labels for the drugs (TOF, TAC, THA ...), unique among them."""
    out: dict[str, str] = {}
    for d in drugs:
        k = 3
        while d[:k].upper() in out.values() and k < len(d):
            k += 1
        out[d] = d[:k].upper()
    return out


class Page:
    """Builds the page's sections from the JSON report, every word through the message catalog."""

    def __init__(self, report: Mapping[str, Any], findings: Sequence[Finding], censor_days: Sequence[int],
                 labels: Mapping[str, str], messages: Mapping[str, str] | None, svg_messages: Mapping[str, str] | None):
        self.r = report
        self.findings = findings
        self.censor_days = censor_days
        self.labels = labels
        self.w = Words(MESSAGES, messages)
        self.svg_messages = svg_messages
        self.drugs = list(report["ae_incidence"]["by_drug"])
        self.abbr = drug_abbreviations(self.drugs)

    def head(self, key: str, **values: Any) -> list[str]:
        return self.w(key, **values).split("|")

    def note(self, key: str, **values: Any) -> str:
        return f'<p class="note">{escape(self.w(key, **values))}</p>'

    # ---- header ---------------------------------------------------------------------------------------
    def meta(self) -> str:
        r, h, w = self.r, self.r.get("header") or {}, self.w
        rows = [(w("meta.version"), h.get("report_version", "–")), (w("meta.cutoff"), r["as_of"])]
        if h.get("since"):
            rows.append((w("meta.since"), h["since"]))
        rows += [(w("meta.generated"), h.get("generated_at", "–")), (w("meta.inputs"), h.get("inputs", "–")),
                 (w("meta.subjects"), r["survival"]["subjects"]),
                 (w("meta.sources"), ", ".join(f"{k} {v}" for k, v in r["ae_sources"].items() if isinstance(v, int))),
                 (w("meta.software"), r["generated_by"])]
        rows += [(w("meta.hash", name=name), digest) for name, digest in (h.get("hashes") or {}).items()]
        body = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in rows)
        return f'<dl class="meta">{body}</dl>'

    def summary(self) -> str:
        r, w = self.r, self.w
        sv, inc = r["survival"], r["ae_incidence"]
        n = sv["subjects"]
        d182 = sv["day182"]
        acc = r.get("accrual") or {}
        aesi = r.get("aesi") or {}
        any_aesi = len({e["patient"] for row in aesi.get("rows", []) for e in row["first_events"]})
        cons = inc.get("conservative", {}).get("overall", {})
        rows = [
            [w("summary.enrolled", target=acc.get("target") or "–"), n],
            [w("summary.deaths"), sv["events"]],
            [w("summary.km", day=sv["horizon_days"]),
             f"{d182['estimate']:.3f} ({d182['ci95'][0]:.3f} – {d182['ci95'][1]:.3f})"],
            [w("summary.related"), f"{_n_pct(inc['overall']['with_related_ae'], n)}  {_ci(inc['overall'].get('ci95'))}"],
            [w("summary.conservative"), f"{_n_pct(cons.get('with_related_ae', 0), n)}  {_ci(cons.get('ci95'))}"],
            [w("summary.saes"), len(r["serious_adverse_events"])],
            [w("summary.pending"), len(r.get("pending_assessment", {}).get("rows", []))],
            [w("summary.susars"), len(r.get("expectedness", {}).get("susars", []))],
            [w("summary.aesi"), _n_pct(any_aesi, n)],
        ]
        out = [f"<h2>{escape(w('h.summary'))}</h2>", _keep(_table(["", ""], rows, (1,)))]
        iv = r.get("interval")
        if iv:
            rows = [[w(f"interval.{x['metric']}"), x["cumulative"], x["since"]] for x in iv["rows"]]
            out += [f"<h3>{escape(w('h.interval'))}</h3>",
                    _keep(_table([w("interval.head.metric"), w("interval.head.cumulative"),
                                  w("interval.head.since", since=iv["since"])], rows, (1, 2)))]
        return "".join(out)

    # ---- screening, accrual, baseline, exposure ---------------------------------------------------------------
    def screening(self) -> str:
        w, flow = self.w, self.r.get("screening_flow") or {}
        out = [f"<h2>{escape(w('h.screening'))}</h2>"]
        if flow.get("screened") is None:
            out.append(self.note("flow.none", n=flow.get("enrolled")))
        else:
            came = flow.get("enrolled_by_screening_status") or {}
            rows = [[w("flow.row.screened"), flow["screened"]], [w("flow.row.eligible"), flow[Status.ELIGIBLE]],
                    [w("flow.row.candidate"), flow[Status.CANDIDATE]], [w("flow.row.ineligible"), flow[Status.INELIGIBLE]]]
            rows += [[w("flow.row.reason", criterion=x["criterion"] or "–", title=x["title"]), x["patients"]]
                     for x in flow["ineligible_by_first_criterion"]]
            rows += [[w("flow.row.enrolled"), flow["enrolled"]],
                     [w("flow.row.came"), " / ".join(str(came.get(s, 0)) for s in (Status.ELIGIBLE, Status.CANDIDATE,
                                                                                   Status.INELIGIBLE))],
                     [w("flow.row.outside"), came.get("not_in_screening_run", 0)],
                     [w("flow.row.not_enrolled"), flow["eligible_not_enrolled"]]]
            out += [f'<figure class="keep">{flow_svg(flow, messages=self.svg_messages)}</figure>',
                    _keep(_table(["", w("flow.head.patients")], rows, (1,))), self.note("flow.definition")]
            team = flow.get("team")
            if isinstance(team, dict):
                out += [f"<h3>{escape(w('flow.team.head'))}</h3>", _keep(_table(["", w("flow.head.patients")],
                                                                                 self.team_rows(team), (1,)))]
        acc = self.r.get("accrual")
        if acc and acc.get("by_month"):
            pct = _num(acc["percent_of_target"], 1) + " %" if acc.get("percent_of_target") is not None else "–"
            rows = [[m["month"], m["enrolled"], m["cumulative"], _num(m["percent_of_target"], 1) if m["percent_of_target"]
                     is not None else "–"] for m in acc["by_month"]]
            out += [f"<h3>{escape(w('h.accrual'))}</h3>",
                    self.note("accrual.note", enrolled=acc["enrolled"], target=acc.get("target") or "–", percent=pct),
                    f'<figure class="keep">{accrual_svg(acc["by_month"], acc.get("target"), messages=self.svg_messages)}</figure>',
                    _keep(_table([w("accrual.head.month"), w("accrual.head.enrolled"), w("accrual.head.cumulative"),
                                  w("accrual.head.percent")], rows, (1, 2, 3)))]
        return "".join(out)

    def team_rows(self, team: dict) -> list[list]:
        """The log's chain screened -> eligible -> contacted -> consented -> enrolled, with why patients stopped."""
        w, lang = self.w, "en"  # the DSMB report is English (its words come from MESSAGES)
        steps = {s["from"]: s for s in team.get("steps", [])}
        rows: list[list] = []
        for step in STEPS:
            rows.append([w("flow.team.step", step=step), team.get(step, 0)])
            for x in (steps.get(step) or {}).get("reasons", []):
                rows.append([w("flow.team.stopped", step=steps[step]["to"], reason=render(reason_msg(x["reason"]), lang)),
                             x["patients"]])
        for x in team.get("withdrawal_reasons", []):
            rows.append([w("flow.team.withdrawn", reason=render(reason_msg(x["reason"]), lang)), x["patients"]])
        return rows

    def baseline(self) -> str:
        b = self.r.get("baseline")
        if not b:
            return ""
        w, n = self.w, b["subjects"]
        age = b["age"]
        rows: list[list[Any]] = [[w("baseline.age"), w("baseline.age.value", median=_num(age["median"]), q1=_num(age["q1"]),
                                                       q3=_num(age["q3"]), min=_num(age["min"], 0), max=_num(age["max"], 0),
                                                       n=age["n"])]]
        rows += [[w("baseline.sex", sex=s), _n_pct(v["n"], n)] for s, v in b["sex"].items() if v["n"]]
        rows += [[w("baseline.condition", title=c["title"]), _n_pct(c["subjects"], n)] for c in b["conditions"]]
        rows += [[w("baseline.lab", term=x["term"], unit=x["unit"] or "–"),
                  w("baseline.lab.value", median=_num(x["median"], 2), min=_num(x["min"], 2), max=_num(x["max"], 2),
                    n=x["n"], abnormal=x["abnormal"])]
                 for x in b["labs"] if x["n"]]
        return "".join([f"<h2>{escape(w('h.baseline'))}</h2>",
                        _keep(_table([w("baseline.head.item"), w("baseline.head.value", n=n)], rows)),
                        self.note("baseline.note")])

    def exposure(self) -> str:
        e = self.r.get("exposure")
        if not e:
            return ""
        w = self.w
        rows = [[x["drug"], x["subjects_exposed"], _num(x["patient_weeks"], 1),
                 f"{_num(x['days']['median'])} [{_num(x['days']['min'], 0)} – {_num(x['days']['max'], 0)}]",
                 ", ".join(x["daily_doses"]) or "–", x["interruptions"], x["reductions"], x["discontinuations"]]
                for x in e["by_drug"]]
        head = [w(f"exposure.head.{k}") for k in ("drug", "exposed", "weeks", "days", "doses", "interruptions",
                                                  "reductions", "discontinuations")]
        out = [f"<h2>{escape(w('h.exposure'))}</h2>", _keep(_table(head, rows, (1, 2, 5, 6, 7)))]
        changes = []
        for c in e["dose_changes"]:
            if c["kind"] == "interruption":
                detail = w("changes.until", day=c["until"] or "?")
            elif c["kind"] == "reduction":
                detail = w("changes.dose", from_dose=c["from_dose"], to_dose=c["to_dose"])
            else:
                detail = ""
            changes.append([c["subject"], c["drug"], w(f"changes.kind.{c['kind']}"), c["day"] or "–",
                            c["study_day"] if c["study_day"] is not None else "–", detail, c["reason"] or "–",
                            ", ".join(c["adverse_event_terms"]) or w("changes.none_ae")])
        head = [w(f"changes.head.{k}") for k in ("subject", "drug", "kind", "day", "study_day", "detail", "reason", "aes")]
        out.append(_table(head, changes, (4,), "wide") if changes else f"<p>{escape(w('changes.none'))}</p>")
        out.append(self.note("exposure.note"))
        return "".join(out)

    # ---- survival -------------------------------------------------------------------------------------------
    def survival(self) -> str:
        w, sv = self.w, self.r["survival"]
        d182 = sv["day182"]
        lo, hi = d182["ci95"]
        med = sv.get("median") or {}
        med_text = w("survival.median.not_reached") if not med.get("reached") else w("survival.median.day", day=med["days"])
        med_ci = " – ".join("NE" if v is None else str(int(v)) for v in (med.get("ci95") or [None, None]))
        day = sv["horizon_days"]
        rows = [[w("survival.subjects"), sv["subjects"]], [w("survival.events"), sv["events"]],
                [w("survival.censored"), sv["censored"]],
                [w("survival.withdrawn"), sv.get("censored_at_withdrawal", 0)],
                [w("survival.lost"), sv.get("lost_to_follow_up", 0)],
                [w("survival.at_risk", day=day), d182["at_risk"]], [w("survival.deaths_by", day=day), d182["events"]],
                [w("survival.censored_before", day=day), d182["censored_before"]],
                [w("survival.km", day=day), f"{d182['estimate']:.3f} ({lo:.3f} – {hi:.3f})"],
                [w("survival.median"), f"{med_text} ({med_ci})"]]
        curve = [[p["day"], p["at_risk"], p["events"], p["censored"], f"{p['estimate']:.3f}",
                  f"{p['ci95'][0]:.3f} – {p['ci95'][1]:.3f}"] for p in sv["curve"]]
        swimmers = swimmer_parts(self.r["disposition"], day, messages=self.svg_messages)
        return "".join([
            f"<h2>{escape(w('h.survival'))}</h2>",
            '<figure class="keep">', km_svg(sv["curve"], day, self.censor_days, messages=self.svg_messages),
            self.note("survival.band", method=sv["ci_method"], day=day), "</figure>",
            self.note("survival.rule", rule=sv.get("censoring_rule", "")),
            _keep(_table(["", w("survival.head.value")], rows, (1,))),
            *(f'<figure class="keep swimmer">{s}</figure>' for s in swimmers),
            f"<details><summary>{escape(w('survival.km_table'))}</summary>",
            _table(self.head("km.head"), curve, (0, 1, 2, 3, 4)), "</details>"])

    # ---- incidence ------------------------------------------------------------------------------------------
    def incidence(self) -> str:
        w, inc, rate = self.w, self.r["ae_incidence"], self.r["ae_rate"]

        def share_row(label: str, s: Mapping[str, Any]) -> list[Any]:
            return [label, s["with_related_ae"], s["subjects"], _pct(s["proportion"]), _ci(s.get("ci95"))]

        rows = [share_row(w("incidence.any"), inc["overall"])] + [share_row(d, s) for d, s in inc["by_drug"].items()]
        cons = inc.get("conservative")
        if cons:
            rows.append(share_row(w("incidence.conservative.any"), cons["overall"]))
            rows += [share_row(w("incidence.conservative.drug", drug=d), s) for d, s in cons["by_drug"].items()]
        grades = [share_row(w("by_grade.grade", grade=g) if g.isdigit() else w("by_grade.ungraded"), s)
                  for g, s in inc["by_grade"].items()]

        def rate_row(label: str, count: int, per: float | None, ci: Sequence[float] | None) -> list[Any]:
            return [label, count, f"{per:.2f}" if per is not None else "–", _ci(ci, pct=False, digits=2)]

        rates = [rate_row(w("rate.all"), rate["aes"], rate["per_100_patient_weeks"], rate.get("per_100_patient_weeks_ci95")),
                 rate_row(w("rate.related"), rate["related_aes"], rate["related_per_100_patient_weeks"],
                          rate.get("related_per_100_patient_weeks_ci95"))]
        if "conservative_related_aes" in rate:
            rates.append(rate_row(w("rate.conservative"), rate["conservative_related_aes"],
                                  rate["conservative_related_per_100_patient_weeks"],
                                  rate.get("conservative_related_per_100_patient_weeks_ci95")))
        return "".join([
            f"<h2>{escape(w('h.incidence'))}</h2>", self.note("incidence.note"), self.note("incidence.conservative.note"),
            _keep(_table(self.head("incidence.head"), rows, (1, 2, 3, 4))),
            f"<h3>{escape(w('h.by_grade'))}</h3>", _keep(_table(self.head("by_grade.head"), grades, (1, 2, 3, 4))),
            f"<h3>{escape(w('h.rate'))}</h3>", self.note("rate.note", weeks=f"{rate['patient_weeks']:.1f}"),
            _keep(_table(self.head("rate.head"), rates, (1, 2, 3)))])

    # ---- safety tables --------------------------------------------------------------------------------------
    def safety_tables(self) -> str:
        w, r = self.w, self.r
        st = r["safety_table"]["related"]
        n = st["denominator"]
        grades = ("1", "2", "3", "4", "5", "ungraded")
        rows = [[w("by_term.any"), _n_pct(st["any"]["subjects"], n), *(st["any"]["by_worst_grade"][g] or "" for g in grades)]]
        for x in st["rows"]:
            rows.append([x["term"] + ("" if x["ctcae"] else " †"), _n_pct(x["subjects"], n),
                         *(_n_pct(x["by_worst_grade"][g], n) if x["by_worst_grade"][g] else "" for g in grades)])
        out = [f"<h2>{escape(w('h.safety'))}</h2>", f"<h3>{escape(w('h.by_term'))}</h3>", self.note("by_term.note", n=n),
               _keep(_table(self.head("by_term.head"), rows, (1, 2, 3, 4, 5, 6, 7)))]
        soc = (r.get("ae_by_soc") or {}).get("all")
        if soc:
            rows, classes = [], []
            for s in soc["socs"]:
                name = w("by_soc.unmapped") if s["soc"] == "SOC not mapped" else s["soc"]
                rows.append([name, _n_pct(s["subjects"], n), s["events"], *(s["by_worst_grade"][g] or "" for g in grades)])
                classes.append("soc")
                for t in s["terms"]:
                    rows.append([f"  {t['term']}", _n_pct(t["subjects"], n), t["events"],
                                 *(t["by_worst_grade"][g] or "" for g in grades)])
                    classes.append("")
            out += [f"<h3>{escape(w('h.by_soc'))}</h3>", self.note("by_soc.note"),
                    _table(self.head("by_soc.head"), rows, (1, 2, 3, 4, 5, 6, 7, 8), row_classes=classes)]
        grading = r.get("grading", {})
        rules = "; ".join(w("grading.rule", id=x["id"], ctcae=x["ctcae"]) for x in grading.get("derived_rules", []))
        out.append(self.note("grading.note", rules=rules or "–", derived=sum(grading.get("derived", {}).values()),
                             ungraded=grading.get("ungraded", 0)))
        out.append(self.aesi())
        out.append(self.shifts())
        return "".join(out)

    def aesi(self) -> str:
        a = self.r.get("aesi")
        if not a:
            return ""
        w, n = self.w, a["denominator"]
        rows = []
        for x in a["rows"]:
            t = x["time_to_first_event_days"]
            ttf = f"{_num(t['median'])} [{_num(t['min'], 0)} – {_num(t['max'], 0)}]" if t["n"] else "–"
            severe = sum(v for g, v in x["by_worst_grade"].items() if g in ("3", "4", "5"))
            title = w("aesi.child", title=x["title"]) if x["parent"] else x["title"]
            rows.append([title, _n_pct(x["subjects"], n), _ci(x["ci95"]), x["events"], x["serious"], x["related"], severe, ttf])
        return "".join([f"<h3>{escape(w('h.aesi'))}</h3>", self.note("aesi.note"),
                        _table(self.head("aesi.head"), rows, (1, 3, 4, 5, 6, 7))])

    def shifts(self) -> str:
        tables = (self.r.get("lab_shifts") or {}).get("tables") or []
        if not tables:
            return ""
        w = self.w
        out = [f"<h3>{escape(w('h.shifts'))}</h3>", self.note("shifts.note"), '<div class="shifts">']
        cols = ("0", "1", "2", "3", "4", "missing")

        def label(g: str) -> str:
            return w("shifts.missing") if g == "missing" else w("shifts.grade", grade=g)

        for t in tables:
            keep = [c for c in cols if c == "missing" or int(c) <= t["max_grade"]]
            rows = [[label(b), *(t["matrix"][b][c] for c in keep)] for b in keep]
            out.append(_keep(_table([w("shifts.head.baseline", term=t["term"]), *(label(c) for c in keep)], rows,
                                    tuple(range(1, len(keep) + 1)))))
        out.append("</div>")
        return "".join(out)

    # ---- SAEs, deaths, narratives ---------------------------------------------------------------------------
    def serious(self) -> str:
        w, r = self.w, self.r

        def flags(x: Mapping[str, Any]) -> str:
            out = []
            if x.get("needs_assessment"):
                out.append(w("saes.flag.pending"))
            if x.get("susar"):
                out.append(w("saes.flag.susar"))
            if x.get("new_since"):
                out.append(w("saes.flag.new"))
            return ", ".join(out)

        def expected(x: Mapping[str, Any]) -> str:
            no = [d for d, ok in (x.get("expected") or {}).items() if not ok and x["causality"].get(d, "").rstrip("*")
                  in ("C", "PL", "P")]
            return w("saes.expected.no", drugs=", ".join(no)) if no else w("saes.expected.yes")

        saes = [[x["subject"], x["term"], x["onset"], x["study_day"], x["grade"] if x["grade"] is not None else "–",
                 x["seriousness_text"], x["outcome"], w("word.yes") if x["related"] else w("word.no"), expected(x), flags(x)]
                for x in r["serious_adverse_events"]]
        out = [f"<h3>{escape(w('h.saes'))}</h3>",
               _table(self.head("saes.head"), saes, (3,), "wide") if saes else f"<p>{escape(w('word.none'))}</p>"]
        pending = r.get("pending_assessment", {}).get("rows", [])
        out += [f"<h3>{escape(w('h.pending'))}</h3>", self.note("pending.note")]
        out.append(_table(self.head("pending.head"), [[x["subject"], x["term"], x["onset"], x["grade"] if x["grade"]
                                                      is not None else "–", x["seriousness_text"],
                                                      ", ".join(x["causality_pending"])] for x in pending], (), "wide")
                   if pending else f"<p>{escape(w('word.none'))}</p>")
        ex = r.get("expectedness") or {}
        susars = ex.get("susars", [])
        out += [f"<h3>{escape(w('h.susars'))}</h3>", self.note("susars.note", rsi=ex.get("rsi_version") or "–")]
        out.append(_table(self.head("saes.head"), [[x["subject"], x["term"], x["onset"], x["study_day"], x["grade"],
                                                   x["seriousness_text"], x["outcome"], w("word.yes"), expected(x), flags(x)]
                                                  for x in susars], (3,), "wide")
                   if susars else f"<p>{escape(w('word.none'))}</p>")
        stops = [[x["subject"], x["drug"], x["day"] or w("stops.unknown"), x["study_day"] if x["study_day"] is not None
                  else "–", x["reason"], ", ".join(x["adverse_event_terms"]) or w("stops.none_ae")]
                 for x in r["discontinuations"]]
        out += [f"<h3>{escape(w('h.stops'))}</h3>",
                _keep(_table(self.head("stops.head"), stops, (3,))) if stops else f"<p>{escape(w('stops.none'))}</p>"]
        deaths = []
        for x in r["deaths"]:
            day = x["day"] if x["date_known"] else w("deaths.last_alive", day=x["day"])
            event = w("word.yes") if x.get("survival_event", True) else w("deaths.after_withdrawal")
            causality = ", ".join(f"{self.abbr.get(d, d)} {v}" for d, v in (x.get("causality") or {}).items())
            deaths.append([x["subject"], day, x["study_day"], x["cause"] or w("deaths.not_coded"), event, causality or "–"])
        out += [f"<h3>{escape(w('h.deaths'))}</h3>",
                _keep(_table(self.head("deaths.head"), deaths, (2,))) if deaths else f"<p>{escape(w('word.none'))}</p>"]
        return "".join(out)

    def narratives(self) -> str:
        items = self.r.get("narratives") or []
        if not items:
            return ""
        w = self.w
        terms = {f.id: f.table_term for f in self.findings}
        out = [f"<h2>{escape(w('h.narratives'))}</h2>", self.note("narratives.note")]
        for x in items:
            title = (w("narrative.kind.death", subject=x["subject"]) if x["kind"] == "death"
                     else w("narrative.kind.sae", subject=x["subject"], term=terms.get(x["ae"], "")))
            out.append(f'<p class="narrative"><strong>{escape(title)}.</strong> {escape(x["text"])}</p>')
        return "".join(out)

    def disposition(self) -> str:
        w = self.w
        rows = [[x["subject"], x["d1"], x["last_contact"], x["status_day182"], x["event_or_censoring"], x["follow_up_days"]]
                for x in self.r["disposition"]]
        return "".join([f"<h2>{escape(w('h.disposition'))}</h2>", _table(self.head("disposition.head"), rows, (5,))])

    def listing(self) -> str:
        w, r = self.w, self.r
        legend = r.get("causality_legend", {})
        sources = r.get("ae_sources", {})
        rows = []
        for f in self.findings:
            short = causality_short(f)
            rows.append([self.labels.get(f.patient, f.patient), f.table_term, f.grade if f.grade is not None else "–",
                         f.onset.isoformat(), f.end.isoformat() if f.end else "–", f.outcome,
                         seriousness_text(f.seriousness), w("word.yes") if f.treatment_related else w("word.no"),
                         *(short.get(d, "–") for d in self.drugs), f.source])
        head = [*self.head("listing.head"), *(self.abbr[d] for d in self.drugs), w("listing.head.source")]
        return "".join([
            f"<h2>{escape(w('h.listing'))}</h2>",
            self.note("listing.legend", legend="; ".join(f"{k} = {v}" for k, v in legend.items()),
                      drugs="; ".join(f"{a} = {d}" for d, a in self.abbr.items()),
                      sources=", ".join(f"{k} {v}" for k, v in sources.items() if isinstance(v, int))),
            _table(head, rows, (2,), "wide")])


def render_html(report: dict[str, Any], findings: Sequence[Finding], censor_days: Sequence[int],
                labels: Mapping[str, str] | None = None, *, messages: Mapping[str, str] | None = None,
                lang: str = "en") -> str:
    """The page. `labels` maps patient references to subject numbers for the AE listing; `messages` replaces
    templates of MESSAGES and of the figures' (fhir3t.report.svg.MESSAGES) by id."""
    page = Page(report, findings, censor_days, labels or {}, messages, messages)
    w = page.w
    h = report.get("header") or {}
    study = report.get("study") or "Study"
    title = h.get("study_title")
    version = str(h.get("report_version", "1"))
    cutoff = report["as_of"]
    furniture = (f'<div class="furniture"><span class="mark">{escape(w("page.confidential"))}</span>'
                 f'<span>{escape(w("page.version", study=study, version=version))}</span>'
                 f'<span>{escape(w("page.cutoff", cutoff=cutoff))}</span></div>')
    return "".join([
        f'<!DOCTYPE html><html lang="{escape(lang)}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(w('page.title', study=study))}</title>",
        f"<style>{CSS}{page_css(w, study, version, cutoff)}</style></head><body>",
        furniture,
        f"<h1>{escape(w('page.heading', study=study, title=': ' + title if title else ''))}</h1>",
        page.meta(),
        page.note("note.methods", methods=report.get("methods", "")),
        page.summary(), page.screening(), page.baseline(), page.exposure(), page.survival(), page.incidence(),
        page.safety_tables(), page.serious(), page.narratives(), page.disposition(), page.listing(),
        "</body></html>\n",
    ])
