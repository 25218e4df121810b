"""Layer 4: key R4 invariants (reported as error/invariant with the key in the message).

Resource-level invariants whose FHIRPath is short are evaluated as written in the spec with
fhirpathpy (compiled once); whole-tree rules (ele-1, ext-1, ref-1) and the Bundle rules are plain
JSON walks, which is both cheaper and gives exact locations.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from fhir3t.validate.issues import Issue
from fhir3t.validate.refs import ABSOLUTE_REF, RELATIVE_REF, iter_references

_URN = re.compile(r"^urn:(uuid:[0-9a-fA-F-]{36}|oid:[0-2](\.(0|[1-9][0-9]*))+)$")
_CONDITIONAL = re.compile(r"^[A-Z][A-Za-z]+\?\S+$")  # Type?param=value (allowed in transactions)


def _well_formed(ref: str) -> bool:
    return bool(RELATIVE_REF.match(ref) or ABSOLUTE_REF.match(ref) or _URN.match(ref) or _CONDITIONAL.match(ref)
                or (ref.startswith(("http://", "https://")) and " " not in ref))

#: (key, resource type or "*" for every DomainResource, guard element, FHIRPath from the R4 spec,
#: human text). The expression can only be false when the guard element is present, so it is
#: evaluated only then (FHIRPath evaluation is the costliest step of this layer).
FHIRPATH_INVARIANTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("obs-6", "Observation", "dataAbsentReason", "dataAbsentReason.empty() or value.empty()",
     "dataAbsentReason SHALL only be present if Observation.value[x] is not present"),
    ("obs-7", "Observation", "component",
     "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()",
     "if Observation.code is the same as an Observation.component.code then the value element "
     "associated with the code SHALL NOT be present"),
    ("dom-2", "*", "contained", "contained.contained.empty()",
     "if the resource is contained in another resource, it SHALL NOT contain nested Resources"),
    ("dom-4", "*", "contained", "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
     "if a resource is contained in another resource, it SHALL NOT have a meta.versionId or a meta.lastUpdated"),
    ("dom-5", "*", "contained", "contained.meta.security.empty()",
     "if a resource is contained in another resource, it SHALL NOT have a security label"),
)

NOT_DOMAIN = frozenset({"Bundle", "Parameters", "Binary"})


@cache
def _compiled() -> tuple[tuple[str, str, str, Callable, str, str], ...]:
    import fhirpathpy
    from fhirpathpy.models import models

    return tuple(
        (key, rtype, guard, fhirpathpy.compile(expr, models["r4"]), expr, text)
        for key, rtype, guard, expr, text in FHIRPATH_INVARIANTS
    )


def check_invariants(resource: dict) -> list[Issue]:
    rt = resource.get("resourceType")
    if not isinstance(rt, str):
        return []
    issues: list[Issue] = []
    has_contained = bool(resource.get("contained"))
    for key, rtype, guard, fn, expr, text in _compiled():
        if (rtype != rt and (rtype != "*" or rt in NOT_DOMAIN)) or guard not in resource:
            continue
        try:
            ok = fn(resource, {"resource": resource, "rootResource": resource})
        except Exception as exc:  # fhirpathpy raises plain exceptions on odd input
            issues.append(Issue("warning", "processing", f"{key}: could not evaluate ({exc})", rt))
            continue
        if ok != [True]:
            issues.append(Issue("error", "invariant", f"{key}: {text} (FHIRPath: {expr})", rt))
    if rt not in NOT_DOMAIN and has_contained:
        issues.extend(_dom3(resource, rt))
    issues.extend(_ref1(resource, rt))
    issues.extend(_elements(resource, rt, root=True))
    if rt == "Bundle":
        issues.extend(check_bundle_invariants(resource))
    return issues


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _dom3(resource: dict, rt: str) -> Iterator[Issue]:
    """dom-3: every contained resource is referenced from elsewhere or references the container."""
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return
    local = {s for s in _strings(resource) if s.startswith("#")}
    for i, c in enumerate(contained):
        if not isinstance(c, dict):
            continue
        cid = c.get("id")
        if isinstance(cid, str) and f"#{cid}" in local:
            continue
        if any(s == "#" for s in _strings(c)):
            continue
        yield Issue("error", "invariant",
                    "dom-3: a contained resource SHALL be referred to from elsewhere in the resource "
                    f"or SHALL refer to the containing resource (contained id {cid!r} is not)",
                    f"{rt}.contained[{i}]")


def _ref1(resource: dict, rt: str) -> Iterator[Issue]:
    """ref-1: a local reference `#id` needs a contained resource with that id (`#` is the container)."""
    contained = resource.get("contained")
    ids = {c["id"] for c in contained if isinstance(c, dict) and isinstance(c.get("id"), str)} \
        if isinstance(contained, list) else set()
    for where, ref in iter_references(resource, rt):
        if ref.startswith("#") and len(ref) > 1 and ref[1:] not in ids:
            yield Issue("error", "invariant",
                        f"ref-1: SHALL have a contained resource if a local reference is provided "
                        f"({ref!r} names no contained resource)",
                        f"{where}.reference")
        elif not ref.startswith("#") and not _well_formed(ref):
            yield Issue("error", "value",
                        f"malformed reference {ref!r}: expected Type/id, an absolute URL, urn:uuid:, urn:oid: or #id "
                        "(ids are 1-64 of A-Z a-z 0-9 - .)",
                        f"{where}.reference")


def _elements(obj: Any, where: str, root: bool = False) -> Iterator[Issue]:
    """ele-1 (every element has a value or children) and ext-1 (extension: value xor children),
    checked on the JSON: no empty objects, arrays or strings, no bare nulls."""
    if isinstance(obj, dict):
        if not obj:
            yield Issue("error", "invariant", "ele-1: All FHIR elements must have a @value or children (empty object)", where)
            return
        if not root and "resourceType" in obj:
            return  # a nested resource (entry.resource, contained): checked as its own resource
        for k, v in obj.items():
            loc = f"{where}.{k.lstrip('_')}"
            if v is None:
                yield Issue("error", "invariant", f"ele-1: element {k!r} is null (omit it instead)", loc)
            elif isinstance(v, str):
                if not v and k != "div":
                    yield Issue("error", "invariant", f"ele-1: element {k!r} is an empty string", loc)
            elif isinstance(v, dict):
                if k == "contained" or "resourceType" in v:
                    continue
                yield from _elements(v, loc)
            elif isinstance(v, list):
                if not v:
                    yield Issue("error", "invariant", f"ele-1: element {k!r} is an empty array (omit it instead)", loc)
                    continue
                twin = obj.get(k[1:] if k.startswith("_") else f"_{k}")
                for i, item in enumerate(v):
                    iloc = f"{loc}[{i}]"
                    if item is None:
                        if not (isinstance(twin, list) and i < len(twin) and twin[i] is not None):
                            yield Issue("error", "invariant",
                                        "ele-1: null in an array is only allowed with a matching value or "
                                        "extension in the paired `_` array", iloc)
                    elif isinstance(item, dict):
                        if "resourceType" in item:
                            if k == "contained":
                                yield from _elements(item, iloc, root=True)
                            continue
                        if k in ("extension", "modifierExtension"):
                            yield from _ext1(item, iloc)
                        yield from _elements(item, iloc)
                    elif isinstance(item, str) and not item:
                        yield Issue("error", "invariant", f"ele-1: empty string in {k!r}", iloc)


def _ext1(ext: dict, where: str) -> Iterator[Issue]:
    has_value = any(k.startswith("value") for k in ext)
    has_children = bool(ext.get("extension"))
    if has_value == has_children:
        yield Issue("error", "invariant",
                    "ext-1: Must have either extensions or value[x], not both"
                    + (" (has both)" if has_value else " (has neither)"), where)


# --- Bundle ----------------------------------------------------------------------------------

_SEARCH_HISTORY = frozenset({"searchset", "history"})
_REQUEST_REQUIRED = frozenset({"batch", "transaction", "history"})
_RESPONSE_REQUIRED = frozenset({"batch-response", "transaction-response", "history"})


def check_bundle_invariants(bundle: dict) -> Iterator[Issue]:
    btype = bundle.get("type")
    if "total" in bundle and btype not in _SEARCH_HISTORY:
        yield Issue("error", "invariant", "bdl-1: total only when a search or history", "Bundle.total")
    entries = bundle["entry"] if isinstance(bundle.get("entry"), list) else []
    seen: dict[tuple[str, Any], int] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            continue
        at = f"Bundle.entry[{i}]"
        if "search" in e and btype != "searchset":
            yield Issue("error", "invariant", "bdl-2: entry.search only when a search", f"{at}.search")
        if btype in _REQUEST_REQUIRED and "request" not in e:
            yield Issue("error", "invariant",
                        f"bdl-3: entry.request mandatory for batch/transaction/history (missing in a {btype})", at)
        if btype not in _REQUEST_REQUIRED and "request" in e:
            yield Issue("error", "invariant",
                        f"bdl-3: entry.request otherwise prohibited (present in a {btype})", f"{at}.request")
        if btype in _RESPONSE_REQUIRED and "response" not in e:
            yield Issue("error", "invariant",
                        f"bdl-4: entry.response mandatory for batch-response/transaction-response/history "
                        f"(missing in a {btype})", at)
        if btype not in _RESPONSE_REQUIRED and "response" in e:
            yield Issue("error", "invariant",
                        f"bdl-4: entry.response otherwise prohibited (present in a {btype})", f"{at}.response")
        if not any(k in e for k in ("resource", "request", "response")):
            yield Issue("error", "invariant", "bdl-5: must be a resource unless there's a request or response", at)
        fu = e.get("fullUrl")
        if isinstance(fu, str):
            if "/_history/" in fu:
                yield Issue("error", "invariant", "bdl-8: fullUrl cannot be a version specific reference",
                            f"{at}.fullUrl")
            res = e.get("resource")
            meta = res.get("meta") if isinstance(res, dict) else None
            vid = meta.get("versionId") if isinstance(meta, dict) else None
            key = (fu, vid if btype == "history" else None)
            if key in seen:
                yield Issue("error", "invariant",
                            f"bdl-7: FullUrl must be unique in a bundle, or else entries with the same fullUrl "
                            f"must have different meta.versionId (also used by entry[{seen[key]}])",
                            f"{at}.fullUrl")
            else:
                seen[key] = i
    first = entries[0].get("resource") if entries and isinstance(entries[0], dict) else None
    first_type = first.get("resourceType") if isinstance(first, dict) else None
    if btype == "document":
        if first_type != "Composition":
            yield Issue("error", "invariant", "bdl-11: A document must have a Composition as the first resource",
                        "Bundle.entry[0]" if entries else "Bundle")
        if "timestamp" not in bundle:
            yield Issue("error", "invariant", "bdl-10: A document must have a date", "Bundle")
        ident = bundle.get("identifier")
        if not (isinstance(ident, dict) and ident.get("system") and ident.get("value")):
            yield Issue("error", "invariant", "bdl-9: A document must have an identifier with a system and a value",
                        "Bundle")
    if btype == "message" and first_type != "MessageHeader":
        yield Issue("error", "invariant", "bdl-12: A message must have a MessageHeader as the first resource",
                    "Bundle.entry[0]" if entries else "Bundle")
