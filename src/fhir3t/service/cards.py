"""The card a clinician sees, built from one screening result (pure: no I/O, no clock).

A card only when it helps: the patient is `eligible` or `candidate`, alive, and not already in the
study's hands (a ResearchSubject of this study whose status means the study team has acted).

Short, in the site's language (ServeSettings.lang), every word a message of this module: a summary under
the 140 characters CDS Hooks allows, a detail under DETAIL_MAX characters (GitHub-flavoured markdown) that
names tests, never codes ("Hepatitis B: order HBsAg, anti-HBc and HBV DNA"), and links: the full
explanation page (every criterion with its reason, served by the service), the study's registry entry, and
the configured links (the coordinator's worklist, a SMART app). Text that came from the record (a drug's
name) and names from the definition are escaped, so nothing can inject markup or links into the EHR.

Suggestions (CDS Hooks 2.0 actions, `selectionBehavior: any`): a draft referral to the study team, and
for a candidate the screening tests that would decide its unknowns as draft ServiceRequests coded with the
hospital's own codes (the reverse of its ConceptMap) beside the standard code, so the order is placed, and
its result comes back, in codes the screening reads. Which tests: the missing results the unknown criteria
name, the fewest that decide each criterion whatever they show (for `either`, the first: an IGRA decides
the TB test without a TST).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

from fhir3t.canonical import BASE
from fhir3t.criteria.base import AS_WRITTEN, ORDER_LOCAL, ORDER_TEST
from fhir3t.criteria.combine import Combine, Not
from fhir3t.criteria.criteriaset import Criterion
from fhir3t.criteria.kinds.observation import NONE_IN, NONE_IN_OLDER, ObservationRule
from fhir3t.criteria.model import ScreeningResult
from fhir3t.enrolment import Status, is_teams
from fhir3t.formats.summary import effect
from fhir3t.messages import Many, Message, Msg, Plural, Text, many, render
from fhir3t.pipeline import Definition
from fhir3t.service.prefetch import resources_in
from fhir3t.service.settings import Link, ServeSettings
from fhir3t.study import Study, StudyMatcher
from fhir3t.textnorm import clip

SUMMARY_MAX = 139  # CDS Hooks: "<140-character summary"
#: the detail's length at most (characters, in any language): what a clinician reads in the chart at a glance
DETAIL_MAX = 600
SHOWN = frozenset({Status.ELIGIBLE, Status.CANDIDATE})
OVERRIDE_SYSTEM = f"{BASE}/CodeSystem/cds-override-reason"
TOPIC_SYSTEM = f"{BASE}/CodeSystem/cds-topic"
#: the SNOMED CT code of a laboratory procedure (ServiceRequest.category of a screening test)
LAB_CATEGORY = {"system": "http://snomed.info/sct", "code": "108252007", "display": "Laboratory procedure"}

SUMMARY_ELIGIBLE = Message("card.eligible", "Eligible for {study}: consider referring to the study team")
SUMMARY_CANDIDATE = Message("card.candidate", "Possible candidate for {study}: {need}")
NEED = Plural("card.need", "{n} criterion needs data", "{n} criteria need data")
ALL_PASS = Message("card.all-pass", "All {total} criteria pass as of {day}.")
SOME_PASS = Message("card.some-pass", "{passing} of {total} criteria pass as of {day}. To decide the rest:")
REVIEW = Message("card.review", "A study physician confirms {titles} at screening.")
UNKNOWN_LINE = Message("card.todo-line", "- **{title}**: {todo}")
ORDER_TESTS = Message("card.order-tests", "order {tests}")
ORDER_ONE = Message("card.order-one", "order {test}")
CODE_REASON = Message("card.code-reason", "code why it was stopped to decide")
MORE = Plural("card.more", "- and {n} more criterion: see the full explanation",
              "- and {n} more criteria: see the full explanation")
DECIDES = Message("card.decides", "The study team decides eligibility.")
LINK_EXPLANATION = Message("card.link-explanation", "Full screening explanation")
LINK_REGISTRY = Message("card.link-registry", "{study} in the trial registry")
TOPIC = Message("card.topic", "Clinical trial recruitment")
TEAM = Message("card.team", "{study} study team")
REFER = Message("card.refer", "Refer to the {study} study team")
REFER_ACTION = Message("card.draft", "Draft a referral to the {team}")
REFERRAL_CODE = Message("card.referral", "Referral to the {study} study team")
REFERRAL_ELIGIBLE = Message("card.referral-eligible", "Eligible for {study} (fhir3t screening as of {day})")
REFERRAL_NOTE = Message("card.referral-note", "{title}. {site}")
REFERRAL_CANDIDATE = Message("card.referral-candidate", "Possible candidate for {study} (fhir3t screening as of {day})")
ORDER_TESTS_LABEL = Plural("card.order-tests-label", "Order the missing screening test: {tests}",
                           "Order the {n} missing screening tests: {tests}")
TEST_ACTION = Message("card.test-action", "Draft an order for {test}")
TEST_REASON = Message("card.test-reason", "Screening for {study}: {criterion}")
OVERRIDE_REASONS = (
    ("already-referred", Message("card.override.already-referred", "Already referred or known to the study team")),
    ("not-appropriate", Message("card.override.not-appropriate", "Not appropriate for this patient (clinical judgement)")),
    ("patient-declines", Message("card.override.patient-declines", "Patient not interested in trials")),
    ("not-now", Message("card.override.not-now", "Not now: remind me later")),
)
_MISSING = frozenset({NONE_IN.id, NONE_IN_OLDER.id})
#: the card's words for settles whose templates name a code (the full explanation page keeps the code)
_CARD_WORDS = {"medication.code-reason": CODE_REASON}

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
    """At most `limit` characters (the messages are written to fit, this is the bound), never cut inside a
    bracket (textnorm.clip)."""
    return text if len(text) <= limit else clip(text, limit)


def summary(result: ScreeningResult, study: Study, lang: str = "en") -> str:
    if result.status == Status.ELIGIBLE:
        return fit(render(SUMMARY_ELIGIBLE(study=study.said("short_title", lang)), lang))
    return fit(render(SUMMARY_CANDIDATE(study=study.said("short_title", lang), need=NEED(len(result.unknown))), lang))


# ---- what would settle the unknowns ----------------------------------------------------------
@dataclass(frozen=True)
class Unknown:
    """An unknown criterion: its title, the tests whose results would decide it, and what else would."""

    criterion: Criterion
    tests: tuple[ObservationRule, ...]
    other: tuple[Msg, ...]


def tests_to_settle(rule: object, missing: frozenset[Text]) -> list[ObservationRule]:
    """The observation rules among `missing` (by test name) whose results decide `rule` whatever they show:
    every missing part of `all` / `any`, the first missing part of `either` (the first result decides)."""
    if isinstance(rule, ObservationRule):  # by the English name: a title and its translations are one test
        return [rule] if rule.title.en in {m.en for m in missing} else []
    if isinstance(rule, Combine):
        parts = [tests_to_settle(p, missing) for p in rule.parts]
        if rule.op == "either":
            return next((p for p in parts if p), [])
        return [t for p in parts for t in p]
    if isinstance(rule, Not):
        return tests_to_settle(rule.part, missing)
    return []


def _leaves(rule: object) -> list[ObservationRule]:
    """Every observation rule of a rule tree."""
    if isinstance(rule, ObservationRule):
        return [rule]
    if isinstance(rule, Combine):
        return [t for p in rule.parts for t in _leaves(p)]
    if isinstance(rule, Not):
        return _leaves(rule.part)
    return []


def unknowns(result: ScreeningResult, definition: Definition) -> list[Unknown]:
    """The unknown criteria, in the criteria's order, with what would settle each."""
    by_id = {c.id: c for c in definition.criteria.criteria}
    out = []
    for c in result.criteria:
        crit = by_id.get(c.id)
        if effect(c) != "unknown" or crit is None:
            continue
        missing = frozenset(t for cl in c.explanation if cl.finding.id in _MISSING
                            for t in [cl.finding.arg("test")] if isinstance(t, Text))
        tests: dict[int, ObservationRule] = {}
        for t in tests_to_settle(crit.rule, missing):
            tests.setdefault(id(t.vs), t)
        named = {t.title.en for t in _leaves(crit.rule)}
        # what else would settle it: every other clause's settle (a missing result whose test no rule of the
        # criterion names is said as the criteria say it), else the findings themselves
        other = tuple(dict.fromkeys(cl.settle for cl in c.explanation if cl.settle is not None and not (
            cl.finding.id in _MISSING and str(cl.finding.arg("test")) in named)))
        if not tests and not other:
            other = tuple(dict.fromkeys(cl.finding for cl in c.explanation))
        out.append(Unknown(crit, tuple(tests.values()), other))
    return out


def without_codes(msg: Msg, leaves: Sequence[ObservationRule]) -> Msg:
    """A settle as the card says it: a test by its name only ('order HBsAg', not 'order HBsAg (LOINC 5196-1) at
    screening'), a criteria file's hint for a test as that test's order, a message naming a code by its card words."""
    if msg.id in (ORDER_TEST.id, ORDER_LOCAL.id):  # the card names the test; its drafts carry the codes
        return ORDER_ONE(test=msg.arg("test"))
    if msg.id == AS_WRITTEN.id:
        hinted = next((t for t in leaves if t.hint is not None and str(t.hint) == str(msg.arg("text"))), None)
        return ORDER_ONE(test=hinted.title) if hinted is not None else msg
    if msg.id in _CARD_WORDS:
        return _CARD_WORDS[msg.id]()

    def arg(v: object) -> object:
        if isinstance(v, Msg):
            return without_codes(v, leaves)
        if isinstance(v, Many):
            return Many(tuple(arg(i) for i in v.items), v.how)  # type: ignore[misc]
        return v

    return Msg(msg.id, tuple((k, arg(v)) for k, v in msg.args))  # type: ignore[misc]


def _test_names(tests: Sequence[ObservationRule], lang: str) -> str:
    return render(ORDER_TESTS(tests=many([md(t.title.get(lang)) for t in tests], "and")), lang)


def _unknown_line(u: Unknown, lang: str) -> str:
    todo = [_test_names(u.tests, lang)] if u.tests else []
    leaves = _leaves(u.criterion.rule)
    todo += list(dict.fromkeys(md(render(without_codes(m, leaves), lang)) for m in u.other))
    return render(UNKNOWN_LINE(title=md(u.criterion.title_text.get(lang)), todo=many(todo, "; ")), lang)


def status_lines(result: ScreeningResult, definition: Definition, lang: str, budget: int = DETAIL_MAX,
                 todo: Sequence[Unknown] | None = None) -> list[str]:
    """The detail's account of the screening, within `budget` characters: how many criteria pass, and for a
    candidate what would decide each unknown (`todo`, computed here when not given; criteria that do not fit are
    counted, not cut)."""
    total = len(result.criteria)
    passing = sum(1 for c in result.criteria if effect(c) == "passes")
    day = result.as_of.isoformat()
    if result.status == Status.ELIGIBLE or not result.unknown:
        lines = [render(ALL_PASS(total=total, day=day), lang) if passing == total else
                 render(SOME_PASS(passing=passing, total=total, day=day), lang)]
        review = [c.title_text.get(lang) for c in definition.criteria.criteria if c.requires_review]
        if review:
            line = render(REVIEW(titles=many([md(t) for t in review], "and")), lang)
            if len(lines[0]) + len(line) + 1 <= budget:
                lines[0] += " " + line
        return lines
    lines = [render(SOME_PASS(passing=passing, total=total, day=day), lang)]
    todo = unknowns(result, definition) if todo is None else todo
    used = len(lines[0]) + 2
    for i, u in enumerate(todo):
        line = _unknown_line(u, lang)
        rest = len(todo) - i - 1
        tail = len(render(MORE(rest), lang)) + 1 if rest else 0
        if used + len(line) + 1 + tail > budget:
            lines.append(render(MORE(len(todo) - i), lang))
            break
        lines.append(line)
        used += len(line) + 1
    return lines


def detail(result: ScreeningResult, definition: Definition, lang: str = "en", head: Sequence[str] = (),
           todo: Sequence[Unknown] | None = None) -> str:
    """The card's markdown: `head` (an order's news) first, then the screening (see status_lines), then who
    decides; never more than DETAIL_MAX characters."""
    used = sum(len(h) + 2 for h in head)
    body = status_lines(result, definition, lang, DETAIL_MAX - used, todo)
    parts = [*head, "\n".join(body)]
    closing = render(DECIDES(), lang)
    text = "\n\n".join(parts)
    if len(text) + len(closing) + 2 <= DETAIL_MAX:
        text += "\n\n" + closing
    return fit(text, DETAIL_MAX)


# ---- suggestions and links --------------------------------------------------------------------
def _link(link: Link, patient_id: str, app_context: str) -> dict:
    out = {"label": link.label, "url": link.url.replace("{patientId}", quote(patient_id, safe="")), "type": link.type}
    if link.type == "smart":
        out["appContext"] = app_context
    return out


def referral(result: ScreeningResult, study: Study, team: str, today: date, lang: str = "en") -> dict:
    """A draft ServiceRequest referring the patient to the study team (the EHR creates it if accepted)."""
    why = REFERRAL_ELIGIBLE if result.status == Status.ELIGIBLE else REFERRAL_CANDIDATE
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"text": render(REFERRAL_CODE(study=study.value), lang)},
        "subject": {"reference": result.patient},
        "authoredOn": today.isoformat(),
        "reasonCode": [{"text": render(why(study=study.said("short_title", lang), day=result.as_of.isoformat()), lang)}],
        "performer": [{"display": team}],
        "note": [{"text": render(REFERRAL_NOTE(title=study.said("title", lang), site=study.said("site", lang)), lang).strip()}],
    }


def test_order(test: ObservationRule, criterion: Criterion, result: ScreeningResult, definition: Definition,
               today: date, lang: str = "en") -> dict | None:
    """A draft ServiceRequest for one screening test: the hospital's own codes for it (its ConceptMap, reversed)
    first, then the standard code the value set lists (the first the hospital maps a code of its own to, else the
    first listed); None when the value set lists no code to order by."""
    tx = definition.tx
    code = next((c for c in test.vs.exact_codes() if tx.maps.local_codes(c)), None) or test.vs.first_code()
    if code is None:
        return None
    codings: list[dict] = []
    for (system, local), display in tx.maps.local_codes(code):
        codings.append({"system": system, "code": local, **({"display": display} if display else {})})
    shown = test.vs.displays.get(code)
    codings.append({"system": code[0], "code": code[1], **({"display": shown.en} if shown is not None else {})})
    study = definition.study
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [LAB_CATEGORY]}],
        "code": {"coding": codings, "text": test.title.get(lang)},
        "subject": {"reference": result.patient},
        "authoredOn": today.isoformat(),
        "reasonCode": [{"text": render(TEST_REASON(study=study.value, criterion=criterion.title_text), lang)}],
    }


def test_suggestion(result: ScreeningResult, definition: Definition, today: date, lang: str,
                    new_uuid: Callable[[], str], todo: Sequence[Unknown] | None = None) -> dict | None:
    """One suggestion drafting every test that would decide the candidate's unknowns (None: no test would)."""
    actions: list[dict] = []
    names: list[Text] = []
    seen: set[int] = set()
    for u in unknowns(result, definition) if todo is None else todo:
        for t in u.tests:
            if id(t.vs) in seen:
                continue
            order = test_order(t, u.criterion, result, definition, today, lang)
            if order is None:
                continue
            seen.add(id(t.vs))
            names.append(t.title)
            actions.append({"type": "create", "description": render(TEST_ACTION(test=t.title), lang), "resource": order})
    if not actions:
        return None
    label = render(ORDER_TESTS_LABEL(len(names), tests=many(names, ", ")), lang)
    return {"label": fit(label, 200), "uuid": new_uuid(), "isRecommended": True, "actions": actions}


def referral_suggestion(result: ScreeningResult, study: Study, settings: ServeSettings, today: date, lang: str,
                        new_uuid: Callable[[], str]) -> dict:
    team = settings.study_team or render(TEAM(study=study.value), lang)
    return {"label": render(REFER(study=study.value), lang), "uuid": new_uuid(),
            "isRecommended": result.status == Status.ELIGIBLE,
            "actions": [{"type": "create", "description": render(REFER_ACTION(team=team), lang),
                         "resource": referral(result, study, team, today, lang)}]}


def registry_url(study: Study, settings: ServeSettings) -> str | None:
    """Where the study is described: [serve] study_url, else its registry entry (study.json)."""
    return settings.study_url or study.registry_url


def build_card(result: ScreeningResult, definition: Definition, settings: ServeSettings, *, card_uuid: str, today: date,
               new_uuid: Callable[[], str], explanation_url: str | None = None, lang: str | None = None,
               suggestions: Sequence[dict] = ()) -> dict:
    """The CDS Hooks card for an eligible or candidate patient (patient-view; order-select adds its own
    summary, detail head and suggestions first)."""
    lang = lang or settings.lang
    study = definition.study
    patient_id = result.patient.removeprefix("Patient/")
    todo = unknowns(result, definition) if result.status == Status.CANDIDATE else []
    short, site = study.said("short_title", lang), study.said("site", lang)
    label = fit(f"{short} · {site}" if site else short, 200)
    source: dict = {"label": label, "topic": {"system": TOPIC_SYSTEM, "code": "trial-recruitment",
                                              "display": render(TOPIC(), lang)}}
    registry = registry_url(study, settings)
    if registry:
        source["url"] = registry
    card: dict = {
        "uuid": card_uuid,
        "summary": summary(result, study, lang),
        "detail": detail(result, definition, lang, todo=todo),
        "indicator": "info",
        "source": source,
        "overrideReasons": [{"system": OVERRIDE_SYSTEM, "code": c, "display": render(m(), lang)}
                            for c, m in OVERRIDE_REASONS],
    }
    offered = list(suggestions)
    if result.status == Status.CANDIDATE:
        tests = test_suggestion(result, definition, today, lang, new_uuid, todo)
        if tests is not None:
            offered.append(tests)
    if settings.referral:
        offered.append(referral_suggestion(result, study, settings, today, lang, new_uuid))
    if offered:
        card["suggestions"] = offered
        card["selectionBehavior"] = "any"
    links = []
    if explanation_url:
        links.append({"label": render(LINK_EXPLANATION(), lang), "url": explanation_url, "type": "absolute"})
    if registry:
        links.append({"label": render(LINK_REGISTRY(study=study.value), lang), "url": registry, "type": "absolute"})
    if settings.links:
        context = json.dumps({"study": study.value, "patient": patient_id, "status": result.status,
                              "card": card_uuid}, separators=(",", ":"))
        links += [_link(link, patient_id, context) for link in settings.links]
    if links:
        card["links"] = links
    return card


def card_sizes(card: dict) -> tuple[int, int]:
    """(summary, detail) lengths in characters, as the size limits count them."""
    return len(card.get("summary", "")), len(card.get("detail", ""))


__all__ = ["DETAIL_MAX", "OVERRIDE_REASONS", "OVERRIDE_SYSTEM", "SUMMARY_MAX", "Gate", "Unknown", "build_card",
           "card_sizes", "detail", "fit", "gate", "md", "referral", "registry_url", "status_lines", "study_subjects",
           "summary", "test_order", "test_suggestion", "tests_to_settle", "unknowns"]
