"""`adverse-event-suspect`: an actual AdverseEvent whose suspect entity is a drug in the value set."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Label, Rule, text_arg, unless_unread, when
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET
from fhir3t.messages import Message, Msg, Text, reason
from fhir3t.messages.reasons import absent
from fhir3t.records.plan import Read, read
from fhir3t.terminology import ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

FOUND = Message("ae-suspect.found", "{title} {when}")
SUSPECTED_OF = Message("ae-suspect.of", "adverse event suspected of {drugs}")
DESCRIBE = Message("ae-suspect.describe", "an AdverseEvent (actual, not potential) naming {drugs} as suspect")


@dataclass
class AdverseEventSuspect(Kind):
    vs: ValueSet
    label: Label = ""

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
        title = self.title
        if hits:
            return Outcome(MET, tuple(r.ref for r in hits), reason(FOUND(title=title, when=when(hits[0].span))))
        none = self._once("absent", lambda: Outcome(NOT_MET, (), absent(title)))
        return unless_unread(none, ctx, ("AdverseEvent",), self.vs,
                             lambda r: NOT_MET if r.raw.get("actuality") == "potential" else MET)

    @property
    def title(self) -> Text | Msg:
        return text_arg(self.label) or SUSPECTED_OF(drugs=self.vs.name_text)

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return DESCRIBE(drugs=self.vs.name_text)
