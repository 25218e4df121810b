"""`other-study`: a ResearchSubject of another study, in an active status, whose period overlaps the window."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import Builder, Kind, Label, Rule, record_name
from fhir3t.criteria.model import Outcome
from fhir3t.enrolment import status_word
from fhir3t.jsonshape import child
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri, k_or
from fhir3t.messages import Clause, Message, Msg, clause, many, reason
from fhir3t.messages.reasons import absent
from fhir3t.records.build import span_of
from fhir3t.records.model import Res
from fhir3t.records.plan import Read, read

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

PARTICIPATION = Message("label.other-study", "other-study participation")

STUDY_ID = Message("other-study.study-id", "study {value}")
UNNAMED = Message("other-study.unnamed", "an unnamed study")
NOT_IN_INPUT = Message("other-study.not-in-input", "{status} in {study}, which is not in the input")
CHECK_WHICH = Message("other-study.check-which", "check whether it is {study}")
ONGOING = Message("other-study.ongoing", "ongoing")
OVERLAPPING = Message("other-study.overlapping", "{status} in {study} ({start}..{end}) overlapping {window}")
NOT_OVERLAPPING = Message("other-study.not-overlapping", "{status} in {study} ({start}..{end}) not overlapping {window}")
POSSIBLY_OVERLAPPING = Message("other-study.possibly-overlapping",
                               "{status} in {study} ({start}..{end}) possibly overlapping {window}")
UNREADABLE = Message("other-study.unreadable", "{record} cannot be read ({why})")
CORRECT_IT = Message("other-study.correct-it", "correct it to decide")
DESCRIBE = Message("other-study.describe", "a ResearchSubject of another study, {statuses}, whose period overlaps the time {window}")


@dataclass
class OtherStudy(Kind):
    statuses: frozenset[str]
    window: str
    label: Label = ""  # not said anywhere: the kind's sentences are its messages

    kind = "other-study"
    params: ClassVar[dict[str, Any]] = {"statuses": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                                        "window": {"type": "string"}}
    required = ("statuses", "window")

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(frozenset(spec["statuses"]), b.window(spec),
                   spec.get("label") or "")

    def reads(self) -> Iterable[Read]:
        # study references are resolved against ResearchStudy resources in the input (shared)
        yield read("ResearchSubject", None, "status", "study", "period", complete=True)

    def evaluate(self, ctx: Context) -> Outcome:
        window = ctx.window(self.window)
        judged: list[tuple[Res, Tri, Clause]] = []
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
            named = study_ref.get("reference")
            study: Msg | str = named if isinstance(named, str) else \
                STUDY_ID(value=ident["value"]) if isinstance(ident.get("value"), str) else UNNAMED()
            if tri == MET and ours is None:
                judged.append((r, UNKNOWN, clause(NOT_IN_INPUT(status=status_word(raw["status"]), study=study),
                                                  CHECK_WHICH(study=ctx.study.value))))
                continue
            how = OVERLAPPING if tri == MET else NOT_OVERLAPPING if tri == NOT_MET else POSSIBLY_OVERLAPPING
            judged.append((r, tri, clause(how(status=status_word(raw["status"]), study=study, start=str(start or "?"),
                                              end=str(end) if end else ONGOING(), window=str(window)))))
        unread = [r for r in ctx.record.unread_of("ResearchSubject")
                  if not r.dated_after(ctx.as_of) and ctx.study.match(r.raw.get("study")) is not True]
        if not judged:
            if unread:
                return Outcome(UNKNOWN, tuple(r.ref for r in unread),
                               reason(UNREADABLE(record=record_name(unread[0]), why=unread[0].why), CORRECT_IT()))
            return self._once("absent", lambda: Outcome(NOT_MET, (), absent(PARTICIPATION())))
        result = k_or(t for _, t, _ in judged)
        deciding = [(r, why) for r, t, why in judged if t == result]
        out = Outcome(result, tuple(r.ref for r, _ in deciding), tuple(why for _, why in deciding))
        if out.result == NOT_MET and unread:
            return Outcome(UNKNOWN, out.evidence + tuple(r.ref for r in unread),
                           (*out.reason, clause(UNREADABLE(record=record_name(unread[0]), why=unread[0].why), CORRECT_IT())))
        return out

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return DESCRIBE(statuses=many((status_word(s) for s in sorted(self.statuses)), "or"), window=windows[self.window].describe())
