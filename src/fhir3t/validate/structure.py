"""Layer 1: structure and cardinality, checked by the fhir.resources R4B models.

R4B is wire-compatible with R4 for the resources fhir3t handles, but it drops 18 R4 resource types
(MedicinalProduct*, Substance{NucleicAcid,Polymer,...}, *EvidenceSynthesis) and adds R4B-only ones.
Resource types are therefore judged against the R4 list in `profiles/bindings.json`; R4 types that
R4B cannot model get a warning ("not checked") instead of a false error. pydantic's errors are
translated into issues with FHIRPath-like locations; a Bundle's entries are checked one by one by
the caller so one broken entry does not hide the others.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from pydantic import ValidationError

from fhir3t.validate.issues import Issue
from fhir3t.validate.tables import r4_resource_types

_NAME = re.compile(r"^_?[A-Za-z][A-Za-z0-9]*$")
#: a valid stand-in for a nested resource we cannot model, so list indices stay as in the input
_PLACEHOLDER = {"resourceType": "Basic", "code": {"text": "placeholder"}}


@cache
def model_class(resource_type: str) -> Any:
    """The R4B model class, or None if fhir.resources does not know the type."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError, AttributeError, ImportError):
        return None


def resource_type_issue(obj: Any, where: str | None = None) -> Issue | None:
    """Why `obj` cannot be checked as a resource at all (None when it can)."""
    if not isinstance(obj, dict):
        return Issue("error", "structure", f"expected a JSON object (a FHIR resource), got {_json_kind(obj)}", where)
    rt = obj.get("resourceType")
    if rt is None:
        return Issue("error", "structure", "not a FHIR resource: no resourceType", where)
    if not isinstance(rt, str):
        return Issue("error", "structure", f"resourceType must be a string, got {_json_kind(rt)}", where)
    if rt not in r4_resource_types():
        return Issue("error", "structure", f"unknown resourceType {rt!r} (not an R4 resource type)", where or None)
    if model_class(rt) is None:
        return Issue(
            "warning", "not-supported",
            f"R4 resource type {rt!r} is not modelled by fhir.resources R4B; its structure is not checked",
            where,
        )
    return None


def check_structure(resource: dict, *, skip_entry_resources: bool = False) -> list[Issue]:
    """Structure and cardinality issues of one resource (root type already known to be valid).

    With `skip_entry_resources` a Bundle is checked without its entries' resources (the caller
    checks those separately, with precise locations).
    """
    rt = resource["resourceType"]
    cls = model_class(rt)
    if cls is None:
        return []
    issues: list[Issue] = []
    data = resource
    if skip_entry_resources and rt == "Bundle" and isinstance(resource.get("entry"), list):
        data = dict(resource)
        data["entry"] = [
            {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
            for e in resource["entry"]
        ]
    bad = list(_nested_resources(data, rt, skip_entry_resources))
    if bad:
        data = copy.deepcopy(data)
        for path, issue in bad:
            issues.append(issue)
            _replace_at(data, path, _PLACEHOLDER)
    try:
        cls.model_validate(data)
    except ValidationError as exc:
        found = [_soften_display_link_id(i, data) for i in _translate(rt, exc)]
        issues.extend(found)
        issues.extend(_missing_primitives(rt, cls, data, {i.expression for i in found if i.code == "required"}))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # fhir.resources internals
        issues.append(Issue("error", "structure", f"cannot be parsed as {rt}: {exc}", rt))
    return issues


def _soften_display_link_id(issue: Issue, data: dict) -> Issue:
    """A `display` Questionnaire item without linkId: a warning, not an error.

    R4 makes Questionnaire.item.linkId 1..1, but display-only items carry no answer, nothing
    references them, and published R4 examples (fhir-test-cases' bundle-questionnaire.json)
    omit it. Every other missing linkId stays an error.
    """
    expr = issue.expression or ""
    if issue.code != "required" or not expr.startswith("Questionnaire.") or not expr.endswith(".linkId"):
        return issue
    node: Any = data
    for part in re.findall(r"\.(\w+)|\[(\d+)\]", expr[len("Questionnaire"):-len(".linkId")]):
        name, index = part
        try:
            node = node[name] if name else node[int(index)]
        except (KeyError, IndexError, TypeError):
            return issue
    if isinstance(node, dict) and node.get("type") == "display":
        return Issue("warning", "required", "display item without linkId (R4 requires one; tolerated for display items)", expr)
    return issue


@cache
def _required_primitives(cls: Any) -> tuple[str, ...]:
    return tuple(
        f.alias or name for name, f in cls.model_fields.items()
        if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("element_required")
    )


def _missing_primitives(rt: str, cls: type, data: dict, reported: set) -> Iterator[Issue]:
    """fhir.resources checks required primitive elements (Observation.status, ...) in a model
    validator that only runs when every field parsed; so when other errors exist a missing
    `status` would go unreported. Re-check them for the resource root."""
    for name in _required_primitives(cls):
        path = f"{rt}.{name}"
        if name not in data and f"_{name}" not in data and path not in reported:
            yield Issue("error", "required", f"missing required element {name!r} (minimum cardinality 1)", path)


def _nested_resources(obj: Any, prefix: str, skip_entries: bool, path: tuple = ()) -> Iterator[tuple[tuple, Issue]]:
    """Nested resources (contained, parameter.resource, ...) that the models would crash on."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                yield from _nested_resources(v, f"{prefix}.{k}", skip_entries, path + (k,))
        if path and "resourceType" in obj:
            issue = resource_type_issue(obj, prefix)
            if issue is not None:
                yield path, issue
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, (dict, list)):
                yield from _nested_resources(v, f"{prefix}[{i}]", skip_entries, path + (i,))


def _replace_at(data: Any, path: tuple, value: Any) -> None:
    for p in path[:-1]:
        data = data[p]
    data[path[-1]] = copy.deepcopy(value)


def loc_to_path(resource_type: str, loc: tuple) -> str:
    """pydantic loc `('code', 'coding', 0, 'system')` → `Observation.code.coding[0].system`.

    `_status` (a primitive's extension holder) maps to `status`; pydantic's internal union tags
    (which are not element names) are dropped.
    """
    out = [resource_type]
    for part in loc:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif isinstance(part, str) and _NAME.match(part):
            out.append("." + part.lstrip("_"))
    return "".join(out)


_MISSING = {"missing", "model_field_validation.missing"}
_UNKNOWN = {"extra_forbidden"}
_TYPE_SUFFIX = "_type"


def _translate(rt: str, exc: ValidationError) -> Iterator[Issue]:
    for err in exc.errors(include_url=False):
        loc = err.get("loc", ())
        path = loc_to_path(rt, loc)
        etype = err.get("type", "")
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if etype in _MISSING:
            name = (err.get("ctx") or {}).get("field_name") or (loc[-1] if loc else "?")
            if etype == "missing" and loc:
                loc_name = loc[-1]
                name = loc_name if isinstance(loc_name, str) else name
            yield Issue("error", "required", f"missing required element {name!r} (minimum cardinality 1)", path)
        elif etype in _UNKNOWN:
            yield Issue("error", "structure", f"unknown element {str(loc[-1]) if loc else '?'!r} for this type", path)
        elif etype.endswith(_TYPE_SUFFIX) or etype in {"list_type", "dict_type", "model_type"}:
            yield Issue("error", "structure", f"wrong JSON type: {msg}", path)
        elif "Any of one field value is expected" in msg:
            yield Issue("error", "structure", f"more than one value for a choice element: {msg}", path)
        else:
            yield Issue("error", "value", msg, path)


def _json_kind(v: Any) -> str:
    if v is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__
    )
