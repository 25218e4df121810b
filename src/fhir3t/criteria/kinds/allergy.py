"""`allergy`: an AllergyIntolerance to a drug in the value set (optionally only if still active)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Label, Rule, code_name, text_arg, unless_unread
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET, Tri
from fhir3t.messages import Message, Msg, Text, reason
from fhir3t.messages.reasons import absent
from fhir3t.records.build import status_code
from fhir3t.records.model import Res
from fhir3t.records.plan import Read, read
from fhir3t.terminology import ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

RECORDED = Message("allergy.recorded", "{title}: {code} recorded")
ONLY_INACTIVE = Message("allergy.only-inactive", "{title}: only inactive/resolved records")
ALLERGY_TO = Message("allergy.to", "allergy to {drug}")
DESCRIBE = Message("allergy.describe", "an AllergyIntolerance to {drugs}, whatever its clinical status")
DESCRIBE_ACTIVE = Message("allergy.describe-active", "an active AllergyIntolerance to {drugs}")


@dataclass
class AllergyRule(Kind):
    vs: ValueSet
    active_only: bool = True
    label: Label = ""

    kind = "allergy"
    params: ClassVar[dict[str, Any]] = {"valueset": {"type": "string"}, "active_only": {"type": "boolean"}}
    required = ("valueset",)

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(b.vs(spec["valueset"]), bool(spec.get("active_only", True)), spec.get("label", ""))

    def reads(self) -> Iterable[Read]:
        yield read("AllergyIntolerance", self.vs, "code", "clinicalStatus", "verificationStatus", "onset[x]",
                   "recordedDate", complete=True)

    @property
    def title(self) -> Text | Msg:
        return text_arg(self.label) or ALLERGY_TO(drug=self.vs.name_text)

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return (DESCRIBE_ACTIVE if self.active_only else DESCRIBE)(drugs=self.vs.name_text)

    def _inactive(self, r: Res) -> bool:
        return self.active_only and status_code(r.raw.get("clinicalStatus")) in ("inactive", "resolved")

    def evaluate(self, ctx: Context) -> Outcome:
        title = self.title
        hits = [r for r in ctx.visible("AllergyIntolerance") if any(c in self.vs for c in r.codes)]
        live = [r for r in hits if not self._inactive(r)]
        if live:
            return Outcome(MET, tuple(r.ref for r in live), reason(RECORDED(title=title, code=code_name(live[0], self.vs, ctx.tx))))
        if hits:
            out = Outcome(NOT_MET, tuple(r.ref for r in hits), reason(ONLY_INACTIVE(title=title)))
        else:
            out = self._once("absent", lambda: Outcome(NOT_MET, (), absent(title)))

        def judge(r: Res) -> Tri:
            return NOT_MET if self._inactive(r) else MET

        return unless_unread(out, ctx, ("AllergyIntolerance",), self.vs, judge)
