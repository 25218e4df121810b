"""Baseline of a subject at D1 (profiles/safety/baseline.json): age, sex, the graded labs' last values on or
before D1 (the shift tables start from their grade), and the listed conditions present at D1.

Pure: the engine grades the Observations (fhir3t.safety.grading) and hands the readings in.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from fhir3t.messages import Text
from fhir3t.records import Res, never_counts, span_of
from fhir3t.safety.episodes import order_key
from fhir3t.safety.grading import Reading
from fhir3t.safety.terms import icd_key, icd_match

ICD_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm"})


@dataclass(frozen=True)
class BaselineItem:
    id: str
    title: str
    icd: tuple[str, ...]
    snomed: frozenset[str]

    def matches(self, codes: Iterable[tuple[str, str]]) -> bool:
        codes = tuple(codes)
        return icd_match(codes, self.icd, ICD_SYSTEMS) or any(
            system == "http://snomed.info/sct" and code in self.snomed for system, code in codes)


@dataclass(frozen=True)
class BaselineData:
    lookback_days: int
    conditions: tuple[BaselineItem, ...]
    #: the conditions' titles in other languages, for what a person reads
    names: dict[str, Text] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> BaselineData:
        items = tuple(BaselineItem(c["id"], c["title"], tuple(icd_key(x) for x in c.get("icd10", ())),
                                   frozenset(map(str, c.get("snomed", ())))) for c in data["conditions"])
        return cls(int(data["lab_lookback_days"]), items,
                   {c["title"]: Text.of(c["title"], c.get("names")) for c in data["conditions"]})


@dataclass(frozen=True)
class Baseline:
    age: int | None  # whole years at D1 (None: no usable birthDate)
    sex: str  # male | female | unknown
    labs: dict[str, Reading] = field(default_factory=dict)  # test id -> last reading on or before D1
    conditions: tuple[str, ...] = ()  # ids of baseline.json conditions present at D1

    def to_dict(self) -> dict[str, Any]:
        return {"age": self.age, "sex": self.sex,
                "labs": {t: {"value": float(r.value), "unit": r.unit, "grade": r.grade, "day": r.day.isoformat()}
                         for t, r in sorted(self.labs.items())},
                "conditions": list(self.conditions)}


def age_at(birth: object, day: date) -> int | None:
    """Whole years from birthDate to `day`; a partial birthDate (year or year-month) uses its first possible day
    only when every day it may denote gives the same age, else None."""
    span = span_of(birth)
    if span is None:
        return None

    def years(b: date) -> int:
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))

    lo, hi = years(span.hi), years(span.lo)
    return lo if lo == hi else None


def last_before(readings: Iterable[Reading], d1: date, lookback_days: int) -> dict[str, Reading]:
    """Per test, the last reading on or before D1 and no more than `lookback_days` before it."""
    first_day = d1 - timedelta(days=lookback_days)
    out: dict[str, Reading] = {}
    for r in sorted(readings, key=order_key):
        if first_day <= r.day <= d1:
            out[r.test.id] = r
    return out


def conditions_at(conditions: Iterable[Res], d1: date, items: Iterable[BaselineItem]) -> tuple[str, ...]:
    """Ids of the listed conditions a Condition dated on or before D1 shows (not abated before D1)."""
    present: set[str] = set()
    items = tuple(items)
    for res in conditions:
        if res.span is None or res.span.lo > d1 or never_counts("Condition", res.raw):
            continue
        raw = res.raw
        abated = span_of(raw.get("abatementDateTime")) or span_of((raw.get("abatementPeriod") or {}).get("end")
                                                                   if isinstance(raw.get("abatementPeriod"), dict) else None)
        if abated is not None and abated.hi < d1:
            continue
        present.update(i.id for i in items if i.matches(res.codes))
    return tuple(i.id for i in items if i.id in present)
