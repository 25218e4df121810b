"""The full explanation page behind a card: every criterion with its result, its reason and what would settle
it, in the site's language (the card itself stays short; this page is its `links` entry).

Served by the service at `/fhir3t/explain/{token}` from the page kept when the card was shown
(store.Store.keep_explanation): the token is random, carried only by the card's link, never logged, and the
page expires. One self-contained HTML page: every string is escaped, no script, and a
Content-Security-Policy that allows nothing but its own style (by hash), so markup smuggled into a record
can neither run nor load anything. Pure: no I/O.
"""
from __future__ import annotations

import base64
import hashlib
import html
import re

from fhir3t.criteria.model import ScreeningResult
from fhir3t.formats.summary import actions, effect
from fhir3t.messages import Message, render
from fhir3t.pipeline import Definition

PATH = "/fhir3t/explain"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

TITLE = Message("explain.title", "{study}: screening explanation")
SCREENED = Message("explain.screened", "Screened as of {day} (D1 {d1}) with the criteria {criteria}, from the record as "
                                       "the EHR held it.")
CRITERION = Message("explain.criterion", "Criterion")
RESULT = Message("explain.result", "Result")
REASON = Message("explain.reason", "Why")
SETTLE = Message("explain.settle", "What would settle it")
INCLUSION = Message("explain.inclusion", "inclusion")
EXCLUSION = Message("explain.exclusion", "exclusion")
EFFECTS = {"passes": Message("explain.passes", "passes"), "fails": Message("explain.fails", "fails"),
           "unknown": Message("explain.unknown", "unknown")}
REVIEWED = Message("explain.reviewed", "a study physician confirms it at screening")
REGISTRY = Message("explain.registry", "The study in its registry")
DECIDES = Message("explain.decides", "The study team decides eligibility; fhir3t only screens the record.")
EXPIRED = Message("explain.expired", "This explanation is no longer available (explanations are kept for a limited time).")

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC",
       "Microsoft YaHei", "PingFang SC", sans-serif; color: #1d232a; margin: 1rem 1.5rem 2rem; max-width: 70rem; }
h1 { font-size: 1.25rem; margin: .5rem 0; }
p.meta { color: #5b6470; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid #d0d4d9; }
thead th { background: #f3f5f7; }
td.result { white-space: nowrap; font-weight: 600; }
.e-passes td.result { color: #1b7a3d; } .e-fails td.result { color: #b3261e; } .e-unknown td.result { color: #8a5a00; }
.e-fails td { background: #fdf1f0; }
ul { margin: 0; padding-left: 1rem; }
.kind { color: #5b6470; font-size: .9em; }
footer { color: #5b6470; margin-top: 1rem; }
"""
#: the page's Content-Security-Policy: nothing but its own style, by hash
CSP = ("default-src 'none'; style-src 'sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
       + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
#: headers every answer of the page route carries (the URL holds the token: never sent on as a referrer, never cached)
HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff"}


def e(text: object) -> str:
    return html.escape(_CONTROL.sub("", str(text)), quote=True)


def page(result: ScreeningResult, definition: Definition, lang: str, headline: str, registry: str | None = None) -> str:
    """The explanation page of one screening (headline: the card's summary)."""
    study = definition.study
    titles = {c.id: c for c in definition.criteria.criteria}
    rows = []
    for c in result.criteria:
        crit = titles.get(c.id)
        title = crit.title_text.get(lang) if crit is not None else c.id
        eff = effect(c)
        kind = render((INCLUSION if c.kind == "inclusion" else EXCLUSION)(), lang)
        todo = actions(c, lang) if eff == "unknown" else []
        if c.requires_review:
            todo.append(render(REVIEWED(), lang))
        rows.append(
            f'<tr class="e-{e(eff)}"><td><strong>{e(title)}</strong><br><span class="kind">{e(c.id)} · {e(kind)}</span></td>'
            f'<td class="result">{e(render(EFFECTS[eff](), lang))}</td><td>{e(c.reason_in(lang))}</td>'
            f'<td>{"<ul>" + "".join(f"<li>{e(t)}</li>" for t in todo) + "</ul>" if todo else ""}</td></tr>')
    link = f'<p><a href="{e(registry)}" rel="noopener noreferrer">{e(render(REGISTRY(), lang))}</a></p>' if registry else ""
    screened = render(SCREENED(day=result.as_of.isoformat(), d1=result.d1.isoformat(), criteria=definition.label), lang)
    return f"""<!DOCTYPE html>
<html lang="{e(lang)}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{e(render(TITLE(study=study.short_title), lang))}</title>
<style>{CSS}</style></head>
<body>
<h1>{e(headline)}</h1>
<p class="meta">{e(study.title)} ({e(study.value)}). {e(screened)}</p>
{link}
<table><thead><tr><th>{e(render(CRITERION(), lang))}</th><th>{e(render(RESULT(), lang))}</th>
<th>{e(render(REASON(), lang))}</th><th>{e(render(SETTLE(), lang))}</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<footer>{e(render(DECIDES(), lang))}</footer>
</body></html>
"""


def expired(lang: str) -> str:
    """The page for a token that is unknown or expired."""
    return (f'<!DOCTYPE html>\n<html lang="{e(lang)}"><head><meta charset="utf-8"><style>{CSS}</style></head>'
            f"<body><p>{e(render(EXPIRED(), lang))}</p></body></html>\n")


__all__ = ["CSP", "HEADERS", "PATH", "expired", "page"]
