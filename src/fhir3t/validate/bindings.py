"""Layer 2: required terminology bindings that fhir.resources does not check (it checks no codes).

The code lists live in `profiles/bindings.json` (reviewed data, not Python literals). A `code`
element must hold one of the codes; a required-bound CodeableConcept must carry a coding from the
value set's system, and every coding with that system must use one of its codes.
"""
from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from fhir3t.validate.issues import Issue
from fhir3t.validate.tables import bindings


@cache
def _rules_for(resource_type: str) -> tuple[tuple[tuple[str, ...], str, str | None, frozenset[str]], ...]:
    """(path parts, kind, system, codes) for a resource type, compiled once."""
    table = bindings()
    rules = dict(table.get("anyResource", {}))
    rules.update(table["resources"].get(resource_type, {}))
    return tuple(
        (tuple(path.split(".")), spec["type"], spec.get("system"), frozenset(spec["codes"]))
        for path, spec in rules.items()
    )


def _walk(obj: Any, parts: tuple[str, ...], where: str) -> Iterator[tuple[Any, str]]:
    """Values at a dotted path, with their location; lists are expanded with indices."""
    if not parts:
        yield obj, where
        return
    if not isinstance(obj, dict) or parts[0] not in obj:
        return
    v = obj[parts[0]]
    loc = f"{where}.{parts[0]}"
    if isinstance(v, list):
        for i, item in enumerate(v):
            yield from _walk(item, parts[1:], f"{loc}[{i}]")
    else:
        yield from _walk(v, parts[1:], loc)


def check_bindings(resource: dict) -> list[Issue]:
    rt = resource.get("resourceType")
    if not isinstance(rt, str):
        return []
    issues: list[Issue] = []
    for parts, kind, system, codes in _rules_for(rt):
        for value, where in _walk(resource, parts, rt):
            if kind == "code":
                if isinstance(value, str) and value not in codes:
                    issues.append(Issue(
                        "error", "code-invalid",
                        f"{value!r} is not in the required value set for {rt}.{'.'.join(parts)} "
                        f"(allowed: {', '.join(sorted(codes))})",
                        where,
                    ))
            elif kind == "CodeableConcept" and isinstance(value, dict):
                issues.extend(_check_cc(value, where, system, codes, f"{rt}.{'.'.join(parts)}"))
    return issues


def _check_cc(cc: dict, where: str, system: str | None, codes: frozenset[str], element: str) -> Iterator[Issue]:
    codings = cc.get("coding")
    codings = codings if isinstance(codings, list) else []
    from_vs = False
    for i, c in enumerate(codings):
        if not isinstance(c, dict) or c.get("system") != system:
            continue
        code = c.get("code")
        if isinstance(code, str) and code in codes:
            from_vs = True
        else:
            yield Issue(
                "error", "code-invalid",
                f"code {code!r} is not in {system} (allowed for {element}: {', '.join(sorted(codes))})",
                f"{where}.coding[{i}].code",
            )
            from_vs = True  # reported already; do not also say "no coding"
    if not from_vs:
        yield Issue(
            "error", "code-invalid",
            f"{element} has a required binding: it needs a coding with system {system} "
            f"(one of: {', '.join(sorted(codes))})",
            where,
        )
