"""`study-consent`: an active Consent that points at this study (or that a ResearchSubject of it names)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from fhir3t.criteria.base import Builder, Kind, Label, Rule, when
from fhir3t.criteria.model import Outcome
from fhir3t.enrolment import vouches_for_consent
from fhir3t.jsonshape import child
from fhir3t.logic import MET, NOT_MET
from fhir3t.messages import Message, Msg, reason
from fhir3t.records.build import span_of
from fhir3t.records.plan import Read, read

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

ACTIVE = Message("consent.active", "active Consent for {study} {when}")
GENERIC = Message("consent.generic", "no active Consent names this study (a generic consent does not suffice)")
NONE = Message("consent.none", "no Consent record for this study found")
DESCRIBE = Message("consent.describe", "an active Consent for this study (pointing at it, or named by its ResearchSubject)")


@dataclass
class StudyConsent(Kind):
    label: Label = ""  # not said anywhere: the kind's sentences are its messages

    kind = "study-consent"

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(spec.get("label") or "")

    def reads(self) -> Iterable[Read]:
        yield read("Consent", None, "status", "provision", "sourceReference", "dateTime")
        yield read("ResearchSubject", None, "status", "study", "consent", "period")

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
        end = span_of(child(top, "period").get("end"))
        return end is None or end.hi >= as_of

    def evaluate(self, ctx: Context) -> Outcome:
        named_by_subject: set[str] = set()
        for rs in ctx.visible("ResearchSubject"):
            if not vouches_for_consent(rs.raw.get("status")):
                continue  # a subject who left or never joined does not vouch for a consent
            if ctx.study.match(rs.raw.get("study")) is True:
                c = rs.raw.get("consent")
                if isinstance(c, dict) and isinstance(c.get("reference"), str):
                    named_by_subject.add("/".join(c["reference"].rstrip("/").split("/")[-2:]))
        consents = [r for r in ctx.visible("Consent")
                    if r.raw.get("status") == "active" and self._usable(r.raw, ctx.as_of)]
        for c in consents:
            if c.ref in named_by_subject or self._points_at_study(c.raw, ctx):
                return Outcome(MET, (c.ref,), reason(ACTIVE(study=ctx.study.value, when=when(c.span))))
        if consents:
            return self._once("generic", lambda: Outcome(NOT_MET, (), reason(GENERIC())))
        return self._once("none", lambda: Outcome(NOT_MET, (), reason(NONE())))

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return DESCRIBE()
