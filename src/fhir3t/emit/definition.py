"""The study's criteria published as FHIR: the ResearchStudy's enrollment Group, coded.

Each criterion is one `Group.characteristic` (code: the criterion id; exclude: exclusion or not), whose
value says what it asks in the way another tool can compute with:

- a single test with a threshold (I4 DLCO < 80 %, I1 age >= 18): `valueQuantity` with its comparator;
- a single value set (a diagnosis, a drug, a test read as positive): `valueReference` to the value
  set's canonical URL (the profiles package ships every value set);
- gender: `valueCodeableConcept` with the administrative-gender codes; anything else (a compound rule,
  a checklist answer): `valueCodeableConcept` whose text is the generated description.

The whole rule tree, with every value set, threshold and window (a duration before the screening
date or D1), is in the `criterion-definition` extension of each characteristic, so the criteria can be
loaded without fhir3t.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir3t.canonical import EXT_CRITERION_DEFINITION
from fhir3t.criteria.base import Rule
from fhir3t.criteria.combine import Combine, Not
from fhir3t.criteria.context import WindowSpec
from fhir3t.criteria.criteriaset import CriteriaSet, Criterion
from fhir3t.terminology import ValueSet

UCUM = "http://unitsofmeasure.org"
_DURATION_UNITS = {"d": ("days", "d"), "mo": ("months", "mo"), "y": ("years", "a")}
_GENDER = "http://hl7.org/fhir/administrative-gender"


def _quantity(value: float, comparator: str | None, unit: str | None) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value}
    if comparator and comparator != "=":
        q["comparator"] = comparator
    if unit:
        q.update(unit=unit, system=UCUM, code=unit)
    return q


def _threshold(rule: Rule) -> dict[str, Any] | None:
    """The rule's cut-off as a Quantity (observation thresholds, age), or None."""
    kind = getattr(rule, "kind", None)
    if kind == "observation" and getattr(rule, "read", None) == "threshold":
        return _quantity(float(rule.threshold), rule.op, rule.unit)  # type: ignore[attr-defined]
    if kind == "age":
        if rule.min_years is not None:  # type: ignore[attr-defined]
            return {"value": rule.min_years, "comparator": ">=", "unit": "years", "system": UCUM, "code": "a"}  # type: ignore[attr-defined]
        return {"value": rule.below_years, "comparator": "<", "unit": "years", "system": UCUM, "code": "a"}  # type: ignore[attr-defined]
    return None


def _valuesets(rule: Rule) -> list[ValueSet]:
    return [v for v in (getattr(rule, "vs", None), getattr(rule, "met_vs", None)) if isinstance(v, ValueSet)]


def _sub(url: str, key: str, value: Any) -> dict[str, Any]:
    return {"url": url, key: value}


def rule_extension(rule: Rule, windows: Mapping[str, WindowSpec]) -> list[dict[str, Any]]:
    """The sub-extensions describing one node of a rule tree (recursive through `part`)."""
    if isinstance(rule, Combine | Not):
        parts = rule.parts if isinstance(rule, Combine) else [rule.part]
        op = rule.op if isinstance(rule, Combine) else "not"
        return [_sub("operator", "valueCode", op),
                *({"url": "part", "extension": rule_extension(p, windows)} for p in parts)]
    out = [_sub("kind", "valueCode", getattr(rule, "kind", type(rule).__name__))]
    for vs in _valuesets(rule):
        out.append(_sub("valueSet", "valueCanonical", vs.url))
    q = _threshold(rule)
    if q is not None:
        out.append(_sub("threshold", "valueQuantity", q))
    window = getattr(rule, "window", None)
    if isinstance(window, str) and window in windows:
        spec = windows[window]
        unit, code = _DURATION_UNITS[spec.before.unit]
        out.append(_sub("window", "valueDuration", {"value": spec.before.amount, "unit": unit, "system": UCUM,
                                                     "code": code}))
        out.append(_sub("anchor", "valueCode", "screening-date" if spec.anchor == "as_of" else "d1"))
    return out


def _value(c: Criterion) -> dict[str, Any]:
    rule = c.rule
    q = _threshold(rule)
    if q is not None:
        return {"valueQuantity": q}
    if getattr(rule, "kind", None) == "gender":
        return {"valueCodeableConcept": {"coding": [{"system": _GENDER, "code": g}
                                                    for g in sorted(rule.genders)],  # type: ignore[attr-defined]
                                         "text": c.description}}
    sets = _valuesets(rule)
    if len(sets) == 1 and not isinstance(rule, Combine | Not):
        return {"valueReference": {"reference": sets[0].url, "display": sets[0].title}}
    return {"valueCodeableConcept": {"text": f"{c.title}: {c.description}"}}


def characteristic(c: Criterion, windows: Mapping[str, WindowSpec]) -> dict[str, Any]:
    return {
        "extension": [{"url": EXT_CRITERION_DEFINITION, "extension": [
            _sub("title", "valueString", c.title),
            _sub("description", "valueString", c.description),
            *rule_extension(c.rule, windows)]}],
        "code": {"text": c.id},
        **_value(c),
        "exclude": c.kind == "exclusion",
    }


def enrollment_group(criteria: CriteriaSet, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Group", "id": "enrollment", "type": "person", "actual": False, "name": name,
        "characteristic": [characteristic(c, criteria.windows) for c in criteria.criteria],
    }


__all__ = ["characteristic", "enrollment_group", "rule_extension"]
