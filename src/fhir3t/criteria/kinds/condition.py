"""`condition`: a Condition in a value set that is active, dated in a window, or ever recorded."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Rule, code_name, unless_unread
from fhir3t.criteria.model import Outcome
from fhir3t.dates import Span, Window
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri, k_or
from fhir3t.records.build import span_of, status_code
from fhir3t.records.model import Res
from fhir3t.records.plan import Read, read
from fhir3t.terminology import ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
UNCERTAIN_VERIFICATION = frozenset({"unconfirmed", "provisional", "differential"})
_FIELDS = {"onset": ("onsetDateTime", "onsetPeriod"), "abatement": ("abatementDateTime", "abatementPeriod"),
           "recorded": ("recordedDate",)}


@dataclass
class ConditionRule(Kind):
    """when: active | window | active-or-window | ever. `dates` picks which dates count for the
    window (onset, abatement, recorded). Unconfirmed diagnoses give unknown, not met."""

    vs: ValueSet
    when: str
    window: str | None = None
    dates: tuple[str, ...] = ("onset", "abatement", "recorded")
    on_match: Tri = MET
    label: str = ""
    hint: str | None = None

    kind = "condition"
    params: ClassVar[dict[str, Any]] = {
        "valueset": {"type": "string"},
        "when": {"enum": ["active", "window", "active-or-window", "ever"]},
        "window": {"type": "string"},
        "dates": {"type": "array", "items": {"enum": ["onset", "abatement", "recorded"]}},
        "on_match": {"enum": ["met", "not-met", "unknown"]},
        "hint": {"type": "string"},
    }
    required = ("valueset", "when")

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        when = spec["when"]
        window = b.window(spec) if when in ("window", "active-or-window") else None
        return cls(b.vs(spec["valueset"]), when, window, tuple(spec.get("dates", ("onset", "abatement", "recorded"))),
                   spec.get("on_match", "met"), spec.get("label", ""), spec.get("hint"))

    def reads(self) -> Iterable[Read]:
        yield read("Condition", self.vs, "code", "clinicalStatus", "verificationStatus", "onset[x]", "abatement[x]",
                   "recordedDate", complete=True)

    def _dates(self, raw: dict) -> list[tuple[str, Span | None]]:
        out: list[tuple[str, Span | None]] = []
        for d in self.dates:
            for f in _FIELDS[d]:
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
                where = "within" if w_tri == MET else "outside" if w_tri == NOT_MET else "possibly within"
                w_why = f"{when_txt} {where} {window}"
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

        def judge(r: Res) -> Tri:
            return self._one(r, ctx, window)[0]

        if not hits:
            absent = self._once("absent", lambda: Outcome(NOT_MET, (), f"no {title} record found"))
            return unless_unread(absent, ctx, ("Condition",), self.vs, judge)
        judged = [(r, *self._one(r, ctx, window)) for r in hits]
        result = k_or(t for _, t, _ in judged)
        deciding = [(r, why) for r, t, why in judged if t == result] or [(r, why) for r, _, why in judged]
        parts = [f"{code_name(r, self.vs, ctx.tx)} {why}" for r, why in deciding[:3]]
        more = f" (+{len(deciding) - 3} more)" if len(deciding) > 3 else ""
        out = Outcome(result, tuple(r.ref for r, _ in deciding), f"{title}: " + "; ".join(parts) + more)
        return unless_unread(out, ctx, ("Condition",), self.vs, judge)
