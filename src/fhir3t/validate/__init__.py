"""Validate FHIR R4 resources and Bundles; answer with an OperationOutcome.

Layers, all run (no stop at the first error): structure and cardinality (fhir.resources R4B),
required bindings (`profiles/bindings.json`), Bundle integrity (fullUrls, references, transaction
requests), key invariants (bdl-*, obs-6/7, dom-2..5, ele-1, ext-1, ref-1) and fhir3t's own profiles
(`profiles/schemas/`, applied when `meta.profile` names them).

    >>> from fhir3t.validate import validate_resource
    >>> [i.severity for i in validate_resource({"resourceType": "Patient", "gender": "x"})]
    ['error']
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from fhir3t.validate.bindings import check_bindings
from fhir3t.validate.bundle import check_bundle
from fhir3t.validate.invariants import check_invariants
from fhir3t.validate.issues import Issue, has_errors, to_operation_outcome
from fhir3t.validate.profiles import check_profiles
from fhir3t.validate.reader import DEFAULT_MAX_BYTES, expand_paths, read_items
from fhir3t.validate.structure import check_structure, resource_type_issue

__all__ = [
    "DEFAULT_MAX_BYTES", "Issue", "has_errors", "to_operation_outcome", "validate_issues",
    "validate_paths", "validate_resource",
]


def validate_resource(obj: Any) -> list[Issue]:
    """Every issue found in one resource or Bundle (entries are checked one by one)."""
    first = resource_type_issue(obj)
    if first is not None and first.is_error:
        return [first]
    rt = obj["resourceType"]
    issues: list[Issue] = []
    if first is not None:  # an R4 type R4B cannot model: everything but structure
        issues.append(Issue(first.severity, first.code, first.diagnostics, rt))
    else:
        issues.extend(check_structure(obj, skip_entry_resources=True))
    issues.extend(check_bindings(obj))
    issues.extend(check_invariants(obj))
    issues.extend(check_profiles(obj))
    contained = obj.get("contained")
    if isinstance(contained, list):
        for i, c in enumerate(contained):
            if isinstance(c, dict) and isinstance(c.get("resourceType"), str):
                prefix = f"{rt}.contained[{i}]"
                issues.extend(x.at(prefix) for x in check_bindings(c) + check_profiles(c))
    if rt == "Bundle":
        issues.extend(check_bundle(obj))
        entries = obj.get("entry")
        if isinstance(entries, list):
            for i, e in enumerate(entries):
                if isinstance(e, dict) and "resource" in e:
                    prefix = f"Bundle.entry[{i}].resource"
                    issues.extend(x.at(prefix) for x in validate_resource(e["resource"]))
    return issues


def validate_issues(
    paths: Iterable[str | os.PathLike], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[list[Issue], int]:
    """All issues of all files (each labelled with its file, and line for NDJSON) and how many
    resources were checked."""
    issues: list[Issue] = []
    count = 0
    for item in expand_paths(list(paths)):
        if isinstance(item, Issue):
            issues.append(item)
            continue
        for got in read_items(item, max_bytes=max_bytes):
            if isinstance(got, Issue):
                issues.append(got)
                continue
            source, obj = got
            count += 1
            try:
                found = validate_resource(obj)
            except (TypeError, AttributeError, ValueError, KeyError, RecursionError) as exc:
                # a shape no check expected: say so for this resource, go on with the others
                found = [Issue("error", "exception", f"this resource could not be checked: its structure is "
                                                     f"unexpected ({type(exc).__name__})", obj.get("resourceType")
                               if isinstance(obj, dict) and isinstance(obj.get("resourceType"), str) else None)]
            issues.extend(i.with_source(source) for i in found)
    return issues, count


def validate_paths(paths: Iterable[str | os.PathLike], *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The OperationOutcome (as a dict) for the given files; missing paths are fatal issues."""
    issues, count = validate_issues(paths, max_bytes=max_bytes)
    return to_operation_outcome(issues + [summary_issue(issues, count)])


def summary_issue(issues: list[Issue], count: int) -> Issue:
    n_err = sum(i.is_error for i in issues)
    n_warn = sum(i.severity == "warning" for i in issues)
    return Issue("information", "informational",
                 f"checked {count} resource(s): {n_err} error(s), {n_warn} warning(s)")
