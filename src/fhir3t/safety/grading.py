"""CTCAE v5.0 grading of one lab result (tables in profiles/safety/ctcae-v5-labs.json).

`grade()` is the pure rule; `read_lab()` turns an Observation into a graded `Reading` or says,
in `Problems`, why it cannot (no unit, unparseable value, no date ...): a result that cannot be
graded is never silently taken as normal or abnormal.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from fhir3t.errors import Problems
from fhir3t.messages import Msg, table
from fhir3t.records import Res
from fhir3t.safety.units import Units, dec

#: what is said of a lab Observation that cannot be graded (a problem of the run)
P = table("safety.lab", {
    "no-id": "Observation without id",
    "name": "{ref} ({term})",
    "not-graded": "{name}: {why}; not graded",
    "no-date": "no date (effective[x] or issued)",
    "bad-date": "unparseable date {date}",
    "partial-date": "date {date} is not a full day",
    "absent": "{name}: no value (dataAbsentReason); not graded",
    "not-quantity": "value is not a Quantity with a unit",
    "no-value": "no value",
    "bad-value": "unparseable value {value}",
    "comparator": "value has comparator {comparator}, so its grade is not exact",
    "no-unit": "missing unit",
    "unit": "unit {unit} cannot be converted to {canonical}",
    "range": "{name}: referenceRange {limit} has no usable value/unit; the default range was used",
    "no-limit": "no {limit} in the Observation and no default for {test}",
})

Direction = Literal["increase", "decrease"]


@dataclass(frozen=True)
class Bound:
    """The lower bound of one grade: k × ULN, k × LLN or an absolute value (canonical unit)."""

    ref: Literal["uln", "lln", "value"]
    k: Decimal

    def at(self, uln: Decimal | None, lln: Decimal | None) -> Decimal:
        if self.ref == "value":
            return self.k
        limit = uln if self.ref == "uln" else lln
        if limit is None:
            raise ValueError(f"bound needs the {self.ref.upper()}")
        return self.k * limit

    @classmethod
    def from_data(cls, data: dict) -> Bound:
        [(ref, k)] = data.items()
        value = dec(k)
        if ref not in ("uln", "lln", "value") or value is None:
            raise ValueError(f"bad grade bound {data!r}")
        return cls(ref, value)

    def __str__(self) -> str:
        return str(self.k) if self.ref == "value" else f"{self.k} × {self.ref.upper()}"


@dataclass(frozen=True)
class LabTest:
    id: str
    term: str
    loinc: tuple[str, ...]
    direction: Direction
    unit_kind: str
    bounds: tuple[Bound, ...]  # lower bounds of grades 1, 2, ...

    @property
    def limit_name(self) -> str:
        return "ULN" if self.direction == "increase" else "LLN"


def grade(test: LabTest, value: Decimal, limit: Decimal) -> int:
    """CTCAE grade of `value` (canonical unit) given the ULN (increases) or LLN (decreases).

    A value at or inside the limit is grade 0; otherwise the highest grade whose lower bound the
    value exceeds (increase) or falls below (decrease): exactly 3 × ULN is not above 3 × ULN.
    """
    uln, lln = (limit, None) if test.direction == "increase" else (None, limit)
    g = 0
    if test.direction == "increase":
        if value <= limit:
            return 0
        for i, b in enumerate(test.bounds, 1):
            if value > b.at(uln, lln):
                g = i
    else:
        if value >= limit:
            return 0
        for i, b in enumerate(test.bounds, 1):
            if value < b.at(uln, lln):
                g = i
    return g


@dataclass(frozen=True)
class Reading:
    """One graded lab result, in the test's canonical unit."""

    test: LabTest
    ref: str
    day: date
    order: str  # the full effective date text: orders results of one day
    value: Decimal
    unit: str
    limit: Decimal
    limit_source: Literal["observation", "default"]
    grade: int
    code: str  # the LOINC code the Observation carried

    def describe(self) -> str:
        ratio = ""
        if self.limit and self.test.direction == "increase":
            ratio = f", {(self.value / self.limit).quantize(Decimal('0.01'))} × ULN"
        return (f"{_fmt(self.value)} {self.unit} on {self.day.isoformat()} "
                f"({self.test.limit_name} {_fmt(self.limit)} from {self.limit_source}{ratio}; grade {self.grade})")


def _fmt(d: Decimal) -> str:
    q = d.quantize(Decimal("0.001")).normalize()
    return f"{q:f}"


def sex_of(patient: dict | None) -> str:
    g = (patient or {}).get("gender")
    return g if g in ("male", "female") else "unknown"


def _quantity_limit(rr: dict, key: str, kind: str, units: Units, value_unit: str) -> Decimal | None:
    q = rr.get(key)
    if not isinstance(q, dict):
        return None
    v = dec(q.get("value"))
    if v is None or v <= 0:  # a limit of 0 (or less) would make any value "many times ULN"
        return None
    unit = units.ucum(q) or value_unit
    return units.convert(kind, v, unit)


def observation_limit(raw: dict, test: LabTest, units: Units, value_unit: str) -> tuple[Decimal | None, bool]:
    """ULN/LLN from the Observation's own referenceRange (converted); (None, had_range_but_unusable)."""
    key = "high" if test.direction == "increase" else "low"
    ranges = [r for r in raw.get("referenceRange") or () if isinstance(r, dict) and key in r]
    normal = [r for r in ranges if _is_normal_range(r)]
    for rr in normal or ranges:
        got = _quantity_limit(rr, key, test.unit_kind, units, value_unit)
        if got is not None:
            return got, False
    return None, bool(ranges)


def _is_normal_range(rr: dict) -> bool:
    t = rr.get("type")
    if not isinstance(t, dict):
        return True
    return any(isinstance(c, dict) and c.get("code") == "normal" for c in t.get("coding") or ())


@dataclass(frozen=True)
class DefaultRanges:
    by_test: dict[str, tuple[str, str, dict[str, Decimal]]]  # test id -> (unit, "high"|"low", sex -> limit)

    @classmethod
    def from_data(cls, data: dict) -> DefaultRanges:
        out = {}
        for tid, spec in data["ranges"].items():
            key = "high" if "high" in spec else "low"
            limits = {sex: dec(v) for sex, v in spec[key].items()}
            if any(v is None for v in limits.values()) or not {"male", "female", "unknown"} <= set(limits):
                raise ValueError(f"reference range {tid!r}: needs numeric male, female and unknown limits")
            out[tid] = (spec["unit"], key, limits)
        return cls(out)  # type: ignore[arg-type]

    def limit(self, test: LabTest, sex: str, units: Units) -> Decimal | None:
        spec = self.by_test.get(test.id)
        if spec is None:
            return None
        unit, _, limits = spec
        return units.convert(test.unit_kind, limits.get(sex, limits["unknown"]), unit)


def read_lab(res: Res, test: LabTest, sex: str, units: Units, defaults: DefaultRanges,
             problems: Problems) -> Reading | None:
    """Grade one Observation, or report (naming the resource) why it cannot be graded."""
    raw = res.raw
    name = P["name"](ref=res.ref if res.ref.startswith("Observation/") else P["no-id"](), term=test.term)
    where = res.where

    def skip(why: Msg) -> None:
        problems.add(where, P["not-graded"](name=name, why=why))

    if res.span is None:
        skip(P["no-date"]() if res.date_text is None else P["bad-date"](date=repr(res.date_text)))
        return None
    if not res.span.exact:
        skip(P["partial-date"](date=repr(res.date_text)))
        return None
    vq = raw.get("valueQuantity")
    if not isinstance(vq, dict):
        if "dataAbsentReason" in raw:
            problems.add(where, P["absent"](name=name), skipped=False)
        elif any(k.startswith("value") for k in raw):
            skip(P["not-quantity"]())
        else:
            skip(P["no-value"]())
        return None
    value = dec(vq.get("value"))
    if value is None:
        skip(P["bad-value"](value=repr(vq.get("value"))))
        return None
    if vq.get("comparator"):
        skip(P["comparator"](comparator=repr(vq["comparator"])))
        return None
    unit = units.ucum(vq)
    if unit is None:
        skip(P["no-unit"]())
        return None
    canonical = units.convert(test.unit_kind, value, unit)
    kind = units.kinds[test.unit_kind]
    if canonical is None:
        skip(P["unit"](unit=repr(unit), canonical=kind.canonical))
        return None
    limit, unusable = observation_limit(raw, test, units, unit)
    source: Literal["observation", "default"] = "observation"
    if limit is None:
        if unusable:
            problems.add(where, P["range"](name=name, limit=test.limit_name), skipped=False)
        limit = defaults.limit(test, sex, units)
        source = "default"
        if limit is None:
            skip(P["no-limit"](limit=test.limit_name, test=test.id))
            return None
    code = next((c for s, c in res.codes if s == "http://loinc.org" and c in test.loinc), test.loinc[0])
    return Reading(test, res.ref, res.span.lo, res.date_text or "", canonical, kind.canonical, limit, source,
                   grade(test, canonical, limit), code)
