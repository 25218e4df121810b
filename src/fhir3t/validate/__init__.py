"""Validate FHIR R4 resources and Bundles; answer with an OperationOutcome.

Driven by the official R4 (4.0.1) definitions in `profiles/r4/` (validate.definitions): structure,
cardinality, strict JSON types and lexical forms of primitives, required/extensible bindings,
extensions, narrative XHTML, and every invariant of every element in play (FHIRPath through
fhirpathpy, a few natively). Then Bundle integrity (fullUrls, references, transaction requests) and
fhir3t's own profiles (`profiles/StructureDefinition-*.json`, applied when `meta.profile` names
them). All checks run; nothing stops at the first error.

    >>> from fhir3t.validate import validate_resource
    >>> [i.severity for i in validate_resource({"resourceType": "Patient", "gender": "x"})]
    ['error']
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir3t.messages import Message, Plural, table
from fhir3t.validate import fhirpath
from fhir3t.validate.bundle import Resolver, check_bundle, check_targets
from fhir3t.validate.instance import Walk, is_resource_type, walk_resource
from fhir3t.validate.invariants import check_bundle_invariants, check_dom3, check_ref1
from fhir3t.validate.issues import Issue, has_errors, to_operation_outcome
from fhir3t.validate.primitives import json_kind
from fhir3t.validate.profiles import check_profiles, package_extensions, package_questionnaires
from fhir3t.validate.questionnaire import check_questionnaire, check_response
from fhir3t.validate.reader import DEFAULT_MAX_BYTES, expand_paths, read_items

__all__ = [
    "DEFAULT_MAX_BYTES", "Issue", "Options", "Tally", "has_errors", "load_context", "summary_issue",
    "to_operation_outcome",
    "validate_issues", "validate_paths", "validate_resource",
]


MESSAGES = table("validate.input", {
    "not-object": "expected a JSON object (a FHIR resource), got {kind}",
    "no-resource-type": "not a FHIR resource: no resourceType",
    "resource-type-not-string": "resourceType must be a string, got {kind}",
    "unknown-resource-type": "unknown resourceType {type} (not an R4 resource type)",
    "not-evaluated": "{key}: could not be evaluated, so it is not checked ({error})",
    "invariant": "{key}: {human} (FHIRPath: {expression})",
    "too-deep": "nested too deeply to be checked",
})
#: the last issue: what was checked and found ({what}, {notes}: the messages below)
SUMMARY = Message("validate.summary", "{what}: {errors} error(s), {warnings} warning(s), {information} information"
                                      "; {evaluated} invariant evaluation(s){skipped}")
CHECKED = Message("validate.summary.checked", "checked {documents} document(s) ({resources} resource(s) in all)")
CHECKED_ENTRIES = Plural("validate.summary.checked-entries",
                         "checked {documents} document(s) with {n} Bundle entry ({resources} resource(s) in all)",
                         "checked {documents} document(s) with {n} Bundle entries ({resources} resource(s) in all)")
NOT_EVALUATED = Message("validate.summary.not-evaluated", ", {skipped} not evaluated ({keys})")


@dataclass(frozen=True)
class Options:
    """How strict to be where the HL7 validator lets the user choose."""

    #: unresolved relative references (`Patient/1` not in the Bundle) are errors instead of one information
    strict_refs: bool = False
    #: extension URLs starting with one of these are accepted without a definition
    allowed_extension_domains: tuple[str, ...] = ()
    #: resources used to check others but not validated themselves (Questionnaires): `--supporting`
    context: tuple[dict, ...] = ()


@dataclass
class Tally:
    """What was checked: files, top-level documents, Bundle entries, resources (entries and contained too)."""

    files: int = 0
    documents: int = 0
    entries: int = 0
    resources: int = 0
    constraints_evaluated: int = 0
    constraints_not_evaluated: dict[str, int] = field(default_factory=dict)

    def add(self, w: Walk, entries: int) -> None:
        self.documents += 1
        self.entries += entries
        self.resources += len(w.resources)
        self.constraints_evaluated += w.evaluated
        for k, n in w.not_evaluated.items():
            self.constraints_not_evaluated[k] = self.constraints_not_evaluated.get(k, 0) + n


def resource_type_issue(obj: Any) -> Issue | None:
    """Why `obj` cannot be checked as a resource at all (None when it can)."""
    if not isinstance(obj, dict):
        return Issue("error", "structure", MESSAGES["not-object"](kind=json_kind(obj)))
    rt = obj.get("resourceType")
    if rt is None:
        return Issue("error", "structure", MESSAGES["no-resource-type"]())
    if not isinstance(rt, str):
        return Issue("error", "structure", MESSAGES["resource-type-not-string"](kind=json_kind(rt)))
    if not is_resource_type(rt):
        return Issue("error", "structure", MESSAGES["unknown-resource-type"](type=repr(rt)))
    return None


def validate_resource(obj: Any, options: Options | None = None, tally: Tally | None = None) -> list[Issue]:
    """Every issue found in one resource or Bundle (entries and contained resources included)."""
    first = resource_type_issue(obj)
    if first is not None:
        if tally is not None:
            tally.documents += 1
        return [first]
    opts = options or Options()
    w = Walk(extra_extensions=package_extensions(), allowed_extension_domains=opts.allowed_extension_domains)
    rt = obj["resourceType"]
    walk_resource(w, obj, rt)
    resolver = Resolver(obj)
    _evaluate(w, resolver)
    issues = w.issues
    if rt == "Bundle":
        issues.extend(check_targets(resolver, w.references))
    find = _questionnaires(w, opts)
    for res, where, container in w.resources:
        rtype = res["resourceType"]
        if rtype == "QuestionnaireResponse":
            issues.extend(x.at(where) for x in check_response(res, find))
        elif rtype == "Questionnaire":
            issues.extend(x.at(where) for x in check_questionnaire(res))
        if container is None:
            if rtype not in ("Bundle", "Parameters", "Binary"):
                issues.extend(check_dom3(res, where))
            issues.extend(check_ref1(res, where))
        issues.extend(x.at(where) for x in check_profiles(res))
        if rtype == "Bundle":
            issues.extend(x.at(where) for x in check_bundle_invariants(res))
            issues.extend(x.at(where) for x in check_bundle(res, strict_refs=opts.strict_refs))
    if tally is not None:
        entries = obj.get("entry") if rt == "Bundle" else None
        tally.add(w, len(entries) if isinstance(entries, list) else 0)
    return issues


def _questionnaires(w: Walk, opts: Options) -> Callable[[str], dict | None]:
    """Questionnaires by canonical URL: the document's own first, then the context, then the package's."""
    found: dict[str, dict] = {}
    for res, _where, _container in w.resources:
        if res.get("resourceType") == "Questionnaire" and isinstance(res.get("url"), str):
            found.setdefault(res["url"], res)
    for res in opts.context:
        if res.get("resourceType") == "Questionnaire" and isinstance(res.get("url"), str):
            found.setdefault(res["url"], res)
    package = package_questionnaires()
    return lambda url: found.get(url) or package.get(url)


def load_context(paths: Iterable[str | os.PathLike], *, max_bytes: int = DEFAULT_MAX_BYTES
                 ) -> tuple[tuple[dict, ...], list[Issue]]:
    """The resources of `--supporting` files (Bundles give their entries), and what could not be read."""
    out: list[dict] = []
    problems: list[Issue] = []
    for item in expand_paths(list(paths)):
        if isinstance(item, Issue):
            problems.append(item)
            continue
        for got in read_items(item, max_bytes=max_bytes):
            if isinstance(got, Issue):
                problems.append(got)
                continue
            obj = got[1]
            if isinstance(obj, dict) and obj.get("resourceType") == "Bundle":
                out.extend(e["resource"] for e in obj.get("entry") or ()
                           if isinstance(e, dict) and isinstance(e.get("resource"), dict))
            elif isinstance(obj, dict):
                out.append(obj)
    return tuple(out), problems


def _evaluate(w: Walk, resolver: Resolver) -> None:
    for job in w.jobs:
        c = fhirpath.applicable(job.ident)
        if c is None:
            continue
        root = job.resource
        out = fhirpath.evaluate(c, job.node, job.base, job.resource, root, resolver.lookup)
        if out.ok is None:
            w.not_evaluated[c.key] = w.not_evaluated.get(c.key, 0) + 1
            w.add("warning", "processing", MESSAGES["not-evaluated"](key=c.key, error=out.error), job.where)
        else:
            w.evaluated += 1
            if not out.ok:
                w.add(c.severity if c.severity in ("error", "warning") else "error", "invariant",
                      MESSAGES["invariant"](key=c.key, human=c.human, expression=c.expression), job.where)


def validate_issues(
    paths: Iterable[str | os.PathLike], *, max_bytes: int = DEFAULT_MAX_BYTES, options: Options | None = None,
) -> tuple[list[Issue], Tally]:
    """All issues of all files (each labelled with its file, and line for NDJSON) and what was checked."""
    issues: list[Issue] = []
    tally = Tally()
    for item in expand_paths(list(paths)):
        if isinstance(item, Issue):
            issues.append(item)
            continue
        tally.files += 1
        for got in read_items(item, max_bytes=max_bytes):
            if isinstance(got, Issue):
                issues.append(got)
                continue
            source, obj = got
            try:
                found = validate_resource(obj, options, tally)
            except RecursionError:
                found = [Issue("error", "too-costly", MESSAGES["too-deep"](),
                               obj.get("resourceType") if isinstance(obj, dict) else None)]
            issues.extend(i.with_source(source) for i in found)
    return issues, tally


def validate_paths(paths: Iterable[str | os.PathLike], *, max_bytes: int = DEFAULT_MAX_BYTES,
                   options: Options | None = None) -> dict:
    """The OperationOutcome (as a dict) for the given files; missing paths are fatal issues."""
    issues, tally = validate_issues(paths, max_bytes=max_bytes, options=options)
    return to_operation_outcome(issues + [summary_issue(issues, tally)])


def summary_issue(issues: Sequence[Issue], tally: Tally) -> Issue:
    n_err = sum(i.is_error for i in issues)
    n_warn = sum(i.severity == "warning" for i in issues)
    n_info = sum(i.severity == "information" for i in issues)
    what = (CHECKED_ENTRIES(tally.entries, documents=tally.documents, resources=tally.resources) if tally.entries
            else CHECKED(documents=tally.documents, resources=tally.resources))
    skipped = sum(tally.constraints_not_evaluated.values())
    notes = NOT_EVALUATED(skipped=skipped, keys=", ".join(sorted(tally.constraints_not_evaluated))) if skipped else ""
    return Issue("information", "informational",
                 SUMMARY(what=what, errors=n_err, warnings=n_warn, information=n_info,
                         evaluated=tally.constraints_evaluated, skipped=notes))
