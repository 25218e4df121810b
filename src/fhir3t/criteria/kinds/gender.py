"""`gender`: Patient.gender is one of a list (absent counts as 'unknown'; a non-R4 code is unknown)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Label, Rule, code_word
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET, UNKNOWN
from fhir3t.messages import Message, Msg, many, reason
from fhir3t.r4facts import r4_facts
from fhir3t.records.plan import Read, read

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

NOT_R4 = Message("gender.not-r4", "Patient.gender is not an R4 gender code")
CORRECT_IT = Message("gender.correct-it", "correct it to decide")
GENDER = Message("gender.is", "gender {gender}")
DESCRIBE = Message("gender.describe", "gender is {genders}")


@dataclass
class Gender(Kind):
    genders: frozenset[str]
    label: Label = "sex"

    kind = "gender"
    params: ClassVar[dict[str, Any]] = {"in": {"type": "array", "minItems": 1, "items": {"enum": ["male", "female", "other", "unknown"]}}}
    required = ("in",)

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(frozenset(spec["in"]), spec.get("label") or "sex")

    def reads(self) -> Iterable[Read]:
        yield read("Patient", None, "gender")

    def evaluate(self, ctx: Context) -> Outcome:
        raw = (ctx.record.patient or {}).get("gender")
        ev = (ctx.patient_ref,) if ctx.record.patient else ()
        if raw is not None and (not isinstance(raw, str) or raw not in (r4_facts().codes_of("Patient", "gender") or ())):
            return Outcome(UNKNOWN, ev, reason(NOT_R4(), CORRECT_IT()))
        g = raw if isinstance(raw, str) and raw else "unknown"
        return Outcome(MET if g in self.genders else NOT_MET, ev, reason(GENDER(gender=code_word("gender", g))))

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return DESCRIBE(genders=many((code_word("gender", g) for g in sorted(self.genders)), "or"))
