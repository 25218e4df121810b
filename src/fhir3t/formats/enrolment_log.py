"""The screening and enrolment log (fhir3t log) as a terminal table, CSV, JSON or one self-contained HTML page.

JSON is the contract (stable English keys: `rows`, `flow`, `generated_at`, `study`, `source`); the table and the
page put every word through a message; CSV has the JSON's keys as its header, UTF-8 with a BOM for Excel, and a
cell that starts like a formula is quoted (formats.csvout.cell). Every string from the records is escaped (rich
markup in the table, HTML on the page: the page runs no script at all).
"""
from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from typing import IO, Any

import orjson
from rich.console import Console
from rich.table import Table

from fhir3t.enrolment.log import STEPS, Row, reason_msg
from fhir3t.enrolment.reasons import label
from fhir3t.formats.csvout import cell
from fhir3t.formats.table import safe
from fhir3t.messages import Message, render

FORMATS = ("table", "csv", "json", "html")
COLUMNS = ("patient", "display_id", "first_screened", "last_screened", "screenings", "screening_status", "not_met",
           "unknown", "changed", "status", "contact_attempts", "reached", "last_contact", "consented", "consent_form",
           "enrolled", "subject_number", "d1", "not_enrolled_reason", "left", "left_reason", "stage", "stop_reason")

TITLE = Message("log.title", "Screening and enrolment log: {study}")
META = Message("log.meta", "{n} patients; from {source}; written {at}{since}")
SINCE = Message("log.since", "; activity since {day}")
COL = {
    "patient": Message("log.col.patient", "patient"),
    "screened": Message("log.col.screened", "screened (first - latest)"),
    "status": Message("log.col.status", "status"),
    "not_met": Message("log.col.not-met", "not met"),
    "contacted": Message("log.col.contacted", "contacted"),
    "consented": Message("log.col.consented", "consented"),
    "enrolled": Message("log.col.enrolled", "enrolled (number, D1)"),
    "not_enrolled": Message("log.col.not-enrolled", "not enrolled / left"),
}
CONTACTS = Message("log.contacts", "{n} attempt(s), last {day}{reached}")
REACHED = Message("log.reached", ", reached")
FLOW_TITLE = Message("log.flow.title", "Flow")
FLOW_STEP = Message("log.flow.step", "{step}: {n}")
FLOW_STOPPED = Message("log.flow.stopped", "  stopped before {step}: {n}")
FLOW_REASON = Message("log.flow.reason", "    {reason}: {n}")
FLOW_WITHDRAWN = Message("log.flow.withdrawn", "  withdrawn after enrolment: {n}")
STEP_WORDS = dict(zip(STEPS, (Message("log.step.screened", "screened"), Message("log.step.eligible", "found eligible"),
                              Message("log.step.contacted", "contacted"), Message("log.step.consented", "consented"),
                              Message("log.step.enrolled", "enrolled"))))
def to_json(rows: Sequence[Row], flow: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "rows": [r.to_dict() for r in rows], "flow": flow}


def flow_lines(flow: dict[str, Any], lang: str = "en") -> list[str]:
    """The flow as lines for a person (the table's and the CLI's summary)."""
    out = [render(FLOW_TITLE(), lang)]
    steps = {s["from"]: s for s in flow.get("steps", [])}
    for step in STEPS:
        out.append(render(FLOW_STEP(step=STEP_WORDS[step](), n=flow.get(step, 0)), lang))
        s = steps.get(step)
        if s and s["stopped"]:
            out.append(render(FLOW_STOPPED(step=STEP_WORDS[s["to"]](), n=s["stopped"]), lang))
            out += [render(FLOW_REASON(reason=reason_msg(x["reason"]), n=x["patients"]), lang) for x in s["reasons"]]
    if flow.get("withdrawn_after_enrolment"):
        out.append(render(FLOW_WITHDRAWN(n=flow["withdrawn_after_enrolment"]), lang))
        out += [render(FLOW_REASON(reason=label(x["reason"]), n=x["patients"]), lang) for x in flow["withdrawal_reasons"]]
    return out


def _cells(r: Row, lang: str) -> list[str]:
    screened = "-" if not r.screenings else str(r.first_screened or "-") if r.first_screened == r.last_screened else \
        f"{r.first_screened or '-'} - {r.last_screened or '-'}"
    status = r.status or r.screening_status or "-"
    contacted = render(CONTACTS(n=r.contact_attempts, day=r.last_contact.isoformat() if r.last_contact else "-",
                                reached=REACHED() if r.reached else ""), lang) if r.contact_attempts else "-"
    consented = f"{r.consented} ({r.consent_form})" if r.consented else "-"
    enrolled = f"{r.subject_number or '-'}, D1 {r.d1 or '-'}" if r.enrolled else "-"
    why = r.not_enrolled_reason or r.left_reason
    stopped = render(label(why), lang) + (f" ({r.left})" if r.left else "") if why else "-"
    return [r.display_id, screened, status, ", ".join(r.not_met) or "-", contacted, consented, enrolled, stopped]


HEADERS = ("patient", "screened", "status", "not_met", "contacted", "consented", "enrolled", "not_enrolled")


def write_table(rows: Sequence[Row], flow: dict[str, Any], meta: dict[str, Any], out: IO[str], lang: str = "en") -> None:
    console = Console(file=out, width=None if out.isatty() else 160, no_color=not out.isatty(), highlight=False)
    t = Table(title=safe(render(TITLE(study=meta.get("study", "")), lang)), title_justify="left")
    for h in HEADERS:
        t.add_column(render(COL[h](), lang))
    for r in rows:
        t.add_row(*(safe(c) for c in _cells(r, lang)))
    console.print(t)
    for line in flow_lines(flow, lang):
        console.print(safe(line))


def write_csv(rows: Sequence[Row], out: IO[str]) -> None:
    if (getattr(out, "encoding", "") or "").lower().replace("_", "-") != "utf-8-sig":
        out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for r in rows:
        d = r.to_dict()
        w.writerow([cell(";".join(v) if isinstance(v, list) else "" if v is None else str(v).lower()
                         if isinstance(v, bool) else str(v)) for v in (d[c] for c in COLUMNS)])


CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
CSS = """body{font:14px/1.45 system-ui,"Noto Sans","Noto Sans CJK SC",sans-serif;margin:1rem 1.5rem;color:#1d232a}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;
border-bottom:1px solid #d0d4d9}thead th{background:#f3f5f7}.flow{white-space:pre-wrap;background:#f7f8fa;padding:.6rem}
@page{size:A4 landscape;margin:10mm}"""


def write_html(rows: Sequence[Row], flow: dict[str, Any], meta: dict[str, Any], out: IO[str], lang: str = "en") -> None:
    e = html.escape
    since = SINCE(day=meta["since"]) if meta.get("since") else ""
    head = "".join(f"<th scope=\"col\">{e(render(COL[h](), lang))}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in _cells(r, lang)) + "</tr>" for r in rows)
    title = render(TITLE(study=meta.get("study", "")), lang)
    out.write(f"""<!doctype html>
<html lang="{e(lang)}"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{e(title)}</title><style>{CSS}</style></head>
<body><h1>{e(title)}</h1>
<p>{e(render(META(n=len(rows), source=meta.get("source", ""), at=meta.get("generated_at", ""), since=since), lang))}</p>
<pre class="flow" id="flow">{e(chr(10).join(flow_lines(flow, lang)))}</pre>
<table id="log"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
</body></html>
""")


def write(fmt: str, rows: Sequence[Row], flow: dict[str, Any], meta: dict[str, Any], out: IO[str], lang: str = "en") -> None:
    if fmt == "json":
        out.write(orjson.dumps(to_json(rows, flow, meta), option=orjson.OPT_INDENT_2).decode() + "\n")
    elif fmt == "csv":
        write_csv(rows, out)
    elif fmt == "html":
        write_html(rows, flow, meta, out, lang)
    else:
        write_table(rows, flow, meta, out, lang)


__all__ = ["COLUMNS", "FORMATS", "flow_lines", "reason_msg", "to_json", "write"]
