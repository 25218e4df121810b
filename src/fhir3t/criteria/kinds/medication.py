"""`medication`: medication records (statement, request, administration, dispense) of drugs in a value set.

mode exposure: last exposure within the window (met), before it (not-met), unknown date (unknown).
mode stopped-for-reason: stopped/completed with a poor-response statusReason (met), with no
reason or one fhir3t cannot read (unknown), active or another coded reason (not-met).
A drug record whose drug cannot be read, or whose text names a listed drug its code does not
(an RxNorm product code, a formulary code), keeps a not-met unknown with the record named.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Rule, code_name, unless_unread
from fhir3t.criteria.model import Outcome
from fhir3t.dates import Span
from fhir3t.errors import ConfigError
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri, k_or
from fhir3t.records.build import span_of
from fhir3t.records.model import Res
from fhir3t.records.plan import Read, read
from fhir3t.terminology import Code, ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context

TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration", "MedicationDispense")
_ELEMENTS = ("medication[x]", "contained", "status", "statusReason", "statusReason[x]", "effective[x]", "dateAsserted",
             "authoredOn", "whenHandedOver", "daysSupply")


@dataclass
class MedicationRule(Kind):
    vs: ValueSet
    mode: str
    window: str | None = None
    half_lives: float = 0.0
    reasons: ValueSet | None = None
    label: str = ""

    kind = "medication"
    params: ClassVar[dict[str, Any]] = {"valueset": {"type": "string"}, "mode": {"enum": ["exposure", "stopped-for-reason"]},
              "window": {"type": "string"}, "half_lives": {"type": "number", "minimum": 0},
              "reasons": {"type": "string"}}
    required = ("valueset", "mode")

    ONGOING: ClassVar[frozenset[str]] = frozenset({"active", "intended", "on-hold", "in-progress"})
    HOURS: ClassVar[dict[str, float]] = {"h": 1, "d": 24, "min": 1 / 60, "wk": 168}

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        mode = spec["mode"]
        if mode == "stopped-for-reason" and "reasons" not in spec:
            raise ConfigError(f"{b.at}: stopped-for-reason needs reasons")
        return cls(b.vs(spec["valueset"]), mode, b.window(spec) if mode == "exposure" else None,
                   float(spec.get("half_lives", 0)), b.vs(spec["reasons"]) if mode == "stopped-for-reason" else None,
                   spec.get("label", ""))

    def __post_init__(self) -> None:
        for code, props in self.vs.properties.items():
            hl = props.get("half-life")
            if hl is not None and not (isinstance(hl, dict) and isinstance(hl.get("value"), (int, float))
                                       and (hl.get("code") or hl.get("unit")) in self.HOURS):
                raise ConfigError(f"value set {self.vs.id}: half-life of {code[1]} needs a value and a UCUM unit "
                                  f"({', '.join(self.HOURS)})")

    def reads(self) -> Iterator[Read]:
        for t in TYPES:
            yield read(t, self.vs, *_ELEMENTS, complete=True)

    # ---- exposure --------------------------------------------------------------------
    def last_exposure(self, res: Res, as_of: date) -> tuple[Span | None, str]:
        raw = res.raw
        if res.type == "MedicationDispense":
            return self._dispensed(raw, as_of)
        period = raw.get("effectivePeriod")
        if isinstance(period, dict) and isinstance(period.get("end"), str):
            return span_of(period["end"]), "ended"
        if raw.get("status") in self.ONGOING:
            return Span(as_of, as_of), f"{raw.get('status')}, ongoing"
        # spec §6: effective, else dateAsserted, else unknown (an order date says nothing of intake)
        for v in (raw.get("effectiveDateTime"), (period or {}).get("start") if isinstance(period, dict) else None,
                  raw.get("dateAsserted")):
            if isinstance(v, str):
                return span_of(v), f"{raw.get('status', 'no status')}, dated"
        return None, f"{raw.get('status', 'no status')}, no date"

    @staticmethod
    def _dispensed(raw: dict, as_of: date) -> tuple[Span | None, str]:
        """A dispense: taken from the day handed over for `daysSupply` days (unknown supply: up to as_of)."""
        handed = span_of(raw.get("whenHandedOver"))
        if handed is None:
            return None, "dispensed, no hand-over date"
        supply = raw.get("daysSupply")
        value = supply.get("value") if isinstance(supply, dict) else None
        unit = (supply.get("code") or supply.get("unit")) if isinstance(supply, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and unit in ("d", "day", "days") and value >= 0:
            end = handed.hi + timedelta(days=math.ceil(value))
            return Span(handed.lo, min(end, as_of) if end > as_of else end), f"dispensed {handed} for {value:g} days"
        return Span(handed.lo, max(handed.hi, as_of)), f"dispensed {handed}, supply not recorded"

    def _half_life(self, code: Code) -> float:
        prop = self.vs.prop(code, "half-life")
        if isinstance(prop, dict) and isinstance(prop.get("value"), (int, float)):
            return float(prop["value"]) * self.HOURS.get(prop.get("code") or prop.get("unit") or "", 0.0)
        return 0.0

    def _exposure(self, res: Res, ctx: Context) -> tuple[Tri, str]:
        assert self.window is not None
        extra = 0
        if self.half_lives:
            hl_hours = max((self._half_life(c) for c in res.codes if c in self.vs), default=0.0)
            extra = math.ceil(self.half_lives * hl_hours / 24)
        window = ctx.window(self.window, at_least_days=extra)
        span, how = self.last_exposure(res, ctx.as_of)
        if span is None:
            return UNKNOWN, f"{how}: last exposure unknown (record an end date)"
        if span.hi > window.hi and span.lo <= window.hi:
            span = Span(span.lo, window.hi)
        if span.lo > window.hi:  # exposure continues past D1: it covers the window's end
            span = Span(window.hi, window.hi)
        tri = window.contains(span)
        where = "within" if tri == MET else "before" if tri == NOT_MET else "possibly within"
        return tri, f"{how}, last exposure {span} {where} {window}"

    # ---- stopped for a reason --------------------------------------------------------
    def _stopped(self, res: Res, ctx: Context) -> tuple[Tri, str]:
        assert self.reasons is not None
        raw = res.raw
        given = raw.get("statusReasonCodeableConcept" if res.type == "MedicationDispense" else "statusReason")
        reasons = given if isinstance(given, list) else [given] if isinstance(given, dict) else []
        codes = [c for cc in reasons for c in ctx.tx.codes(cc)]
        status = raw.get("status") if isinstance(raw.get("status"), str) else "no status"
        if any(c in self.reasons for c in codes):
            return MET, f"{status} for {next(c for c in codes if c in self.reasons)[1]} ({self.reasons.title.lower()})"
        if status in ("stopped", "completed"):
            if not reasons:
                return UNKNOWN, f"{status} with no reason recorded: record why it was stopped"
            known = [c for c in codes if ctx.tx.systems.known(c[0]) and ctx.tx.systems.valid(*c)]
            if not known:
                texts = [cc.get("text") for cc in reasons if isinstance(cc, dict) and isinstance(cc.get("text"), str)]
                if texts:
                    return UNKNOWN, (f"{status}, reason given only as text ('{texts[0]}'): code it "
                                     f"(e.g. SNOMED CT 58848006 lack of drug action) to decide")
                if codes:
                    return UNKNOWN, (f"{status}, reason coded in {ctx.tx.systems.name(codes[0][0])}, which fhir3t "
                                     "cannot read: map it (ConceptMap) or code it in SNOMED CT to decide")
                return UNKNOWN, f"{status} with an unreadable reason: record why it was stopped"
            return NOT_MET, f"{status} for another reason"
        return NOT_MET, f"{status}"

    def _judge(self, res: Res, ctx: Context) -> Tri:
        return (self._exposure if self.mode == "exposure" else self._stopped)(res, ctx)[0]

    def evaluate(self, ctx: Context) -> Outcome:
        hits = [r for r in ctx.visible_many(*TYPES) if any(c in self.vs for c in r.codes)]
        title = self.label or self.vs.title

        def judge(r: Res) -> Tri:
            return self._judge(r, ctx)

        if not hits:
            absent = self._once("absent", lambda: Outcome(NOT_MET, (), f"no {title} record found"))
            return unless_unread(absent, ctx, TYPES, self.vs, judge)
        how = self._exposure if self.mode == "exposure" else self._stopped
        judged = [(r, *how(r, ctx)) for r in hits]
        result = k_or(t for _, t, _ in judged)
        deciding = [(r, why) for r, t, why in judged if t == result]
        parts = [f"{code_name(r, self.vs, ctx.tx)} {why}" for r, why in deciding[:3]]
        out = Outcome(result, tuple(r.ref for r, _ in deciding), f"{title}: " + "; ".join(parts))
        return unless_unread(out, ctx, TYPES, self.vs, judge)


