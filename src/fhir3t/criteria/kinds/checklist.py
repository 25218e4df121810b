"""`checklist`: an answer in the most recent completed screening checklist (QuestionnaireResponse)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Label, Rule, most_recent_first, recency, text_arg, when
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET, RESULT_WORDS, UNKNOWN, Tri
from fhir3t.messages import Message, Msg, Text, many, reason
from fhir3t.records.plan import Read, read
from fhir3t.textnorm import clip

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

ASK = Message("checklist.ask", "answer '{item}' in the screening checklist (Questionnaire {questionnaire})")
UNREADABLE = Message("checklist.unreadable", "a checklist response cannot be read ({why})")
NONE = Message("checklist.none", "no completed screening checklist")
NO_ANSWER = Message("checklist.no-answer", "checklist {when} has no yes/no answer for '{item}'")
YES = Message("checklist.yes", "checklist {when}: {item} = yes")
NO = Message("checklist.no", "checklist {when}: {item} = no")
MIXED = Message("checklist.mixed", "checklist {when} answers '{item}' more than once, not all the same yes or no")
VERSION = Message("checklist.version", "a checklist response answers version '{version}' of the checklist, "
                                       "not the one fhir3t reads ({known})")
CONFLICT = Message("checklist.conflict", "{n} checklists of the same time ({when}) answer '{item}' differently")
_MIXED = object()
DESCRIBE = Message("checklist.describe", "the most recent completed screening checklist answers '{item}': "
                                         "yes gives {yes}, no gives {no}")


@dataclass
class Checklist(Kind):
    link_id: str
    questionnaire: str
    on_true: Tri = MET
    on_false: Tri = NOT_MET
    label: Label = ""
    #: versions of the Questionnaire fhir3t knows: a response naming another (`url|version`) is not read
    versions: frozenset[str] = frozenset()

    kind = "checklist"
    params: ClassVar[dict[str, Any]] = {"link_id": {"type": "string"}, "on_true": {"enum": ["met", "not-met", "unknown"]},
              "on_false": {"enum": ["met", "not-met", "unknown"]}}
    required = ("link_id",)

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(spec["link_id"], b.checklist, spec.get("on_true", "met"), spec.get("on_false", "not-met"),
                   spec.get("label", ""), b.checklist_versions)

    def reads(self) -> Iterable[Read]:
        yield read("QuestionnaireResponse", None, "status", "questionnaire", "authored", "item")

    def _items(self, items: object) -> Iterator[dict]:
        """Every item of this linkId, at any depth (in groups, and under answers)."""
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            if item.get("linkId") == self.link_id:
                yield item
            for ans in _list(item.get("answer")):
                if isinstance(ans, dict) and ans.get("item"):
                    yield from self._items(ans["item"])
            yield from self._items(item.get("item"))

    def _answer(self, qr: dict) -> bool | object | None:
        """The one yes/no a response gives for the item: True or False; None when it gives none; _MIXED when
        it answers more than once and not all the same yes or no, or beside an answer that is no yes/no
        (a string, a coding, an absent value): a reading of one part would pass over the rest."""
        answers = [a for item in self._items(qr.get("item")) for a in _list(item.get("answer"))]
        values = [a.get("valueBoolean") if isinstance(a, dict) else None for a in answers]
        if not any(type(v) is bool for v in values):
            return None
        return values[0] if all(v is values[0] for v in values) else _MIXED  # (1 == True: compared by identity)

    def evaluate(self, ctx: Context) -> Outcome:
        ask = ASK(item=self.item, questionnaire=self.questionnaire.rsplit("/", 1)[-1])
        qrs = [r for r in ctx.visible("QuestionnaireResponse")
               if r.raw.get("status") in ("completed", "amended")
               and isinstance(r.raw.get("questionnaire"), str)
               and r.raw["questionnaire"].split("|")[0].rstrip("/").endswith(self.questionnaire)]
        if not qrs:
            unread = [r for r in ctx.record.unread_of("QuestionnaireResponse") if not r.dated_after(ctx.as_of)]
            if unread:
                return Outcome(UNKNOWN, (unread[0].ref,), reason(UNREADABLE(why=unread[0].why), ask))
            return self._once("none", lambda: Outcome(UNKNOWN, (), reason(NONE(), ask)))
        ranked = most_recent_first(qrs)
        latest = ranked[0]
        tied = [r for r in ranked if recency(r) == recency(latest)]  # the same time: none is the latest
        for r in tied:
            version = self._other_version(r.raw["questionnaire"])
            if version is not None:  # another version of the checklist may ask another question under this linkId
                return Outcome(UNKNOWN, (r.ref,), reason(VERSION(
                    version=clip(version, 40), known=many(sorted(self.versions)) if self.versions else "-"), ask))
        given = [(r, a) for r in tied if (a := self._answer(r.raw)) is not None]
        if not given:
            return Outcome(UNKNOWN, (latest.ref,), reason(NO_ANSWER(when=when(latest.span), item=self.item), ask))
        first, value = given[0]
        if value is _MIXED:
            return Outcome(UNKNOWN, (first.ref,), reason(MIXED(when=when(first.span), item=self.item), ask))
        if any(a != value for _r, a in given):
            return Outcome(UNKNOWN, tuple(r.ref for r, _a in given),
                           reason(CONFLICT(n=len(given), when=when(first.span), item=self.item), ask))
        return Outcome(self.on_true if value else self.on_false, tuple(r.ref for r, _a in given),
                       reason((YES if value else NO)(when=when(first.span), item=self.item)))

    def _other_version(self, canonical: str) -> str | None:
        """The version a response's `questionnaire` names (`url|version`) when it is none fhir3t knows, else None."""
        _url, bar, version = canonical.partition("|")
        return version.strip() or "?" if bar and version.strip() not in self.versions else None

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return DESCRIBE(item=self.item, yes=RESULT_WORDS[self.on_true](), no=RESULT_WORDS[self.on_false]())

    @property
    def item(self) -> Text | str:
        """How reasons name the item: the criteria file's label, else its linkId."""
        return text_arg(self.label) or self.link_id


def _list(value: object) -> list:
    """An element R4 repeats, as a list (one written without its array is one; anything else, none)."""
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []
