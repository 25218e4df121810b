"""`html`: the coordinator's worklist, one self-contained page (no CDN, no fetch; opens offline, prints).

One row per patient: display id (the MRN, or the identifier `--id-system` names), name only when the
run asked for names, status, the criteria not met, the unknowns each with what would settle it, and
notes; sortable by column and filterable by status, by criterion (failing / unknown) and by text. A
row opens to all criteria with result, reason and evidence. The header carries the as-of and D1
dates, the criteria version and digest, the inputs and the counts per status.

Every string from the input is HTML-escaped (attributes too); the page's only script is inline and
allowed by its hash in a Content-Security-Policy that forbids everything else, so markup smuggled
into a record can neither run nor load anything.
"""
from __future__ import annotations

import base64
import hashlib
import html
import re
from collections import Counter
from collections.abc import Iterable
from typing import IO

from fhir3t.criteria.model import STATUSES, ScreeningResult
from fhir3t.enrolment import Status
from fhir3t.formats import Format, RunInfo
from fhir3t.formats.summary import PATIENTS, StaleTally, actions, effect, effect_word, result_word, stale_on, status_word
from fhir3t.logic import UNKNOWN
from fhir3t.messages import Plural, table
from fhir3t.messages.render import template
from fhir3t.version import __version__

W = table("worklist", {
    "help": "the coordinator's worklist: one self-contained HTML page (sort, filter, details; prints)",
    "title": "Screening worklist: {study}, as of {as_of}",
    "heading": "Screening worklist",
    "screening": "screening",
    "as-of": "As of",
    "d1": "D1",
    "criteria": "Criteria",
    "inputs": "Inputs",
    "written": "Written",
    "written-by": "{time} by fhir3t {version}",
    "written-by-run": "{time} by fhir3t {version}, run {run}",
    "per-status": "Patients per status",
    "count-head": "{patients}:",
    "filters": "Filters",
    "f.status": "Status",
    "f.all": "all",
    "f.criterion": "Criterion",
    "f.any": "any",
    "f.is": "is",
    "f.failing-or-unknown": "failing or unknown",
    "f.failing": "failing",
    "f.unknown": "unknown",
    "f.find": "Find",
    "f.placeholder": "display id",
    "f.placeholder-names": "display id or name",
    "open-all": "Open / close all shown",
    "col.patient": "Patient (MRN)",
    "col.patient-system": "Patient ({system})",
    "col.name": "Name",
    "col.status": "Status",
    "col.not-met": "Not met",
    "col.unknown": "Unknown: to resolve",
    "col.notes": "Notes",
    "col.details": "Details",
    "all-criteria": "All criteria",
    "hide": "Hide",
    "stale": "(latest result {day}: older than the window)",
    "todo": "{criterion}{stale}: {actions}",
    "review": "(review)",
    "review-title": "only the study team can decide this",
    "d.criterion": "Criterion",
    "d.kind": "Kind",
    "d.result": "Result",
    "d.reason": "Reason",
    "d.evidence": "Evidence",
    "kind.inclusion": "inclusion",
    "kind.exclusion": "exclusion",
    "result-effect": "{result} · {effect}",
    "empty": "No patient matches these filters.",
    "footer": "Status: ineligible if any inclusion is not met or any exclusion is met; eligible if every inclusion is "
              "met and every exclusion not met; otherwise candidate: the unknowns say what would settle them. Data "
              "fhir3t cannot read never makes a patient eligible: it leaves the criterion unknown. Criteria marked "
              "(review) are decided by the study team (screening checklist).",
    "js.status": "status {status}",
    "js.criterion-any": "{criterion} failing or unknown",
    "js.criterion-failing": "{criterion} failing",
    "js.criterion-unknown": "{criterion} unknown",
    "js.matching": "matching “{text}”",
    "js.printed": "Printed: {shown}",
    "js.printed-filtered": "Printed: {shown} ({filters})",
    "js.list": "{a}, {b}",
})
SHOWN = Plural("worklist.js.shown", "{n} of {total} patient shown", "{n} of {total} patients shown")
PRINTED_COUNT = Plural("worklist.js.count", "{n} of {total} patient", "{n} of {total} patients")

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
RANK: dict[str, int] = {Status.ELIGIBLE: 0, Status.CANDIDATE: 1, Status.INELIGIBLE: 2}


def e(text: object) -> str:
    """Input text as HTML text or attribute value: escaped, control characters dropped."""
    return html.escape(_CONTROL.sub("", str(text)), quote=True)


CSS = """
:root { --ok: #1b7a3d; --bad: #b3261e; --maybe: #8a5a00; --line: #d0d4d9; --muted: #5b6470; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC",
       "Microsoft YaHei", "PingFang SC", sans-serif; color: #1d232a; margin: 0 1.5rem 2rem; }
h1 { font-size: 1.35rem; margin: 1rem 0 .3rem; }
h1 .study { font-weight: normal; color: var(--muted); }
dl.meta { display: flex; flex-wrap: wrap; gap: .2rem 1.6rem; margin: .3rem 0 .6rem; }
dl.meta div { display: flex; gap: .4rem; }
dt { color: var(--muted); } dd { margin: 0; }
code { font-size: .92em; }
.counts { display: flex; gap: .5rem; flex-wrap: wrap; margin: .4rem 0; }
.counts button { font: inherit; border: 1px solid var(--line); background: #fff; border-radius: 1rem;
                 padding: .15rem .8rem; cursor: pointer; }
.counts button[aria-pressed=true] { background: #1d232a; color: #fff; }
.counts button[aria-pressed=true] span { color: #fff; }
.hint { background: #fff6e0; border-left: 4px solid var(--maybe); padding: .4rem .7rem; margin: .5rem 0; }
.controls { display: flex; flex-wrap: wrap; gap: .6rem 1.2rem; align-items: center; margin: .6rem 0;
            padding: .5rem 0; border-top: 1px solid var(--line); border-bottom: 1px solid var(--line); }
.controls label { display: flex; gap: .35rem; align-items: center; }
select, input, .controls button { font: inherit; }
#shown { color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
thead th { background: #f3f5f7; position: sticky; top: 0; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; }
th[aria-sort=ascending] button::after { content: " \\25B2"; }
th[aria-sort=descending] button::after { content: " \\25BC"; }
.did { font-weight: 600; white-space: nowrap; } .ref { color: var(--muted); word-break: break-all; }
.status { font-weight: 600; white-space: nowrap; }
.s-eligible { color: var(--ok); } .s-ineligible { color: var(--bad); } .s-candidate { color: var(--maybe); }
ul.todo, ul.fail, ul.ev { margin: 0; padding-left: 1rem; }
.cid { font-weight: 600; white-space: nowrap; }
.stale { font-size: .85em; color: var(--maybe); }
tr.detail > td { background: #fafbfc; padding: .3rem .5rem .8rem 1.5rem; }
table.criteria th, table.criteria td { font-size: .93em; padding: .25rem .4rem; }
.e-passes td.result { color: var(--ok); } .e-fails td.result { color: var(--bad); } .e-unknown td.result { color: var(--maybe); }
.e-fails td { background: #fdf1f0; }
td.result { white-space: nowrap; font-weight: 600; }
.toggle { font: inherit; white-space: nowrap; }
#f-criterion { max-width: 24rem; }
#empty { color: var(--muted); padding: 1rem 0; }
.print-only { display: none; }
footer { color: var(--muted); margin-top: 1rem; font-size: .9em; }
@page { size: A4 landscape; margin: 10mm; }
@media print {
  body { margin: 0; font-size: 10.5px; }
  .controls, .toggle, th button::after { display: none !important; }
  .counts button, .counts button[aria-pressed=true] { border: 0; padding: 0; background: none; color: inherit; }
  .counts button[aria-pressed=true] span { color: inherit; }
  .print-only { display: block !important; }
  thead { display: table-header-group; } thead th { position: static; }
  tr { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var body = document.querySelector("#worklist > tbody");
  var rows = Array.prototype.slice.call(body.querySelectorAll("tr.row"));
  var fStatus = document.getElementById("f-status");
  var fCrit = document.getElementById("f-criterion");
  var fMode = document.getElementById("f-mode");
  var fText = document.getElementById("f-text");
  var shown = document.getElementById("shown");
  var empty = document.getElementById("empty");
  var printed = document.getElementById("printed");
  var counts = Array.prototype.slice.call(document.querySelectorAll(".counts button"));
  var said = document.getElementById("words").dataset;  // the page's words in its language
  function fill(t, values) { return t.replace(/\{(\w+)\}/g, function (m, k) { return k in values ? values[k] : m; }); }
  function detail(row) { return document.getElementById(row.getAttribute("data-detail")); }
  function words(row, name) { var v = row.getAttribute(name) || ""; return v ? v.split(" ") : []; }
  function apply() {
    var status = fStatus.value, crit = fCrit.value, mode = fMode.value, text = fText.value.trim().toLowerCase();
    var n = 0;
    rows.forEach(function (row) {
      var ok = !status || row.getAttribute("data-status") === status;
      if (ok && crit) {
        var failing = words(row, "data-failing").indexOf(crit) >= 0;
        var unknown = words(row, "data-unknown").indexOf(crit) >= 0;
        ok = mode === "failing" ? failing : mode === "unknown" ? unknown : (failing || unknown);
      }
      if (ok && text) { ok = (row.getAttribute("data-text") || "").indexOf(text) >= 0; }
      row.hidden = !ok;
      var d = detail(row);
      d.hidden = !ok || row.querySelector(".toggle").getAttribute("aria-expanded") !== "true";
      if (ok) { n += 1; }
    });
    var total = {n: n, total: rows.length};
    shown.textContent = fill(rows.length === 1 ? said.shownOne : said.shownOther, total);
    var parts = [];
    if (status) { parts.push(fill(said.status, {status: fStatus.options[fStatus.selectedIndex].text})); }
    if (crit) { parts.push(fill(mode === "any" ? said.critAny : mode === "failing" ? said.critFailing : said.critUnknown,
                                {criterion: crit})); }
    if (text) { parts.push(fill(said.matching, {text: fText.value.trim()})); }
    var count = fill(rows.length === 1 ? said.countOne : said.countOther, total);
    var filters = parts.reduce(function (a, b) { return a === null ? b : fill(said.list, {a: a, b: b}); }, null);
    printed.textContent = filters === null ? fill(said.printed, {shown: count})
                                            : fill(said.printedFiltered, {shown: count, filters: filters});
    empty.hidden = n !== 0;
    counts.forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-status") === status)); });
  }
  function key(row, by) {
    if (by === "display") { return row.getAttribute("data-display"); }
    if (by === "status") { return Number(row.getAttribute("data-rank")); }
    return Number(row.getAttribute("data-n" + by));
  }
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
  function sortBy(th) {
    var by = th.getAttribute("data-sort");
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    document.querySelectorAll("#worklist > thead th[data-sort]").forEach(function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    rows.sort(function (a, b) {
      var x = key(a, by), y = key(b, by);
      var c = typeof x === "number" ? x - y : collator.compare(x, y);
      if (c === 0) { c = collator.compare(a.getAttribute("data-display"), b.getAttribute("data-display")); }
      return c * dir;
    });
    rows.forEach(function (row) { body.appendChild(row); body.appendChild(detail(row)); });
  }
  document.querySelectorAll("#worklist > thead th[data-sort] button").forEach(function (b) {
    b.addEventListener("click", function () { sortBy(b.parentNode); });
  });
  rows.forEach(function (row) {
    var t = row.querySelector(".toggle");
    t.addEventListener("click", function () {
      var open = t.getAttribute("aria-expanded") !== "true";
      t.setAttribute("aria-expanded", String(open));
      t.textContent = open ? said.hide : said.all;
      detail(row).hidden = !open || row.hidden;
    });
  });
  counts.forEach(function (b) {
    b.addEventListener("click", function () {
      var s = b.getAttribute("data-status");
      fStatus.value = fStatus.value === s ? "" : s;
      apply();
    });
  });
  document.getElementById("open-all").addEventListener("click", function () {
    var open = rows.some(function (row) { return !row.hidden && row.querySelector(".toggle").getAttribute("aria-expanded") !== "true"; });
    rows.forEach(function (row) {
      if (row.hidden) { return; }
      var t = row.querySelector(".toggle");
      t.setAttribute("aria-expanded", String(open));
      t.textContent = open ? said.hide : said.all;
    });
    apply();
  });
  [fStatus, fCrit, fMode].forEach(function (el) { el.addEventListener("change", apply); });
  fText.addEventListener("input", apply);
  apply();
})();
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'; img-src data:; "
       "base-uri 'none'; form-action 'none'")


def _todo(r: ScreeningResult, info: RunInfo) -> str:
    items = []
    sep = "；" if info.lang != "en" else "; "
    for c in r.criteria:
        if c.result != UNKNOWN:
            continue
        todo = actions(c, info.lang) or [c.reason_in(info.lang)]
        stale = stale_on(c)
        tag = f' <span class="stale">{e(info.say(W["stale"](day=stale)))}</span>' if stale else ""
        title = info.title_of(c.id)
        # the id, the stale tag and the actions each escaped on their own, then placed by the language's template
        line = html.escape(template(W["todo"].id, info.lang)).format(
            criterion=f'<span class="cid" title="{e(title)}">{e(c.id)}</span>', stale=tag,
            actions=sep.join(e(t) for t in todo))
        items.append(f"<li>{line}</li>")
    return f'<ul class="todo">{"".join(items)}</ul>' if items else "&ndash;"


def _failing(r: ScreeningResult, info: RunInfo) -> str:
    ids = r.failing
    if not ids:
        return "&ndash;"
    return '<ul class="fail">' + "".join(f'<li><span class="cid">{e(i)}</span> {e(info.title_of(i))}</li>' for i in ids) + "</ul>"


def _detail(r: ScreeningResult, info: RunInfo) -> str:
    rows = []
    say = info.say
    for c in r.criteria:
        ev = ('<ul class="ev">' + "".join(f"<li><code>{e(x)}</code></li>" for x in c.evidence) + "</ul>") if c.evidence else "&ndash;"
        review = (f' <span title="{e(say(W["review-title"]()))}">{e(say(W["review"]()))}</span>'
                  if c.requires_review else "")
        eff = effect(c)
        kind = say(W[f"kind.{c.kind}"]()) if f"kind.{c.kind}" in W else c.kind
        result = html.escape(template(W["result-effect"].id, info.lang)).format(
            result=e(result_word(c.result, info.lang)), effect=f"<small>{e(effect_word(eff, info.lang))}</small>")
        rows.append(f'<tr class="e-{eff}"><td><span class="cid">{e(c.id)}</span> {e(info.title_of(c.id))}{review}</td>'
                    f'<td>{e(kind)}</td><td class="result">{result}</td>'
                    f"<td>{e(c.reason_in(info.lang))}</td><td>{ev}</td></tr>")
    heads = "".join(f'<th scope="col">{e(say(W[k]()))}</th>' for k in ("d.criterion", "d.kind", "d.result", "d.reason",
                                                                         "d.evidence"))
    return f'<table class="criteria"><thead><tr>{heads}</tr></thead><tbody>' + "".join(rows) + "</tbody></table>"


def _words(info: RunInfo) -> str:
    """The script's words in the page's language: data attributes of a hidden element (the script fills {n})."""
    lang = info.lang
    w = {"shown-one": template(SHOWN.id, lang, 1), "shown-other": template(SHOWN.id, lang, 2),
         "count-one": template(PRINTED_COUNT.id, lang, 1), "count-other": template(PRINTED_COUNT.id, lang, 2),
         "status": template(W["js.status"].id, lang), "crit-any": template(W["js.criterion-any"].id, lang),
         "crit-failing": template(W["js.criterion-failing"].id, lang),
         "crit-unknown": template(W["js.criterion-unknown"].id, lang), "matching": template(W["js.matching"].id, lang),
         "printed": template(W["js.printed"].id, lang), "printed-filtered": template(W["js.printed-filtered"].id, lang),
         "list": template(W["js.list"].id, lang), "hide": info.say(W["hide"]()), "all": info.say(W["all-criteria"]())}
    return '<div id="words" hidden ' + " ".join(f'data-{k}="{e(v)}"' for k, v in w.items()) + "></div>"


def render(results: list[ScreeningResult], info: RunInfo) -> str:
    """The whole page as one string, in the run's language."""
    say = info.say
    names = info.names or any(r.name is not None for r in results)
    ordered = sorted(results, key=lambda r: (RANK.get(r.status, 9), r.display_id(info.id_system)))
    counts: Counter[str] = Counter(r.status for r in results)
    stale_msg = StaleTally().add_all(results).hint(info.as_of)
    stale = say(stale_msg) if stale_msg is not None else None
    ncols = 6 + (1 if names else 0)
    all_criteria = say(W["all-criteria"]())
    body = []
    for n, r in enumerate(ordered, 1):
        did = r.display_id(info.id_system)
        ref = f'<br><small class="ref">{e(r.patient)}</small>' if did != r.patient.removeprefix("Patient/") else ""
        text = " ".join(x for x in (did, r.patient, r.name or "") if x).lower()
        name_td = f"<td>{e(r.name or '')}</td>" if names else ""
        notes = "<br>".join(e(x) for x in r.notes_in(info.lang)) or "&ndash;"
        body.append(
            f'<tr class="row" data-detail="d-{n}" data-status="{e(r.status)}" data-rank="{RANK.get(r.status, 9)}" '
            f'data-display="{e(did)}" data-failing="{e(" ".join(r.failing))}" data-unknown="{e(" ".join(r.unknown))}" '
            f'data-nfailing="{len(r.failing)}" data-nunknown="{len(r.unknown)}" data-text="{e(text)}">'
            f'<td><span class="did">{e(did)}</span>{ref}</td>{name_td}'
            f'<td><span class="status s-{e(r.status)}">{e(status_word(r.status, info.lang))}</span></td>'
            f"<td>{_failing(r, info)}</td><td>{_todo(r, info)}</td><td>{notes}</td>"
            f'<td><button type="button" class="toggle" aria-expanded="false" aria-controls="d-{n}">{e(all_criteria)}'
            f'</button></td></tr>'
            f'<tr class="detail" id="d-{n}" hidden><td colspan="{ncols}">{_detail(r, info)}</td></tr>')
    crit_options = "".join(f'<option value="{e(i)}">{e(i)} {e(t.get(info.lang))}</option>'
                           for i, _k, t in info.criteria_titles)
    if not crit_options and results:
        crit_options = "".join(f'<option value="{e(c.id)}">{e(c.id)}</option>' for c in results[0].criteria)
    status_options = "".join(f'<option value="{s}">{e(status_word(s, info.lang))}</option>' for s in STATUSES)
    count_buttons = "".join(f'<button type="button" data-status="{s}" aria-pressed="false">'
                            f'<span class="s-{s}">{e(status_word(s, info.lang))}</span> {counts.get(s, 0)}</button>'
                            for s in STATUSES)
    note = f" <small>({e(info.as_of_note)})</small>" if info.as_of_note else ""
    digest = info.digest or ""
    written = (say(W["written-by-run"](time=info.written_at, version=__version__, run=info.run_id)) if info.run_id
               else say(W["written-by"](time=info.written_at, version=__version__)))
    id_label = say(W["col.patient-system"](system=info.id_system)) if info.id_system else say(W["col.patient"]())
    study = info.study or say(W["screening"]())
    placeholder = say(W["f.placeholder-names"]()) if names else say(W["f.placeholder"]())
    lang_attr = e(info.lang)
    count_head = say(W["count-head"](patients=PATIENTS(len(results))))
    head = f"""<!doctype html>
<html lang="{lang_attr}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="fhir3t {e(__version__)}">
<title>{e(say(W["title"](study=study, as_of=str(info.as_of))))}</title>
<style>{CSS}</style>
</head>
<body>
{_words(info)}
<header>
<h1>{e(say(W["heading"]()))} <span class="study">{e(info.study)}</span></h1>
<dl class="meta">
<div><dt>{e(say(W["as-of"]()))}</dt><dd id="as-of">{e(info.as_of)}{note}</dd></div>
<div><dt>{e(say(W["d1"]()))}</dt><dd id="d1">{e(info.d1)}</dd></div>
<div><dt>{e(say(W["criteria"]()))}</dt><dd>{e(info.criteria)} <code title="sha256 {e(digest)}">sha256 {e(digest[:12])}</code></dd></div>
<div><dt>{e(say(W["inputs"]()))}</dt><dd>{e(info.inputs)}</dd></div>
<div><dt>{e(say(W["written"]()))}</dt><dd>{e(written)}</dd></div>
</dl>
<div class="counts" aria-label="{e(say(W["per-status"]()))}"><strong>{e(count_head)}</strong> {count_buttons}</div>
{f'<p class="hint" role="note">{e(stale)}</p>' if stale else ''}
<p class="print-only" id="printed"></p>
</header>
<section class="controls" aria-label="{e(say(W["filters"]()))}">
<label>{e(say(W["f.status"]()))} <select id="f-status"><option value="">{e(say(W["f.all"]()))}</option>{status_options}</select></label>
<label>{e(say(W["f.criterion"]()))} <select id="f-criterion"><option value="">{e(say(W["f.any"]()))}</option>{crit_options}</select></label>
<label>{e(say(W["f.is"]()))} <select id="f-mode"><option value="any">{e(say(W["f.failing-or-unknown"]()))}</option>
<option value="failing">{e(say(W["f.failing"]()))}</option>
<option value="unknown">{e(say(W["f.unknown"]()))}</option></select></label>
<label>{e(say(W["f.find"]()))} <input id="f-text" type="search" placeholder="{e(placeholder)}" autocomplete="off"></label>
<button type="button" id="open-all">{e(say(W["open-all"]()))}</button>
<span id="shown" aria-live="polite"></span>
</section>
<table id="worklist">
<thead><tr>
<th scope="col" data-sort="display" aria-sort="none"><button type="button">{e(id_label)}</button></th>
{f'<th scope="col">{e(say(W["col.name"]()))}</th>' if names else ''}
<th scope="col" data-sort="status" aria-sort="none"><button type="button">{e(say(W["col.status"]()))}</button></th>
<th scope="col" data-sort="failing" aria-sort="none"><button type="button">{e(say(W["col.not-met"]()))}</button></th>
<th scope="col" data-sort="unknown" aria-sort="none"><button type="button">{e(say(W["col.unknown"]()))}</button></th>
<th scope="col">{e(say(W["col.notes"]()))}</th>
<th scope="col"><span hidden>{e(say(W["col.details"]()))}</span></th>
</tr></thead>
<tbody>
"""
    tail = f"""</tbody>
</table>
<p id="empty" hidden>{e(say(W["empty"]()))}</p>
<footer>
<p>{e(say(W["footer"]()))}</p>
</footer>
<script>{SCRIPT}</script>
</body>
</html>
"""
    return head + "\n".join(body) + "\n" + tail


class WorklistFormat(Format):
    name = "html"
    help = W["help"]
    streaming = False

    def write(self, results: Iterable[ScreeningResult], out: IO[str], info: RunInfo) -> int:
        rows = list(results)
        out.write(render(rows, info))
        return len(rows)
