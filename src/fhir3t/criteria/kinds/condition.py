"""`condition`: a Condition in a value set that is active, dated in a window, or ever recorded."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import AS_WRITTEN, LABEL_SCHEMA, Builder, Kind, Label, Rule, code_name, code_word, text_arg, unless_unread
from fhir3t.criteria.model import Outcome
from fhir3t.criteria.readings import Readings
from fhir3t.dates import Span, Window, age_span, range_span
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri, k_or
from fhir3t.messages import Clause, Message, Msg, clause, many
from fhir3t.messages.reasons import absent
from fhir3t.r4facts import r4_facts
from fhir3t.records.build import span_of, status_code
from fhir3t.records.model import Res
from fhir3t.records.plan import Read, read
from fhir3t.terminology import ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
UNCERTAIN_VERIFICATION = frozenset({"unconfirmed", "provisional", "differential"})
_FIELDS = {"onset": ("onsetDateTime", "onsetPeriod", "onsetAge", "onsetRange"),
           "abatement": ("abatementDateTime", "abatementPeriod", "abatementAge", "abatementRange"),
           "recorded": ("recordedDate",)}
#: the other R4 choices of a date element that say when in words (abatementBoolean says whether, not when)
_UNREAD_FIELDS = {"onset": ("onsetString",), "abatement": ("abatementString",), "recorded": ()}

NO_STATUS = Message("condition.no-status", "no clinical status")
RECORDED = Message("condition.recorded", "recorded ({state})")
STATE = Message("condition.state", "{state}")
NOT_ACTIVE = Message("condition.not-active", "{state}, not active")
DATED = Message("condition.dated", "{name} {day}")
DATE_NAMES = {"onset": Message("condition.date-onset", "onset"),
              "abatement": Message("condition.date-abatement", "abatement"),
              "recorded": Message("condition.date-recorded", "recorded")}
WITHIN = Message("condition.within", "{dates} within {window}")
OUTSIDE = Message("condition.outside", "{dates} outside {window}")
POSSIBLY_WITHIN = Message("condition.possibly-within", "{dates} possibly within {window}")
NO_DATE = Message("condition.no-date", "no usable {dates} date")
RECORD_WHEN = Message("condition.record-when", "record when it occurred")
UNREAD_DATE = Message("condition.unread-date", "{found}, but its {dates} date cannot be read as a date")
CORRECT_DATE = Message("condition.correct-date", "record that date as a FHIR date to decide")
BUT = Message("condition.but", "{finding}, but {verification}")
HEDGED = Message("condition.hedged", "its text says '{word}'")
MAYBE_INACTIVE = Message("condition.maybe-inactive", "{state}, but its text says '{word}'")
CONFIRM = Message("condition.confirm", "confirm or refute the diagnosis")
TITLED = Message("condition.titled", "{title}: {finding}")
CODED = Message("condition.coded", "{code} {finding}")
MORE = Message("condition.more", "{finding} (+{n} more)")
DESCRIBE_EVER = Message("condition.describe-ever", "a diagnosis of {what}, ever recorded")
DESCRIBE_ACTIVE = Message("condition.describe-active", "an active diagnosis of {what}")
DESCRIBE_WINDOW = Message("condition.describe-window", "a diagnosis of {what} with its {dates} date {window}")
DESCRIBE_ACTIVE_OR_WINDOW = Message("condition.describe-active-or-window",
                                    "a diagnosis of {what} that is active, or with its {dates} date {window}")



@dataclass
class ConditionRule(Kind):
    """when: active | window | active-or-window | ever. `dates` picks which dates count for the
    window (onset, abatement, recorded). Unconfirmed diagnoses give unknown, not met."""

    vs: ValueSet
    when: str
    window: str | None = None
    dates: tuple[str, ...] = ("onset", "abatement", "recorded")
    on_match: Tri = MET
    label: Label = ""
    hint: Label | None = None
    readings: Readings | None = None

    kind = "condition"
    params: ClassVar[dict[str, Any]] = {
        "valueset": {"type": "string"},
        "when": {"enum": ["active", "window", "active-or-window", "ever"]},
        "window": {"type": "string"},
        "dates": {"type": "array", "items": {"enum": ["onset", "abatement", "recorded"]}},
        "on_match": {"enum": ["met", "not-met", "unknown"]},
        "hint": LABEL_SCHEMA,
    }
    required = ("valueset", "when")

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        when = spec["when"]
        window = b.window(spec) if when in ("window", "active-or-window") else None
        return cls(b.vs(spec["valueset"]), when, window, tuple(spec.get("dates", ("onset", "abatement", "recorded"))),
                   spec.get("on_match", "met"), spec.get("label", ""), spec.get("hint"), b.readings)

    def reads(self) -> Iterable[Read]:
        yield read("Condition", self.vs, "code", "clinicalStatus", "verificationStatus", "onset[x]", "abatement[x]",
                   "recordedDate", complete=True)

    def _dates(self, raw: dict, birth: Span | None) -> list[tuple[str, Span | None]]:
        """(onset | abatement | recorded, its days) of a Condition; an Age or a Range of Ages counts from the
        birth date. None for a date element that is present but cannot be read as days: a string
        (`onsetString`, `abatementString`), an unparseable date, one written without a value (only its
        `_element`'s extensions: a null flavor, a data-absent-reason), a Period without the end read, an Age in
        a unit fhir3t does not know or without a birth date to count from. It may lie in any window."""
        out: list[tuple[str, Span | None]] = []
        facts = r4_facts()
        for d in self.dates:
            for f in _FIELDS[d]:
                v = raw.get(f)
                if facts.withheld(raw, f) is not None:  # there without a value (a null flavor): it may be any day
                    out.append((d, None))
                    break
                if v is None:
                    continue
                if f.endswith("Age"):
                    out.append((d, age_span(birth, v) if birth is not None else None))
                elif f.endswith("Range"):
                    out.append((d, range_span(birth, v) if birth is not None else None))
                else:
                    if isinstance(v, dict):
                        part = "start" if d == "onset" or (v.get("end") is None and "_end" not in v) else "end"
                        v = None if facts.withheld(v, part) is not None else v.get(part)
                    out.append((d, span_of(v)))
                break
            else:
                if any(k in raw for k in _UNREAD_FIELDS[d]):  # a choice fhir3t cannot read as days
                    out.append((d, None))
        return out

    def _one(self, res: Res, ctx: Context, window: Window | None) -> tuple[Tri, list[Clause]]:
        """The result of one Condition, and why."""
        raw = res.raw
        clinical = status_code(raw.get("clinicalStatus"))
        active = clinical is None or clinical in ACTIVE_CLINICAL
        state: Msg | str = code_word("clinical", clinical) if clinical else NO_STATUS()
        # its text says it may no longer be active ('皮肌炎（已缓解）', '既往肺结核'): whether it is, is unknown
        inactive = self.readings.inactive(res.texts) if active and self.readings is not None else None
        now: Tri = UNKNOWN if inactive is not None else MET if active else NOT_MET
        if inactive is not None:
            state = MAYBE_INACTIVE(state=state, word=inactive)
        parts: list[Clause]
        if self.when == "ever":
            tri, parts = MET, [clause(RECORDED(state=state))]
        elif self.when == "active":
            tri, parts = (now, [clause(STATE(state=state))]) if active else (NOT_MET, [clause(NOT_ACTIVE(state=state))])
        else:
            assert window is not None
            patient = ctx.record.patient
            birth = span_of(patient.get("birthDate")) if isinstance(patient, dict) \
                and "birthDate" not in ctx.record.disputed and ctx.record.patient_why is None else None
            dated = self._dates(raw, birth)
            in_window = [(name, s) for name, s in dated if s is not None]
            unread = list(dict.fromkeys(name for name, s in dated if s is None))
            # a date that is there but cannot be read may lie in the window: it keeps the window unknown
            w_tri = k_or([*(window.contains(s) for _, s in in_window), *([UNKNOWN] if unread else [])]) \
                if in_window else UNKNOWN
            if in_window and unread and w_tri == UNKNOWN:
                dates = many([DATED(name=DATE_NAMES[name](), day=str(s)) for name, s in in_window])
                w_part = clause(UNREAD_DATE(dates=many([DATE_NAMES[d]() for d in unread], "/"),
                                            found=OUTSIDE(dates=dates, window=str(window))), CORRECT_DATE())
            elif in_window:
                where = WITHIN if w_tri == MET else OUTSIDE if w_tri == NOT_MET else POSSIBLY_WITHIN
                dates = many([DATED(name=DATE_NAMES[name](), day=str(s)) for name, s in in_window])
                w_part = clause(where(dates=dates, window=str(window)))
            else:
                w_part = clause(NO_DATE(dates=many([DATE_NAMES[d]() for d in self.dates], "/")), RECORD_WHEN())
            if self.when == "window":
                tri, parts = w_tri, [w_part]
            else:
                tri = k_or([now, w_tri])
                first = clause(STATE(state=state))
                parts = [first] if (now == MET and tri == MET) else [first, w_part]
        if tri == MET:
            verification = status_code(raw.get("verificationStatus"))
            if verification in UNCERTAIN_VERIFICATION:
                last = parts[-1]
                return UNKNOWN, [*parts[:-1], clause(BUT(finding=last.finding, verification=code_word("verification", verification)
                                                                           if verification else verification), CONFIRM())]
            hedge = self.readings.hedge(res.texts) if self.readings is not None else None
            if hedge is not None:  # its text says it is suspected or ruled out: an unconfirmed diagnosis
                last = parts[-1]
                return UNKNOWN, [*parts[:-1], clause(BUT(finding=last.finding, verification=HEDGED(word=hedge)),
                                                     CONFIRM())]
            if self.on_match != MET:
                hint = text_arg(self.hint)
                return self.on_match, [*parts[:-1], clause(parts[-1].finding, AS_WRITTEN(text=hint))] if hint else parts
        return tri, parts

    def evaluate(self, ctx: Context) -> Outcome:
        window = ctx.window(self.window) if self.window else None
        hits = ctx.matching("Condition", self.vs)
        title = text_arg(self.label) or self.vs.name_text

        def judge(r: Res) -> Tri:
            return self._one(r, ctx, window)[0]

        if not hits:
            none = self._once("absent", lambda: Outcome(NOT_MET, (), absent(title)))
            return unless_unread(none, ctx, ("Condition",), self.vs, judge, judge_any=self.when == "window")
        judged = [(r, *self._one(r, ctx, window)) for r in hits]
        result = k_or(t for _, t, _ in judged)
        deciding = [(r, why) for r, t, why in judged if t == result] or [(r, why) for r, _, why in judged]
        clauses = [clause(CODED(code=code_name(r, self.vs, ctx.tx), finding=c.finding), c.settle) if i == 0 else c
                   for r, why in deciding[:3] for i, c in enumerate(why)]
        clauses[0] = clause(TITLED(title=title, finding=clauses[0].finding), clauses[0].settle)
        if len(deciding) > 3:
            last = clauses[-1]
            clauses[-1] = clause(MORE(finding=last.finding, n=len(deciding) - 3), last.settle)
        out = Outcome(result, tuple(r.ref for r, _ in deciding), tuple(clauses))
        return unless_unread(out, ctx, ("Condition",), self.vs, judge, judge_any=self.when == "window")

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        what = text_arg(self.label) or self.vs.name_text
        if self.when == "ever":
            return DESCRIBE_EVER(what=what)
        if self.when == "active":
            return DESCRIBE_ACTIVE(what=what)
        dates = many([DATE_NAMES[d]() for d in self.dates], "or")
        return (DESCRIBE_WINDOW if self.when == "window" else DESCRIBE_ACTIVE_OR_WINDOW)(what=what, dates=dates,
                                                                                       window=windows[str(self.window)].describe())
