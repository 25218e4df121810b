"""`observation`: the most recent result of a test in a window decides.

read: qualitative (positive -> met), grade (semi-quantitative grade map), threshold (numeric
comparison, optionally the ratio of two tests on one day) or coded (value in a value set;
DiagnosticReport.conclusionCode too). Panels count: a component coded for the test is a result
of its own. A result that may be the test's but cannot be read (a hospital's unmapped code whose
text names the test, a status that is not an R4 code) takes part too, as an unreadable result: if
it may be the most recent, the rule is unknown and names it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import LABEL_SCHEMA, Builder, Kind, Label, Rule, describe_suspect, record_name, settle_hint, text_arg, when
from fhir3t.criteria.model import Outcome
from fhir3t.criteria.readings import NEGATIVE, POSITIVE, Number, Readings, absent_reason, compare, grade, number, qualitative
from fhir3t.criteria.suspects import split_codes
from fhir3t.dates import Span, instant
from fhir3t.errors import ConfigError
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri
from fhir3t.messages import Message, Msg, Text, many, reason, table
from fhir3t.messages.core import Arg
from fhir3t.records.concepts import concept_texts
from fhir3t.records.model import Res
from fhir3t.records.plan import Read, read
from fhir3t.terminology import Code, ValueSet
from fhir3t.textnorm import clip

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

_OBS_ELEMENTS = ("code", "status", "value[x]", "interpretation", "effective[x]", "issued", "component",
                 "dataAbsentReason")
_REPORT_ELEMENTS = ("code", "status", "conclusionCode", "effective[x]", "issued")

NO_NUMBER = Message("obs.no-number", "no numeric value")
#: a criteria file that does not load (the definition's own mistakes)
BUILD = table("criteria.observation", {
    "grade-needs": "{at}: grade needs grades",
    "threshold-needs": "{at}: threshold needs op and value",
    "coded-needs": "{at}: coded needs met_valueset",
    "unknown-read": "unknown read {read}",
})
DATA_ABSENT = Message("obs.data-absent", "no value (the result gives a reason for its absence: {reason})")
NO_CONCLUSION = Message("obs.no-conclusion", "a report with no coded conclusion")
CONCLUSIONS_DISAGREE = Message("obs.conclusions-disagree", "a report whose coded conclusions disagree ({one}; {other})")
FINDING = Message("obs.finding", "finding {code}")
NO_FINDING = Message("obs.no-finding", "no coded finding")
UNCLASSIFIED = Message("obs.unclassified", "finding {code} not classified")
FINDINGS_DISAGREE = Message("obs.findings-disagree", "findings {one} and {other}, which disagree")
FINDING_HEDGED = Message("obs.finding-hedged", "finding {code}, but its text says '{word}'")
FINDING_BESIDE = Message("obs.finding-beside", "finding {code} beside a conclusion fhir3t cannot read ({part})")
UNIT_UNKNOWN = Message("obs.unit-unknown", "{value}: unit not understood (expected {unit})")
UNITS_DISAGREE = Message("obs.units-disagree", "{value}: its unit is written both as {one} and as {other}, which disagree")
NEGATIVE_VALUE = Message("obs.negative-value", "{value}: a negative value cannot be this measurement")
RATIO_NO_UNIT = Message("obs.ratio-no-unit", "the measured ({measured}) or the predicted ({predicted}) value has no unit: "
                                             "they cannot be known to be in the same unit")
CANNOT_COMPARE = Message("obs.cannot-compare", "{value} cannot be compared with {op} {threshold}")
NAMED_OTHER = Message("obs.named-other", "is coded {code}, a code of this test, but named '{name}', another test")
CODED_AS_TWO = Message("obs.coded-as-two", "is coded {inside}, a code of this test, and {outside}, which is not")
UNREADABLE_RESULT = Message("obs.unreadable-result", "result {record} {what}: code or correct it")
RATIO_UNUSABLE = Message("obs.ratio-unusable", "measured/predicted values not usable")
RATIO_UNITS = Message("obs.ratio-units", "measured ({measured}) and predicted ({predicted}) DLCO are in different units")
RATIO = Message("obs.ratio", "{value} (measured {measured} / predicted {predicted})")
NONE_IN = Message("obs.none-in", "no {test} result in {window}")
NONE_IN_OLDER = Message("obs.none-in-older", "no {test} result in {window} (the latest, on {latest}, is outside it)")
UNKNOWN_DATE = Message("obs.unknown-date", "unknown")
DATED = Message("obs.dated", "{test} {how}, dated {day}")
MAY_FALL_OUTSIDE = Message("obs.may-fall-outside", "{test} {how} dated {day} may fall outside {window}")
FULL_DATE = Message("obs.full-date", "give the full date")
RESULT = Message("obs.result", "{test} {how} {when}")
DISAGREE = Message("obs.disagree", "{test}: two results {when} disagree ({one}; {other}) and their times do not say "
                                   "which is later")
REPEAT = Message("obs.repeat", "repeat the test or mark one entered-in-error")
BUT_MAYBE = Message("obs.but-maybe", "{found}, but a result dated {day} ({how}) may be more recent")
FULL_DATE_IT = Message("obs.full-date-it", "give it a full date")
OR_READABLE = Message("obs.or-readable", "{hint} or record a readable result")
OPS = {"<": Message("obs.op-lt", "below"), "<=": Message("obs.op-le", "at most"),
       ">": Message("obs.op-gt", "above"), ">=": Message("obs.op-ge", "at least")}
DESCRIBE_THRESHOLD = Message("obs.describe-threshold", "the most recent {test} result {window} is {op} {value}")
DESCRIBE_GRADE = Message("obs.describe-grade", "the most recent {test} result {window} is graded {grades}")
DESCRIBE_CODED = Message("obs.describe-coded", "the most recent {test} result {window} finds {finding}")
DESCRIBE_POSITIVE = Message("obs.describe-positive", "the most recent {test} result {window} is positive")


def _unread_part(concept: dict, ctx: Context) -> str | None:
    """How a finding's CodeableConcept shows what fhir3t cannot read in it, or None when every coding is read: one
    written only as text, a coding in a system fhir3t does not know that no ConceptMap translates, one that is
    not a coding with a system and a code."""
    codings = concept.get("coding")
    if codings is None:
        codings = []
    if not isinstance(codings, list):
        return "?"
    read_any = False
    for coding in codings:
        if not isinstance(coding, dict) or not isinstance(coding.get("system"), str) \
                or not isinstance(coding.get("code"), str):
            if isinstance(coding, dict) and not any(v not in (None, "", [], {}) for v in coding.values()):
                continue
            return "?"
        codes = ctx.tx.codes(coding)
        if not codes or (len(codes) == 1 and not ctx.tx.systems.known(codes[0][0])):
            return clip(f"{coding['system']} {coding['code']}", 80)
        read_any = True
    text = concept.get("text")
    if not read_any and isinstance(text, str) and text.strip():
        return clip(f"'{text.strip()}'", 60)
    return None


@dataclass
class _Candidate:
    """A result to judge: one Observation (or a derived value from several)."""

    span: Span | None
    text: str
    refs: tuple[str, ...]
    judge: Callable[[], tuple[Tri, Arg]]

    @property
    def instant(self) -> float | None:
        """UTC timestamp when the date text has a time and a zone (else None)."""
        return instant(self.text)


def _recency(c: _Candidate) -> tuple[date, date, float]:
    """Newest first by the source's own calendar day, then by the zoned time within that day.

    The day written in the source is the hospital's local day: a 07:20+08:00 result on the 2nd is
    later than anything dated the 1st, whatever their UTC instants say.
    """
    ts = c.instant
    return (c.span.hi if c.span else date.min, c.span.lo if c.span else date.min,
            ts if ts is not None else float("-inf"))


def _same_moment(a: _Candidate, b: _Candidate) -> bool:
    """Cannot tell which came later: the same day, and no two comparable times that differ."""
    if a.span != b.span:
        return False
    ta, tb = a.instant, b.instant
    return ta is None or tb is None or ta == tb


@dataclass
class ObservationRule(Kind):
    vs: ValueSet
    window: str
    read: str
    absent: Tri = UNKNOWN
    readings: Readings | None = None
    viral_load: bool = False
    positive_only: bool = False
    grades: dict[str, str] | None = None
    op: str | None = None
    threshold: float | None = None
    unit: str | None = None
    conversions: dict[str, float] | None = None
    ratio: tuple[ValueSet, ValueSet, float] | None = None
    met_vs: ValueSet | None = None
    not_met_vs: ValueSet | None = None
    #: a DiagnosticReport coded for the test is a result too (its conclusionCode read as the value; without
    #: one, it is read through its results)
    include_reports: bool = True
    hint: Label | None = None
    label: Label = ""
    #: a threshold on a measurement that can be negative (else a negative value is not read)
    signed: bool = False

    kind = "observation"
    params: ClassVar[dict[str, Any]] = {
        "valueset": {"type": "string"},
        "window": {"type": "string"},
        "read": {"enum": ["qualitative", "grade", "threshold", "coded"]},
        "absent": {"enum": ["met", "not-met", "unknown"]},
        "viral_load": {"type": "boolean"},
        "positive_only": {"type": "boolean"},
        "grades": {"type": "object", "required": ["met", "not-met"], "additionalProperties": False,
                   "properties": {"met": {"type": "array", "items": {"type": "string"}},
                                  "not-met": {"type": "array", "items": {"type": "string"}}}},
        "op": {"enum": ["<", "<=", ">", ">="]},
        "value": {"type": "number"},
        "unit": {"type": "string"},
        "conversions": {"type": "object", "additionalProperties": {"type": "number", "exclusiveMinimum": 0}},
        "ratio": {"type": "object", "required": ["numerator", "denominator"], "additionalProperties": False,
                  "properties": {"numerator": {"type": "string"}, "denominator": {"type": "string"},
                                 "scale": {"type": "number"}}},
        "met_valueset": {"type": "string"},
        "not_met_valueset": {"type": "string"},
        "include_reports": {"type": "boolean"},
        "hint": LABEL_SCHEMA,
        "signed": {"type": "boolean"},
    }
    required = ("valueset", "window", "read")

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        kind = spec["read"]
        ratio = None
        if "ratio" in spec:
            r = spec["ratio"]
            ratio = (b.vs(r["numerator"]), b.vs(r["denominator"]), float(r.get("scale", 1)))
        grades = None
        if kind == "grade":
            if "grades" not in spec:
                raise ConfigError(BUILD["grade-needs"](at=b.at))
            grades = {b.fold(g): "met" for g in spec["grades"]["met"]}
            grades.update({b.fold(g): "not-met" for g in spec["grades"]["not-met"]})
        if kind == "threshold" and ("op" not in spec or "value" not in spec):
            raise ConfigError(BUILD["threshold-needs"](at=b.at))
        if kind == "coded" and "met_valueset" not in spec:
            raise ConfigError(BUILD["coded-needs"](at=b.at))
        conversions = {" ".join(k.split()): float(v) for k, v in spec.get("conversions", {}).items()}
        return cls(
            b.vs(spec["valueset"]), b.window(spec), kind, spec.get("absent", "unknown"), b.readings,
            bool(spec.get("viral_load")), bool(spec.get("positive_only")), grades, spec.get("op"), spec.get("value"),
            spec.get("unit"), conversions or None, ratio,
            b.vs(spec["met_valueset"]) if "met_valueset" in spec else None,
            b.vs(spec["not_met_valueset"]) if "not_met_valueset" in spec else None,
            bool(spec.get("include_reports", True)), spec.get("hint"), spec.get("label", ""),
            bool(spec.get("signed", False)),
        )

    def reads(self) -> Iterator[Read]:
        yield read("Observation", self.vs, *_OBS_ELEMENTS)
        if self.ratio:
            yield read("Observation", self.ratio[0], *_OBS_ELEMENTS)
            yield read("Observation", self.ratio[1], *_OBS_ELEMENTS)
        if self.include_reports:
            yield read("DiagnosticReport", self.vs, *_REPORT_ELEMENTS)

    # -- judging one result
    def _judge(self, res: Res, ctx: Context) -> tuple[Tri, Arg]:
        if res.type == "DiagnosticReport" and self.read != "coded":
            return self._report(res, ctx)
        return self._judge_raw(res.raw, res, ctx)

    def _report(self, res: Res, ctx: Context) -> tuple[Tri, Arg]:
        """A report coded for the test: each conclusionCode read as the result's value; they must agree."""
        conclusions = res.raw.get("conclusionCode")
        views = [{"resourceType": "Observation", "valueCodeableConcept": cc}
                 for cc in (conclusions if isinstance(conclusions, list) else ()) if isinstance(cc, dict)]
        if not views:
            return UNKNOWN, NO_CONCLUSION()
        found = [self._judge_raw(v, res, ctx) for v in views]
        if any(t != found[0][0] for t, _ in found):
            return UNKNOWN, CONCLUSIONS_DISAGREE(one=found[0][1], other=next(h for t, h in found if t != found[0][0]))
        return found[0]

    def _judge_raw(self, raw: dict, res: Res, ctx: Context) -> tuple[Tri, Arg]:
        absent = absent_reason(raw) if not (res.type == "DiagnosticReport" and raw is res.raw) else None
        if absent is not None:  # whatever value sits beside it, the result says it has none
            return UNKNOWN, DATA_ABSENT(reason=clip(absent, 60))
        if self.read == "qualitative":
            assert self.readings is not None
            value, how = qualitative(raw, ctx.tx, self.readings, viral_load=self.viral_load)
            if self.positive_only:
                return (MET if value == POSITIVE else NOT_MET), how
            return (MET if value == POSITIVE else NOT_MET if value == NEGATIVE else UNKNOWN), how
        if self.read == "grade":
            assert self.grades is not None and self.readings is not None
            value, how = grade(raw, self.grades, self.readings, ctx.tx)
            return (MET if value == "met" else NOT_MET if value == "not-met" else UNKNOWN), how
        if self.read == "threshold":
            n = number(raw)
            if n is None:
                return UNKNOWN, NO_NUMBER()
            return self._threshold(n.value, n.comparator, n.unit, n.spellings)
        if self.read == "coded":
            if res.type == "DiagnosticReport":
                conclusions = raw.get("conclusionCode")
                concepts = [cc for cc in conclusions if isinstance(cc, dict)] if isinstance(conclusions, list) else []
            else:
                value = raw.get("valueCodeableConcept")
                concepts = [value] if isinstance(value, dict) else []
            return self._coded(concepts, ctx)
        raise ConfigError(BUILD["unknown-read"](read=repr(self.read)))

    def _coded(self, concepts: list[dict], ctx: Context) -> tuple[Tri, Arg]:
        """A coded finding (or findings): one in the met value set meets, one in the not-met value set does not. Both
        in one result, or a finding beside a part of the result fhir3t cannot read (a conclusion written only as text,
        a hospital's code no ConceptMap translates), is unknown: that part may say the opposite."""
        assert self.met_vs is not None
        concept_codes: list[Code] = [c for cc in concepts for c in ctx.tx.codes(cc)]
        met = next((c for c in concept_codes if c in self.met_vs), None)
        not_met = next((c for c in concept_codes if self.not_met_vs is not None and c in self.not_met_vs), None)
        if met is not None and not_met is not None:
            return UNKNOWN, FINDINGS_DISAGREE(one=met[1], other=not_met[1])
        found = met or not_met
        if found is None:
            return UNKNOWN, NO_FINDING() if not concept_codes else UNCLASSIFIED(code=concept_codes[0][1])
        odd = next((w for cc in concepts if (w := _unread_part(cc, ctx)) is not None), None)
        if odd is not None:
            return UNKNOWN, FINDING_BESIDE(code=found[1], part=odd)
        if met is not None and self.readings is not None:  # '间质性肺病可能', '排除间质性肺病': suspected or ruled out
            hedge = self.readings.hedge([t for cc in concepts if met in ctx.tx.codes(cc) for t in concept_texts(cc)])
            if hedge is not None:
                return UNKNOWN, FINDING_HEDGED(code=met[1], word=hedge)
        return (MET if met is not None else NOT_MET), FINDING(code=found[1])

    def _threshold(self, value: float, comparator: str | None, unit: str | None,
                   spellings: tuple[str, ...] = ()) -> tuple[Tri, Arg]:
        assert self.op is not None and self.threshold is not None
        shown = f"{comparator or ''}{value:g}{' ' + unit if unit else ''}"
        if value < 0 and not self.signed:  # a lab system's "not read" (-1), or a sign the measurement cannot have
            return UNKNOWN, NEGATIVE_VALUE(value=shown)
        if self.unit is not None:
            written = spellings or ((unit,) if unit else ())
            factors = [self._factor(s) for s in written] or [self._factor(None)]
            unknown = next((s for s, f in zip(written, factors, strict=False) if f is None), None)
            if unknown is not None or factors[0] is None:
                if unknown is not None and unknown != unit:
                    shown += f" ({unknown})"
                return UNKNOWN, UNIT_UNKNOWN(value=shown, unit=self.unit)
            if any(f != factors[0] for f in factors):
                return UNKNOWN, UNITS_DISAGREE(value=shown, one=written[0],
                                               other=next(s for s, f in zip(written, factors, strict=False) if f != factors[0]))
            factor = factors[0]
            assert factor is not None
            if factor != 1 or unit != self.unit:
                value *= factor
                shown += f" = {value:g} {self.unit}"
        ok = compare(Number(value, comparator, unit), self.op, self.threshold)
        if ok is None:
            return UNKNOWN, CANNOT_COMPARE(value=shown, op=self.op, threshold=float(self.threshold))
        return (MET if ok else NOT_MET), shown

    def _factor(self, unit: str | None) -> float | None:
        """What a value in `unit` is multiplied by to be in the rule's unit (None: not understood)."""
        if unit == self.unit:
            return 1.0
        return (self.conversions or {}).get(" ".join(unit.split()) if unit else "")

    def _unreadable(self, res: Res, ctx: Context) -> tuple[Tri, Arg]:
        return UNKNOWN, UNREADABLE_RESULT(record=record_name(res), what=describe_suspect(res, ctx.tx, self.vs))

    def _named_other(self, res: Res, ctx: Context) -> str | None:
        """The name of another test the criteria read that a result coded as this one is called by ('丙肝抗体' on a
        result coded HBsAg), when nothing in its name is this test's; else None."""
        if not res.texts:
            return None
        key = (res.texts, res.codes)
        cache: dict[tuple[object, ...], str | None] = self.__dict__.setdefault("_named_cache", {})
        if key in cache:  # a hospital's few names repeat over every patient
            return cache[key]
        found: str | None = None
        if self.vs.named_in(res.texts) is None:
            for other in ctx.valuesets.get("Observation", ()):
                if other is not self.vs and other.names and not any(c in other for c in res.codes):
                    found = other.named_in(res.texts)
                    if found is not None:
                        break
        if len(cache) > 20_000:
            cache.clear()
        cache[key] = found
        return found

    def _misnamed(self, res: Res, name: str, ctx: Context) -> tuple[Tri, Arg]:
        code = next((c for c in res.codes if c in self.vs), None)
        shown = f"{ctx.tx.systems.name(code[0])} {code[1]}" if code is not None else "?"
        return UNKNOWN, UNREADABLE_RESULT(record=record_name(res), what=NAMED_OTHER(code=shown, name=name))

    def _split(self, res: Res, ctx: Context) -> tuple[Tri, Arg]:
        split = split_codes(res, self.vs)
        assert split is not None
        inside, outside = (f"{ctx.tx.systems.name(c[0])} {c[1]}" for c in split)
        return UNKNOWN, UNREADABLE_RESULT(record=record_name(res), what=CODED_AS_TWO(inside=inside, outside=outside))

    def _candidates(self, ctx: Context) -> list[_Candidate]:
        types = ("Observation", "DiagnosticReport") if self.include_reports else ("Observation",)
        observations, split = ctx.matching_and_split("Observation", self.vs)
        named = [(r, other) for r in observations if (other := self._named_other(r, ctx)) is not None]
        if named:  # coded as this test, named as another: which is it?
            observations = [r for r in observations if all(r is not x for x, _ in named)]
        out = [_Candidate(r.span, r.date_text or "", (r.ref,), partial(self._judge, r, ctx)) for r in observations]
        if self.include_reports:
            read_through = {r.part_of for r in observations if r.part_of}
            reports, split_reports = ctx.matching_and_split("DiagnosticReport", self.vs)
            split += split_reports
            for r in reports:
                if r.ref in read_through and not r.raw.get("conclusionCode"):
                    continue  # a report without a coded conclusion is read through its results
                out.append(_Candidate(r.span, r.date_text or "", (r.ref,), partial(self._judge, r, ctx)))
        for r, other in named:
            out.append(_Candidate(r.span, r.date_text or "", (r.ref,), partial(self._misnamed, r, other, ctx)))
        for r in split:  # coded as this test and as another
            out.append(_Candidate(r.span, r.date_text or "", (r.ref,), partial(self._split, r, ctx)))
        for r in ctx.doubtful(types, self.vs):
            if any(r is x for x in split):
                continue
            out.append(_Candidate(r.span, r.date_text or "", (r.ref,), partial(self._unreadable, r, ctx)))
        if self.ratio:
            num_vs, den_vs, scale = self.ratio
            nums = [r for r in ctx.matching("Observation", num_vs) if r.span and r.span.exact]
            dens = [r for r in ctx.matching("Observation", den_vs) if r.span and r.span.exact]
            for n in nums:
                for d in dens:
                    if d.span == n.span:
                        out.append(_Candidate(n.span, n.date_text or "", (n.ref, d.ref),
                                              partial(self._ratio, n, d, scale)))
        return out

    def _ratio(self, num: Res, den: Res, scale: float) -> tuple[Tri, Arg]:
        a, b = number(num.raw), number(den.raw)
        if absent_reason(num.raw) is not None or absent_reason(den.raw) is not None:
            return UNKNOWN, RATIO_UNUSABLE()
        if a is None or b is None or b.value == 0 or a.comparator or b.comparator or a.value < 0 or b.value < 0:
            return UNKNOWN, RATIO_UNUSABLE()
        if not a.unit or not b.unit:
            return UNKNOWN, RATIO_NO_UNIT(measured=a.unit or "-", predicted=b.unit or "-")
        if set(a.spellings) != set(b.spellings):
            return UNKNOWN, RATIO_UNITS(measured=" / ".join(a.spellings), predicted=" / ".join(b.spellings))
        value = scale * a.value / b.value
        tri, _ = self._threshold(value, None, self.unit)
        return tri, RATIO(value=f"{value:.1f} {self.unit or ''}".strip(), measured=float(a.value), predicted=float(b.value))

    @property
    def title(self) -> Text:
        return text_arg(self.label) or self.vs.name_text

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        window = windows[self.window].describe()
        if self.read == "threshold":
            return DESCRIBE_THRESHOLD(test=self.title, window=window, op=OPS[str(self.op)](),
                                      value=f"{self.threshold:g}{' ' + self.unit if self.unit else ''}")
        if self.read == "grade" and self.grades is not None:
            met = [g for g, v in self.grades.items() if v == "met"]
            return DESCRIBE_GRADE(test=self.title, window=window, grades=many(met, "or"))
        if self.read == "coded" and self.met_vs is not None:
            return DESCRIBE_CODED(test=self.title, window=window, finding=self.met_vs.name_text)
        return DESCRIBE_POSITIVE(test=self.title, window=window)

    def evaluate(self, ctx: Context) -> Outcome:
        window = ctx.window(self.window)
        title = self.title
        surely: list[_Candidate] = []
        maybe: list[_Candidate] = []
        outside: list[_Candidate] = []
        for c in self._candidates(ctx):
            inside = window.contains(c.span) if c.span is not None else UNKNOWN
            if inside == MET:
                surely.append(c)
            elif inside == UNKNOWN:
                maybe.append(c)
            else:
                outside.append(c)
        if not surely and not maybe:
            latest = str(max(outside, key=_recency).span) if outside else None
            if self.absent == UNKNOWN:
                return self._once((window, latest), lambda: Outcome(UNKNOWN, (), reason(
                    (NONE_IN_OLDER(test=title, window=str(window), latest=latest) if latest else
                     NONE_IN(test=title, window=str(window))),
                    settle_hint(self.vs, ctx.tx, text_arg(self.hint), title), stale=latest)))
            return self._once(window, lambda: Outcome(self.absent, (), reason(NONE_IN(test=title, window=str(window)))))
        if surely:
            return self._decide(surely, maybe, title, ctx)
        m = maybe[0]
        mtri, mhow = m.judge()
        absent_tri = self.absent
        dated = str(m.span) if m.span else UNKNOWN_DATE()
        if mtri == absent_tri and all(x.judge()[0] == mtri for x in maybe):
            return Outcome(mtri, tuple(r for x in maybe for r in x.refs), reason(DATED(test=title, how=mhow, day=dated)))
        return Outcome(UNKNOWN, tuple(r for x in maybe for r in x.refs),
                       reason(MAY_FALL_OUTSIDE(test=title, how=mhow, day=dated, window=str(window)), FULL_DATE()))

    def _decide(self, surely: list[_Candidate], maybe: list[_Candidate], title: Text, ctx: Context) -> Outcome:
        surely.sort(key=_recency, reverse=True)
        best = surely[0]
        tri, how = best.judge()
        found = RESULT(test=title, how=how, when=when(best.span))
        # results that cannot be put in order (same day, no comparable time) and disagree
        for other in surely[1:]:
            if not _same_moment(best, other):
                continue  # provably earlier (another day, or an earlier zoned time)
            otri, ohow = other.judge()
            if otri != tri:
                return Outcome(UNKNOWN, best.refs + other.refs,
                               reason(DISAGREE(test=title, when=when(best.span), one=how, other=ohow), REPEAT()))
        # a result of uncertain date that might be more recent and says otherwise leaves it open
        assert best.span is not None
        for m in maybe:
            if m.span is None or m.span.hi >= best.span.lo:
                mtri, mhow = m.judge()
                if mtri != tri:
                    dated = str(m.span) if m.span else UNKNOWN_DATE()
                    return Outcome(UNKNOWN, best.refs + m.refs,
                                   reason(BUT_MAYBE(found=found, day=dated, how=mhow), FULL_DATE_IT()))
        if tri == UNKNOWN:
            return Outcome(tri, best.refs, reason(found, OR_READABLE(hint=settle_hint(self.vs, ctx.tx,
                                                                                      text_arg(self.hint), title))))
        return Outcome(tri, best.refs, reason(found))


