"""The card a clinician sees, built from one screening result (pure: no I/O, no clock).

A card only when it helps: the patient is `eligible` or `candidate`, alive, and not already in the
study's hands (a ResearchSubject of this study whose status means the study team has acted). The
summary fits the 140 characters CDS Hooks allows; the detail (GitHub-flavoured markdown) says what
passes, what is unknown and what would settle each unknown, in the criteria's own words; every piece
of text that came from the record is escaped, so a record cannot inject markup or links into the EHR.
A suggestion drafts a referral (ServiceRequest) to the study team; links come from the configuration.
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
from fhir3t.formats.summary import effect
from fhir3t.messages import Clause, Message, render
from fhir3t.service.prefetch import resources_in
from fhir3t.service.settings import Link, ServeSettings
from fhir3t.study import Study, StudyMatcher
from fhir3t.textnorm import clip

SUMMARY_MAX = 139  # CDS Hooks: "<140-character summary"
SHOWN = frozenset({Status.ELIGIBLE, Status.CANDIDATE})
OVERRIDE_SYSTEM = f"{BASE}/CodeSystem/cds-override-reason"
TOPIC_SYSTEM = f"{BASE}/CodeSystem/cds-topic"
OVERRIDE_REASONS = (
    ("already-referred", "Already referred or known to the study team"),
    ("not-appropriate", "Not appropriate for this patient (clinical judgement)"),
    ("patient-declines", "Patient not interested in trials"),
    ("not-now", "Not now: remind me later"),
)
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
    """At most `limit` characters, never cut inside a bracket (textnorm.clip)."""
    return text if len(text) <= limit else clip(text, limit)


def summary(result: ScreeningResult, study: Study) -> str:
    unknown = len(result.unknown)
    if result.status == Status.ELIGIBLE:
        return fit(f"Eligible for {study.short_title}: consider referring to the study team")
    need = f"{unknown} criterion needs data" if unknown == 1 else f"{unknown} criteria need data"
    return fit(f"Possible candidate for {study.short_title}: {need}")


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


def _unknown_line(c: CriterionResult, title: str) -> str:
    todo = [cl for cl in c.explanation if cl.settle is not None]
    settle = "; ".join(dict.fromkeys(_settle(cl) for cl in todo)) if todo else md(c.reason)
    return f"- **{md(title)}** ({md(c.id)}): {settle}"


def detail(result: ScreeningResult, criteria: CriteriaSet, study: Study) -> str:
    """The card's markdown: status, what would settle each unknown, the inclusion criteria met, the exclusions ruled out."""
    titles = {c.id: c.title for c in criteria.criteria}
    total = len(result.criteria)
    passing = [c for c in result.criteria if effect(c) == "passes"]
    unknown = [c for c in result.criteria if effect(c) == "unknown"]
    head = ("**Eligible**" if result.status == Status.ELIGIBLE else "**Possible candidate**") + \
        f" for {md(study.title)} ({md(study.value)}), screened as of {result.as_of.isoformat()}: " + \
        f"{len(passing)} of {total} criteria pass" + (f", {len(unknown)} unknown." if unknown else ".")
    lines = [head, ""]
    if unknown:
        lines += ["**What would settle the unknowns**", ""]
        lines += [_unknown_line(c, titles.get(c.id, c.id)) for c in unknown]
        lines.append("")
    met = [c for c in passing if c.kind == "inclusion"]
    if met:
        lines += ["**Inclusion criteria met**", ""]
        lines += [f"- {md(titles.get(c.id, c.id))}: {md(c.reason)}" for c in met]
        lines.append("")
    ruled_out = [c for c in passing if c.kind == "exclusion"]
    if ruled_out:
        lines += ["**Exclusions ruled out**: " + ", ".join(md(titles.get(c.id, c.id)) for c in ruled_out), ""]
    review = [c for c in result.criteria if c.requires_review]
    if review:
        lines += ["A study physician confirms " + ", ".join(md(titles.get(c.id, c.id)) for c in review)
                  + " at screening.", ""]
    lines.append(f"Criteria {md(criteria.id)} {md(criteria.version)}; screened by fhir3t from the record as the EHR "
                 "holds it. The study team decides eligibility.")
    return "\n".join(lines)


def _link(link: Link, patient_id: str, app_context: str) -> dict:
    out = {"label": link.label, "url": link.url.replace("{patientId}", quote(patient_id, safe="")), "type": link.type}
    if link.type == "smart":
        out["appContext"] = app_context
    return out


def referral(result: ScreeningResult, study: Study, team: str, today: date) -> dict:
    """A draft ServiceRequest referring the patient to the study team (the EHR creates it if accepted)."""
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"text": f"Referral to the {study.value} study team"},
        "subject": {"reference": result.patient},
        "authoredOn": today.isoformat(),
        "reasonCode": [{"text": f"{result.status} for {study.short_title} (fhir3t screening as of {result.as_of})"}],
        "performer": [{"display": team}],
        "note": [{"text": f"{study.title}. {study.site}".strip()}],
    }


def build_card(result: ScreeningResult, criteria: CriteriaSet, study: Study, settings: ServeSettings, *,
               card_uuid: str, suggestion_uuid: str, today: date) -> dict:
    """The CDS Hooks card for an eligible or candidate patient."""
    patient_id = result.patient.removeprefix("Patient/")
    team = settings.study_team or f"{study.value} study team"
    label = fit(f"{study.short_title} · {study.site}" if study.site else study.short_title, 200)
    source: dict = {"label": label, "topic": {"system": TOPIC_SYSTEM, "code": "trial-recruitment",
                                              "display": "Clinical trial recruitment"}}
    if settings.study_url:
        source["url"] = settings.study_url
    card: dict = {
        "uuid": card_uuid,
        "summary": summary(result, study),
        "detail": detail(result, criteria, study),
        "indicator": "info",
        "source": source,
        "overrideReasons": [{"system": OVERRIDE_SYSTEM, "code": c, "display": d} for c, d in OVERRIDE_REASONS],
    }
    if settings.referral:
        card["suggestions"] = [{
            "label": f"Refer to the {study.value} study team",
            "uuid": suggestion_uuid,
            "isRecommended": True,
            "actions": [{"type": "create", "description": f"Draft a referral to the {team}",
                         "resource": referral(result, study, team, today)}],
        }]
        card["selectionBehavior"] = "at-most-one"
    if settings.links:
        context = json.dumps({"study": study.value, "patient": patient_id, "status": result.status,
                              "card": card_uuid}, separators=(",", ":"))
        card["links"] = [_link(link, patient_id, context) for link in settings.links]
    return card


__all__ = ["OVERRIDE_REASONS", "OVERRIDE_SYSTEM", "Gate", "build_card", "detail", "fit", "gate", "md",
           "study_subjects", "summary"]
