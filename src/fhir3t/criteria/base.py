"""The rule node every criterion tree is built of, and what leaves have in common.

A leaf is a *rule kind* (one module each under `criteria/kinds/`): it declares its parameters (its
piece of JSON Schema), how it is built from the criteria file, how it evaluates, and — mandatory —
what it reads (`reads()`), from which the read filter and the record builder decide what to keep.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from fhir3t.criteria.model import Outcome
from fhir3t.criteria.readings import Readings
from fhir3t.criteria.suspects import describe_suspect
from fhir3t.dates import Span
from fhir3t.logic import NOT_MET, UNKNOWN, Tri
from fhir3t.records.model import Res
from fhir3t.records.plan import Read
from fhir3t.terminology import Terminology, ValueSet

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context


class Builder(Protocol):
    """What a rule kind's `build` may ask while its tree is built (criteria/load.py implements it)."""

    tx: Terminology
    at: str
    checklist: str
    readings: Readings

    def vs(self, vs_id: str) -> ValueSet:
        """A value set the rule reads (recorded for the checker)."""

    def window(self, spec: dict) -> str:
        """The name of the window `spec` uses, checked to be defined."""

    def fold(self, text: str) -> str:
        """Text folded for matching (case, width, spaces)."""


class Rule(ABC):
    """A node of a criterion's rule tree."""

    label: str = ""

    @abstractmethod
    def evaluate(self, ctx: Context) -> Outcome:
        """met / not-met / unknown for one patient, with evidence and a reason."""

    @abstractmethod
    def reads(self) -> Iterable[Read]:
        """Every resource type (and value set, elements) this rule reads. Mandatory: what is not
        declared is dropped before the rule sees it."""

    def _once(self, key: object, make: Callable[[], Outcome]) -> Outcome:
        """Outcomes that depend only on `key` (the absent-record ones) are built once per run."""
        cache = self.__dict__.setdefault("_memo", {})
        hit = cache.get(key)
        if hit is None:
            if len(cache) >= 256:
                cache.clear()
            hit = cache[key] = make()
        return hit


class Kind(Rule):
    """A leaf rule kind, registered under `kind` (the criteria file's `"rule": ...`)."""

    kind: ClassVar[str]
    #: JSON Schema properties of the kind's own parameters (`rule`, `label`, `note` are common)
    params: ClassVar[dict[str, Any]] = {}
    required: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        """The rule for one leaf of the criteria file (already checked against its schema)."""

    @classmethod
    def schema(cls) -> dict[str, Any]:
        props = {"rule": {"const": cls.kind}, "label": {"type": "string"}, "note": {"type": "string"},
                 **cls.params}
        return {"type": "object", "required": ["rule", *cls.required], "properties": props,
                "additionalProperties": False}


# ---------------------------------------------------------------- shared helpers
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


def code_name(res: Res, vs: ValueSet, tx: Terminology) -> str:
    """'ICD-10-CM M33.10' style short name of the matching code, for reasons."""
    for code in res.codes:
        if code in vs:
            return f"{tx.systems.name(code[0])} {code[1]}"
    return res.type


def when(span: Span | None) -> str:
    return f" on {span}" if span is not None else " (undated)"


def most_recent_first(items: list[Res]) -> list[Res]:
    return sorted(items, key=lambda r: (r.span.hi if r.span else date.min,
                                        r.span.lo if r.span else date.min,
                                        r.date_text or ""), reverse=True)


def settle_hint(vs: ValueSet, tx: Terminology, hint: str | None) -> str:
    if hint:
        return hint
    code = vs.first_code()
    if code is None:
        return f"record a {vs.title} result"
    return f"order {tx.systems.name(code[0])} {code[1]} at screening"


def unless_unread(out: Outcome, ctx: Context, types: Iterable[str], vs: ValueSet | None,
                  judge: Callable[[Res], Tri] | None = None) -> Outcome:
    """A not-met that rests on absence is unknown while a record that could be the one cannot be read.

    The spec takes the EHR as complete for diagnoses, drugs and allergies; a Condition coded only in
    text, a drug coded with an RxNorm product code, a record whose status is not an R4 code might be
    exactly the one the rule looks for. `judge` tells what such a record would give if it did match
    (a resolved 1999 Condition cannot make an 'active' rule met); it is asked only where the record's
    other elements can be read.
    """
    if out.result != NOT_MET:
        return out
    found = ctx.doubtful(types, vs, judge, every=True)
    if not found:
        return out
    first = found[0]
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    refs = tuple(r.ref for r in found)
    if first.bad == "code":
        return Outcome(UNKNOWN, out.evidence + refs, f"{out.reason}; {first.ref}{more} has {first.why}: code it to decide")
    return Outcome(UNKNOWN, out.evidence + refs,
                   f"{out.reason}; {first.ref}{more} {describe_suspect(first, ctx.tx)}: code or confirm it to decide")
