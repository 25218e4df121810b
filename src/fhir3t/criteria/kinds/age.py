"""`age`: age in completed years at as_of, from Patient.birthDate (partial dates cover their span)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import KEEP_CURRENT, Builder, Kind, Label, Rule
from fhir3t.criteria.model import Outcome
from fhir3t.dates import age_on
from fhir3t.errors import ConfigError
from fhir3t.logic import MET, NOT_MET, UNKNOWN
from fhir3t.messages import Message, Msg, reason
from fhir3t.records.build import span_of
from fhir3t.records.plan import Read, read

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

OR_OLDER = Message("age.or-older", "{years} or older")
NEEDS_ONE = Message("criteria.age.needs-one", "{at}: age needs exactly one of min_years, below_years")
UNDER = Message("age.under", "under {years}")
NO_BIRTH_DATE = Message("age.no-birth-date", "no birth date recorded")
RECORD_IT = Message("age.record-it", "record it to decide 'age {want}'")
UNREADABLE = Message("age.unreadable", "the birth date cannot be read")
PATIENT_UNREAD = Message("age.patient-unread", "{record} {why}")
CORRECT_IT = Message("age.correct-it", "correct it to decide 'age {want}'")
AGE = Message("age.is", "age {age} at {day} ({want} required)")
AGE_RANGE = Message("age.range", "age {young}-{old} (birth date {birth}) at {day} ({want} required)")
AGE_EITHER = Message("age.either", "birth date {birth} gives age {young} or {old} at {day}")
FULL_DATE = Message("age.full-date", "the full birth date decides 'age {want}'")
COPIES_DIFFER = Message("age.copies-differ", "{record} is held in copies that give different birth dates, and neither "
                                             "meta.versionId nor meta.lastUpdated tells which is current")
DESCRIBE = Message("age.describe", "age in completed years at the screening date {want}")


@dataclass
class Age(Kind):
    """met if age >= `min_years` (or < `below_years`); a partial birth date decides only if every day agrees."""

    min_years: int | None = None
    below_years: int | None = None
    label: Label = "age"

    kind = "age"
    params: ClassVar[dict[str, Any]] = {"min_years": {"type": "integer", "minimum": 0}, "below_years": {"type": "integer", "minimum": 0}}

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        if ("min_years" in spec) == ("below_years" in spec):
            raise ConfigError(NEEDS_ONE(at=b.at))
        return cls(spec.get("min_years"), spec.get("below_years"), spec.get("label") or "age")

    def reads(self) -> Iterable[Read]:
        yield read("Patient", None, "birthDate")

    def _test(self, age: int) -> bool:
        if self.min_years is not None:
            return age >= self.min_years
        assert self.below_years is not None
        return age < self.below_years

    def _want(self) -> Msg:
        return OR_OLDER(years=self.min_years) if self.min_years is not None else UNDER(years=self.below_years)

    def evaluate(self, ctx: Context) -> Outcome:
        p = ctx.record.patient or {}
        ev = (ctx.patient_ref,) if ctx.record.patient else ()
        birth = p.get("birthDate")
        if ctx.record.patient_why is not None:
            return Outcome(UNKNOWN, ev, reason(PATIENT_UNREAD(record=ctx.patient_ref, why=ctx.record.patient_why),
                                               CORRECT_IT(want=self._want())))
        if "birthDate" in ctx.record.disputed:
            return Outcome(UNKNOWN, ev, reason(COPIES_DIFFER(record=ctx.patient_ref), KEEP_CURRENT()))
        if birth is None:
            return Outcome(UNKNOWN, ev, reason(NO_BIRTH_DATE(), RECORD_IT(want=self._want())))
        span = span_of(birth)
        if span is None:
            return Outcome(UNKNOWN, ev, reason(UNREADABLE(), CORRECT_IT(want=self._want())))
        oldest, youngest = age_on(span.lo, ctx.as_of), age_on(span.hi, ctx.as_of)
        a, b = self._test(oldest), self._test(youngest)
        if a == b:
            found = AGE(age=youngest, day=ctx.as_of, want=self._want()) if oldest == youngest else \
                AGE_RANGE(young=youngest, old=oldest, birth=str(span), day=ctx.as_of, want=self._want())
            return Outcome(MET if a else NOT_MET, ev, reason(found))
        return Outcome(UNKNOWN, ev, reason(AGE_EITHER(birth=str(span), young=youngest, old=oldest, day=ctx.as_of),
                                           FULL_DATE(want=self._want())))

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return DESCRIBE(want=self._want())
