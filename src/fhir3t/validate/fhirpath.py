"""Invariants (ElementDefinition.constraint) evaluated as written in the spec, with fhirpathpy.

Every constraint of every element in play is evaluated, except:
- those checked natively because the walk does them cheaper and with exact locations (ele-1, ext-1,
  ref-1, dom-3, the Bundle rules bdl-*) or fhirpathpy has no function for them (txt-1/txt-2 `htmlChecks()`: see
  validate.xhtml);
- best-practice constraints (dom-6 "should have narrative", con-3), which the HL7 validator also
  ignores unless asked.
fhirpathpy lacks `hasValue()` and `resolve()`; both are supplied here (`resolve()` finds contained
resources and Bundle entries). An expression that still fails to evaluate is never passed silently:
it becomes a warning naming the constraint, and is counted as not evaluated.
"""
from __future__ import annotations

import contextvars
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from fhir3t.messages import Message, Msg
from fhir3t.r4defs import Constraint, constraints

#: why a natively checked constraint could not be evaluated
UNITS = Message("validate.fhirpath.units", "the quantities have different units")

NATIVE = frozenset({"ele-1", "ext-1", "ref-1", "dom-3", "txt-1", "txt-2", "bdl-1", "bdl-2", "bdl-3", "bdl-4", "bdl-5",
                    "bdl-7", "bdl-8", "bdl-9", "bdl-10", "bdl-11", "bdl-12"})

#: what `resolve()` may find: reference string → resource, set for the resource being checked
_RESOLVER: contextvars.ContextVar[Callable[[str], dict | None] | None] = contextvars.ContextVar("resolver", default=None)


def _has_value(inputs: list) -> bool:
    return len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))


def _resolve(inputs: list) -> list:
    resolver = _RESOLVER.get()
    out = []
    for item in inputs:
        ref = item.get("reference") if isinstance(item, dict) else item if isinstance(item, str) else None
        if resolver is not None and isinstance(ref, str):
            got = resolver(ref)
            if got is not None:
                out.append(got)
    return out


def _no_trace(*_args: Any) -> None:
    """trace() in a spec invariant (ref-1, dom-3) must not print to the terminal."""


_FUNCTIONS: dict[str, dict[str, Any]] = {
    "hasValue": {"fn": _has_value, "arity": {0: []}},
    "resolve": {"fn": _resolve, "arity": {0: []}},
}


def _range_ordered(node: Any) -> bool | None:
    """rng-2 `low.empty() or high.empty() or (low <= high)`: fhirpathpy cannot compare Quantities.
    Compared here when both sides have the same unit (or none); None (not evaluated) otherwise."""
    low, high = node.get("low"), node.get("high")
    if not isinstance(low, dict) or not isinstance(high, dict):
        return True
    lv, hv = low.get("value"), high.get("value")
    if not isinstance(lv, (int, float)) or not isinstance(hv, (int, float)):
        return True
    unit = lambda q: (q.get("system"), q.get("code") or q.get("unit"))  # noqa: E731
    if unit(low) != unit(high):
        return None
    return lv <= hv


_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _period_ordered(node: Any) -> bool | None:
    """per-1 `start <= end`, with FHIRPath's rule for values of different precision: compared up to
    the precision both have; equal there but not equally precise → not true (as the HL7 validator
    reads `2023-06-21` vs `2023-06-21T06:20:00Z`). fhirpathpy compares such values as strings."""
    start, end = node.get("start"), node.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    if "T" in start and "T" in end:
        try:
            a, b = datetime.fromisoformat(start), datetime.fromisoformat(end)
            return a <= b
        except (ValueError, TypeError):  # malformed (reported by the primitive check) or naive vs aware
            return True
    ma, mb = _DATE.match(start.split("T")[0]), _DATE.match(end.split("T")[0])
    if not ma or not mb:
        return True
    pa = [int(x) for x in ma.groups() if x]
    pb = [int(x) for x in mb.groups() if x]
    for x, y in zip(pa, pb):
        if x != y:
            return x < y
    # equal as far as both go: true only when equally precise (a time on one side only is more precise)
    return len(pa) == len(pb) and ("T" in start) == ("T" in end)


#: constraints whose FHIRPath fhirpathpy cannot evaluate (or gets wrong), checked the same way in Python
_NATIVE_EVAL: dict[str, Callable[[Any], bool | None]] = {"rng-2": _range_ordered, "per-1": _period_ordered}


@dataclass(frozen=True, slots=True)
class Outcome:
    constraint: Constraint
    ok: bool | None          # None: could not be evaluated
    error: str | Msg = ""    # why not (fhirpathpy's own English, or a message)


def applicable(ident: str) -> Constraint | None:
    """The constraint to evaluate through FHIRPath, or None (native, or best practice)."""
    c = constraints().get(ident)
    if c is None or c.key in NATIVE or c.best_practice:
        return None
    return c


_EMPTY_OR = re.compile(r"^\(?(\w+)\.empty\(\) or ")
_EXISTS_IMPLIES = re.compile(r"^\(?(\w+)\.exists\(\)\)? implies ")
_ALL_EMPTY = re.compile(r"^(\w+)(\.\w+)*\.empty\(\)( and \1(\.\w+)*\.empty\(\))*$")


@cache
def guard(ident: str) -> str | None:
    """A child element whose absence makes the constraint true without evaluating it, read off the
    expression's form: `X.empty() or ...`, `X.exists() implies ...`, `X.a.empty() and X.b.empty()`.
    (Sound: each of these is true whenever X is empty.) Saves most of the FHIRPath time."""
    expr = constraints()[ident].expression.strip()
    for pattern in (_EMPTY_OR, _EXISTS_IMPLIES, _ALL_EMPTY):
        m = pattern.match(expr)
        if m and m.group(1) not in ("value", "extension", "children", "descendants", "where", "select"):
            return m.group(1)
    return None


def absent(node: Any, name: str) -> bool:
    """Whether a JSON object has no element `name` (as a plain, `_`-extended or typed choice name)."""
    if not isinstance(node, dict):
        return False
    if name in node or f"_{name}" in node:
        return False
    return not any(k.startswith(name) and k[len(name):][:1].isupper() for k in node)


@cache
def _compiled(ident: str) -> Callable[..., list]:
    import fhirpathpy
    from fhirpathpy.models import models

    return fhirpathpy.compile(constraints()[ident].expression, models["r4"], {"userInvocationTable": _FUNCTIONS, "traceFn": _no_trace})


def evaluate(c: Constraint, node: Any, base: str | None, resource: dict, root: dict,
             resolver: Callable[[str], dict | None] | None = None) -> Outcome:
    """Evaluate one constraint on `node`; `base` is its FHIRPath type path (`Observation.component`,
    `Period`) or None for a resource root."""
    from fhirpathpy.engine.nodes import ResourceNode

    g = guard(c.ident)
    if g is not None and absent(node, g):
        return Outcome(c, True)
    native = _NATIVE_EVAL.get(c.key)
    if native is not None:
        ok = native(node)
        return Outcome(c, ok, "" if ok is not None else UNITS())
    token = _RESOLVER.set(resolver)
    try:
        target = node if base is None else ResourceNode.create_node(node, base)
        got = _compiled(c.ident)(target, {"resource": resource, "rootResource": root})
    except Exception as exc:  # fhirpathpy raises plain Exceptions for what it cannot do
        return Outcome(c, None, f"{type(exc).__name__}: {str(exc)[:120]}")
    finally:
        _RESOLVER.reset(token)
    if got == [True]:  # as the HL7 validator reads it: an empty result is not true
        return Outcome(c, True)
    return Outcome(c, False)


@cache
def _compiled_expression(expression: str) -> Callable[..., list]:
    import fhirpathpy
    from fhirpathpy.models import models

    return fhirpathpy.compile(expression, models["r4"], {"userInvocationTable": _FUNCTIONS, "traceFn": _no_trace})


def holds(expression: str, node: Any, resource: dict, path: str) -> bool | None:
    """Whether a profile's own constraint holds on `node`, the element at FHIRPath type path `path`
    (`Extension`, `ResearchStudy.phase`); None: it cannot be evaluated."""
    from fhirpathpy.engine.nodes import ResourceNode

    try:
        target = ResourceNode.create_node(node, path)
        got = _compiled_expression(expression)(target, {"resource": resource, "rootResource": resource})
    except Exception:  # fhirpathpy raises plain Exceptions for what it cannot do
        return None
    return got == [True]
