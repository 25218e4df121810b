"""`age`: age in completed years at as_of, from Patient.birthDate (partial dates cover their span)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Rule
from fhir3t.criteria.model import Outcome
from fhir3t.dates import age_on
from fhir3t.errors import ConfigError
from fhir3t.logic import MET, NOT_MET, UNKNOWN
from fhir3t.records.build import span_of
from fhir3t.records.plan import Read, read

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context


@dataclass
class Age(Kind):
    """met if age >= `min_years` (or < `below_years`); a partial birth date decides only if every day agrees."""

    min_years: int | None = None
    below_years: int | None = None
    label: str = "age"

    kind = "age"
    params: ClassVar[dict[str, Any]] = {"min_years": {"type": "integer", "minimum": 0}, "below_years": {"type": "integer", "minimum": 0}}

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        if ("min_years" in spec) == ("below_years" in spec):
            raise ConfigError(f"{b.at}: age needs exactly one of min_years, below_years")
        return cls(spec.get("min_years"), spec.get("below_years"), spec.get("label") or "age")

    def reads(self) -> Iterable[Read]:
        yield read("Patient", None, "birthDate")

    def _test(self, age: int) -> bool:
        if self.min_years is not None:
            return age >= self.min_years
        assert self.below_years is not None
        return age < self.below_years

    def _want(self) -> str:
        return f"{self.min_years} or older" if self.min_years is not None else f"under {self.below_years}"

    def evaluate(self, ctx: Context) -> Outcome:
        p = ctx.record.patient or {}
        ev = (ctx.patient_ref,) if ctx.record.patient else ()
        birth = p.get("birthDate")
        if birth is None:
            return Outcome(UNKNOWN, ev, f"no birth date recorded: record it to decide 'age {self._want()}'")
        span = span_of(birth)
        if span is None:
            return Outcome(UNKNOWN, ev, f"the birth date cannot be read: correct it to decide 'age {self._want()}'")
        oldest, youngest = age_on(span.lo, ctx.as_of), age_on(span.hi, ctx.as_of)
        a, b = self._test(oldest), self._test(youngest)
        if a == b:
            shown = f"{youngest}" if oldest == youngest else f"{youngest}-{oldest} (birth date {span})"
            return Outcome(MET if a else NOT_MET, ev, f"age {shown} at {ctx.as_of} ({self._want()} required)")
        return Outcome(UNKNOWN, ev, f"birth date {span} gives age {youngest} or {oldest} at {ctx.as_of}: "
                                    f"the full birth date decides 'age {self._want()}'")
