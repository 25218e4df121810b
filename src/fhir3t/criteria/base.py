"""The rule node every criterion tree is built of, and what leaves have in common.

A leaf is a *rule kind* (one module each under `criteria/kinds/`): it declares its parameters (its
piece of JSON Schema), how it is built from the criteria file, how it evaluates, and — mandatory —
what it reads (`reads()`), from which the read filter and the record builder decide what to keep.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from fhir3t.criteria.model import Outcome
from fhir3t.criteria.readings import Readings
from fhir3t.criteria.suspects import describe_suspect, split_codes
from fhir3t.dates import Span
from fhir3t.logic import NOT_MET, UNKNOWN, Tri
from fhir3t.messages import Message, Msg, Plural, Text, clause, many, table
from fhir3t.records.model import Res
from fhir3t.records.plan import Read
from fhir3t.terminology import Terminology, ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec


class Builder(Protocol):
    """What a rule kind's `build` may ask while its tree is built (criteria/load.py implements it)."""

    tx: Terminology
    at: str
    checklist: str
    #: the versions of the checklist Questionnaire the study ships (a response to another one is not read)
    checklist_versions: frozenset[str]
    readings: Readings

    def vs(self, vs_id: str) -> ValueSet:
        """A value set the rule reads (recorded for the checker)."""

    def window(self, spec: dict) -> str:
        """The name of the window `spec` uses, checked to be defined."""

    def fold(self, text: str) -> str:
        """Text folded for matching (case, width, spaces)."""


class Rule(ABC):
    """A node of a criterion's rule tree."""

    label: Label = ""

    @abstractmethod
    def evaluate(self, ctx: Context) -> Outcome:
        """met / not-met / unknown for one patient, with evidence and a reason."""

    @abstractmethod
    def reads(self) -> Iterable[Read]:
        """Every resource type (and value set, elements) this rule reads. Mandatory: what is not
        declared is dropped before the rule sees it."""

    @abstractmethod
    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        """What the rule asks, in words generated from its parameters (OHDSI Circe's print-friendly
        idea): the criterion's description is this, never text written beside a threshold."""

    def _once(self, key: object, make: Callable[[], Outcome]) -> Outcome:
        """Outcomes that depend only on `key` (the absent-record ones) are built once per run."""
        cache = self.__dict__.setdefault("_memo", {})
        hit = cache.get(key)
        if hit is None:
            if len(cache) >= 256:
                cache.clear()
            hit = cache[key] = make()
        return hit


class Kind(Rule):
    """A leaf rule kind, registered under `kind` (the criteria file's `"rule": ...`)."""

    kind: ClassVar[str]
    #: JSON Schema properties of the kind's own parameters (`rule`, `label`, `note` are common)
    params: ClassVar[dict[str, Any]] = {}
    required: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        """The rule for one leaf of the criteria file (already checked against its schema)."""

    @classmethod
    def schema(cls) -> dict[str, Any]:
        props = {"rule": {"const": cls.kind}, "label": LABEL_SCHEMA, "note": {"type": "string"},
                 **cls.params}
        return {"type": "object", "required": ["rule", *cls.required], "properties": props,
                "additionalProperties": False}


# ---------------------------------------------------------------- shared helpers
ON_DAY = Message("when.on", "on {day}")
UNDATED = Message("when.undated", "(undated)")
ORDER_TEST = Message("settle.order-test", "order {test} ({code}) at screening")
ORDER_LOCAL = Message("settle.order-local", "order {test} ({code}; at this hospital: {local}) at screening")
LOCAL_TEST = Message("settle.local-test", "{display}, code {code}")
LOCAL_CODE = Message("settle.local-code", "code {code}")
RECORD_RESULT = Message("settle.record-result", "record a {test} result")
AS_WRITTEN = Message("text.as-written", "{text}")
UNREAD_CODE = Message("unread.code", "{record}{more} has {why}")
UNREAD_SUSPECT = Message("unread.suspect", "{record}{more} {what}")
UNREAD_SPLIT = Message("unread.split", "{record}{more} is coded {inside}, in the value set, and {outside}, which is not")
CODE_IT = Message("settle.code-it", "code it to decide")
CODE_OR_CONFIRM = Message("settle.code-or-confirm", "code or confirm it to decide")
GIVE_PATIENT = Message("settle.give-patient", "give it a reference to its patient to decide")
KEEP_CURRENT = Message("settle.keep-current", "keep only its current copy (or give the copies their meta.versionId) to decide")
UNREAD_NAMES = Message("unread.names", "{record}{more} has {why}, and its text names {name}")
UNREAD_ELSEWHERE = Message("unread.elsewhere", "{concept} named in {element} of {record}{more}, which no criterion "
                                               "reads there")
UNREAD_STRAY = Message("unread.stray", "{record}{more} is coded {concept} in {element}, under no code system fhir3t "
                                       "knows: a code the value set lists")
AND_MORE = Plural("unread.more", " and {n} more", " and {n} more")
AN_ENTRY = Message("unread.entry", "an entry of the input that cannot be read (see the input problems)")


#: FHIR R4 status and gender codes as a person reads them (the English is the code itself, as reasons have always
#: written it); `code_word` picks the table of the element the code came from
CODE_WORDS = {
    "medication": table("code.medication", {
        "active": "active", "completed": "completed", "entered-in-error": "entered-in-error", "intended": "intended",
        "stopped": "stopped", "on-hold": "on-hold", "unknown": "unknown", "not-taken": "not-taken",
        "cancelled": "cancelled", "draft": "draft", "preparation": "preparation", "in-progress": "in-progress",
        "declined": "declined", "not-done": "not-done",
    }),
    "clinical": table("code.clinical", {
        "active": "active", "recurrence": "recurrence", "relapse": "relapse", "inactive": "inactive",
        "remission": "remission", "resolved": "resolved",
    }),
    "verification": table("code.verification", {
        "unconfirmed": "unconfirmed", "provisional": "provisional", "differential": "differential",
        "confirmed": "confirmed", "refuted": "refuted", "entered-in-error": "entered-in-error",
    }),
    "gender": table("code.gender", {"male": "male", "female": "female", "other": "other", "unknown": "unknown"}),
    "forecast": table("code.forecast", {
        "due": "due", "overdue": "overdue", "immune": "immune", "contraindicated": "contraindicated",
        "complete": "complete",
    }),
}


def code_word(kind: str, code: str) -> Msg | str:
    """A status or gender code of `kind` (medication, clinical, verification, gender, forecast) as a person reads
    it; a code that is not one of R4's is shown as written."""
    m = CODE_WORDS[kind].get(code)
    return m() if m is not None else code


#: a code a reason names, with the concept's name where the value set gives one in the reader's language
CODE_NAMED = Message("reason.code-named", "{name} ({code})")


def code_name(res: Res, vs: ValueSet, tx: Terminology) -> str | Text:
    """'ICD-10-CM M33.10' style short name of the matching code, for reasons. English shows the code as written
    (as it always has); a language whose name the value set gives for the concept (a zh-CN designation) shows
    both: 他克莫司（RxNorm 42316）."""
    from fhir3t.messages import render

    for code in res.codes:
        if code in vs:
            shown = f"{tx.systems.name(code[0])} {code[1]}"
            names = vs.displays.get(code)
            if names is None:
                return shown
            return Text.of(shown, {lang: render(CODE_NAMED(name=name, code=shown), lang)
                                   for lang, name in names.texts[1:]})
    return res.type


def when(span: Span | None) -> Msg:
    """'on 2026-11-01' or '(undated)', to follow a finding."""
    return ON_DAY(day=str(span)) if span is not None else UNDATED()


def recency(r: Res) -> tuple[date, date, str]:
    """What orders records by time (latest last): their day span, then the date as written."""
    return (r.span.hi if r.span else date.min, r.span.lo if r.span else date.min, r.date_text or "")


def most_recent_first(items: list[Res]) -> list[Res]:
    return sorted(items, key=recency, reverse=True)


#: a name the criteria file gives (a label, a hint): a string, or {language: text} with "en"
Label = str | Mapping[str, str]
#: its schema (the kinds' `label` and `hint` parameters)
LABEL_SCHEMA: dict[str, Any] = {"oneOf": [
    {"type": "string"},
    {"type": "object", "required": ["en"], "minProperties": 1,
     "additionalProperties": {"type": "string", "minLength": 1}, "propertyNames": {"pattern": "^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"}},
]}


#: text_arg's answers by the identity of the label (kept beside it, so its id is not reused): labels
#: belong to the definition's rules and are asked for on every evaluation (4.7 % of a 10 000-patient run)
_LABELS: dict[int, tuple[object, Text | None]] = {}


def text_arg(value: Label | Text | None) -> Text | None:
    """A name from the criteria file (a label, a hint) as a Text, or None."""
    if value is None or isinstance(value, Text):
        return value
    hit = _LABELS.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    if isinstance(value, Mapping):
        out = Text.of(value["en"], value) if value.get("en") else None
    else:
        out = Text.of(value) if value else None
    if len(_LABELS) >= 10_000:
        _LABELS.clear()
    _LABELS[id(value)] = (value, out)
    return out


def local_tests(vs: ValueSet, tx: Terminology, limit: int = 3) -> list[Msg]:
    """The hospital's own tests for the set's concept, by the reverse of its ConceptMaps: the local codes mapped
    (equivalent / equal) to the first listed code that has any, as the map names them (display, code)."""
    for code in vs.exact_codes():
        found = tx.maps.local_codes(code)
        if found:
            return [LOCAL_TEST(display=display.strip(), code=local) if display else LOCAL_CODE(code=local)
                    for (_system, local), display in found[:limit]]
    return []


def settle_hint(vs: ValueSet, tx: Terminology, hint: Text | None, test: Text) -> Msg:
    """What would settle a missing result: the criteria file's hint, else 'order <test> (<code>) at
    screening', naming the test as the rule does and its code, and the hospital's own test and code where a
    ConceptMap maps one to it (so the coordinator can order exactly that)."""
    if hint is not None:
        return AS_WRITTEN(text=hint)
    code = vs.first_code()
    if code is None:
        return RECORD_RESULT(test=test)
    shown = f"{tx.systems.name(code[0])} {code[1]}"
    local = local_tests(vs, tx)
    if local:
        return ORDER_LOCAL(test=test, code=shown, local=many(local, "; "))
    return ORDER_TEST(test=test, code=shown)


#: a reference as a reason may show it: Type/id (a contained #part too), or a Bundle's urn
_REFERENCE = re.compile(r"(?:[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}(?:#[A-Za-z0-9\-.]{1,64})?|urn:(?:uuid|oid):[\w.\-]+)")


def record_name(res: Res) -> Msg | str:
    """How a reason names a record: its reference, or (for an entry that has none, located only by a file
    path, which belongs in the evidence and the problems list) 'an entry of the input'."""
    return res.ref if _REFERENCE.fullmatch(res.ref) else AN_ENTRY()


def unless_unread(out: Outcome, ctx: Context, types: Iterable[str], vs: ValueSet | None,
                  judge: Callable[[Res], Tri] | None = None, *, judge_any: bool = False) -> Outcome:
    """A not-met that rests on absence is unknown while a record that could be the one cannot be read.

    The spec takes the EHR as complete for diagnoses, drugs and allergies; a Condition coded only in
    text, a drug coded with an RxNorm product code, a record whose status is not an R4 code might be
    exactly the one the rule looks for. `judge` tells what such a record would give if it did match
    (a resolved 1999 Condition cannot make an 'active' rule met); it is asked only where the record's
    other elements can be read.
    """
    if out.result != NOT_MET:
        return out
    found = ctx.doubtful(types, vs, judge, every=True, judge_any=judge_any)
    if not found:
        return out
    first = found[0]
    refs = tuple(dict.fromkeys(r.ref for r in found))  # copies of one record are one record
    more = AND_MORE(len(refs) - 1) if len(refs) > 1 else None
    hit = first.hit(vs) if vs is not None else None
    split = split_codes(first, vs) if vs is not None else None
    if split is not None:
        extra = clause(UNREAD_SPLIT(record=record_name(first), more=more, inside=_shown(split[0], ctx.tx),
                                    outside=_shown(split[1], ctx.tx)), CODE_OR_CONFIRM())
    elif hit is not None and hit.stray:
        extra = clause(UNREAD_STRAY(concept=hit.shown, element=hit.element, record=record_name(first), more=more),
                       CODE_OR_CONFIRM())
    elif hit is not None:
        extra = clause(UNREAD_ELSEWHERE(concept=hit.shown, element=hit.element, record=record_name(first), more=more),
                       CODE_OR_CONFIRM())
    elif first.bad in ("code", "medication[x]") and first.why is not None and vs is not None \
            and (name := vs.named_in(first.texts)) is not None:  # not coded, but its text says which drug or diagnosis
        extra = clause(UNREAD_NAMES(record=record_name(first), more=more, why=first.why, name=name), CODE_IT())
    elif first.bad == "code" and first.why is not None:
        extra = clause(UNREAD_CODE(record=record_name(first), more=more, why=first.why), CODE_IT())
    else:
        extra = clause(UNREAD_SUSPECT(record=record_name(first), more=more, what=describe_suspect(first, ctx.tx)),
                       KEEP_CURRENT() if first.bad == "version" else GIVE_PATIENT() if first.bad == "patient"
                       else CODE_OR_CONFIRM())
    return Outcome(UNKNOWN, tuple(dict.fromkeys(out.evidence + refs)), (*out.reason, extra))


def _shown(code: tuple[str, str], tx: Terminology) -> str:
    return f"{tx.systems.name(code[0])} {code[1]}"
