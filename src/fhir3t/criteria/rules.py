"""The reusable rule kinds criteria are built from, and the Kleene combinators.

A criterion in `profiles/criteria/*.json` is a tree: leaves name a `rule` kind below with
its parameters (value sets, window, thresholds), inner nodes are `all` / `any` / `either` /
`not`. Each leaf returns an Outcome: met / not-met / unknown, the resources that decided it,
and a sentence saying why (and, when unknown, what would settle it).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache, partial
from typing import Any, ClassVar

from fhir3t.criteria.context import Context
from fhir3t.criteria.model import Outcome, merge_evidence
from fhir3t.criteria.readings import NEGATIVE, POSITIVE, Readings, compare, grade, number, qualitative
from fhir3t.dates import Span, Window, age_on, instant
from fhir3t.errors import ConfigError
from fhir3t.jsonshape import child
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri, k_and, k_either, k_not, k_or
from fhir3t.record import Res, span_of, status_code
from fhir3t.terminology import Code, Terminology, ValueSet

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
UNCERTAIN_VERIFICATION = frozenset({"unconfirmed", "provisional", "differential"})


class Rule:
    """A node of a criterion's rule tree."""

    label: str = ""

    def evaluate(self, ctx: Context) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def needs(self) -> Iterable[tuple[str, ValueSet | None]]:
        """(resource type, value set its main code must be in, or None for any) this rule reads."""
        return ()

    def _once(self, key: object, make: Callable[[], Outcome]) -> Outcome:
        """The same inputs give the same Outcome: build it once (most patients lack most records)."""
        cache = self.__dict__.setdefault("_memo", {})
        hit = cache.get(key)
        if hit is None:
            if len(cache) >= 4096:
                cache.clear()
            hit = cache[key] = make()
        return hit


# ---------------------------------------------------------------- combinators
@dataclass
class Combine(Rule):
    op: str
    parts: list[Rule]
    label: str = ""

    FUNCS: ClassVar[dict[str, Callable[[Iterable[Tri]], Tri]]] = {"all": k_and, "any": k_or, "either": k_either}

    def evaluate(self, ctx: Context) -> Outcome:
        outs = tuple(p.evaluate(ctx) for p in self.parts)
        return self._once(outs, lambda: self._combine(outs))

    def _combine(self, outs: tuple[Outcome, ...]) -> Outcome:
        result = self.FUNCS[self.op]([o.result for o in outs])
        if (self.op == "all" and result == NOT_MET) or (self.op in ("any", "either") and result == MET):
            deciding = [o for o in outs if o.result == result]
        elif result == UNKNOWN:
            deciding = [o for o in outs if o.result == UNKNOWN] + (
                [o for o in outs if o.result == MET] if self.op == "all" else [])
        else:
            deciding = [o for o in outs if o.result == result] if self.op == "either" else list(outs)
        return Outcome(result, merge_evidence(deciding), join_reasons(o.reason for o in deciding))

    def needs(self):
        for p in self.parts:
            yield from p.needs()


@dataclass
class Not(Rule):
    part: Rule
    label: str = ""

    def evaluate(self, ctx: Context) -> Outcome:
        o = self.part.evaluate(ctx)
        return Outcome(k_not(o.result), o.evidence, o.reason)

    def needs(self):
        return self.part.needs()


# ---------------------------------------------------------------- helpers
def join_reasons(reasons: Iterable[str]) -> str:
    """Join part reasons; "no X record found" parts fold into one "no record found of X, Y"."""
    absent: list[str] = []
    rest: list[str] = []
    sentences = (s for r in reasons if r for s in (r.split("; ") if "; " in r else (r,)))
    for r in dict.fromkeys(sentences):  # the same sentence twice says nothing more
        if not r:
            continue
        if r.startswith("no ") and r.endswith(" record found"):
            absent.append(r[3:-len(" record found")])
        else:
            rest.append(r)
    if len(absent) == 1:
        rest.insert(0, f"no {absent[0]} record found")
    elif absent:
        rest.insert(0, "no record found of " + ", ".join(absent[:-1]) + " or " + absent[-1])
    return "; ".join(rest)


def unreadable_instead(out: Outcome, ctx: Context, types: tuple[str, ...],
                       judge: Callable[[Res], Tri] | None = None) -> Outcome:
    """A not-met that rests on absence is unknown while records of these types cannot be read.

    The spec takes the EHR as complete for diagnoses, drugs and allergies; a Condition coded only
    in text (or in a system fhir3t does not know) might be exactly the one the rule looks for.
    `judge` tells what such a record would give if its code did match (a resolved 1999 Condition
    cannot make an 'active' rule met), so only records that could change the answer count.
    """
    if out.result != NOT_MET:
        return out
    unread = [r for t in types for r in ctx.record.uncoded.get(t, ())
              if not r.dated_after(ctx.as_of) and (judge is None or judge(r) != NOT_MET)]
    if not unread:
        return out
    from fhir3t.record import describe_concept, main_concept

    what = describe_concept(main_concept(unread[0].type, unread[0].raw, lambda ref: None))
    more = f" and {len(unread) - 1} more" if len(unread) > 1 else ""
    return Outcome(UNKNOWN, out.evidence + tuple(r.ref for r in unread),
                   f"{out.reason}; {unread[0].ref}{more} has no code fhir3t can read ({what}): code it to decide")


def _names(res: Res, vs: ValueSet, tx: Terminology) -> str:
    """'M33.10' style short name of the matching code, for reasons."""
    for code in res.codes:
        if code in vs:
            return f"{tx.systems.name(code[0])} {code[1]}"
    return res.type


def _when(span: Span | None) -> str:
    return f" on {span}" if span is not None else " (undated)"


def _most_recent_first(items: list[Res]) -> list[Res]:
    return sorted(items, key=lambda r: (r.span.hi if r.span else date.min,
                                        r.span.lo if r.span else date.min,
                                        r.date_text or ""), reverse=True)


def _settle_hint(vs: ValueSet, tx: Terminology, hint: str | None) -> str:
    if hint:
        return hint
    code = vs.first_code()
    if code is None:
        return f"record a {vs.title} result"
    return f"order {tx.systems.name(code[0])} {code[1]} at screening"


# ---------------------------------------------------------------- leaves
@dataclass
class Age(Rule):
    """Age in completed years at as_of: `min_years` (met if ≥) or `below_years` (met if <)."""

    min_years: int | None = None
    below_years: int | None = None
    label: str = "age"

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
            return Outcome(UNKNOWN, ev, f"birth date {birth!r} cannot be read: correct it to decide 'age {self._want()}'")
        oldest, youngest = age_on(span.lo, ctx.as_of), age_on(span.hi, ctx.as_of)
        a, b = self._test(oldest), self._test(youngest)
        if a == b:
            shown = f"{youngest}" if oldest == youngest else f"{youngest}-{oldest} (birth date {span})"
            return Outcome(MET if a else NOT_MET, ev, f"age {shown} at {ctx.as_of} ({self._want()} required)")
        return Outcome(UNKNOWN, ev, f"birth date {span} gives age {youngest} or {oldest} at {ctx.as_of}: "
                                    f"the full birth date decides 'age {self._want()}'")


@dataclass
class Gender(Rule):
    """met if Patient.gender is one of `genders` (absent gender counts as 'unknown')."""

    genders: frozenset[str]
    label: str = "sex"

    def evaluate(self, ctx: Context) -> Outcome:
        g = (ctx.record.patient or {}).get("gender")
        g = g if isinstance(g, str) and g else "unknown"
        ev = (ctx.patient_ref,) if ctx.record.patient else ()
        return Outcome(MET if g in self.genders else NOT_MET, ev, f"gender {g}")


@dataclass
class ConditionRule(Rule):
    """A Condition in a value set that is active, dated in a window, or ever recorded.

    when: active | window | active-or-window | ever. `dates` picks which dates count for the
    window (onset, abatement, recorded). Unconfirmed diagnoses give unknown, not met.
    """

    vs: ValueSet
    when: str
    window: str | None = None
    dates: tuple[str, ...] = ("onset", "abatement", "recorded")
    on_match: Tri = MET
    label: str = ""
    hint: str | None = None

    def needs(self):
        yield ("Condition", self.vs)

    def _dates(self, raw: dict) -> list[tuple[str, Span | None]]:
        out: list[tuple[str, Span | None]] = []
        fields = {"onset": ("onsetDateTime", "onsetPeriod"), "abatement": ("abatementDateTime", "abatementPeriod"),
                  "recorded": ("recordedDate",)}
        for d in self.dates:
            for f in fields[d]:
                v = raw.get(f)
                if isinstance(v, dict):
                    v = v.get("start") if d == "onset" else v.get("end") or v.get("start")
                if isinstance(v, str):
                    out.append((d, span_of(v)))
                    break
        return out

    def _one(self, res: Res, ctx: Context, window: Window | None) -> tuple[Tri, str]:
        raw = res.raw
        clinical = status_code(raw.get("clinicalStatus"))
        active = clinical is None or clinical in ACTIVE_CLINICAL
        state = clinical or "no clinical status"
        if self.when == "ever":
            tri, why = MET, f"recorded ({state})"
        elif self.when == "active":
            tri, why = (MET, state) if active else (NOT_MET, f"{state}, not active")
        else:
            assert window is not None
            dated = self._dates(raw)
            in_window = [(name, s) for name, s in dated if s is not None]
            w_tri = k_or(window.contains(s) for _, s in in_window) if in_window else UNKNOWN
            if in_window:
                when_txt = ", ".join(f"{name} {s}" for name, s in in_window)
                w_why = f"{when_txt} {'within' if w_tri == MET else 'outside' if w_tri == NOT_MET else 'possibly within'} {window}"
            else:
                w_why = f"no usable {'/'.join(self.dates)} date: record when it occurred"
            if self.when == "window":
                tri, why = w_tri, w_why
            else:
                tri = k_or([MET if active else NOT_MET, w_tri])
                why = state if (active and tri == MET) else f"{state}; {w_why}"
        if tri == MET:
            verification = status_code(raw.get("verificationStatus"))
            if verification in UNCERTAIN_VERIFICATION:
                return UNKNOWN, f"{why}, but {verification}: confirm or refute the diagnosis"
            if self.on_match != MET:
                return self.on_match, f"{why}: {self.hint}" if self.hint else why
        return tri, why

    def evaluate(self, ctx: Context) -> Outcome:
        window = ctx.window(self.window) if self.window else None
        hits = ctx.matching("Condition", self.vs)
        title = self.label or self.vs.title
        if not hits:
            return unreadable_instead(self._once("absent", lambda: Outcome(NOT_MET, (), f"no {title} record found")),
                                      ctx, ("Condition",), lambda r: self._one(r, ctx, window)[0])
        judged = [(r, *self._one(r, ctx, window)) for r in hits]
        result = k_or(t for _, t, _ in judged)
        deciding = [(r, why) for r, t, why in judged if t == result] or [(r, why) for r, _, why in judged]
        parts = [f"{_names(r, self.vs, ctx.tx)} {why}" for r, why in deciding[:3]]
        more = f" (+{len(deciding) - 3} more)" if len(deciding) > 3 else ""
        out = Outcome(result, tuple(r.ref for r, _ in deciding), f"{title}: " + "; ".join(parts) + more)
        return unreadable_instead(out, ctx, ("Condition",), lambda r: self._one(r, ctx, window)[0])


@dataclass
class _Candidate:
    """A result to judge: one Observation (or a derived value from several)."""

    span: Span | None
    text: str
    refs: tuple[str, ...]
    judge: Callable[[], tuple[Tri, str]]

    @property
    def instant(self) -> float | None:
        """UTC timestamp when the date text has a time and a zone (else None: order by day only)."""
        return instant(self.text)


@lru_cache(maxsize=8192)
def _day_end(day: date) -> float:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC).timestamp()


def _recency(c: _Candidate) -> tuple[float, date, date, float]:
    """Order: zoned instants when the result has one, else its local day (late in that day)."""
    ts = c.instant
    hi = c.span.hi if c.span else date.min
    day_end = _day_end(hi) if c.span else float("-inf")
    return (ts if ts is not None else day_end, hi, c.span.lo if c.span else date.min,
            ts if ts is not None else float("-inf"))


def _same_moment(a: _Candidate, b: _Candidate) -> bool:
    """Cannot tell which came later: no two comparable times that differ, and the same day."""
    ta, tb = a.instant, b.instant
    if ta is not None and tb is not None:
        return ta == tb
    return a.span == b.span


@dataclass
class ObservationRule(Rule):
    """The most recent result of a test in a window decides.

    read: qualitative (positive → met), grade (semi-quantitative grade map), threshold
    (numeric comparison, optional ratio of two tests on one day) or coded (value in a
    value set; DiagnosticReport.conclusionCode too).
    """

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
    include_reports: bool = False
    hint: str | None = None
    label: str = ""

    def needs(self):
        yield ("Observation", self.vs)
        if self.ratio:
            yield ("Observation", self.ratio[0])
            yield ("Observation", self.ratio[1])
        if self.include_reports:
            yield ("DiagnosticReport", self.vs)

    # -- judging one result
    def _judge(self, res: Res, ctx: Context) -> tuple[Tri, str]:
        raw = res.raw
        if self.read == "qualitative":
            assert self.readings is not None
            value, how = qualitative(raw, ctx.tx, self.readings, viral_load=self.viral_load)
            if self.positive_only:
                return (MET if value == POSITIVE else NOT_MET), how
            return (MET if value == POSITIVE else NOT_MET if value == NEGATIVE else UNKNOWN), how
        if self.read == "grade":
            assert self.grades is not None
            value, how = grade(raw, self.grades)
            return (value or UNKNOWN), how  # type: ignore[return-value]
        if self.read == "threshold":
            n = number(raw)
            if n is None:
                return UNKNOWN, "no numeric value"
            return self._threshold(n.value, n.comparator, n.unit)
        if self.read == "coded":
            concept_codes: list[Code] = list(ctx.tx.codes(raw.get("valueCodeableConcept")))
            for cc in raw.get("conclusionCode") or ():
                concept_codes.extend(ctx.tx.codes(cc))
            assert self.met_vs is not None
            for code in concept_codes:
                if code in self.met_vs:
                    return MET, f"finding {code[1]}"
            if self.not_met_vs is not None:
                for code in concept_codes:
                    if code in self.not_met_vs:
                        return NOT_MET, f"finding {code[1]}"
            return UNKNOWN, "no coded finding" if not concept_codes else f"finding {concept_codes[0][1]} not classified"
        raise ConfigError(f"unknown read {self.read!r}")

    def _threshold(self, value: float, comparator: str | None, unit: str | None) -> tuple[Tri, str]:
        assert self.op is not None and self.threshold is not None
        shown = f"{comparator or ''}{value:g}{' ' + unit if unit else ''}"
        if self.unit is not None and unit != self.unit:
            factor = (self.conversions or {}).get(unit or "")
            if factor is None:
                return UNKNOWN, f"{shown}: unit not understood (expected {self.unit})"
            value *= factor
            shown += f" = {value:g} {self.unit}"
        from fhir3t.criteria.readings import Number

        ok = compare(Number(value, comparator, unit), self.op, self.threshold)
        if ok is None:
            return UNKNOWN, f"{shown} cannot be compared with {self.op} {self.threshold:g}"
        return (MET if ok else NOT_MET), shown

    def _candidates(self, ctx: Context) -> list[_Candidate]:
        types = ("Observation", "DiagnosticReport") if self.include_reports else ("Observation",)
        out = [
            _Candidate(r.span, r.date_text or "", (r.ref,), partial(self._judge, r, ctx))
            for t in types for r in ctx.matching(t, self.vs)
        ]
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

    def _ratio(self, num: Res, den: Res, scale: float) -> tuple[Tri, str]:
        a, b = number(num.raw), number(den.raw)
        if a is None or b is None or b.value == 0 or a.comparator or b.comparator:
            return UNKNOWN, "measured/predicted values not usable"
        if a.unit and b.unit and a.unit != b.unit:
            return UNKNOWN, f"measured ({a.unit}) and predicted ({b.unit}) DLCO are in different units"
        value = scale * a.value / b.value
        tri, _ = self._threshold(value, None, self.unit)
        return tri, f"{value:.1f} {self.unit or ''} (measured {a.value:g} / predicted {b.value:g})".replace("  ", " ")

    def evaluate(self, ctx: Context) -> Outcome:
        window = ctx.window(self.window)
        title = self.label or self.vs.title
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
            older = f" (the latest, on {max(outside, key=_recency).span}, is outside it)" if outside else ""
            if self.absent == UNKNOWN:
                return self._once((window, older), lambda: Outcome(
                    UNKNOWN, (), f"no {title} result in {window}{older}: {_settle_hint(self.vs, ctx.tx, self.hint)}"))
            return self._once(window, lambda: Outcome(self.absent, (), f"no {title} result in {window}"))
        if surely:
            surely.sort(key=_recency, reverse=True)
            best = surely[0]
            tri, how = best.judge()
            reason = f"{title} {how}{_when(best.span)}"
            # results that cannot be put in order (same day, no comparable time) and disagree
            for other in surely[1:]:
                if not _same_moment(best, other):
                    continue  # provably earlier (another day, or an earlier zoned time)
                otri, ohow = other.judge()
                if otri != tri:
                    return Outcome(UNKNOWN, best.refs + other.refs,
                                   f"{title}: two results{_when(best.span)} disagree ({how}; {ohow}) and their times "
                                   "do not say which is later: repeat the test or mark one entered-in-error")
            # a result of uncertain date that might be more recent and says otherwise leaves it open
            for m in maybe:
                if m.span is None or m.span.hi >= best.span.lo:  # type: ignore[union-attr]
                    mtri, mhow = m.judge()
                    if mtri != tri:
                        return Outcome(UNKNOWN, best.refs + m.refs,
                                       f"{reason}, but a result dated {m.span or 'unknown'} ({mhow}) may be more recent: "
                                       "give it a full date")
            if tri == UNKNOWN:
                reason += f": {_settle_hint(self.vs, ctx.tx, self.hint)} or record a readable result"
            return Outcome(tri, best.refs, reason)
        m = maybe[0]
        mtri, mhow = m.judge()
        absent_tri = self.absent
        if mtri == absent_tri and all(x.judge()[0] == mtri for x in maybe):
            return Outcome(mtri, tuple(r for x in maybe for r in x.refs), f"{title} {mhow}, dated {m.span or 'unknown'}")
        return Outcome(UNKNOWN, tuple(r for x in maybe for r in x.refs),
                       f"{title} {mhow} dated {m.span or 'unknown'} may fall outside {window}: give the full date")


@dataclass
class Checklist(Rule):
    """An answer in the most recent completed screening checklist (QuestionnaireResponse)."""

    link_id: str
    questionnaire: str
    on_true: Tri = MET
    on_false: Tri = NOT_MET
    label: str = ""

    def needs(self):
        yield ("QuestionnaireResponse", None)

    def _find(self, items: Iterable[Any]) -> Any:
        for item in items or ():
            if not isinstance(item, dict):
                continue
            if item.get("linkId") == self.link_id:
                return item
            for ans in item.get("answer") or ():
                if isinstance(ans, dict) and ans.get("item"):
                    hit = self._find(ans["item"])
                    if hit is not None:
                        return hit
            hit = self._find(item.get("item") or ())
            if hit is not None:
                return hit
        return None

    def evaluate(self, ctx: Context) -> Outcome:
        qrs = [r for r in ctx.visible("QuestionnaireResponse")
               if r.raw.get("status") in ("completed", "amended")
               and isinstance(r.raw.get("questionnaire"), str)
               and r.raw["questionnaire"].split("|")[0].rstrip("/").endswith(self.questionnaire)]
        ask = f"answer '{self.link_id}' in the screening checklist (Questionnaire {self.questionnaire.rsplit('/', 1)[-1]})"
        if not qrs:
            return Outcome(UNKNOWN, (), f"no completed screening checklist: {ask}")
        latest = _most_recent_first(qrs)[0]
        item = self._find(latest.raw.get("item") or ())
        answers = [a.get("valueBoolean") for a in (item or {}).get("answer") or () if isinstance(a, dict)]
        answers = [a for a in answers if isinstance(a, bool)]
        if not answers:
            return Outcome(UNKNOWN, (latest.ref,), f"checklist{_when(latest.span)} has no yes/no answer for '{self.link_id}': {ask}")
        value = answers[0]
        return Outcome(self.on_true if value else self.on_false, (latest.ref,),
                       f"checklist{_when(latest.span)}: {self.link_id} = {'yes' if value else 'no'}")


@dataclass
class StudyConsent(Rule):
    """An active Consent that points at this study (or that a ResearchSubject of it names)."""

    label: str = "consent for this study"

    def needs(self):
        yield ("Consent", None)
        yield ("ResearchSubject", None)

    def _points_at_study(self, raw: dict, ctx: Context) -> bool:
        """sourceReference, or a *permit* provision's data, names this study (a deny never counts)."""
        refs: list[object] = [raw.get("sourceReference")]

        def walk(provision: object, permit: bool) -> None:
            if not isinstance(provision, dict):
                return
            kind = provision.get("type")
            permit = permit if kind is None else kind == "permit"  # nested provisions are exceptions
            if permit:
                for d in provision.get("data") or ():
                    if isinstance(d, dict):
                        refs.append(d.get("reference"))
            for sub in provision.get("provision") or ():
                walk(sub, permit)

        top = raw.get("provision")
        walk(top, True)
        if isinstance(top, dict) and top.get("type") == "deny":
            refs[0] = None  # a consent that denies this use does not consent to the study
        return any(ctx.study.match(r) is True for r in refs if r is not None)

    @staticmethod
    def _usable(raw: dict, as_of: date) -> bool:
        """Active, not a blanket deny, and its provision period (if any) not over by as_of."""
        top = raw.get("provision")
        if not isinstance(top, dict):
            return True
        if top.get("type") == "deny":
            return False
        period = child(top, "period")
        end = span_of(period.get("end"))
        return end is None or end.hi >= as_of

    def evaluate(self, ctx: Context) -> Outcome:
        named_by_subject: set[str] = set()
        for rs in ctx.visible("ResearchSubject"):
            if rs.raw.get("status") in ("withdrawn", "ineligible", "not-registered"):
                continue  # a subject who left or never joined does not vouch for a consent
            if ctx.study.match(rs.raw.get("study")) is True:
                c = rs.raw.get("consent")
                if isinstance(c, dict) and isinstance(c.get("reference"), str):
                    named_by_subject.add("/".join(c["reference"].rstrip("/").split("/")[-2:]))
        consents = [r for r in ctx.visible("Consent")
                    if r.raw.get("status") == "active" and self._usable(r.raw, ctx.as_of)]
        for c in consents:
            if c.ref in named_by_subject or self._points_at_study(c.raw, ctx):
                return Outcome(MET, (c.ref,), f"active Consent for {ctx.study.value}{_when(c.span)}")
        if consents:
            return Outcome(NOT_MET, (), "no active Consent names this study (a generic consent does not suffice)")
        return Outcome(NOT_MET, (), "no Consent record for this study found")


@dataclass
class MedicationRule(Rule):
    """Medication records of drugs in a value set.

    mode exposure: last exposure within the window (met), before it (not-met), unknown date (unknown).
    mode stopped-for-reason: stopped/completed with a poor-response statusReason (met), with no
    reason (unknown), active or other reasons (not-met).
    """

    vs: ValueSet
    mode: str
    window: str | None = None
    half_lives: float = 0.0
    reasons: ValueSet | None = None
    label: str = ""

    TYPES: ClassVar[tuple[str, ...]] = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")
    ONGOING: ClassVar[frozenset[str]] = frozenset({"active", "intended", "on-hold", "in-progress"})

    def needs(self):
        for t in self.TYPES:
            yield (t, self.vs)

    def last_exposure(self, res: Res, as_of: date) -> tuple[Span | None, str]:
        raw = res.raw
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
        return tri, f"{how}, last exposure {span} {'within' if tri == MET else 'before' if tri == NOT_MET else 'possibly within'} {window}"

    HOURS: ClassVar[dict[str, float]] = {"h": 1, "d": 24, "min": 1 / 60, "wk": 168}

    def __post_init__(self) -> None:
        for code, props in self.vs.properties.items():
            hl = props.get("half-life")
            if hl is not None and not (isinstance(hl, dict) and isinstance(hl.get("value"), (int, float))
                                       and (hl.get("code") or hl.get("unit")) in self.HOURS):
                raise ConfigError(f"value set {self.vs.id}: half-life of {code[1]} needs a value and a UCUM unit "
                                  f"({', '.join(self.HOURS)})")

    @classmethod
    def _half_life_of(cls, prop: object) -> float:
        if isinstance(prop, dict) and isinstance(prop.get("value"), (int, float)):
            return float(prop["value"]) * cls.HOURS.get(prop.get("code") or prop.get("unit") or "", 0.0)
        return 0.0

    def _half_life(self, code: Code) -> float:
        return self._half_life_of(self.vs.prop(code, "half-life"))

    def _stopped(self, res: Res, ctx: Context) -> tuple[Tri, str]:
        assert self.reasons is not None
        raw = res.raw
        reasons = raw.get("statusReason")
        reasons = reasons if isinstance(reasons, list) else [reasons] if isinstance(reasons, dict) else []
        codes = [c for cc in reasons for c in ctx.tx.codes(cc)]
        status = raw.get("status") if isinstance(raw.get("status"), str) else "no status"
        if any(c in self.reasons for c in codes):
            return MET, f"{status} for {next(c for c in codes if c in self.reasons)[1]} ({self.reasons.title.lower()})"
        if status in ("stopped", "completed"):
            if not reasons:
                return UNKNOWN, f"{status} with no reason recorded: record why it was stopped"
            if not codes:
                texts = [cc.get("text") for cc in reasons if isinstance(cc, dict) and isinstance(cc.get("text"), str)]
                return UNKNOWN, (f"{status}, reason given only as text ('{texts[0]}'): code it "
                                 f"(e.g. SNOMED CT 58848006 lack of drug action) to decide" if texts else
                                 f"{status} with an unreadable reason: record why it was stopped")
            return NOT_MET, f"{status} for another reason"
        return NOT_MET, f"{status}"

    def _judge(self, res: Res, ctx: Context) -> Tri:
        return (self._exposure if self.mode == "exposure" else self._stopped)(res, ctx)[0]

    def evaluate(self, ctx: Context) -> Outcome:
        hits = [r for r in ctx.visible_many(*self.TYPES) if any(c in self.vs for c in r.codes)]
        title = self.label or self.vs.title
        if not hits:
            return unreadable_instead(self._once("absent", lambda: Outcome(NOT_MET, (), f"no {title} record found")),
                                      ctx, self.TYPES, lambda r: self._judge(r, ctx))
        judge = self._exposure if self.mode == "exposure" else self._stopped
        judged = [(r, *judge(r, ctx)) for r in hits]
        result = k_or(t for _, t, _ in judged)
        deciding = [(r, why) for r, t, why in judged if t == result]
        parts = [f"{_names(r, self.vs, ctx.tx)} {why}" for r, why in deciding[:3]]
        out = Outcome(result, tuple(r.ref for r, _ in deciding), f"{title}: " + "; ".join(parts))
        return unreadable_instead(out, ctx, self.TYPES, lambda r: self._judge(r, ctx))


@dataclass
class AllergyRule(Rule):
    """An AllergyIntolerance to a drug in the value set (optionally only if still active)."""

    vs: ValueSet
    active_only: bool = True
    label: str = ""

    def needs(self):
        yield ("AllergyIntolerance", self.vs)

    def evaluate(self, ctx: Context) -> Outcome:
        title = self.label or f"allergy to {self.vs.title}"
        hits = [r for r in ctx.visible("AllergyIntolerance") if any(c in self.vs for c in r.codes)]
        live = [r for r in hits if not self.active_only or status_code(r.raw.get("clinicalStatus")) not in ("inactive", "resolved")]
        if live:
            return Outcome(MET, tuple(r.ref for r in live), f"{title}: {_names(live[0], self.vs, ctx.tx)} recorded")
        if hits:
            out = Outcome(NOT_MET, tuple(r.ref for r in hits), f"{title}: only inactive/resolved records")
        else:
            out = Outcome(NOT_MET, (), f"no {title} record found")
        return unreadable_instead(out, ctx, ("AllergyIntolerance",),
                                  lambda r: NOT_MET if self.active_only and status_code(r.raw.get("clinicalStatus"))
                                  in ("inactive", "resolved") else MET)


@dataclass
class AdverseEventSuspect(Rule):
    """An actual AdverseEvent whose suspect entity is a drug in the value set."""

    vs: ValueSet
    label: str = ""

    def needs(self):
        yield ("AdverseEvent", self.vs)

    def evaluate(self, ctx: Context) -> Outcome:
        hits = [r for r in ctx.visible("AdverseEvent")
                if r.raw.get("actuality") != "potential" and any(c in self.vs for c in r.codes)]
        title = self.label or f"adverse event suspected of {self.vs.title}"
        if hits:
            return Outcome(MET, tuple(r.ref for r in hits), f"{title}{_when(hits[0].span)}")
        return Outcome(NOT_MET, (), f"no {title} record found")


@dataclass
class OtherStudy(Rule):
    """A ResearchSubject of another study, in an active status, whose period overlaps the window."""

    statuses: frozenset[str]
    window: str
    label: str = "participation in another interventional study"

    def needs(self):
        yield ("ResearchSubject", None)

    def evaluate(self, ctx: Context) -> Outcome:
        window = ctx.window(self.window)
        judged: list[tuple[Res, Tri, str]] = []
        for r in ctx.visible("ResearchSubject"):
            raw = r.raw
            if not isinstance(raw.get("status"), str) or raw["status"] not in self.statuses:
                continue
            ours = ctx.study.match(raw.get("study"))
            if ours is True:
                continue
            period = child(raw, "period")
            start, end = span_of(period.get("start")), span_of(period.get("end"))
            sure = (start is None or start.hi <= window.hi) and (end is None or end.lo >= window.lo)
            never = (start is not None and start.lo > window.hi) or (end is not None and end.hi < window.lo)
            tri = MET if sure else NOT_MET if never else UNKNOWN
            study_ref = child(raw, "study")
            ident = child(study_ref, "identifier")
            study = study_ref.get("reference") or (f"study {ident.get('value')}" if ident.get("value") else "an unnamed study")
            if tri == MET and ours is None:
                judged.append((r, UNKNOWN, f"{raw['status']} in {study}, which is not in the input: "
                                           f"check whether it is {ctx.study.value}"))
                continue
            span_txt = f"{start or '?'}..{end or 'ongoing'}"
            how = "overlapping" if tri == MET else "not overlapping" if tri == NOT_MET else "possibly overlapping"
            judged.append((r, tri, f"{raw['status']} in {study} ({span_txt}) {how} {window}"))
        if not judged:
            return Outcome(NOT_MET, (), "no other-study participation record found")
        result = k_or(t for _, t, _ in judged)
        deciding = [(r, why) for r, t, why in judged if t == result]
        return Outcome(result, tuple(r.ref for r, _ in deciding), "; ".join(why for _, why in deciding))


@dataclass
class ImmunizationRule(Rule):
    """A completed Immunization (any vaccine, or one in `vs`) dated within the window."""

    window: str
    vs: ValueSet | None = None
    label: str = "vaccination"

    def needs(self):
        yield ("Immunization", self.vs)

    def evaluate(self, ctx: Context) -> Outcome:
        window = ctx.window(self.window)
        hits = [r for r in ctx.visible("Immunization")
                if r.raw.get("status") in ("completed", "amended") and (self.vs is None or any(c in self.vs for c in r.codes))]
        if not hits:
            return Outcome(NOT_MET, (), f"no {self.label} record found")
        judged = [(r, window.contains(r.span) if r.span else UNKNOWN) for r in hits]
        result = k_or(t for _, t in judged)
        deciding = [r for r, t in judged if t == result]
        if result == MET:
            r = deciding[0]
            code = r.codes[0][1] if r.codes else "unknown vaccine"
            return Outcome(MET, tuple(x.ref for x in deciding), f"{self.label} {code} on {r.span}, within {window}")
        if result == UNKNOWN:
            return Outcome(UNKNOWN, tuple(x.ref for x in deciding), f"{self.label} with no usable date: record when it was given")
        return Outcome(NOT_MET, (), f"no {self.label} within {window}")


@dataclass
class RecommendationRule(Rule):
    """An ImmunizationRecommendation (due/overdue) for a vaccine in the value set."""

    vs: ValueSet
    label: str = "planned live vaccine"

    def needs(self):
        yield ("ImmunizationRecommendation", None)

    def evaluate(self, ctx: Context) -> Outcome:
        for r in ctx.visible("ImmunizationRecommendation"):
            for rec in r.raw.get("recommendation") or ():
                if not isinstance(rec, dict):
                    continue
                forecast = status_code(rec.get("forecastStatus"))
                if forecast in ("complete", "immune", "contraindicated"):
                    continue
                codes = [c for cc in rec.get("vaccineCode") or () for c in ctx.tx.codes(cc)]
                hit = next((c for c in codes if c in self.vs), None)
                if hit:
                    return Outcome(MET, (r.ref,), f"{self.label}: {ctx.tx.systems.name(hit[0])} {hit[1]} recommended "
                                                  f"({forecast or 'no forecast status'})")
        return Outcome(NOT_MET, (), f"no {self.label} record found")
