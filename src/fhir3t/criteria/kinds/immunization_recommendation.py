"""`immunization-recommendation`: an ImmunizationRecommendation (due/overdue) for a vaccine in the value set."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Label, Rule, code_word, text_arg, unless_unread
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET, UNKNOWN
from fhir3t.messages import Message, Msg, Text, reason
from fhir3t.messages.reasons import absent
from fhir3t.records.build import status_code
from fhir3t.records.concepts import concept_texts
from fhir3t.records.plan import Read, read
from fhir3t.terminology import ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

RECOMMENDED = Message("recommendation.recommended", "{title}: {code} recommended ({forecast})")
NO_FORECAST = Message("recommendation.no-forecast", "no forecast status")
RECOMMENDS = Message("recommendation.recommends", "{record} recommends a vaccine {why}")
CODE_IT = Message("recommendation.code-it", "code it (CVX / ATC) to decide whether it is live")
NAMED_OUTSIDE = Message("recommendation.named-outside", "named '{name}' but coded outside the live-vaccine value set")
UNKNOWN_SYSTEM = Message("recommendation.unknown-system", "coded in no system fhir3t can read")
NO_CODE = Message("recommendation.no-code", "with no code")
DESCRIBE = Message("recommendation.describe", "a recommendation (not complete, immune or contraindicated) of {vaccines}")

PLANNED_LIVE = Message("label.planned-live-vaccine", "planned live vaccine")


@dataclass
class RecommendationRule(Kind):
    vs: ValueSet
    label: Label = ""

    kind = "immunization-recommendation"
    params: ClassVar[dict[str, Any]] = {"valueset": {"type": "string"}}
    required = ("valueset",)

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(b.vs(spec["valueset"]), spec.get("label") or "")

    def reads(self) -> Iterable[Read]:
        # the vaccine codes sit inside `recommendation`: every recommendation is read
        yield read("ImmunizationRecommendation", None, "recommendation", "date", complete=True)

    def evaluate(self, ctx: Context) -> Outcome:
        doubtful: list[tuple[str, Msg]] = []
        for r in ctx.visible("ImmunizationRecommendation"):
            recs = r.raw.get("recommendation")
            for rec in recs if isinstance(recs, list) else ():
                if not isinstance(rec, dict):
                    continue
                forecast = status_code(rec.get("forecastStatus"))
                if forecast in ("complete", "immune", "contraindicated"):
                    continue
                vaccines = rec.get("vaccineCode")
                codes = [c for cc in vaccines if isinstance(cc, dict) for c in ctx.tx.codes(cc)] \
                    if isinstance(vaccines, list) else []
                hit = next((c for c in codes if c in self.vs), None)
                if hit:
                    return Outcome(MET, (r.ref,), reason(RECOMMENDED(
                        title=self.title, code=f"{ctx.tx.systems.name(hit[0])} {hit[1]}",
                        forecast=code_word("forecast", forecast) if forecast else NO_FORECAST())))
                why = self._unreadable(vaccines, codes, ctx)
                if why:
                    doubtful.append((r.ref, why))
        if doubtful:
            ref, why = doubtful[0]
            return Outcome(UNKNOWN, tuple(dict.fromkeys(x for x, _ in doubtful)),
                           reason(RECOMMENDS(record=ref, why=why), CODE_IT()))
        return unless_unread(self._once("absent", lambda: Outcome(NOT_MET, (), absent(self.title))), ctx,
                             ("ImmunizationRecommendation",), None)

    @property
    def title(self) -> Text | Msg:
        return text_arg(self.label) or PLANNED_LIVE()

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return DESCRIBE(vaccines=self.vs.name_text)

    def _unreadable(self, vaccines: object, codes: list, ctx: Context) -> Msg | None:
        """Why a recommended vaccine not coded in the set could still be a live one ('' if it cannot)."""
        concepts = [cc for cc in vaccines if isinstance(cc, dict)] if isinstance(vaccines, list) else []
        texts = tuple(t for cc in concepts for t in concept_texts(cc))
        if any(self.vs.decides(c) for c in codes):
            return None  # a CVX / ATC code decides by itself
        name = self.vs.named_in(texts)
        if name:
            return NAMED_OUTSIDE(name=name)
        if not any(ctx.tx.systems.known(c[0]) for c in codes):
            return UNKNOWN_SYSTEM() if codes else NO_CODE()
        return None
