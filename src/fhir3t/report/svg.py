"""The report's figures as inline SVG: Kaplan–Meier curve, swimmer plot (in page-sized parts, each with its
legend inside it so the two never print apart), CONSORT screening flow, accrual against the target.

Every word drawn comes from MESSAGES (messages declared under `report.svg`), said in the page's language
(`lang`). Data strings are escaped.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from fhir3t.enrolment import Status
from fhir3t.messages import Words, table

MESSAGES = table("report.svg", {
    "km.label": "Kaplan-Meier survival from D1",
    "km.axis.x": "days since D1",
    "km.axis.y": "survival",
    "km.at_risk": "at risk",
    "km.horizon": "day {day}",
    "swimmer.label": "Swimmer plot: follow-up and AEs per subject ({part} of {parts})",
    "swimmer.axis.x": "study day (D1 = 0)",
    "swimmer.legend.grade": "grade {grade}",
    "swimmer.legend.ungraded": "ungraded",
    "swimmer.legend.related": "AE onset by worst grade: filled = treatment-related, hollow = not related",
    "swimmer.legend.marks": "✕ death · ▶ on study at the data cut-off · | censored (withdrawn, off study or lost)",
    "swimmer.legend.marks2": "▼ a 3T drug stopped for an adverse reaction · dashed line: day {day}",
    "swimmer.stop": "{drug} stopped, day {day}",
    "swimmer.marker": "{term}, day {day}, grade {grade}",
    "flow.label": "Screening flow (CONSORT)",
    "flow.screened": "Screened  n = {n}",
    "flow.screened.note": "patients in the screening run",
    "flow.eligible": "Eligible  n = {n}",
    "flow.eligible.note": "all criteria decided and met",
    "flow.candidate": "Candidate  n = {n}",
    "flow.candidate.note": "some criteria unknown: review",
    "flow.ineligible": "Ineligible  n = {n}",
    "flow.ineligible.note": "first criterion ruling out:",
    "flow.reason": "{criterion}: {n}",
    "flow.reason.none": "reason not given",
    "flow.enrolled": "Enrolled  n = {n}",
    "flow.enrolled.note": "ResearchSubjects on study",
    "flow.not_enrolled": "Eligible, not enrolled  n = {n}",
    "flow.not_screened": "Not in this screening run  n = {n}",
    "flow.arrow": "n = {n}",
    "accrual.label": "Accrual against the target",
    "accrual.axis.y": "subjects enrolled (cumulative)",
    "accrual.target": "target {n}",
})
GRADE_COLOURS = {"1": "#fdd49e", "2": "#fdae6b", "3": "#f16913", "4": "#d94801", "5": "#7f2704", "ungraded": "#9e9e9e"}
SWIMMER_ROWS = 34  # subjects per swimmer part: one part fits an A4 page with its legend


def _words(lang: str) -> Words:
    return Words(MESSAGES, lang)


def km_svg(curve: Sequence[dict[str, Any]], horizon: int, censor_days: Sequence[int], width: int = 520,
           height: int = 380, lang: str = "en") -> str:
    """Step curve with its 95 % CI band, censoring ticks, a line at the horizon and numbers at risk."""
    w = _words(lang)
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
    parts = [f'<svg role="img" aria-label="{escape(w("km.label"))}" width="{width}" height="{height}" '
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
                 f'stroke-dasharray="4 3"/><text x="{x(horizon) + 4:.1f}" y="{top + 14}" fill="#b33">'
                 f'{escape(w("km.horizon", day=horizon))}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{top + ph + 36}" text-anchor="middle">{escape(w("km.axis.x"))}</text>')
    parts.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
                 f'{escape(w("km.axis.y"))}</text>')
    n_all = curve[0]["at_risk"]
    parts.append(f'<text x="{left - 8}" y="{top + ph + 62}" text-anchor="end">{escape(w("km.at_risk"))}</text>')
    for t in ticks:
        at_risk = n_all - sum(p["events"] + p["censored"] for p in curve[1:] if p["day"] < t)
        parts.append(f'<text x="{x(t):.1f}" y="{top + ph + 62}" text-anchor="middle">{at_risk}</text>')
    parts.append("</svg>")
    return "".join(parts)


def swimmer_parts(rows: Sequence[Mapping[str, Any]], horizon: int, width: int = 700, per_part: int = SWIMMER_ROWS,
                  lang: str = "en") -> list[str]:
    """The swimmer plot in parts of at most `per_part` subjects, each with the same axis and its own legend."""
    rows = list(rows)
    t_max = max([horizon + 14] + [int(r["follow_up_days"]) for r in rows])
    chunks = [rows[i:i + per_part] for i in range(0, len(rows), per_part)] or [[]]
    return [swimmer_svg(c, horizon, width, t_max=t_max, part=i + 1, parts=len(chunks), lang=lang)
            for i, c in enumerate(chunks)]


def swimmer_svg(rows: Sequence[Mapping[str, Any]], horizon: int, width: int = 700, *, t_max: int | None = None,
                part: int = 1, parts: int = 1, lang: str = "en") -> str:
    """One bar per subject over study days: AE markers by worst grade (filled: treatment-related), drug stops (▼),
    death (✕) or censoring (|, ▶ when still on study at the data cut-off), the day-182 line, and the legend."""
    w = _words(lang)
    left, right, top, row_h, legend_h = 92, 16, 18, 20, 82
    height = top + row_h * max(1, len(rows)) + 40 + legend_h
    pw = width - left - right
    t_max = t_max or max([horizon + 14] + [int(r["follow_up_days"]) for r in rows])

    def x(t: float) -> float:
        return left + pw * max(0.0, t) / t_max

    parts_ = [f'<svg role="img" class="swimmer" aria-label="{escape(w("swimmer.label", part=part, parts=parts))}" '
              f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i, r in enumerate(rows):
        yc = top + row_h * i + row_h / 2
        end = x(int(r["follow_up_days"]))
        parts_.append(f'<text x="{left - 6}" y="{yc + 4:.1f}" text-anchor="end">{escape(str(r["subject"])[:14])}</text>')
        parts_.append(f'<rect class="bar" x="{left}" y="{yc - 4:.1f}" width="{max(1.0, end - left):.1f}" height="8" '
                      'fill="#cfd8e3"/>')
        for st in r.get("drug_stops", ()):
            xs = x(int(st["day"]))
            parts_.append(f'<path d="M{xs - 4:.1f},{yc - 11:.1f} L{xs + 4:.1f},{yc - 11:.1f} L{xs:.1f},{yc - 5:.1f} Z" '
                          f'fill="#333"><title>{escape(w("swimmer.stop", drug=st["drug"], day=int(st["day"])))}</title></path>')
        for m in r.get("ae_markers", ()):
            g = str(m["grade"]) if m["grade"] is not None else "ungraded"
            colour = GRADE_COLOURS.get(g, "#9e9e9e")
            fill = colour if m["related"] else "#fff"
            parts_.append(f'<circle cx="{x(int(m["day"])):.1f}" cy="{yc:.1f}" r="5" fill="{fill}" stroke="{colour}" '
                          f'stroke-width="2"><title>{escape(w("swimmer.marker", term=m["term"], day=int(m["day"]), grade=g))}'
                          '</title></circle>')
        if r["event"]:
            parts_.append(f'<path d="M{end - 5:.1f},{yc - 5:.1f} L{end + 5:.1f},{yc + 5:.1f} M{end - 5:.1f},{yc + 5:.1f} '
                          f'L{end + 5:.1f},{yc - 5:.1f}" stroke="#000" stroke-width="2.2"/>')
        elif r.get("on_study_at_cutoff"):
            parts_.append(f'<path d="M{end:.1f},{yc - 5:.1f} L{end + 8:.1f},{yc:.1f} L{end:.1f},{yc + 5:.1f} Z" fill="#1f4e8c"/>')
        else:
            parts_.append(f'<line x1="{end:.1f}" x2="{end:.1f}" y1="{yc - 7:.1f}" y2="{yc + 7:.1f}" stroke="#1f4e8c" '
                          'stroke-width="2"/>')
    base = top + row_h * max(1, len(rows))
    parts_.append(f'<line x1="{left}" x2="{left + pw}" y1="{base}" y2="{base}" stroke="#999"/>')
    for t in range(0, t_max + 1, 28 if t_max <= 400 else 56):
        parts_.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{base}" y2="{base + 5}" stroke="#999"/>'
                      f'<text x="{x(t):.1f}" y="{base + 18}" text-anchor="middle">{t}</text>')
    parts_.append(f'<line x1="{x(horizon):.1f}" x2="{x(horizon):.1f}" y1="{top - 6}" y2="{base}" stroke="#b33" '
                  f'stroke-dasharray="4 3"/>')
    parts_.append(f'<text x="{left + pw / 2}" y="{base + 34}" text-anchor="middle">{escape(w("swimmer.axis.x"))}</text>')
    # the legend is part of the figure: it cannot be printed on another page than the plot
    ly = base + 54
    parts_.append(f'<g class="legend"><text x="8" y="{ly}">{escape(w("swimmer.legend.related"))}</text>')
    lx = 8.0
    for g, c in GRADE_COLOURS.items():
        label = w("swimmer.legend.grade", grade=g) if g != "ungraded" else w("swimmer.legend.ungraded")
        parts_.append(f'<circle cx="{lx + 6:.1f}" cy="{ly + 14}" r="5" fill="{c}" stroke="{c}"/>'
                      f'<text x="{lx + 15:.1f}" y="{ly + 18}">{escape(label)}</text>')
        lx += 24 + 7.2 * len(label)
    parts_.append(f'<text x="8" y="{ly + 38}">{escape(w("swimmer.legend.marks"))}</text>'
                  f'<text x="8" y="{ly + 56}">{escape(w("swimmer.legend.marks2", day=horizon))}</text></g>')
    parts_.append("</svg>")
    return "".join(parts_)


def flow_svg(flow: Mapping[str, Any], width: int = 700, lang: str = "en") -> str:
    """CONSORT-style boxes and arrows, every arrow labelled with its count: screened -> eligible / candidate /
    ineligible (by first criterion) -> enrolled, with 'eligible, not enrolled' and 'not in this screening run'.
    The counts on the arrows out of a box add up to the box's n, and those into Enrolled to its n."""
    w = _words(lang)
    reasons = flow.get("ineligible_by_first_criterion") or []
    came = flow.get("enrolled_by_screening_status") or {}
    line_h = 15
    inel_h = 34 + line_h * len(reasons)
    row1, row2 = 4, 4 + 48 + 30
    tall = max(60, inel_h)
    row3 = row2 + tall + 70
    height = row3 + 60 + 6
    parts = [f'<svg role="img" class="flow" aria-label="{escape(w("flow.label"))}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 Z" fill="#555"/></marker></defs>']

    def box(key: str, n: object, x0: float, y0: float, w_: float, h: float, lines: Sequence[str]) -> None:
        parts.append(f'<g class="flow-box" data-box="{key}" data-count="{escape(str(n))}">'
                     f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{w_:.1f}" height="{h:.1f}" rx="4" fill="#f7f9fc" stroke="#4a6a94"/>')
        for i, ln in enumerate(lines):
            weight = ' font-weight="600"' if i == 0 else ""
            parts.append(f'<text x="{x0 + 8:.1f}" y="{y0 + 18 + i * line_h:.1f}"{weight}>{escape(ln)}</text>')
        parts.append("</g>")

    def arrow(src: str, dst: str, n: int | None, x1: float, y1: float, x2: float, y2: float) -> None:
        label = "" if n is None else (f'<text x="{(x1 + x2) / 2 + 4:.1f}" y="{(y1 + y2) / 2 + 4:.1f}" '
                                      f'class="count">{escape(w("flow.arrow", n=n))}</text>')
        parts.append(f'<g class="flow-arrow" data-from="{src}" data-to="{dst}" data-count="{"" if n is None else n}">'
                     f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#555" '
                     f'marker-end="url(#arrow)"/>{label}</g>')

    cx = width / 2
    box("screened", flow.get("screened"), cx - 130, row1, 260, 48,
        [w("flow.screened", n=flow.get("screened")), w("flow.screened.note")])
    col_w = (width - 40) / 3
    xs = [10 + i * (col_w + 10) for i in range(3)]
    box(Status.ELIGIBLE, flow.get(Status.ELIGIBLE), xs[0], row2, col_w, 60, [w("flow.eligible", n=flow.get(Status.ELIGIBLE)),
                                                                  w("flow.eligible.note")])
    box(Status.CANDIDATE, flow.get(Status.CANDIDATE), xs[1], row2, col_w, 60, [w("flow.candidate", n=flow.get(Status.CANDIDATE)),
                                                                    w("flow.candidate.note")])
    lines = [w("flow.ineligible", n=flow.get(Status.INELIGIBLE)), w("flow.ineligible.note")]
    lines += [w("flow.reason", criterion=r["criterion"] or w("flow.reason.none"), n=r["patients"]) for r in reasons]
    box(Status.INELIGIBLE, flow.get(Status.INELIGIBLE), xs[2], row2, col_w, tall, lines)
    for key, x0 in zip((Status.ELIGIBLE, Status.CANDIDATE, Status.INELIGIBLE), xs):
        arrow("screened", key, flow.get(key) if isinstance(flow.get(key), int) else None, cx, row1 + 48,
              x0 + col_w / 2, row2 - 2)
    enrolled_w = 220
    box("enrolled", flow.get("enrolled"), cx - enrolled_w / 2, row3, enrolled_w, 48,
        [w("flow.enrolled", n=flow.get("enrolled")), w("flow.enrolled.note")])
    not_enrolled = int(flow.get("eligible_not_enrolled") or 0)
    side_w = (width - enrolled_w) / 2 - 30
    box("eligible_not_enrolled", not_enrolled, 10, row3, side_w, 48, [w("flow.not_enrolled", n=not_enrolled)])
    arrow(Status.ELIGIBLE, "eligible_not_enrolled", not_enrolled, xs[0] + col_w * 0.25, row2 + 60, 10 + side_w / 2, row3 - 2)
    for i, key in enumerate((Status.ELIGIBLE, Status.CANDIDATE, Status.INELIGIBLE)):
        n = int(came.get(key, 0) or 0)
        if n:
            bottom = row2 + (tall if key == Status.INELIGIBLE else 60)
            arrow(key, "enrolled", n, xs[i] + col_w * (0.7 if i == 0 else 0.5 if i == 1 else 0.3), bottom,
                  cx - 60 + 60 * i, row3 - 2)
    outside = int(came.get("not_in_screening_run", 0) or 0)
    if outside:
        x0 = width - 10 - side_w
        box("not_in_screening_run", outside, x0, row3, side_w, 48, [w("flow.not_screened", n=outside)])
        arrow("not_in_screening_run", "enrolled", outside, x0, row3 + 24, cx + enrolled_w / 2 + 2, row3 + 24)
    parts.append("</svg>")
    return "".join(parts)


def accrual_svg(rows: Sequence[Mapping[str, Any]], target: int | None, width: int = 700, height: int = 260,
                lang: str = "en") -> str:
    """Cumulative enrolment by month with the target as a dashed line."""
    w = _words(lang)
    left, right, top, bottom = 56, 16, 16, 56
    pw, ph = width - left - right, height - top - bottom
    y_max = max([target or 0] + [int(r["cumulative"]) for r in rows] + [1])
    n = max(1, len(rows))

    def x(i: float) -> float:
        return left + pw * (i + 0.5) / n

    def y(v: float) -> float:
        return top + ph * (1 - v / y_max)

    parts = [f'<svg role="img" class="accrual" aria-label="{escape(w("accrual.label"))}" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>']
    step = max(1, len(rows) // 12)
    for i, r in enumerate(rows):
        bw = max(2.0, pw / n * 0.6)
        parts.append(f'<rect x="{x(i) - bw / 2:.1f}" y="{y(r["cumulative"]):.1f}" width="{bw:.1f}" '
                     f'height="{top + ph - y(r["cumulative"]):.1f}" fill="#4a7ebb"/>')
        if i % step == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{top + ph + 16}" text-anchor="middle">{escape(str(r["month"]))}</text>')
    for v in sorted({0, y_max // 2, y_max}):
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    if target:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(target):.1f}" y2="{y(target):.1f}" stroke="#b33" '
                     f'stroke-dasharray="5 3"/><text x="{left + pw - 4}" y="{y(target) - 4:.1f}" text-anchor="end" '
                     f'fill="#b33">{escape(w("accrual.target", n=target))}</text>')
    parts.append(f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
                 f'{escape(w("accrual.axis.y"))}</text>')
    parts.append("</svg>")
    return "".join(parts)
