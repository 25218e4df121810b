"""Layer 3: Bundle integrity — fullUrls, references between entries, transaction requests.

Reference resolution follows R4's "Resolving references in Bundles": by fullUrl, by `Type/id`
against an entry (relative to the entry's base when its fullUrl is a RESTful URL), or clearly
external. An unresolved `urn:uuid:`/`urn:oid:` can never be resolved by a server → error; an
unresolved relative `Type/id` may name a resource already on the server → warning.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl

from fhir3t.validate.issues import Issue
from fhir3t.validate.refs import ABSOLUTE_REF, RELATIVE_REF, iter_references
from fhir3t.validate.tables import r4_resource_types

RESOLVING_TYPES = frozenset({"transaction", "batch", "collection", "document", "message"})
REQUEST_TYPES = frozenset({"transaction", "batch"})
_QUERY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.:]*$")


def check_bundle(bundle: dict) -> list[Issue]:
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return []
    btype = bundle.get("type")
    issues: list[Issue] = []
    if btype in REQUEST_TYPES:
        for i, e in enumerate(entries):
            if isinstance(e, dict):
                issues.extend(_check_request(e, f"Bundle.entry[{i}]"))
    if btype in RESOLVING_TYPES:
        issues.extend(_check_references(entries, btype))
    return issues


def _entry_index(entries: list) -> tuple[set[str], set[tuple[str, str]]]:
    full_urls: set[str] = set()
    type_ids: set[tuple[str, str]] = set()
    for e in entries:
        if not isinstance(e, dict):
            continue
        fu = e.get("fullUrl")
        if isinstance(fu, str):
            full_urls.add(fu)
            m = ABSOLUTE_REF.match(fu)
            if m:
                type_ids.add((m.group(2), m.group(3)))
        r = e.get("resource")
        if isinstance(r, dict) and isinstance(r.get("resourceType"), str) and isinstance(r.get("id"), str):
            type_ids.add((r["resourceType"], r["id"]))
    return full_urls, type_ids


def _check_references(entries: list, btype: str) -> Iterator[Issue]:
    full_urls, type_ids = _entry_index(entries)
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
            continue
        base = None
        fu = e.get("fullUrl")
        if isinstance(fu, str):
            m = ABSOLUTE_REF.match(fu)
            base = m.group(1) if m else None
        for where, ref in iter_references(e["resource"], f"Bundle.entry[{i}].resource"):
            issue = _resolve(ref, where, base, full_urls, type_ids, btype)
            if issue is not None:
                yield issue


def _resolve(ref: str, where: str, base: str | None, full_urls: set[str],
             type_ids: set[tuple[str, str]], btype: str) -> Issue | None:
    loc = f"{where}.reference"
    if ref.startswith("#"):
        return None  # contained: checked by ref-1
    if ref in full_urls:
        return None
    if ref.startswith(("urn:uuid:", "urn:oid:")):
        return Issue("error", "not-found",
                     f"reference {ref!r} does not resolve to any entry's fullUrl in this {btype} Bundle", loc)
    if "?" in ref and not ref.startswith(("http://", "https://")):
        if btype != "transaction":
            return Issue("error", "invalid", f"conditional reference {ref!r} is only allowed in a transaction", loc)
        problem = conditional_url_problem(ref, require_type=True)
        return Issue("error", "invalid", f"conditional reference {ref!r}: {problem}", loc) if problem else None
    m = RELATIVE_REF.match(ref)
    if m:
        rtype, rid = m.group(1), m.group(2)
        if rtype not in r4_resource_types():
            return Issue("error", "value", f"reference {ref!r} names unknown resource type {rtype!r}", loc)
        if (rtype, rid) in type_ids or (base and f"{base}/{rtype}/{rid}" in full_urls):
            return None
        return Issue("warning", "not-found",
                     f"reference {ref!r} does not resolve within the Bundle; it must exist on the target server", loc)
    if ref.startswith(("http://", "https://")):
        return None  # absolute URL: another server (or this one), clearly external
    return Issue("warning", "value",
                 f"reference {ref!r} is neither Type/id, an absolute URL, urn:uuid nor #contained", loc)


def _check_request(entry: dict, where: str) -> Iterator[Issue]:
    req = entry.get("request")
    if not isinstance(req, dict):
        return  # bdl-3 reports the missing request
    method, url = req.get("method"), req.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        return  # structure reports missing method/url
    loc = f"{where}.request.url"
    res = entry.get("resource")
    rtype = res.get("resourceType") if isinstance(res, dict) else None
    path, _, query = url.partition("?")
    if url.startswith(("http://", "https://")):
        return
    head = path.split("/")[0]
    if method in {"POST", "PUT", "DELETE", "PATCH"}:
        if head not in r4_resource_types():
            yield Issue("error", "value", f"{method} url {url!r} does not start with an R4 resource type", loc)
            return
        if query or url.endswith("?"):
            problem = conditional_url_problem(url, require_type=True)
            if problem:
                yield Issue("error", "invalid", f"conditional {method} url {url!r}: {problem}", loc)
        elif method == "POST" and path != head:
            yield Issue("error", "value", f"POST url must be the resource type only, got {url!r}", loc)
        elif method in {"PUT", "DELETE", "PATCH"}:
            m = RELATIVE_REF.match(path)
            if not m:
                yield Issue("error", "value", f"{method} url must be Type/id or Type?query, got {url!r}", loc)
            elif method == "PUT" and isinstance(res, dict) and res.get("id") not in (None, m.group(2)):
                yield Issue("error", "value",
                            f"PUT url id {m.group(2)!r} differs from the resource id {res.get('id')!r}",
                            f"{where}.resource.id")
        if method in {"POST", "PUT"} and rtype and head != rtype:
            yield Issue("error", "value", f"{method} url {url!r} names {head} but the entry holds a {rtype}", loc)
    ine = req.get("ifNoneExist")
    if isinstance(ine, str):
        problem = conditional_url_problem(ine, require_type=False)
        if problem:
            yield Issue("error", "invalid", f"ifNoneExist {ine!r}: {problem}", f"{where}.request.ifNoneExist")
        if method != "POST":
            yield Issue("warning", "business-rule", "ifNoneExist only has an effect on POST (conditional create)",
                        f"{where}.request.ifNoneExist")


def conditional_url_problem(url: str, *, require_type: bool) -> str | None:
    """What is wrong with a conditional URL (`Type?name=value[&...]`), or None if well formed.

    Without `require_type` the bare query form (`name=value&...`, as R4's ifNoneExist is defined)
    is accepted as well as `Type?query`.
    """
    if "?" in url:
        rtype, _, query = url.partition("?")
        if rtype not in r4_resource_types():
            return f"{rtype!r} is not an R4 resource type"
    elif require_type:
        return "expected Type?name=value[&name=value]"
    else:
        query = url
    if not query:
        return "empty search criteria (would match every resource)"
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if not eq or not name or not value:
            return f"search criterion {part!r} is not name=value"
        if not _QUERY_NAME.match(name):
            return f"search parameter name {name!r} is malformed"
    try:
        parse_qsl(query, strict_parsing=True)
    except ValueError as exc:
        return f"malformed query: {exc}"
    return None
