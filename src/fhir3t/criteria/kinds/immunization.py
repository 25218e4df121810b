"""`immunization`: a completed Immunization (any vaccine, or one in a value set) dated within the window."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Label, Rule, text_arg, unless_unread
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri, k_or
from fhir3t.messages import Message, Msg, reason
from fhir3t.messages.reasons import absent
from fhir3t.records.model import Res
from fhir3t.records.plan import Read, read
from fhir3t.terminology import ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

GIVEN = Message("immunization.given", "{title} {code} on {day}, within {window}")
UNDATED = Message("immunization.undated", "{title} with no usable date")
RECORD_WHEN = Message("immunization.record-when", "record when it was given")
NONE_WITHIN = Message("immunization.none-within", "no {title} within {window}")
DESCRIBE = Message("immunization.describe", "a completed {what} {window}")

VACCINATION = Message("label.vaccination", "vaccination")
UNKNOWN_VACCINE = Message("immunization.unknown-vaccine", "unknown vaccine")


@dataclass
class ImmunizationRule(Kind):
    window: str
    vs: ValueSet | None = None
    label: Label = ""

    kind = "immunization"
    params: ClassVar[dict[str, Any]] = {"window": {"type": "string"}, "valueset": {"type": "string"}}
    required = ("window",)

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(b.window(spec), b.vs(spec["valueset"]) if "valueset" in spec else None,
                   spec.get("label") or "")

    def reads(self) -> Iterable[Read]:
        yield read("Immunization", self.vs, "status", "vaccineCode", "occurrence[x]", complete=True)

    def evaluate(self, ctx: Context) -> Outcome:
        window = ctx.window(self.window)
        hits = [r for r in ctx.visible("Immunization")
                if r.raw.get("status") in ("completed", "amended") and (self.vs is None or any(c in self.vs for c in r.codes))]
        title = text_arg(self.label) or VACCINATION()

        def judge(r: Res) -> Tri:  # only the date matters: one wholly outside the window cannot be the one
            return window.contains(r.span) if r.span is not None else UNKNOWN

        if not hits:
            return unless_unread(self._once("absent", lambda: Outcome(NOT_MET, (), absent(title))), ctx,
                                 ("Immunization",), self.vs, judge, judge_any=True)
        judged = [(r, window.contains(r.span) if r.span else UNKNOWN) for r in hits]
        result = k_or(t for _, t in judged)
        deciding = [r for r, t in judged if t == result]
        if result == MET:
            r = deciding[0]
            code: Msg | str = r.codes[0][1] if r.codes else UNKNOWN_VACCINE()
            return Outcome(MET, tuple(x.ref for x in deciding),
                           reason(GIVEN(title=title, code=code, day=str(r.span), window=str(window))))
        if result == UNKNOWN:
            return Outcome(UNKNOWN, tuple(x.ref for x in deciding), reason(UNDATED(title=title), RECORD_WHEN()))
        return unless_unread(Outcome(NOT_MET, (), reason(NONE_WITHIN(title=title, window=str(window)))), ctx,
                             ("Immunization",), self.vs, judge, judge_any=True)

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        what = text_arg(self.label) or VACCINATION()
        return DESCRIBE(what=what, window=windows[self.window].describe())
