"""`immunization-recommendation`: an ImmunizationRecommendation (due/overdue) for a vaccine in the value set."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Rule, unless_unread
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET, UNKNOWN
from fhir3t.records.build import status_code
from fhir3t.records.concepts import concept_texts
from fhir3t.records.plan import Read, read
from fhir3t.terminology import ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context


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
        doubtful: list[tuple[str, str]] = []
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
                why = self._unreadable(vaccines, codes, ctx)
                if why:
                    doubtful.append((r.ref, why))
        if doubtful:
            ref, why = doubtful[0]
            return Outcome(UNKNOWN, tuple(dict.fromkeys(x for x, _ in doubtful)),
                           f"{ref} recommends a vaccine {why}: code it (CVX / ATC) to decide whether it is live")
        return unless_unread(Outcome(NOT_MET, (), f"no {self.label} record found"), ctx,
                             ("ImmunizationRecommendation",), None)

    def _unreadable(self, vaccines: object, codes: list, ctx: Context) -> str:
        """Why a recommended vaccine not coded in the set could still be a live one ('' if it cannot)."""
        concepts = [cc for cc in vaccines if isinstance(cc, dict)] if isinstance(vaccines, list) else []
        texts = tuple(t for cc in concepts for t in concept_texts(cc))
        closed = ctx.tx.systems.closed
        if any(c[0] in closed and self.vs.considers(c) for c in codes):
            return ""  # a CVX / ATC code decides by itself
        name = self.vs.named_in(texts)
        if name:
            return f"named '{name}' but coded outside the live-vaccine value set"
        if not any(ctx.tx.systems.known(c[0]) for c in codes):
            return "coded in no system fhir3t can read" if codes else "with no code"
        return ""
