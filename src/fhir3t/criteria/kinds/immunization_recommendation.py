"""`immunization-recommendation`: an ImmunizationRecommendation (due/overdue) for a vaccine in the value set."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Kind, Rule, unless_unread
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET
from fhir3t.records.build import status_code
from fhir3t.records.plan import Read, read
from fhir3t.terminology import ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context
    from fhir3t.criteria.load import Builder


@dataclass
class RecommendationRule(Kind):
    vs: ValueSet
    label: str = "planned live vaccine"

    kind = "immunization-recommendation"
    params: ClassVar[dict[str, Any]] = {"valueset": {"type": "string"}}
    required = ("valueset",)

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(b.vs(spec["valueset"]), spec.get("label") or "planned live vaccine")

    def reads(self) -> Iterable[Read]:
        # the vaccine codes sit inside `recommendation`: every recommendation is read
        yield read("ImmunizationRecommendation", None, "recommendation", "date", complete=True)

    def evaluate(self, ctx: Context) -> Outcome:
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
                    return Outcome(MET, (r.ref,), f"{self.label}: {ctx.tx.systems.name(hit[0])} {hit[1]} recommended "
                                                  f"({forecast or 'no forecast status'})")
        return unless_unread(Outcome(NOT_MET, (), f"no {self.label} record found"), ctx,
                             ("ImmunizationRecommendation",), None)
