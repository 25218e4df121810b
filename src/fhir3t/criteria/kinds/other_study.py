"""`other-study`: a ResearchSubject of another study, in an active status, whose period overlaps the window."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Rule
from fhir3t.criteria.model import Outcome
from fhir3t.jsonshape import child
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri, k_or
from fhir3t.records.build import span_of
from fhir3t.records.model import Res
from fhir3t.records.plan import Read, read

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context


@dataclass
class OtherStudy(Kind):
    statuses: frozenset[str]
    window: str
    label: str = "participation in another interventional study"

    kind = "other-study"
    params: ClassVar[dict[str, Any]] = {"statuses": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                                        "window": {"type": "string"}}
    required = ("statuses", "window")

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(frozenset(spec["statuses"]), b.window(spec),
                   spec.get("label") or "participation in another interventional study")

    def reads(self) -> Iterable[Read]:
        # study references are resolved against ResearchStudy resources in the input (shared)
        yield read("ResearchSubject", None, "status", "study", "period", complete=True)

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
        unread = [r for r in ctx.record.unread_of("ResearchSubject")
                  if not r.dated_after(ctx.as_of) and ctx.study.match(r.raw.get("study")) is not True]
        if not judged:
            if unread:
                return Outcome(UNKNOWN, tuple(r.ref for r in unread),
                               f"{unread[0].ref} cannot be read ({unread[0].why}): correct it to decide")
            return Outcome(NOT_MET, (), "no other-study participation record found")
        result = k_or(t for _, t, _ in judged)
        deciding = [(r, why) for r, t, why in judged if t == result]
        out = Outcome(result, tuple(r.ref for r, _ in deciding), "; ".join(why for _, why in deciding))
        if out.result == NOT_MET and unread:
            return Outcome(UNKNOWN, out.evidence + tuple(r.ref for r in unread),
                           f"{out.reason}; {unread[0].ref} cannot be read ({unread[0].why}): correct it to decide")
        return out
