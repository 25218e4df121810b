"""The card a clinician sees, built from one screening result (pure: no I/O, no clock).

A card only when it helps: the patient is `eligible` or `candidate`, alive, and not already in the
study's hands (a ResearchSubject of this study whose status means the study team has acted). The
summary fits the 140 characters CDS Hooks allows; the detail (GitHub-flavoured markdown) says what
passes, what is unknown and what would settle each unknown, in the criteria's own words; every piece
of text that came from the record is escaped, so a record cannot inject markup or links into the EHR.
A suggestion drafts a referral (ServiceRequest) to the study team; links come from the configuration.

Every word is a message said in the card's language (`lang`: the hook call's Accept-Language when fhir3t
speaks it, else the service's `[site] language`); codes, ids and the override reasons' codes stay as they are.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

from fhir3t.canonical import BASE
from fhir3t.criteria.load import CriteriaSet
from fhir3t.criteria.model import CriterionResult, ScreeningResult
from fhir3t.enrolment import Status, is_teams
from fhir3t.formats.summary import effect, status_word
from fhir3t.messages import Clause, Message, Plural, Words, render, table
from fhir3t.service.prefetch import resources_in
from fhir3t.service.settings import Link, ServeSettings
from fhir3t.study import Study, StudyMatcher

SUMMARY_MAX = 139  # CDS Hooks: "<140-character summary"
SHOWN = frozenset({Status.ELIGIBLE, Status.CANDIDATE})
OVERRIDE_SYSTEM = f"{BASE}/CodeSystem/cds-override-reason"
TOPIC_SYSTEM = f"{BASE}/CodeSystem/cds-topic"
OVERRIDE = table("card.override", {
    "already-referred": "Already referred or known to the study team",
    "not-appropriate": "Not appropriate for this patient (clinical judgement)",
    "patient-declines": "Patient not interested in trials",
    "not-now": "Not now: remind me later",
})
#: (code, English display) of the override reasons a clinician may give
OVERRIDE_REASONS = tuple((code, m.en) for code, m in OVERRIDE.items())
W = table("card", {
    "summary-eligible": "Eligible for {study}: consider referring to the study team",
    "summary-candidate": "Possible candidate for {study}: {need}",
    "head-eligible": "**Eligible** for {title} ({study}), screened as of {as_of}: {passing}.",
    "head-candidate": "**Possible candidate** for {title} ({study}), screened as of {as_of}: {passing}, {unknown} unknown.",
    "head-candidate-decided": "**Possible candidate** for {title} ({study}), screened as of {as_of}: {passing}.",
    "settle-heading": "**What would settle the unknowns**",
    "unknown-line": "- **{title}** ({id}): {settle}",
    "met-heading": "**Inclusion criteria met**",
    "met-line": "- {title}: {reason}",
    "ruled-out": "**Exclusions ruled out**: {titles}",
    "review": "A study physician confirms {titles} at screening.",
    "footer": "Criteria {criteria} {version}; screened by fhir3t from the record as the EHR holds it. The study team "
              "decides eligibility.",
    "topic": "Clinical trial recruitment",
    "team": "{study} study team",
    "referral": "Referral to the {study} study team",
    "referral-reason": "{status} for {study} (fhir3t screening as of {as_of})",
    "referral-note": "{title}. {site}",
    "refer": "Refer to the {study} study team",
    "draft": "Draft a referral to the {team}",
})
NEED = Plural("card.need", "{n} criterion needs data", "{n} criteria need data")
PASSING = Message("card.passing", "{k} of {n} criteria pass")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|!~&])")
#: what GitHub-flavoured markdown (and linkify) turns into a link without any markup: a scheme's colon, a dot
#: before a name's letters (www.x, evil.example; not 1.0 or M33.1), an @ (mail): escaped, they render as the
#: same characters, as text
_AUTOLINK = re.compile(r"(:(?=/)|(?<=\w)\.(?=[^\W\d_])|@)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def md(text: object) -> str:
    """Record-derived text as inert markdown, rendered as the text it is: control characters dropped, markup
    characters escaped, and nothing left that a renderer would turn into a link (a bare URL, www.x, a@b)."""
    return _AUTOLINK.sub(r"\\\1", _MD_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", str(text))))


@dataclass(frozen=True)
class Gate:
    """Why no card (None: show one)."""

    reason: str | None


def study_subjects(documents: Iterable[tuple[str, object]], patient_ref: str, study: Study) -> list[tuple[str, bool | None]]:
    """(status, is this study?) of the patient's ResearchSubjects in the documents."""
    resources = resources_in(documents)
    matcher = StudyMatcher(study.system, study.value)
    matcher.learn(r for r in resources if r.get("resourceType") == "ResearchStudy")
    pid = patient_ref.removeprefix("Patient/")
    out = []
    for r in resources:
        if r.get("resourceType") != "ResearchSubject":
            continue
        ref = (r.get("individual") or {}).get("reference") if isinstance(r.get("individual"), dict) else None
        if not isinstance(ref, str) or ref.rstrip("/").split("/")[-1] != pid:
            continue
        status = r.get("status")
        out.append((status if isinstance(status, str) else "", matcher.match(r.get("study"))))
    return out


def gate(result: ScreeningResult, subjects: list[tuple[str, bool | None]], patient: dict | None) -> Gate:
    """Does this result deserve a card at all (before the how-often rule)?"""
    if result.status not in SHOWN:
        return Gate(f"status {result.status}")
    if isinstance(patient, dict) and (patient.get("deceasedBoolean") is True or isinstance(patient.get("deceasedDateTime"), str)):
        return Gate("recorded as deceased")
    for status, ours in subjects:
        if ours is True and is_teams(status):  # the study team has the patient (or decided)
            return Gate(f"already {status} in the study")
    return Gate(None)


def fit(text: str, limit: int = SUMMARY_MAX) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def summary(result: ScreeningResult, study: Study, lang: str = "en") -> str:
    w = Words(W, lang)
    if result.status == Status.ELIGIBLE:
        return fit(w("summary-eligible", study=study.said("short_title", lang)))
    return fit(w("summary-candidate", study=study.said("short_title", lang), need=NEED(len(result.unknown))))


_NO_RESULT = frozenset({"obs.none-in", "obs.none-in-older"})
SETTLE_NONE_IN = Message("card.settle-none-in", "{settle} (none in {window})")
SETTLE_FOUND = Message("card.settle-found", "{settle} ({finding})")


def _settle(c: Clause, lang: str = "en") -> str:
    """'order HBsAg (LOINC 5196-1) at screening (none in 2026-10-19..2026-11-16)' for a missing result;
    other clauses as 'what to do (what was found)'."""
    assert c.settle is not None
    if c.finding.id in _NO_RESULT:
        return md(render(SETTLE_NONE_IN(settle=c.settle, window=c.finding.arg("window")), lang))
    return md(render(SETTLE_FOUND(settle=c.settle, finding=c.finding), lang))


def _unknown_line(c: CriterionResult, title: str, lang: str = "en") -> str:
    todo = [cl for cl in c.explanation if cl.settle is not None]
    sep = "；" if lang != "en" else "; "
    settle = sep.join(dict.fromkeys(_settle(cl, lang) for cl in todo)) if todo else md(c.reason_in(lang))
    return _md_line(W["unknown-line"].id, lang, title=md(title), id=md(c.id), settle=settle)


def _md_line(msg_id: str, lang: str, **values: str) -> str:
    """A markdown line of fhir3t's own template (its ** markup) filled with values already escaped as markdown."""
    from fhir3t.messages.render import template

    return template(msg_id, lang).format(**values)


def _titles(criteria: CriteriaSet, lang: str) -> dict[str, str]:
    return {c.id: c.title_text.get(lang) for c in criteria.criteria}


def detail(result: ScreeningResult, criteria: CriteriaSet, study: Study, lang: str = "en") -> str:
    """The card's markdown: status, what would settle each unknown, the inclusion criteria met, the exclusions ruled out."""
    w = Words(W, lang)
    titles = _titles(criteria, lang)
    total = len(result.criteria)
    passing = [c for c in result.criteria if effect(c) == "passes"]
    unknown = [c for c in result.criteria if effect(c) == "unknown"]
    said = render(PASSING(n=total, k=len(passing)), lang)
    which = "head-eligible" if result.status == Status.ELIGIBLE else "head-candidate" if unknown else "head-candidate-decided"
    head = _md_line(W[which].id, lang, title=md(study.said("title", lang)), study=md(study.value), as_of=result.as_of.isoformat(),
                    passing=md(said), unknown=str(len(unknown)))
    lines = [head, ""]
    comma = "、" if lang != "en" else ", "
    if unknown:
        lines += [w("settle-heading"), ""]
        lines += [_unknown_line(c, titles.get(c.id, c.id), lang) for c in unknown]
        lines.append("")
    met = [c for c in passing if c.kind == "inclusion"]
    if met:
        lines += [w("met-heading"), ""]
        lines += [_md_line(W["met-line"].id, lang, title=md(titles.get(c.id, c.id)), reason=md(c.reason_in(lang)))
                  for c in met]
        lines.append("")
    ruled_out = [c for c in passing if c.kind == "exclusion"]
    if ruled_out:
        lines += [_md_line(W["ruled-out"].id, lang, titles=comma.join(md(titles.get(c.id, c.id)) for c in ruled_out)), ""]
    review = [c for c in result.criteria if c.requires_review]
    if review:
        lines += [_md_line(W["review"].id, lang, titles=comma.join(md(titles.get(c.id, c.id)) for c in review)), ""]
    lines.append(_md_line(W["footer"].id, lang, criteria=md(criteria.id), version=md(criteria.version)))
    return "\n".join(lines)


def _link(link: Link, patient_id: str, app_context: str) -> dict:
    out = {"label": link.label, "url": link.url.replace("{patientId}", quote(patient_id, safe="")), "type": link.type}
    if link.type == "smart":
        out["appContext"] = app_context
    return out


def referral(result: ScreeningResult, study: Study, team: str, today: date, lang: str = "en") -> dict:
    """A draft ServiceRequest referring the patient to the study team (the EHR creates it if accepted); its texts
    are what the clinician and the team read, in the card's language."""
    w = Words(W, lang)
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"text": w("referral", study=study.value)},
        "subject": {"reference": result.patient},
        "authoredOn": today.isoformat(),
        "reasonCode": [{"text": w("referral-reason", status=status_word(result.status, lang), study=study.said("short_title", lang),
                                  as_of=str(result.as_of))}],
        "performer": [{"display": team}],
        "note": [{"text": w("referral-note", title=study.said("title", lang), site=study.said("site", lang)).strip()}],
    }


def build_card(result: ScreeningResult, criteria: CriteriaSet, study: Study, settings: ServeSettings, *,
               card_uuid: str, suggestion_uuid: str, today: date, lang: str = "en") -> dict:
    """The CDS Hooks card for an eligible or candidate patient, in `lang`."""
    w = Words(W, lang)
    patient_id = result.patient.removeprefix("Patient/")
    team = settings.study_team or w("team", study=study.value)
    short, site = study.said("short_title", lang), study.said("site", lang)
    label = fit(f"{short} · {site}" if site else short, 200)
    source: dict = {"label": label, "topic": {"system": TOPIC_SYSTEM, "code": "trial-recruitment",
                                              "display": w("topic")}}
    if settings.study_url:
        source["url"] = settings.study_url
    card: dict = {
        "uuid": card_uuid,
        "summary": summary(result, study, lang),
        "detail": detail(result, criteria, study, lang),
        "indicator": "info",
        "source": source,
        "overrideReasons": [{"system": OVERRIDE_SYSTEM, "code": c, "display": render(m(), lang)} for c, m in OVERRIDE.items()],
    }
    if settings.referral:
        card["suggestions"] = [{
            "label": w("refer", study=study.value),
            "uuid": suggestion_uuid,
            "isRecommended": True,
            "actions": [{"type": "create", "description": w("draft", team=team),
                         "resource": referral(result, study, team, today, lang)}],
        }]
        card["selectionBehavior"] = "at-most-one"
    if settings.links:
        context = json.dumps({"study": study.value, "patient": patient_id, "status": result.status,
                              "card": card_uuid}, separators=(",", ":"))
        card["links"] = [_link(link, patient_id, context) for link in settings.links]
    return card


__all__ = ["OVERRIDE_REASONS", "OVERRIDE_SYSTEM", "Gate", "build_card", "detail", "fit", "gate", "md",
           "study_subjects", "summary"]
