"""`medication`: medication records (statement, request, administration, dispense) of drugs in a value set.

mode exposure: last exposure within the window (met), before it (not-met), unknown date (unknown).
mode stopped-for-reason: stopped/completed with a poor-response statusReason (met), with no
reason or one fhir3t cannot read (unknown), active or another coded reason (not-met).
A drug record whose drug cannot be read, or whose text names a listed drug its code does not
(an RxNorm product code, a formulary code), keeps a not-met unknown with the record named.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Label, Rule, code_name, code_word, text_arg, unless_unread
from fhir3t.criteria.model import Outcome
from fhir3t.dates import Span
from fhir3t.errors import ConfigError
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri, k_or
from fhir3t.messages import Clause, Message, Msg, Text, clause
from fhir3t.messages.reasons import absent
from fhir3t.r4facts import r4_facts
from fhir3t.records.build import span_of
from fhir3t.records.concepts import concept_texts
from fhir3t.records.model import Res
from fhir3t.records.plan import Read, read
from fhir3t.terminology import Code, ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration", "MedicationDispense")
_ELEMENTS = ("medication[x]", "contained", "status", "statusReason", "statusReason[x]", "effective[x]", "dateAsserted",
             "authoredOn", "whenHandedOver", "daysSupply", "dosage", "dosageInstruction")

NO_STATUS = Message("medication.no-status", "no status")
ENDED = Message("medication.ended", "ended")
BACKWARDS = Message("medication.backwards", "its period ends before it starts")
ONGOING = Message("medication.ongoing", "{status}, ongoing")
DATED = Message("medication.dated", "{status}, dated")
NOT_DATED = Message("medication.not-dated", "{status}, no date")
NOT_HANDED = Message("medication.not-handed", "dispensed, no hand-over date")
DISPENSED_FOR = Message("medication.dispensed-for", "dispensed {day} for {days} days")
DATED_COURSE = Message("medication.dated-course", "{status}, dated, and {course}")
COURSE_TO = Message("medication.course-to", "its dosage runs to {day}")
COURSE_UNREAD = Message("medication.course-unread", "its dosage runs on for a course fhir3t does not compute ({element})")
DISPENSED = Message("medication.dispensed", "dispensed {day}, supply not recorded")
END_WITHHELD = Message("medication.end-withheld", "ended on a day it does not give (its end date has no value)")
LAST_UNKNOWN = Message("medication.last-unknown", "last exposure unknown (record an end date)")
LAST_WITHIN = Message("medication.last-within", "{how}, last exposure {day} within {window}")
LAST_BEFORE = Message("medication.last-before", "{how}, last exposure {day} before {window}")
LAST_POSSIBLY = Message("medication.last-possibly", "{how}, last exposure {day} possibly within {window}")
FOR_REASON = Message("medication.for-reason", "{status} for {code} ({reasons})")
NO_REASON = Message("medication.no-reason", "{status} with no reason recorded")
RECORD_WHY = Message("medication.record-why", "record why it was stopped")
REASON_TEXT = Message("medication.reason-text", "{status}, reason given only as text ('{text}')")
CODE_REASON = Message("medication.code-reason", "code it (e.g. {example}) to decide")
NEEDS_REASONS = Message("criteria.medication.needs-reasons", "{at}: stopped-for-reason needs reasons")
HALF_LIFE = Message("criteria.medication.half-life",
                    "value set {valueset}: half-life of {code} needs a value and a UCUM unit ({units})")
REASON_SYSTEM = Message("medication.reason-system", "{status}, reason coded in {system}, which fhir3t cannot read")
MAP_REASON = Message("medication.map-reason", "map it (ConceptMap) or code it in SNOMED CT to decide")
REASON_UNREADABLE = Message("medication.reason-unreadable", "{status} with an unreadable reason")
OTHER_REASON = Message("medication.other-reason", "{status} for another reason")
REASON_NAMES = Message("medication.reason-names", "{status} for {code}, whose text says '{name}'")
CONFIRM_REASON = Message("medication.confirm-reason", "code the reason in the set (e.g. {example}) or confirm it is "
                                                     "another to decide")
EXAMPLE = Message("medication.reason-example", "{code} {name}")
STATUS = Message("medication.status", "{status}")
CODED = Message("medication.coded", "{code} {finding}")
TITLED = Message("medication.titled", "{title}: {finding}")
DESCRIBE_EXPOSURE = Message("medication.describe-exposure", "{what}, last exposure {window}")
DESCRIBE_EXPOSURE_HL = Message("medication.describe-exposure-hl",
                               "{what}, last exposure {window}, or within {n} half-lives when longer")
DESCRIBE_STOPPED = Message("medication.describe-stopped", "{what} stopped with a reason in {reasons}")


@dataclass
class MedicationRule(Kind):
    vs: ValueSet
    mode: str
    window: str | None = None
    half_lives: float = 0.0
    reasons: ValueSet | None = None
    label: Label = ""

    kind = "medication"
    params: ClassVar[dict[str, Any]] = {"valueset": {"type": "string"}, "mode": {"enum": ["exposure", "stopped-for-reason"]},
              "window": {"type": "string"}, "half_lives": {"type": "number", "minimum": 0},
              "reasons": {"type": "string"}}
    required = ("valueset", "mode")

    ONGOING: ClassVar[frozenset[str]] = frozenset({"active", "intended", "on-hold", "in-progress"})
    #: R4 statuses of a drug record that was never stopped: going on, or not yet begun (a draft order, a dispense
    #: being prepared). Any other (stopped, completed, on-hold, unknown, a status fhir3t does not know) may
    #: have been stopped for the reason a stopped-for-reason rule looks for.
    NOT_STOPPED: ClassVar[frozenset[str]] = frozenset({"active", "intended", "in-progress", "draft", "preparation"})
    HOURS: ClassVar[dict[str, float]] = {"h": 1, "d": 24, "min": 1 / 60, "wk": 168}

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        mode = spec["mode"]
        if mode == "stopped-for-reason" and "reasons" not in spec:
            raise ConfigError(NEEDS_REASONS(at=b.at))
        return cls(b.vs(spec["valueset"]), mode, b.window(spec) if mode == "exposure" else None,
                   float(spec.get("half_lives", 0)), b.vs(spec["reasons"]) if mode == "stopped-for-reason" else None,
                   spec.get("label", ""))

    def __post_init__(self) -> None:
        for code, props in self.vs.properties.items():
            hl = props.get("half-life")
            if hl is not None and not (isinstance(hl, dict) and isinstance(hl.get("value"), (int, float))
                                       and (hl.get("code") or hl.get("unit")) in self.HOURS):
                raise ConfigError(HALF_LIFE(valueset=self.vs.id, code=code[1], units=", ".join(self.HOURS)))

    def reads(self) -> Iterator[Read]:
        for t in TYPES:
            yield read(t, self.vs, *_ELEMENTS, complete=True)

    # ---- exposure --------------------------------------------------------------------
    def last_exposure(self, res: Res, as_of: date) -> tuple[Span | None, Msg]:
        raw = res.raw
        if res.type == "MedicationDispense":
            return self._dispensed(raw, as_of)
        period = raw.get("effectivePeriod")
        facts = r4_facts()
        withheld = facts.withheld(period, "end") is not None  # an end written without a value (a null flavor)
        if not withheld and isinstance(period, dict) and isinstance(period.get("end"), str):
            end, start = span_of(period["end"]), span_of(period.get("start"))
            if end is not None and start is not None and end.hi < start.lo:  # R4 per-4: which date is wrong?
                return None, BACKWARDS()
            return end, ENDED()
        status = raw.get("status")
        shown: Msg | str = code_word("medication", status) if isinstance(status, str) else NO_STATUS()
        if status in self.ONGOING:
            return Span(as_of, as_of), ONGOING(status=shown)
        if withheld:  # it ended, on a day it does not give: any day from its start may be the last
            return None, END_WITHHELD()
        # spec §6: effective, else dateAsserted, else unknown (an order date says nothing of intake)
        for parent, name in ((raw, "effectiveDateTime"), (period, "start"), (raw, "dateAsserted")):
            if facts.withheld(parent, name) is not None:  # the first date there has no value: not a later one's day
                return None, NOT_DATED(status=shown)
            v = parent.get(name) if isinstance(parent, dict) else None
            if isinstance(v, str):
                day = span_of(v)
                course = self._course(raw, day, as_of) if day is not None else None
                if course is not None:
                    return course[0], DATED_COURSE(status=shown, course=course[1])
                return day, DATED(status=shown)
        return None, NOT_DATED(status=shown)

    #: days in a UCUM time unit, a month and a year at their longest (the course is not made shorter than it may be)
    UNIT_DAYS: ClassVar[dict[str, float]] = {"h": 1 / 24, "d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7,
                                             "mo": 31, "a": 366}

    @classmethod
    def _course(cls, raw: dict, day: Span, as_of: date) -> tuple[Span, Msg] | None:
        """When a drug record's dosage says the course ran on from its date (a timing bounded by a period or a
        duration, a number of doses, given times: '每日两次 共28天'), the last exposure is not the date: somewhere from
        the date to the bound's end when it can be read (a period's end, a duration in days or weeks; the record may
        have been stopped before it), else from the date possibly up to as_of."""
        timings = []
        for key in ("dosage", "dosageInstruction"):
            dosages = raw.get(key)
            for d in dosages if isinstance(dosages, list) else [dosages] if isinstance(dosages, dict) else ():
                timing = d.get("timing") if isinstance(d, dict) else None
                if isinstance(timing, dict):
                    timings.append(timing)
        ends: list[date] = []
        unread: str | None = None
        for timing in timings:
            repeat = timing.get("repeat")
            repeat = repeat if isinstance(repeat, dict) else {}
            events = timing.get("event")
            for e in events if isinstance(events, list) else ():
                span = span_of(e) if isinstance(e, str) else None
                if span is None:
                    unread = unread or "event"
                else:
                    ends.append(span.hi)
            bounds = repeat.get("boundsPeriod")
            if isinstance(bounds, dict) and "end" in bounds:
                end = span_of(bounds["end"]) if isinstance(bounds["end"], str) else None
                if end is None:
                    unread = unread or "boundsPeriod"
                else:
                    ends.append(end.hi)
            elif isinstance(bounds, dict):
                unread = unread or "boundsPeriod"  # no end: the course runs on
            duration = repeat.get("boundsDuration")
            if duration is not None:
                value = duration.get("value") if isinstance(duration, dict) else None
                unit = (duration.get("code") or duration.get("unit")) if isinstance(duration, dict) else None
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 \
                        and unit in cls.UNIT_DAYS:
                    ends.append(day.hi + timedelta(days=math.ceil(value * cls.UNIT_DAYS[unit])))
                else:
                    unread = unread or "boundsDuration"
            if "count" in repeat or "countMax" in repeat:
                days = cls._doses_days(repeat)
                if days is None:
                    unread = unread or "count"
                else:
                    ends.append(day.hi + timedelta(days=days))
            if "boundsRange" in repeat:
                unread = unread or "boundsRange"
        if unread is not None:
            return Span(day.lo, max(day.hi, as_of)), COURSE_UNREAD(element=unread)
        if ends and max(ends) > day.hi:  # taken from the date up to the bound's end, perhaps stopped before it
            last = max(ends)
            return Span(day.lo, last), COURSE_TO(day=str(last))
        return None

    @classmethod
    def _doses_days(cls, repeat: dict) -> int | None:
        """How many days `count` (or `countMax`) doses at `frequency` per `period` `periodUnit` take, or None."""
        count = repeat.get("countMax", repeat.get("count"))
        frequency = repeat.get("frequencyMax", repeat.get("frequency", 1))
        period, unit = repeat.get("period"), repeat.get("periodUnit")
        numbers = (count, frequency, period)
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) and n > 0 for n in numbers) \
                or unit not in cls.UNIT_DAYS:
            return None
        assert isinstance(count, (int, float)) and isinstance(frequency, (int, float)) and isinstance(period, (int, float))
        return math.ceil(math.ceil(count / frequency) * period * cls.UNIT_DAYS[unit])

    @staticmethod
    def _dispensed(raw: dict, as_of: date) -> tuple[Span | None, Msg]:
        """A dispense: taken from the day handed over for `daysSupply` days (unknown supply: up to as_of)."""
        handed = span_of(raw.get("whenHandedOver"))
        if handed is None:
            return None, NOT_HANDED()
        supply = raw.get("daysSupply")
        value = supply.get("value") if isinstance(supply, dict) else None
        unit = (supply.get("code") or supply.get("unit")) if isinstance(supply, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and unit in ("d", "day", "days") and value >= 0:
            end = handed.hi + timedelta(days=math.ceil(value))
            return Span(handed.lo, min(end, as_of) if end > as_of else end), \
                DISPENSED_FOR(day=str(handed), days=float(value))
        return Span(handed.lo, max(handed.hi, as_of)), DISPENSED(day=str(handed))

    def _half_life(self, code: Code) -> float:
        prop = self.vs.prop(code, "half-life")
        if isinstance(prop, dict) and isinstance(prop.get("value"), (int, float)):
            return float(prop["value"]) * self.HOURS.get(prop.get("code") or prop.get("unit") or "", 0.0)
        return 0.0

    def _exposure(self, res: Res, ctx: Context) -> tuple[Tri, Clause]:
        assert self.window is not None
        extra = 0
        if self.half_lives:
            hl_hours = max((self._half_life(c) for c in res.codes if c in self.vs), default=0.0)
            extra = math.ceil(self.half_lives * hl_hours / 24)
        window = ctx.window(self.window, at_least_days=extra)
        span, how = self.last_exposure(res, ctx.as_of)
        if span is None:
            return UNKNOWN, clause(how, LAST_UNKNOWN())
        if span.hi > window.hi and span.lo <= window.hi:
            span = Span(span.lo, window.hi)
        if span.lo > window.hi:  # exposure continues past D1: it covers the window's end
            span = Span(window.hi, window.hi)
        tri = window.contains(span)
        where = LAST_WITHIN if tri == MET else LAST_BEFORE if tri == NOT_MET else LAST_POSSIBLY
        return tri, clause(where(how=how, day=str(span), window=str(window)))

    # ---- stopped for a reason --------------------------------------------------------
    def _example(self, ctx: Context) -> Msg | Text | str:
        """The reasons set's first listed concept, as a hint names it (the study's codes live in its value set)."""
        assert self.reasons is not None
        code = next(iter(self.reasons.order), None)
        if code is None:
            return self.reasons.name_text
        shown = f"{ctx.tx.systems.name(code[0])} {code[1]}"
        name = self.reasons.displays.get(code)
        return EXAMPLE(code=shown, name=name) if name is not None else shown

    def _stopped(self, res: Res, ctx: Context) -> tuple[Tri, Clause]:
        assert self.reasons is not None
        raw = res.raw
        given = raw.get("statusReasonCodeableConcept" if res.type == "MedicationDispense" else "statusReason")
        reasons = given if isinstance(given, list) else [given] if isinstance(given, dict) else []
        codes = [c for cc in reasons for c in ctx.tx.codes(cc)]
        status = raw.get("status") if isinstance(raw.get("status"), str) else None
        shown: Msg | str = code_word("medication", status) if status is not None else NO_STATUS()
        if any(c in self.reasons for c in codes):
            code = next(c for c in codes if c in self.reasons)[1]
            return MET, clause(FOR_REASON(status=shown, code=code, reasons=self.reasons.name_text.lower()))
        if status not in self.NOT_STOPPED:  # stopped, completed, on hold, or a status that does not say
            if not reasons:
                return UNKNOWN, clause(NO_REASON(status=shown), RECORD_WHY())
            known = [c for c in codes if ctx.tx.systems.known(c[0]) and ctx.tx.systems.valid(*c)]
            if not known:
                texts = [cc.get("text") for cc in reasons if isinstance(cc, dict) and isinstance(cc.get("text"), str)]
                if texts:
                    return UNKNOWN, clause(REASON_TEXT(status=shown, text=texts[0]), CODE_REASON(example=self._example(ctx)))
                if codes:
                    return UNKNOWN, clause(REASON_SYSTEM(status=shown, system=ctx.tx.systems.name(codes[0][0])),
                                           MAP_REASON())
                return UNKNOWN, clause(REASON_UNREADABLE(status=shown), RECORD_WHY())
            # only a code of a system the reasons set speaks can be told to be another reason: R4's own
            # medicationrequest-status-reason 'sintol' (suspected intolerance) or an ICD-10 adverse effect is
            # readable, yet nothing here says whether it means a poor response
            speaks = self.reasons.systems_used
            other = known[0][0]
            known = [c for c in known if c[0] in speaks]
            if not known:
                return UNKNOWN, clause(REASON_SYSTEM(status=shown, system=ctx.tx.systems.name(other)), MAP_REASON())
            # a code of a system without its hierarchy in its codes (SNOMED CT) may be a child of a listed
            # reason: what its text says then tells, unless a closed-system code (ICD-10) decides
            named = self.reasons.named_in([t for cc in reasons for t in concept_texts(cc)])
            if named is not None and not any(self.reasons.decides(c) for c in known):
                code = f"{ctx.tx.systems.name(known[0][0])} {known[0][1]}"
                return UNKNOWN, clause(REASON_NAMES(status=shown, code=code, name=named),
                                       CONFIRM_REASON(example=self._example(ctx)))
            return NOT_MET, clause(OTHER_REASON(status=shown))
        return NOT_MET, clause(STATUS(status=shown))

    def _judge(self, res: Res, ctx: Context) -> Tri:
        return (self._exposure if self.mode == "exposure" else self._stopped)(res, ctx)[0]

    def evaluate(self, ctx: Context) -> Outcome:
        hits = [r for r in ctx.visible_many(*TYPES) if any(c in self.vs for c in r.codes)]
        title = text_arg(self.label) or self.vs.name_text

        def judge(r: Res) -> Tri:
            return self._judge(r, ctx)

        if not hits:
            none = self._once("absent", lambda: Outcome(NOT_MET, (), absent(title)))
            return unless_unread(none, ctx, TYPES, self.vs, judge)
        how = self._exposure if self.mode == "exposure" else self._stopped
        judged = [(r, *how(r, ctx)) for r in hits]
        result = k_or(t for _, t, _ in judged)
        deciding = [(r, why) for r, t, why in judged if t == result]
        clauses = [clause(CODED(code=code_name(r, self.vs, ctx.tx), finding=why.finding), why.settle)
                   for r, why in deciding[:3]]
        clauses[0] = clause(TITLED(title=title, finding=clauses[0].finding), clauses[0].settle)
        out = Outcome(result, tuple(r.ref for r, _ in deciding), tuple(clauses))
        return unless_unread(out, ctx, TYPES, self.vs, judge)

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        what = text_arg(self.label) or self.vs.name_text
        if self.mode == "exposure":
            if self.half_lives:
                return DESCRIBE_EXPOSURE_HL(what=what, window=windows[str(self.window)].describe(), n=self.half_lives)
            return DESCRIBE_EXPOSURE(what=what, window=windows[str(self.window)].describe())
        assert self.reasons is not None
        return DESCRIBE_STOPPED(what=what, reasons=self.reasons.name_text.lower())


