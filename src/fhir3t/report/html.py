"""A self-contained HTML report: inline CSS and inline SVG (KM, swimmer and flow plots); opens offline.

Everything from the data is escaped; the page loads nothing (no scripts, fonts or images by URL).
A print stylesheet lays it out on A4 without cutting table rows or plots across pages; the font
stack falls back to CJK fonts so Chinese terms from a hospital's data render.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from fhir3t.enrolment import Status
from fhir3t.report.endpoints import causality_short
from fhir3t.safety.findings import Finding

FONTS = ('system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC","Noto Sans SC",'
         '"Source Han Sans SC","PingFang SC","Hiragino Sans GB","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif')
CSS = "body{font-family:" + FONTS + ";" + """margin:2em auto;max-width:1100px;color:#222;padding:0 1em;line-height:1.35}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
h3{font-size:1.02em;margin:1.1em 0 .3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.22em .55em;text-align:left;vertical-align:top}th{background:#f2f2f2}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}td.d{white-space:nowrap}
.note{color:#555;font-size:.85em}.yes{color:#a00;font-weight:600}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;font-size:.85em;color:#333;margin:.5em 0}
.meta dt{color:#666}.meta dd{margin:0;word-break:break-all}
.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.legend{font-size:.8em;color:#444}
svg text{font-family:inherit;font-size:12px}
@page{size:A4;margin:12mm}
@media print{
 body{margin:0;max-width:none;padding:0;font-size:10pt}
 h2{break-after:avoid-page}h3{break-after:avoid-page}
 .keep,svg,figure,tr{break-inside:avoid-page}
 thead{display:table-header-group}
 .plots{display:block}
 svg{max-width:100%;height:auto}
 details>summary{display:none}
}
"""
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
GRADE_COLOURS = {"1": "#fdd49e", "2": "#fdae6b", "3": "#f16913", "4": "#d94801", "5": "#7f2704", "ungraded": "#9e9e9e"}


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


def km_svg(curve: Sequence[dict[str, Any]], horizon: int, censor_days: Sequence[int], width: int = 520,
           height: int = 380) -> str:
    """Step curve with its 95 % CI band, censoring ticks, a line at the horizon and numbers at risk."""
    left, right, top, bottom = 60, 20, 20, 90
    pw, ph = width - left - right, height - top - bottom
    t_max = max([horizon + 14] + [int(p["day"]) for p in curve] + list(censor_days))

    def x(t: float) -> float:
        return left + pw * t / t_max

    def y(s: float) -> float:
        return top + ph * (1 - s)

    est, lo_pts, hi_pts = [], [], []
    prev = curve[0]
    for p in [*curve[1:], dict(curve[-1], day=t_max)]:
        for q in (prev, dict(prev, day=p["day"])):
            est.append(f"{x(q['day']):.1f},{y(q['estimate']):.1f}")
            lo_pts.append(f"{x(q['day']):.1f},{y(q['ci95'][0]):.1f}")
            hi_pts.append(f"{x(q['day']):.1f},{y(q['ci95'][1]):.1f}")
        prev = p
    band = " ".join(hi_pts + lo_pts[::-1])
    parts = [f'<svg role="img" aria-label="Kaplan-Meier survival from D1" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>']
    for s in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(s):.1f}" y2="{y(s):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 8}" y="{y(s) + 4:.1f}" text-anchor="end">{s:.2f}</text>')
    ticks = list(range(0, t_max + 1, 28 if t_max <= 400 else 56))
    for t in ticks:
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + ph}" y2="{top + ph + 5}" stroke="#999"/>'
                     f'<text x="{x(t):.1f}" y="{top + ph + 18}" text-anchor="middle">{t}</text>')
    parts.append(f'<polygon points="{band}" fill="#4a7ebb" fill-opacity="0.18" stroke="none"/>')
    parts.append(f'<polyline points="{" ".join(est)}" fill="none" stroke="#1f4e8c" stroke-width="2"/>')
    for t in censor_days:
        s = next((p["estimate"] for p in reversed(curve) if p["day"] <= t), 1.0)
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{y(s) - 5:.1f}" y2="{y(s) + 5:.1f}" '
                     f'stroke="#1f4e8c" stroke-width="1.5"/>')
    parts.append(f'<line x1="{x(horizon):.1f}" x2="{x(horizon):.1f}" y1="{top}" y2="{top + ph}" stroke="#b33" '
                 f'stroke-dasharray="4 3"/><text x="{x(horizon) + 4:.1f}" y="{top + 14}" fill="#b33">day {horizon}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{top + ph + 36}" text-anchor="middle">days since D1</text>')
    parts.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle">survival</text>')
    n_all = curve[0]["at_risk"]
    parts.append(f'<text x="{left - 8}" y="{top + ph + 62}" text-anchor="end">at risk</text>')
    for t in ticks:
        at_risk = n_all - sum(p["events"] + p["censored"] for p in curve[1:] if p["day"] < t)
        parts.append(f'<text x="{x(t):.1f}" y="{top + ph + 62}" text-anchor="middle">{at_risk}</text>')
    parts.append("</svg>")
    return "".join(parts)


def swimmer_svg(rows: Sequence[Mapping[str, Any]], horizon: int, width: int = 520) -> str:
    """One bar per subject over study days: AE markers by worst grade (filled: treatment-related), drug
    stops (▼), death (✕) or censoring (|, ▶ when still on study at the data cut-off), the day-182 line."""
    left, right, top, row_h = 92, 16, 18, 22
    height = top + row_h * max(1, len(rows)) + 44
    pw = width - left - right
    t_max = max([horizon + 14] + [int(r["follow_up_days"]) for r in rows])

    def x(t: float) -> float:
        return left + pw * max(0.0, t) / t_max

    parts = [f'<svg role="img" aria-label="Swimmer plot: follow-up and AEs per subject" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">']
    for i, r in enumerate(rows):
        yc = top + row_h * i + row_h / 2
        end = x(int(r["follow_up_days"]))
        parts.append(f'<text x="{left - 6}" y="{yc + 4:.1f}" text-anchor="end">{escape(str(r["subject"]))[:14]}</text>')
        parts.append(f'<rect x="{left}" y="{yc - 4:.1f}" width="{max(1.0, end - left):.1f}" height="8" fill="#cfd8e3"/>')
        for st in r.get("drug_stops", ()):
            xs = x(int(st["day"]))
            parts.append(f'<path d="M{xs - 4:.1f},{yc - 11:.1f} L{xs + 4:.1f},{yc - 11:.1f} L{xs:.1f},{yc - 5:.1f} Z" '
                         f'fill="#333"><title>{escape(str(st["drug"]))} stopped, day {int(st["day"])}</title></path>')
        for m in r.get("ae_markers", ()):
            g = str(m["grade"]) if m["grade"] is not None else "ungraded"
            colour = GRADE_COLOURS.get(g, "#9e9e9e")
            fill = colour if m["related"] else "#fff"
            parts.append(f'<circle cx="{x(int(m["day"])):.1f}" cy="{yc:.1f}" r="5" fill="{fill}" stroke="{colour}" '
                         f'stroke-width="2"><title>{escape(str(m["term"]))}, day {int(m["day"])}, '
                         f'grade {escape(g)}</title></circle>')
        if r["event"]:
            parts.append(f'<path d="M{end - 5:.1f},{yc - 5:.1f} L{end + 5:.1f},{yc + 5:.1f} M{end - 5:.1f},{yc + 5:.1f} '
                         f'L{end + 5:.1f},{yc - 5:.1f}" stroke="#000" stroke-width="2.2"/>')
        elif "on study" in str(r["event_or_censoring"]):
            parts.append(f'<path d="M{end:.1f},{yc - 5:.1f} L{end + 8:.1f},{yc:.1f} L{end:.1f},{yc + 5:.1f} Z" fill="#1f4e8c"/>')
        else:
            parts.append(f'<line x1="{end:.1f}" x2="{end:.1f}" y1="{yc - 7:.1f}" y2="{yc + 7:.1f}" stroke="#1f4e8c" '
                         'stroke-width="2"/>')
    base = top + row_h * max(1, len(rows))
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{base}" y2="{base}" stroke="#999"/>')
    for t in range(0, t_max + 1, 28 if t_max <= 400 else 56):
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{base}" y2="{base + 5}" stroke="#999"/>'
                     f'<text x="{x(t):.1f}" y="{base + 18}" text-anchor="middle">{t}</text>')
    parts.append(f'<line x1="{x(horizon):.1f}" x2="{x(horizon):.1f}" y1="{top - 6}" y2="{base}" stroke="#b33" '
                 f'stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{left + pw / 2}" y="{base + 36}" text-anchor="middle">study day (D1 = 0)</text>')
    parts.append("</svg>")
    return "".join(parts)


def swimmer_legend() -> str:
    dots = "".join(f'<svg width="12" height="12" viewBox="0 0 12 12"><circle cx="6" cy="6" r="5" fill="{c}"/></svg> '
                   f'{"grade " + g if g != "ungraded" else "ungraded"} ' for g, c in GRADE_COLOURS.items())
    return (f'<p class="legend">AE onset: {dots}; filled = treatment-related, hollow = not related. '
            "✕ death, ▶ on study at the data cut-off, | censored (off study), ▼ a 3T drug stopped for an adverse "
            "reaction. Dashed line: day 182.</p>")


def flow_svg(flow: Mapping[str, Any], width: int = 720) -> str:
    """CONSORT-style boxes: screened → eligible / candidate / ineligible (by first criterion) → enrolled."""
    reasons = flow.get("ineligible_by_first_criterion") or []
    line_h = 15
    inel_h = 34 + line_h * len(reasons)
    height = 60 + 24 + max(60, inel_h) + 24 + 60 + 10
    parts = [f'<svg role="img" aria-label="Screening flow" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 Z" fill="#555"/></marker></defs>']

    def box(x0: float, y0: float, w: float, h: float, lines: Sequence[str], bold: int = 1) -> None:
        parts.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" rx="4" fill="#f7f9fc" stroke="#4a6a94"/>')
        for i, ln in enumerate(lines):
            weight = ' font-weight="600"' if i < bold else ""
            parts.append(f'<text x="{x0 + 8}" y="{y0 + 18 + i * line_h}"{weight}>{escape(ln)}</text>')

    def arrow(x1: float, y1: float, x2: float, y2: float) -> None:
        parts.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#555" marker-end="url(#arrow)"/>')

    cx = width / 2
    box(cx - 130, 4, 260, 48, [f"Screened  n = {flow.get('screened')}", "patients in the screening run"])
    row = 4 + 48 + 24
    col_w = (width - 40) / 3
    xs = [10 + i * (col_w + 10) for i in range(3)]
    tall = max(60, inel_h)
    box(xs[0], row, col_w, 60, [f"Eligible  n = {flow.get(Status.ELIGIBLE)}", "all criteria decided and met"])
    box(xs[1], row, col_w, 60, [f"Candidate  n = {flow.get(Status.CANDIDATE)}", "some criteria unknown: review"])
    lines = [f"Ineligible  n = {flow.get(Status.INELIGIBLE)}", "first criterion ruling out:"]
    lines += [f"{r['criterion'] or 'reason not given'}: {r['patients']}" for r in reasons]
    box(xs[2], row, col_w, tall, lines)
    for x0 in xs:
        arrow(cx, 52, x0 + col_w / 2, row - 2)
    bottom = row + tall + 24
    came = flow.get("enrolled_by_screening_status") or {}
    box(cx - 170, bottom, 340, 56, [f"Enrolled  n = {flow.get('enrolled')}",
                                    f"from eligible {came.get(Status.ELIGIBLE, 0)}, candidate {came.get(Status.CANDIDATE, 0)}, "
                                    f"ineligible {came.get(Status.INELIGIBLE, 0)}",
                                    f"not in this screening run: {came.get('not_in_screening_run', 0)}"])
    arrow(xs[0] + col_w / 2, row + 60, cx - 60, bottom - 2)
    parts.append("</svg>")
    return "".join(parts)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (), cls: str = "") -> str:
    th = "".join(f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>" for i, h in enumerate(head))
    body = []
    for r in rows:
        tds = "".join(f'<td class="n">{escape(str(v))}</td>' if i in numeric else
                      f'<td class="d">{escape(str(v))}</td>' if _DAY.fullmatch(str(v)) else f"<td>{escape(str(v))}</td>"
                      for i, v in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
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


def _meta(report: Mapping[str, Any]) -> str:
    h = report.get("header") or {}
    rows = [("generated", h.get("generated_at", "–")), ("data as of", report["as_of"]),
            ("inputs", h.get("inputs", "–")), ("subjects", report["survival"]["subjects"]),
            ("AE sources", ", ".join(f"{k} {v}" for k, v in report["ae_sources"].items() if isinstance(v, int))),
            ("software", report["generated_by"])]
    rows += [(f"{name} sha256", digest) for name, digest in (h.get("hashes") or {}).items()]
    body = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in rows)
    return f'<dl class="meta">{body}</dl>'


def _flow_section(flow: Mapping[str, Any]) -> str:
    if flow.get("screened") is None:
        return (f"<p class=\"note\">Enrolled (ResearchSubjects on study): {flow.get('enrolled')}. "
                f"{escape(str(flow.get('note', '')))}.</p>")
    came = flow.get("enrolled_by_screening_status") or {}
    rows = [["screened", flow["screened"]], [Status.ELIGIBLE, flow[Status.ELIGIBLE]], ["candidate (review)", flow[Status.CANDIDATE]],
            [Status.INELIGIBLE, flow[Status.INELIGIBLE]]]
    rows += [[f"  ineligible: {r['criterion'] or '–'} {r['title']}", r["patients"]] for r in flow["ineligible_by_first_criterion"]]
    rows += [["enrolled (on study)", flow["enrolled"]],
             ["  of them eligible / candidate / ineligible in the run",
              f"{came.get(Status.ELIGIBLE, 0)} / {came.get(Status.CANDIDATE, 0)} / {came.get(Status.INELIGIBLE, 0)}"],
             ["  of them not in the screening run", came.get("not_in_screening_run", 0)],
             ["eligible, not enrolled", flow["eligible_not_enrolled"]]]
    return "".join([_keep(flow_svg(flow)), _keep(_table(["", "patients"], rows, (1,))),
                    f"<p class=\"note\">{escape(flow['definition'])}.</p>"])


def render_html(report: dict[str, Any], findings: Sequence[Finding], censor_days: Sequence[int],
                labels: Mapping[str, str] | None = None) -> str:
    """The page. `labels` maps patient references to subject numbers for the AE listing."""
    labels = labels or {}
    sv, inc, rate = report["survival"], report["ae_incidence"], report["ae_rate"]
    d182 = sv["day182"]
    lo, hi = d182["ci95"]
    med = sv.get("median") or {}
    med_text = "not reached" if not med.get("reached") else f"day {med['days']}"
    med_ci = med.get("ci95") or [None, None]
    med_ci_text = " – ".join("NE" if v is None else str(int(v)) for v in med_ci)
    survival_rows = [
        ["subjects", sv["subjects"]], ["deaths (events)", sv["events"]], ["censored", sv["censored"]],
        [f"at risk on day {sv['horizon_days']}", d182["at_risk"]],
        [f"deaths by day {sv['horizon_days']}", d182["events"]],
        [f"censored before day {sv['horizon_days']}", d182["censored_before"]],
        [f"KM survival at day {sv['horizon_days']} (95 % CI)", f"{d182['estimate']:.3f} ({lo:.3f} – {hi:.3f})"],
        ["median survival (95 % CI)", f"{med_text} ({med_ci_text})"],
    ]
    curve_rows = [[p["day"], p["at_risk"], p["events"], p["censored"], f"{p['estimate']:.3f}",
                   f"{p['ci95'][0]:.3f} – {p['ci95'][1]:.3f}"] for p in sv["curve"]]

    def share_row(label: str, s: dict[str, Any]) -> list[Any]:
        return [label, s["with_related_ae"], s["subjects"], _pct(s["proportion"]), _ci(s.get("ci95"))]

    inc_rows = [share_row("any 3T drug", inc["overall"])] + [share_row(d, s) for d, s in inc["by_drug"].items()]
    grade_rows = [share_row(f"grade {g}" if g.isdigit() else g, s) for g, s in inc["by_grade"].items()]
    per, rel = rate["per_100_patient_weeks"], rate["related_per_100_patient_weeks"]
    rate_rows = [["AEs", rate["aes"], f"{per:.2f}" if per is not None else "–",
                  _ci(rate.get("per_100_patient_weeks_ci95"), pct=False, digits=2)],
                 ["treatment-related AEs", rate["related_aes"], f"{rel:.2f}" if rel is not None else "–",
                  _ci(rate.get("related_per_100_patient_weeks_ci95"), pct=False, digits=2)]]
    drugs = list(inc["by_drug"])
    abbr = drug_abbreviations(drugs)
    legend = report.get("causality_legend", {})
    legend_text = ("Causality: " + "; ".join(f"{k} = {v}" for k, v in legend.items()) + ". Drugs: "
                   + "; ".join(f"{a} = {d}" for d, a in abbr.items()) + ".")

    def term_rows(table: dict[str, Any]) -> list[list[Any]]:
        n = table["denominator"]
        out = [["any AE", _n_pct(table["any"]["subjects"], n), *(table["any"]["by_worst_grade"][g] or "" for g in
                                                                 ("1", "2", "3", "4", "5", "ungraded"))]]
        for r in table["rows"]:
            term = r["term"] + ("" if r["ctcae"] else " †")
            out.append([term, _n_pct(r["subjects"], n),
                        *(_n_pct(r["by_worst_grade"][g], n) if r["by_worst_grade"][g] else ""
                          for g in ("1", "2", "3", "4", "5", "ungraded"))])
        return out

    grade_head = ["term (CTCAE v5.0)", "any grade", "grade 1", "grade 2", "grade 3", "grade 4", "grade 5", "ungraded"]
    st = report["safety_table"]
    sae_rows = [[r["subject"], r["term"], r["onset"], r["study_day"], r["grade"] if r["grade"] is not None else "–",
                 r["seriousness_text"], r["outcome"], "yes" if r["related"] else "no",
                 *(r["causality"].get(d, "–") for d in drugs)] for r in report["serious_adverse_events"]]
    stop_rows = [[r["subject"], r["drug"], r["day"] or "unknown", r["study_day"] if r["study_day"] is not None else "–",
                  r["reason"], ", ".join(r["adverse_event_terms"]) or "none ongoing on that day"]
                 for r in report["discontinuations"]]
    death_rows = [[r["subject"], r["day"] + ("" if r["date_known"] else " (last day known alive)"), r["study_day"],
                   r["cause"] or "not coded"] for r in report["deaths"]]
    disp_rows = [[r["subject"], r["d1"], r["last_contact"], r["status_day182"], r["event_or_censoring"],
                  r["follow_up_days"]] for r in report["disposition"]]
    ae_rows = []
    for f in findings:
        short = causality_short(f)
        ae_rows.append([labels.get(f.patient, f.patient), f.table_term, f.grade if f.grade is not None else "–",
                        f.onset.isoformat(), f.end.isoformat() if f.end else "–", f.outcome, f.seriousness,
                        "yes" if f.treatment_related else "no", *(short.get(d, "–") for d in drugs), f.source])
    grading = report.get("grading", {})
    sources = report.get("ae_sources", {})
    study = report.get("study") or "Study"
    title = (report.get("header") or {}).get("study_title")
    flow = report.get("screening_flow") or {}
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{escape(study)} endpoints report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(study)}{': ' + escape(title) if title else ''} — endpoints</h1>",
        _meta(report),
        f"<p class=\"note\">{escape(report.get('methods', ''))} Synthetic or EHR-derived data; the investigators' "
        "assessment of causality is required.</p>",
        "<h2>Screening and enrolment</h2>",
        _flow_section(flow),
        "<h2>26-week survival (Kaplan–Meier from D1)</h2>",
        '<div class="plots"><figure class="keep">', km_svg(sv["curve"], sv["horizon_days"], censor_days), "</figure>",
        '<figure class="keep">', swimmer_svg(report["disposition"], sv["horizon_days"]), "</figure></div>",
        f"<p class=\"note\">Shaded band: 95 % CI ({escape(sv['ci_method'])}). Ticks: censored subjects "
        "(last day known alive). Dashed line: day 182.</p>",
        swimmer_legend(),
        _keep(_table(["", "value"], survival_rows, (1,))),
        "<details><summary>KM table</summary>",
        _table(["day", "at risk", "deaths", "censored", "S(t)", "95 % CI"], curve_rows, (0, 1, 2, 3, 4)),
        "</details>",
        "<h2>Treatment-related AE incidence</h2>",
        f"<p class=\"note\">{escape(inc['definition'])}. 95 % CI: {escape(inc.get('ci_method', ''))}.</p>",
        _keep(_table(["suspect", "subjects with related AE", "subjects on study", "proportion", "95 % CI"], inc_rows,
                     (1, 2, 3, 4))),
        "<h3>By worst grade</h3>",
        _keep(_table(["worst grade", "subjects", "subjects on study", "proportion", "95 % CI"], grade_rows, (1, 2, 3, 4))),
        "<h3>AEs per 100 patient-weeks</h3>",
        f"<p class=\"note\">{rate['patient_weeks']:.1f} patient-weeks ({escape(rate['exposure'])}). "
        f"95 % CI: {escape(rate.get('ci_method', ''))}.</p>",
        _keep(_table(["", "count", "per 100 patient-weeks", "95 % CI"], rate_rows, (1, 2, 3))),
        "<h2>Safety tables</h2>",
        "<h3>Treatment-related AEs by term and worst grade: subjects, n (%)</h3>",
        f"<p class=\"note\">n = {st['related']['denominator']} subjects on study. {escape(st['definition'])}. "
        "† not mapped to a CTCAE v5.0 term: the reported term.</p>",
        _keep(_table(grade_head, term_rows(st["related"]), (1, 2, 3, 4, 5, 6, 7))),
        "<details><summary>All AEs (any causality) by term and worst grade</summary>",
        _table(grade_head, term_rows(st["all"]), (1, 2, 3, 4, 5, 6, 7)), "</details>",
        f"<p class=\"note\">Grades: {escape(str(grading.get('rule', '')))}. "
        f"{grading.get('ungraded', 0)} AE(s) ungraded.</p>",
        "<h3>Serious adverse events</h3>",
        _keep(_table(["subject", "AE", "onset", "study day", "grade", "seriousness", "outcome", "related",
                      *(abbr[d] for d in drugs)], sae_rows, (3,))) if sae_rows else "<p>None.</p>",
        "<h3>AEs that led to stopping a 3T drug</h3>",
        _keep(_table(["subject", "drug", "stopped", "study day", "reason", "AE(s) ongoing then"], stop_rows, (3,)))
        if stop_rows else "<p>None recorded (a 3T medication record stopped after D1 with an adverse-reaction reason).</p>",
        "<h3>Deaths</h3>",
        _keep(_table(["subject", "date", "study day", "cause"], death_rows, (2,))) if death_rows else "<p>None.</p>",
        "<h2>Disposition per subject</h2>",
        _keep(_table(["subject", "D1", "last contact", "status at day 182", "event or censoring", "follow-up (days)"],
                     disp_rows, (5,))),
        "<h2>Adverse events</h2>",
        f"<p class=\"note\">{escape(legend_text)} Source: " +
        escape(", ".join(f"{k} {v}" for k, v in sources.items() if isinstance(v, int))) + ".</p>",
        _table(["subject", "AE", "grade", "onset", "end", "outcome", "seriousness", "related", *(abbr[d] for d in drugs),
                "source"], ae_rows),
        "</body></html>\n",
    ])
