"""The invariants checked natively rather than through FHIRPath: dom-3 and ref-1 (whole-resource
searches that FHIRPath states with descendants(), slow in fhirpathpy) and the Bundle rules bdl-*
that need entry locations (bdl-7's FHIRPath only says "not distinct"). Same keys, same meaning.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fhir3t.jsonshape import text
from fhir3t.messages import table
from fhir3t.validate.issues import Issue
from fhir3t.validate.refs import ABSOLUTE_REF, RELATIVE_REF, iter_references

_URN = re.compile(r"^urn:(uuid:[0-9a-fA-F-]{36}|oid:[0-2](\.(0|[1-9][0-9]*))+)$")
_CONDITIONAL = re.compile(r"^[A-Z][A-Za-z]+\?\S+$")  # Type?param=value (allowed in transactions)


#: each begins with the invariant's key and its R4 human text, as the FHIRPath layer says them
MESSAGES = table("validate.invariant", {
    "dom-3": "dom-3: a contained resource SHALL be referred to from elsewhere in the resource or SHALL refer to the "
             "containing resource (contained id {id} is not)",
    "ref-1": "ref-1: SHALL have a contained resource if a local reference is provided ({ref} names no contained "
             "resource)",
    "malformed": "malformed reference {ref}: expected Type/id, an absolute URL, urn:uuid:, urn:oid: or #id (ids are "
                 "1-64 of A-Z a-z 0-9 - .)",
    "bdl-1": "bdl-1: total only when a search or history",
    "bdl-2": "bdl-2: entry.search only when a search",
    "bdl-3-missing": "bdl-3: entry.request mandatory for batch/transaction/history (missing in a {type})",
    "bdl-3-present": "bdl-3: entry.request otherwise prohibited (present in a {type})",
    "bdl-4-missing": "bdl-4: entry.response mandatory for batch-response/transaction-response/history (missing in a "
                     "{type})",
    "bdl-4-present": "bdl-4: entry.response otherwise prohibited (present in a {type})",
    "bdl-5": "bdl-5: must be a resource unless there's a request or response",
    "bdl-8": "bdl-8: fullUrl cannot be a version specific reference",
    "bdl-7": "bdl-7: FullUrl must be unique in a bundle, or else entries with the same fullUrl must have different "
             "meta.versionId (also used by entry[{entry}])",
    "bdl-11": "bdl-11: A document must have a Composition as the first resource",
    "bdl-10": "bdl-10: A document must have a date",
    "bdl-9": "bdl-9: A document must have an identifier with a system and a value",
    "bdl-12": "bdl-12: A message must have a MessageHeader as the first resource",
})

_NARRATIVE_REF = re.compile(r"""(?:src|href)\s*=\s*["'](#[^"']+)["']""")


def _well_formed(ref: str) -> bool:
    return bool(RELATIVE_REF.match(ref) or ABSOLUTE_REF.match(ref) or _URN.match(ref) or _CONDITIONAL.match(ref)
                or (ref.startswith(("http://", "https://")) and " " not in ref))

def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def check_dom3(resource: dict, rt: str) -> Iterator[Issue]:
    """dom-3: every contained resource is referenced from elsewhere or references the container."""
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return
    strings = list(_strings(resource))
    local = {s for s in strings if s.startswith("#")}
    # a narrative may be what points at it (<img src="#id">), as the HL7 validator accepts
    local.update(m.group(1) for s in strings if s.startswith("<div") for m in _NARRATIVE_REF.finditer(s))
    for i, c in enumerate(contained):
        if not isinstance(c, dict):
            continue
        cid = c.get("id")
        if isinstance(cid, str) and f"#{cid}" in local:
            continue
        if any(s == "#" for s in _strings(c)):
            continue
        yield Issue("error", "invariant",
                    MESSAGES["dom-3"](id=repr(cid)),
                    f"{rt}.contained[{i}]")


def check_ref1(resource: dict, rt: str) -> Iterator[Issue]:
    """ref-1: a local reference `#id` needs a contained resource with that id (`#` is the container)."""
    contained = resource.get("contained")
    ids = {c["id"] for c in contained if isinstance(c, dict) and isinstance(c.get("id"), str)} \
        if isinstance(contained, list) else set()
    for where, ref in iter_references(resource, rt):
        if ref.startswith("#") and len(ref) > 1 and ref[1:] not in ids:
            yield Issue("error", "invariant",
                        MESSAGES["ref-1"](ref=repr(ref)),
                        f"{where}.reference")
        elif not ref.startswith("#") and not _well_formed(ref):
            # whitespace or a broken urn: an error; another form is a URL R4 allows (the HL7 validator accepts
            # 'resource:0' and 'XXX/_history/1') that no reader of fhir3t can resolve: a warning
            yield Issue("error" if (any(c.isspace() for c in ref) or ref.startswith("urn:")) else "warning", "value",
                        MESSAGES["malformed"](ref=repr(ref)),
                        f"{where}.reference")


# --- Bundle ----------------------------------------------------------------------------------

_SEARCH_HISTORY = frozenset({"searchset", "history"})
_REQUEST_REQUIRED = frozenset({"batch", "transaction", "history"})
_RESPONSE_REQUIRED = frozenset({"batch-response", "transaction-response", "history"})


def check_bundle_invariants(bundle: dict) -> Iterator[Issue]:
    btype = text(bundle.get("type"))  # a list or an object is no Bundle type (and no set member)
    if "total" in bundle and btype not in _SEARCH_HISTORY:
        yield Issue("error", "invariant", MESSAGES["bdl-1"](), "Bundle.total")
    entries = bundle["entry"] if isinstance(bundle.get("entry"), list) else []
    seen: dict[tuple[str, Any], int] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            continue
        at = f"Bundle.entry[{i}]"
        if "search" in e and btype != "searchset":
            yield Issue("error", "invariant", MESSAGES["bdl-2"](), f"{at}.search")
        if btype in _REQUEST_REQUIRED and "request" not in e:
            yield Issue("error", "invariant",
                        MESSAGES["bdl-3-missing"](type=str(btype)), at)
        if btype not in _REQUEST_REQUIRED and "request" in e:
            yield Issue("error", "invariant",
                        MESSAGES["bdl-3-present"](type=str(btype)), f"{at}.request")
        if btype in _RESPONSE_REQUIRED and "response" not in e:
            yield Issue("error", "invariant",
                        MESSAGES["bdl-4-missing"](type=str(btype)), at)
        if btype not in _RESPONSE_REQUIRED and "response" in e:
            yield Issue("error", "invariant",
                        MESSAGES["bdl-4-present"](type=str(btype)), f"{at}.response")
        if not any(k in e for k in ("resource", "request", "response")):
            yield Issue("error", "invariant", MESSAGES["bdl-5"](), at)
        fu = e.get("fullUrl")
        if isinstance(fu, str):
            if "/_history/" in fu:
                yield Issue("error", "invariant", MESSAGES["bdl-8"](),
                            f"{at}.fullUrl")
            res = e.get("resource")
            meta = res.get("meta") if isinstance(res, dict) else None
            vid = meta.get("versionId") if isinstance(meta, dict) else None
            key = (fu, vid)
            if key in seen:
                yield Issue("error", "invariant",
                            MESSAGES["bdl-7"](entry=seen[key]),
                            f"{at}.fullUrl")
            else:
                seen[key] = i
    first = entries[0].get("resource") if entries and isinstance(entries[0], dict) else None
    first_type = first.get("resourceType") if isinstance(first, dict) else None
    if btype == "document":
        if first_type != "Composition":
            yield Issue("error", "invariant", MESSAGES["bdl-11"](),
                        "Bundle.entry[0]" if entries else "Bundle")
        if "timestamp" not in bundle:
            yield Issue("error", "invariant", MESSAGES["bdl-10"](), "Bundle")
        ident = bundle.get("identifier")
        if not (isinstance(ident, dict) and ident.get("system") and ident.get("value")):
            yield Issue("error", "invariant", MESSAGES["bdl-9"](),
                        "Bundle")
    if btype == "message" and first_type != "MessageHeader":
        yield Issue("error", "invariant", MESSAGES["bdl-12"](),
                    "Bundle.entry[0]" if entries else "Bundle")
