"""The coordinator's page as HTML (pure: data in, one page out): the worklist with the day's new or changed
screenings on top, a patient's timeline, and the steps the state machine allows as forms (only for a signed-in
user). Server-rendered, no script at all (the Content-Security-Policy forbids any); every string from a record
is HTML-escaped; every word is a message rendered in the page's language.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date

from fhir3t.emit.enrolment import Who
from fhir3t.enrolment import Action, Status, allowed_actions
from fhir3t.enrolment.reasons import CONTACT_NOT_DONE, MEDIA, NOT_ENROLLED_REASONS, WITHDRAWAL_REASONS, label
from fhir3t.enrolment.records import PatientRecords
from fhir3t.enrolment.timeline import BY, events
from fhir3t.enrolment.transitions import ALTERNATIVES, TRANSITIONS
from fhir3t.ids import fhir_id
from fhir3t.messages import Message, Msg, render

#: the page's policy: no script, no framing, forms post only here
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
#: the steps the page offers (the CLI's verbs)
PAGE_ACTIONS = (Action.CONTACT, Action.CONSENT, Action.ENROL, Action.DECLINE, Action.WITHDRAW)

TITLE = Message("page.title", "Screening worklist: {study}")
SIGNED_IN = Message("page.signed-in", "Signed in as {who}")
SIGN_OUT = Message("page.sign-out", "Sign out")
SIGN_IN = Message("page.sign-in", "Sign in")
READ_ONLY = Message("page.read-only", "Read only: sign in to record contacts, consents and enrolments.")
SIGN_IN_FIRST = Message("page.sign-in-first", "Sign in to see the worklist.")
SOURCE = Message("page.source", "From {source}; {n} patients")
CHANGED_HEAD = Message("page.changed", "New or changed since the last screening")
NONE_CHANGED = Message("page.none-changed", "Nothing new or changed in the last screening.")
ALL_HEAD = Message("page.all", "All screened patients")
COL_PATIENT = Message("page.col.patient", "Patient")
COL_SCREENING = Message("page.col.screening", "Latest screening")
COL_NOT_MET = Message("page.col.not-met", "Not met / unresolved")
COL_STATUS = Message("page.col.status", "Study status")
COL_NEXT = Message("page.col.next", "Next steps")
COL_CHANGE = Message("page.col.change", "What changed")
NEW_PATIENT = Message("page.new", "new")
BACK = Message("page.back", "Back to the worklist")
TIMELINE = Message("page.timeline", "Timeline")
NOTHING_YET = Message("page.nothing-yet", "Nothing recorded yet.")
STEPS = Message("page.steps", "Record a step")
NO_STEPS = Message("page.no-steps", "The state machine allows no step from {status}.")
NOT_A_SUBJECT = Message("page.not-a-subject", "not a subject of the study yet")
SUBJECT = Message("page.subject", "Subject {number}, D1 {d1}")
FIELD_DATE = Message("page.field.date", "Date")
FIELD_NOTE = Message("page.field.note", "Note")
FIELD_MEDIUM = Message("page.field.medium", "How")
FIELD_REACHED = Message("page.field.reached", "Outcome")
FIELD_REACHED_YES = Message("page.field.reached-yes", "reached")
FIELD_FORM = Message("page.field.form", "Consent form version")
FIELD_D1 = Message("page.field.d1", "D1 (first dose)")
FIELD_STATUS = Message("page.field.status", "Status")
FIELD_OVERRIDE = Message("page.field.override", "Override reason (only to enrol against the latest screening)")
FIELD_REASON = Message("page.field.reason", "Reason")
ACTION_WORDS = {
    Action.CONTACT: Message("page.action.contact", "Record a contact attempt"),
    Action.CONSENT: Message("page.action.consent", "Record consent"),
    Action.ENROL: Message("page.action.enrol", "Enrol"),
    Action.DECLINE: Message("page.action.decline", "Not enrolled"),
    Action.WITHDRAW: Message("page.action.withdraw", "Withdraw"),
}
CHANGE = Message("page.change", "{was} -> {now}")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
color:#1d232a;margin:0 1.5rem 2rem}
header{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;flex-wrap:wrap;border-bottom:1px solid #d0d4d9}
h1{font-size:1.3rem;margin:1rem 0 .4rem} h2{font-size:1.1rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;width:100%} th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;
border-bottom:1px solid #d0d4d9} thead th{background:#f3f5f7}
.flash{padding:.5rem .8rem;margin:.8rem 0;border-left:4px solid #1b7a3d;background:#eef7f1}
.flash.refused{border-color:#b3261e;background:#fdf1f0}
.note{color:#5b6470} .status{font-weight:600;white-space:nowrap}
.s-eligible{color:#1b7a3d} .s-ineligible{color:#b3261e} .s-candidate{color:#8a5a00}
form.step{border:1px solid #d0d4d9;border-radius:4px;padding:.6rem .8rem;margin:.6rem 0;max-width:40rem}
form.step label{display:block;margin:.25rem 0} form.step input[type=text]{width:100%}
button{font:inherit;padding:.2rem .8rem} ol.timeline{padding-left:1.2rem} ol.timeline li{margin:.2rem 0}
.who{color:#5b6470}
"""


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _t(msg: Msg, lang: str) -> str:
    return e(render(msg, lang))


def page(title: str, body: str, lang: str) -> str:
    return (f'<!doctype html>\n<html lang="{e(lang)}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def header(study: str, user: Who | None, csrf: str | None, base: str, lang: str, can_sign_in: bool) -> str:
    title = _t(TITLE(study=study), lang)
    if user is not None:
        out = (f'<span id="user">{_t(SIGNED_IN(who=user.shown), lang)}</span>'
               + (f' <form method="post" action="{base}/logout" style="display:inline">'
                  f'<input type="hidden" name="csrf" value="{e(csrf)}"><button id="sign-out">{_t(SIGN_OUT(), lang)}</button></form>'
                  if csrf else ""))
    elif can_sign_in:
        out = f'<a id="sign-in" href="{base}/login">{_t(SIGN_IN(), lang)}</a>'
    else:
        out = ""
    return f'<header><h1><a href="{base}/">{title}</a></h1><div>{out}</div></header>'


def flash(text: str | None, ok: bool) -> str:
    return f'<p class="flash{"" if ok else " refused"}" role="status" id="flash">{e(text)}</p>' if text else ""


def _status(value: object) -> str:
    return f'<span class="status s-{e(value)}">{e(value)}</span>'


def _next(r: PatientRecords) -> str:
    s = r.subject
    acts = [a for a in allowed_actions(s.status if s else None, exists=s is not None) if a in PAGE_ACTIONS]
    return ", ".join(a.value for a in acts) or "&ndash;"


def _link(r: PatientRecords, base: str) -> str:
    shown = r.display_id or (r.latest.display_id if r.latest else None) or r.patient.removeprefix("Patient/")
    pid = r.patient.removeprefix("Patient/")
    if not r.patient.startswith("Patient/") or not fhir_id(pid):  # a Patient without an id: no subject, no page
        return f'<span class="patient">{e(shown)}</span>'
    return f'<a class="patient" href="{base}/patients/{e(pid)}">{e(shown)}</a>'


def worklist(records: Sequence[PatientRecords], changed: Sequence[PatientRecords], *, study: str, source: str,
             user: Who | None, csrf: str | None, base: str, lang: str, flash_text: str | None = None,
             flash_ok: bool = True, can_sign_in: bool = True) -> str:
    rank = {Status.ELIGIBLE.value: 0, Status.CANDIDATE.value: 1, Status.INELIGIBLE.value: 2}
    rows = sorted(records, key=lambda r: (rank.get(r.latest.status if r.latest else "", 3),
                                          r.display_id or r.patient))
    notice = "" if user is not None else f'<p class="note" id="read-only">{_t(READ_ONLY(), lang)}</p>'
    ch_rows = []
    for r in changed:
        before = r.screenings[-2] if len(r.screenings) > 1 else None
        latest = r.latest
        assert latest is not None
        what = _t(NEW_PATIENT(), lang) if before is None else e("; ".join(
            [render(CHANGE(was=before.status, now=latest.status), lang)] * (before.status != latest.status)
            + [f"{c} {render(CHANGE(was=w or '-', now=n), lang)}" for c, w, n in latest.changes(before)]))
        ch_rows.append(f"<tr><td>{_link(r, base)}</td><td>{_status(latest.status)}</td><td>{what}</td>"
                       f"<td>{e(', '.join(latest.failing + latest.unknown)) or '&ndash;'}</td></tr>")
    changed_html = (f'<table id="changed"><thead><tr><th>{_t(COL_PATIENT(), lang)}</th><th>{_t(COL_SCREENING(), lang)}</th>'
                    f"<th>{_t(COL_CHANGE(), lang)}</th><th>{_t(COL_NOT_MET(), lang)}</th></tr></thead>"
                    f"<tbody>{''.join(ch_rows)}</tbody></table>" if ch_rows else
                    f'<p class="note" id="changed">{_t(NONE_CHANGED(), lang)}</p>')
    all_rows = []
    for r in rows:
        latest = r.latest
        status = r.subject.status if r.subject else None
        all_rows.append(
            f'<tr data-patient="{e(r.patient)}"><td>{_link(r, base)}</td>'
            f"<td>{_status(latest.status) if latest else '&ndash;'}</td>"
            f"<td>{e(', '.join((latest.failing + latest.unknown) if latest else [])) or '&ndash;'}</td>"
            f"<td>{_status(status) if status else '&ndash;'}</td><td>{_next(r)}</td></tr>")
    body = (header(study, user, csrf, base, lang, can_sign_in) + flash(flash_text, flash_ok) + notice
            + f'<p class="note">{_t(SOURCE(source=source, n=len(records)), lang)}</p>'
            + f"<h2>{_t(CHANGED_HEAD(), lang)}</h2>{changed_html}"
            + f"<h2>{_t(ALL_HEAD(), lang)}</h2>"
            + f'<table id="worklist"><thead><tr><th>{_t(COL_PATIENT(), lang)}</th><th>{_t(COL_SCREENING(), lang)}</th>'
              f"<th>{_t(COL_NOT_MET(), lang)}</th><th>{_t(COL_STATUS(), lang)}</th><th>{_t(COL_NEXT(), lang)}</th></tr>"
              f"</thead><tbody>{''.join(all_rows)}</tbody></table>")
    return page(render(TITLE(study=study), lang), body, lang)


def _select(name: str, options: Sequence[tuple[str, str]], required: bool = False) -> str:
    opts = "".join(f'<option value="{e(v)}">{e(t)}</option>' for v, t in options)
    return f'<select name="{name}"{" required" if required else ""}>{opts}</select>'


def _field(label_msg: Msg, control: str, lang: str) -> str:
    return f"<label>{_t(label_msg, lang)} {control}</label>"


def _form(action: Action, r: PatientRecords, csrf: str, base: str, today: date, consent_form: str, lang: str) -> str:
    s = r.subject
    version = (s.version or "") if s is not None else "0"
    fields = [_field(FIELD_DATE(), f'<input type="date" name="date" value="{today.isoformat()}" required>', lang)]
    if action is Action.CONTACT:
        fields.append(_field(FIELD_MEDIUM(), _select("medium", [(k, render(label(k), lang)) for k in MEDIA]), lang))
        fields.append(_field(FIELD_REACHED(), _select("reason", [("", render(FIELD_REACHED_YES(), lang))]
                                                      + [(c, render(label(c), lang)) for c in CONTACT_NOT_DONE]), lang))
    elif action is Action.CONSENT:
        fields.append(_field(FIELD_FORM(), f'<input type="text" name="form" value="{e(consent_form)}" required>', lang))
    elif action is Action.ENROL:
        fields.append(_field(FIELD_D1(), '<input type="date" name="d1" required>', lang))
        default = TRANSITIONS[action][1]
        statuses = [default.value] if default else []
        statuses += sorted(x.value for x in ALTERNATIVES.get(action, ()))
        fields.append(_field(FIELD_STATUS(), _select("status", [(x, x) for x in statuses]), lang))
        fields.append(_field(FIELD_OVERRIDE(), '<input type="text" name="override" maxlength="500">', lang))
    elif action is Action.DECLINE:
        fields.append(_field(FIELD_REASON(), _select("reason", [(c, render(label(c), lang)) for c in NOT_ENROLLED_REASONS],
                                                     True), lang))
    elif action is Action.WITHDRAW:
        fields.append(_field(FIELD_REASON(), _select("reason", [(c, render(label(c), lang)) for c in WITHDRAWAL_REASONS],
                                                     True), lang))
        default = TRANSITIONS[action][1]
        statuses = ([default.value] if default else []) + sorted(x.value for x in ALTERNATIVES.get(action, ()))
        fields.append(_field(FIELD_STATUS(), _select("status", [(x, x) for x in statuses]), lang))
    fields.append(_field(FIELD_NOTE(), '<input type="text" name="note" maxlength="2000">', lang))
    pid = e(r.patient.removeprefix("Patient/"))
    return (f'<form class="step" id="form-{action.value}" method="post" action="{base}/patients/{pid}/{action.value}">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="version" value="{e(version)}">'
            + "".join(fields) + f'<button type="submit">{_t(ACTION_WORDS[action](), lang)}</button></form>')


def patient_page(r: PatientRecords, *, study: str, user: Who | None, csrf: str | None, base: str, lang: str,
                 today: date, consent_form: str, flash_text: str | None = None, flash_ok: bool = True,
                 can_sign_in: bool = True) -> str:
    s = r.subject
    shown = r.display_id or r.patient
    status = str(s.status) if s else render(NOT_A_SUBJECT(), lang)
    number = f' &middot; {_t(SUBJECT(number=s.number, d1=s.d1.isoformat() if s.d1 else "-"), lang)}' if s and s.number else ""
    items = []
    for ev in events(r):
        who = f' <span class="who">({_t(BY(who=ev.who), lang)})</span>' if ev.who else ""
        items.append(f'<li data-kind="{e(ev.kind)}"><time>{e(ev.day.isoformat() if ev.day else "")}</time> '
                     f"{_t(ev.text, lang)}{who}</li>")
    timeline = f'<ol class="timeline" id="timeline">{"".join(items)}</ol>' if items else \
        f'<p class="note" id="timeline">{_t(NOTHING_YET(), lang)}</p>'
    forms = ""
    if user is not None and csrf:
        acts = [a for a in allowed_actions(s.status if s else None, exists=s is not None) if a in PAGE_ACTIONS]
        forms = f"<h2>{_t(STEPS(), lang)}</h2>" + ("".join(_form(a, r, csrf, base, today, consent_form, lang) for a in acts)
                                                   or f'<p class="note">{_t(NO_STEPS(status=status), lang)}</p>')
    else:
        forms = f'<p class="note" id="read-only">{_t(READ_ONLY(), lang)}</p>'
    body = (header(study, user, csrf, base, lang, can_sign_in) + flash(flash_text, flash_ok)
            + f'<p><a href="{base}/">{_t(BACK(), lang)}</a></p>'
            + f'<h2 id="patient">{e(shown)} <small>({e(r.patient)})</small>: '
              f'<span id="status">{e(status)}</span>{number}</h2>'
            + f"<h2>{_t(TIMELINE(), lang)}</h2>{timeline}{forms}")
    return page(f"{shown}: {render(TITLE(study=study), lang)}", body, lang)


def message_page(text: str, *, study: str, base: str, lang: str, can_sign_in: bool = True) -> str:
    body = header(study, None, None, base, lang, can_sign_in) + flash(text, False)
    return page(render(TITLE(study=study), lang), body, lang)


__all__ = ["CSP", "PAGE_ACTIONS", "message_page", "patient_page", "worklist"]
