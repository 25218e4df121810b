"""Kleene combinators over rule nodes: all (AND), any (OR), either (first decided test), not."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from fhir3t.criteria.base import Label, Rule
from fhir3t.criteria.model import Outcome, merge_evidence
from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri, k_and, k_either, k_not, k_or
from fhir3t.messages import Message, Msg, join_reasons, many
from fhir3t.records.plan import Read

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec


ALL_OF = Message("rule.all-of", "all of: {parts}")
ANY_OF = Message("rule.any-of", "any of: {parts}")
EITHER_OF = Message("rule.either-of", "the first of these that a result decides: {parts}")
NOT = Message("rule.not", "not ({part})")


@dataclass
class Combine(Rule):
    op: str
    parts: list[Rule]
    label: Label = ""

    FUNCS: ClassVar[dict[str, Callable[[Iterable[Tri]], Tri]]] = {"all": k_and, "any": k_or, "either": k_either}

    def evaluate(self, ctx: Context) -> Outcome:
        outs = tuple(p.evaluate(ctx) for p in self.parts)
        result = self.FUNCS[self.op]([o.result for o in outs])
        if (self.op == "all" and result == NOT_MET) or (self.op in ("any", "either") and result == MET):
            deciding = [o for o in outs if o.result == result]
        elif result == UNKNOWN:
            deciding = [o for o in outs if o.result == UNKNOWN] + (
                [o for o in outs if o.result == MET] if self.op == "all" else [])
        else:
            deciding = [o for o in outs if o.result == result] if self.op == "either" else list(outs)
        return Outcome(result, merge_evidence(deciding), join_reasons(o.reason for o in deciding))

    def reads(self) -> Iterator[Read]:
        for p in self.parts:
            yield from p.reads()

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        parts = many([p.describe(windows) for p in self.parts], "; ")
        return {"all": ALL_OF, "any": ANY_OF, "either": EITHER_OF}[self.op](parts=parts)


@dataclass
class Not(Rule):
    part: Rule
    label: Label = ""

    def evaluate(self, ctx: Context) -> Outcome:
        o = self.part.evaluate(ctx)
        return Outcome(k_not(o.result), o.evidence, o.reason)

    def reads(self) -> Iterable[Read]:
        return self.part.reads()

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return NOT(part=self.part.describe(windows))
