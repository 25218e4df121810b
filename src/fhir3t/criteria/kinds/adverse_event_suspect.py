"""`adverse-event-suspect`: an actual AdverseEvent whose suspect entity is a drug in the value set."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Rule, unless_unread, when
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET
from fhir3t.records.plan import Read, read
from fhir3t.terminology import ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context


@dataclass
class AdverseEventSuspect(Kind):
    vs: ValueSet
    label: str = ""

    kind = "adverse-event-suspect"
    params: ClassVar[dict[str, Any]] = {"valueset": {"type": "string"}}
    required = ("valueset",)

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(b.vs(spec["valueset"]), spec.get("label", ""))

    def reads(self) -> Iterable[Read]:
        # suspectEntity.instance points at a medication record / Medication: the builder resolves it
        yield read("AdverseEvent", self.vs, "actuality", "suspectEntity", "contained", "date", "detected",
                   "recordedDate", complete=True)

    def evaluate(self, ctx: Context) -> Outcome:
        hits = [r for r in ctx.visible("AdverseEvent")
                if r.raw.get("actuality") != "potential" and any(c in self.vs for c in r.codes)]
        title = self.label or f"adverse event suspected of {self.vs.title}"
        if hits:
            return Outcome(MET, tuple(r.ref for r in hits), f"{title}{when(hits[0].span)}")
        absent = Outcome(NOT_MET, (), f"no {title} record found")
        return unless_unread(absent, ctx, ("AdverseEvent",), self.vs,
                             lambda r: NOT_MET if r.raw.get("actuality") == "potential" else MET)
