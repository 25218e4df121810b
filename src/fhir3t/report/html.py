"""A self-contained HTML report: inline CSS and an inline SVG Kaplan–Meier plot (opens offline).

Everything from the data is escaped; the page loads nothing (no scripts, fonts or images by URL).
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from fhir3t.safety.findings import Finding

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f2f2f2}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.85em}.yes{color:#a00;font-weight:600}
svg text{font-family:inherit;font-size:12px}
"""


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def km_svg(curve: Sequence[dict[str, Any]], horizon: int, censor_days: Sequence[int], width: int = 720,
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
    ticks = list(range(0, t_max + 1, 28))
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
    # numbers at risk under the axis
    n_all = curve[0]["at_risk"]
    parts.append(f'<text x="{left - 8}" y="{top + ph + 62}" text-anchor="end">at risk</text>')
    for t in ticks:
        at_risk = n_all - sum(p["events"] + p["censored"] for p in curve[1:] if p["day"] < t)
        parts.append(f'<text x="{x(t):.1f}" y="{top + ph + 62}" text-anchor="middle">{at_risk}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = []
    for r in rows:
        tds = "".join(f'<td class="n">{escape(str(v))}</td>' if i in numeric else f"<td>{escape(str(v))}</td>"
                      for i, v in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(report: dict[str, Any], findings: Sequence[Finding], censor_days: Sequence[int]) -> str:
    sv, inc, rate = report["survival"], report["ae_incidence"], report["ae_rate"]
    d182 = sv["day182"]
    lo, hi = d182["ci95"]
    survival_rows = [
        ["subjects", sv["subjects"]], ["deaths (events)", sv["events"]], ["censored", sv["censored"]],
        [f"at risk on day {sv['horizon_days']}", d182["at_risk"]],
        [f"deaths by day {sv['horizon_days']}", d182["events"]],
        [f"censored before day {sv['horizon_days']}", d182["censored_before"]],
        [f"KM survival at day {sv['horizon_days']} (95 % CI)", f"{d182['estimate']:.3f} ({lo:.3f} – {hi:.3f})"],
    ]
    curve_rows = [[p["day"], p["at_risk"], p["events"], p["censored"], f"{p['estimate']:.3f}",
                   f"{p['ci95'][0]:.3f} – {p['ci95'][1]:.3f}"] for p in sv["curve"]]

    def share_row(label: str, s: dict[str, Any]) -> list[Any]:
        return [label, s["with_related_ae"], s["subjects"], _pct(s["proportion"])]

    inc_rows = [share_row("any 3T drug", inc["overall"])] + [share_row(d, s) for d, s in inc["by_drug"].items()]
    grade_rows = [share_row(f"grade {g}" if g.isdigit() else g, s) for g, s in inc["by_grade"].items()]
    per = rate["per_100_patient_weeks"]
    rel = rate["related_per_100_patient_weeks"]
    rate_rows = [["AEs", rate["aes"], f"{per:.2f}" if per is not None else "–"],
                 ["treatment-related AEs", rate["related_aes"], f"{rel:.2f}" if rel is not None else "–"]]
    ae_rows = [[f.patient, f.term, f.grade if f.grade is not None else "–", f.onset.isoformat(),
                f.end.isoformat() if f.end else "–", f.outcome, f.seriousness, "yes" if f.treatment_related else "no",
                ", ".join(f"{s.drug}: {s.causality}" for s in f.suspects)] for f in findings]
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>NCT06438679 endpoints report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>NCT06438679 (3T therapy in MDA5+ dermatomyositis): endpoints</h1>",
        f"<p class=\"note\">Data as of {escape(report['as_of'])}; {escape(report['generated_by'])}. "
        "Synthetic or EHR-derived; investigator assessment of causality still required.</p>",
        "<h2>26-week survival (Kaplan–Meier from D1)</h2>",
        km_svg(sv["curve"], sv["horizon_days"], censor_days),
        f"<p class=\"note\">Shaded band: 95 % CI ({escape(sv['ci_method'])}). Ticks: censored subjects "
        "(last day known alive). Dashed line: day 182.</p>",
        _table(["", "value"], survival_rows, (1,)),
        "<details><summary>KM table</summary>",
        _table(["day", "at risk", "deaths", "censored", "S(t)", "95 % CI"], curve_rows, (0, 1, 2, 3, 4)),
        "</details>",
        "<h2>Treatment-related AE incidence</h2>",
        f"<p class=\"note\">{escape(inc['definition'])}.</p>",
        _table(["suspect", "subjects with related AE", "subjects on study", "proportion"], inc_rows, (1, 2, 3)),
        "<h3>By worst grade</h3>",
        _table(["worst grade", "subjects", "subjects on study", "proportion"], grade_rows, (1, 2, 3)),
        "<h3>AEs per 100 patient-weeks</h3>",
        f"<p class=\"note\">{rate['patient_weeks']:.1f} patient-weeks ({escape(rate['exposure'])}).</p>",
        _table(["", "count", "per 100 patient-weeks"], rate_rows, (1, 2)),
        "<h2>Adverse events</h2>",
        _table(["patient", "AE", "grade", "onset", "end", "outcome", "seriousness", "related", "causality"], ae_rows),
        "</body></html>\n",
    ])
