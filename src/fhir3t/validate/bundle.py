"""Bundle integrity — fullUrls, links, references between entries, transaction requests.

Reference resolution follows R4's "Resolving references in Bundles" (see Resolver). An unresolved
`urn:uuid:`/`urn:oid:` can never be resolved by a server → error, as is an ambiguous reference and a
document's section entry (or a message's focus) missing from the Bundle. Other references to
resources outside the Bundle (`Patient/1` already on the server) are normal for a transaction:
they are summed up in one information issue, or listed one by one as errors with `strict_refs`.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fhir3t.jsonshape import text
from fhir3t.messages import Msg, table
from fhir3t.r4defs import resource_types as r4_resource_types
from fhir3t.validate.issues import Issue, Severity
from fhir3t.validate.refs import ABSOLUTE_REF, RELATIVE_REF, iter_references

RESOLVING_TYPES = frozenset({"transaction", "batch", "collection", "document", "message", "searchset", "history"})
REQUEST_TYPES = frozenset({"transaction", "batch"})
_QUERY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.:]*$")
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_HISTORY = re.compile(r"^(.*?)/_history/([A-Za-z0-9\-.]{1,64})$")
_SINGLE_LINKS = frozenset({"self", "first", "previous", "prev", "next", "last"})

#: what Bundle integrity finds wrong (references, urls and queries quoted as repr by the caller)
MESSAGES = table("validate.bundle", {
    "target": "reference {ref} resolves to a {type}, which is not a valid target here (must be one of {targets})",
    "target-type": "Reference.type {declared} does not match the type of the resource {ref} resolves to ({type})",
    "link-once": "the link relation {relation} can only occur once",
    "full-url": "the fullUrl must be an absolute URL (not {url})",
    "full-url-no-id": "the fullUrl {url} looks like a RESTful server URL, but the resource has no id",
    "full-url-end": "the fullUrl {url} looks like a RESTful server URL, so it must end with the resource's type and id "
                    "(/{type}/{id})",
    "outcome": "an entry of search mode 'outcome' must be an OperationOutcome, not a {type}",
    "search-ids": "search results must have ids",
    "not-resolved": "reference {ref} does not resolve within the Bundle (--strict-refs)",
    "outside": "{n} reference(s) to {targets} resource(s) outside this Bundle, e.g. {examples}; they must exist on the "
               "server that receives it (--strict-refs lists each as an error)",
    "conditional-not-transaction": "conditional reference {ref} is only allowed in a transaction",
    "conditional": "conditional reference {ref}: {problem}",
    "ambiguous": "found {n} entries that match {ref} in the Bundle",
    "urn": "reference {ref} does not resolve to any entry's fullUrl in this {type} Bundle",
    "unknown-type": "reference {ref} names unknown resource type {type}",
    "missing": "can't find {ref} in the {type} Bundle (a {type} must carry the resources its first entry points to)",
    "malformed": "reference {ref} is neither Type/id, an absolute URL, urn:uuid nor #contained",
    "method-type": "{method} url {url} does not start with an R4 resource type",
    "conditional-url": "conditional {method} url {url}: {problem}",
    "post-url": "POST url must be the resource type only, got {url}",
    "url-form": "{method} url must be Type/id or Type?query, got {url}",
    "put-id": "PUT url id {id} differs from the resource id {resource_id}",
    "url-names": "{method} url {url} names {type} but the entry holds a {held}",
    "if-none-exist": "ifNoneExist {query}: {problem}",
    "if-none-exist-post": "ifNoneExist only has an effect on POST (conditional create)",
    "query-type": "{type} is not an R4 resource type",
    "query-form": "expected Type?name=value[&name=value]",
    "query-empty": "empty search criteria (would match every resource)",
    "query-criterion": "search criterion {part} is not name=value",
    "query-name": "search parameter name {name} is malformed",
    "query-malformed": "malformed query: {error}",
})


@dataclass(frozen=True, slots=True)
class _Entry:
    index: int
    full_url: str | None
    rtype: str | None
    rid: str | None
    version: str | None
    resource: dict | None
    mode: str | None  # entry.search.mode


class Resolver:
    """Finds Bundle entries by the R4 rules of reference resolution in Bundles (also used by the
    FHIRPath `resolve()`): by fullUrl; a relative `Type/id` against the base of the referring
    entry's RESTful fullUrl, or by type and id; a version (`/_history/n`) picks among versions."""

    def __init__(self, doc: dict) -> None:
        self.entries: list[_Entry] = []
        self.by_url: dict[str, list[_Entry]] = {}
        self.by_type_id: dict[tuple[str, str], list[_Entry]] = {}
        raw = doc.get("entry") if doc.get("resourceType") == "Bundle" else None
        for i, e in enumerate(raw if isinstance(raw, list) else []):
            if not isinstance(e, dict):
                continue
            r = e.get("resource") if isinstance(e.get("resource"), dict) else None
            fu = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
            rtype = r.get("resourceType") if r and isinstance(r.get("resourceType"), str) else None
            rid = r.get("id") if r and isinstance(r.get("id"), str) else None
            meta = r.get("meta") if r else None
            version = meta.get("versionId") if isinstance(meta, dict) and isinstance(meta.get("versionId"), str) else None
            if fu and (rtype is None or rid is None):
                m = ABSOLUTE_REF.match(fu)
                if m:
                    rtype, rid = rtype or m.group(2), rid or m.group(3)
            search = e.get("search")
            mode = search.get("mode") if isinstance(search, dict) and isinstance(search.get("mode"), str) else None
            entry = _Entry(i, fu, rtype, rid, version, r, mode)
            self.entries.append(entry)
            if fu:
                self.by_url.setdefault(fu, []).append(entry)
            if rtype and rid:
                self.by_type_id.setdefault((rtype, rid), []).append(entry)

    def find(self, ref: str, base: str | None) -> list[_Entry]:
        """The entries `ref` may mean (0: not in the Bundle; >1: ambiguous)."""
        target, version = ref, None
        m = _HISTORY.match(ref)
        if m:
            target, version = m.group(1), m.group(2)
        if target in self.by_url:
            got = self.by_url[target]
        else:
            rel = RELATIVE_REF.match(target)
            if rel is None:
                return []
            if base and f"{base}/{target}" in self.by_url:
                got = self.by_url[f"{base}/{target}"]
            else:
                got = self.by_type_id.get((rel.group(1), rel.group(2)), [])
        if version is not None and len(got) > 1:
            got = [e for e in got if e.version == version] or got
        return got

    def lookup(self, ref: str) -> dict | None:
        got = self.find(ref, None)
        return got[0].resource if len(got) == 1 else None


def check_targets(resolver: Resolver, references: list[tuple[str, str, tuple[str, ...], str | None]]) -> Iterator[Issue]:
    """References that resolve inside the Bundle to a resource of a type the element does not allow, or
    of another type than their Reference.type says (a urn:uuid carries no type of its own, so this is
    the only place its target's type can be checked)."""
    for where, ref, targets, declared in references:
        got = resolver.find(ref, None)
        if len(got) != 1 or got[0].resource is None or not isinstance(got[0].rtype, str):
            continue
        rtype = got[0].rtype
        if targets and rtype not in targets:
            yield Issue("error", "structure", MESSAGES["target"](ref=repr(ref), type=rtype, targets=", ".join(targets)),
                        f"{where}.reference")
        if declared is not None and declared != rtype:
            yield Issue("error", "value", MESSAGES["target-type"](declared=repr(declared), ref=repr(ref), type=rtype),
                        f"{where}.type")


def check_bundle(bundle: dict, *, strict_refs: bool = False) -> list[Issue]:
    entries = bundle.get("entry")
    issues: list[Issue] = list(_check_links(bundle))
    if not isinstance(entries, list):
        return issues
    btype = text(bundle.get("type"))  # a list or an object is no Bundle type (its type check reports it)
    resolver = Resolver(bundle)
    issues.extend(_check_full_urls(resolver, btype))
    if btype in REQUEST_TYPES:
        for i, e in enumerate(entries):
            if isinstance(e, dict):
                issues.extend(_check_request(e, f"Bundle.entry[{i}]"))
    if btype in RESOLVING_TYPES:
        issues.extend(_check_references(resolver, btype, strict_refs))
    return issues


def _check_links(bundle: dict) -> Iterator[Issue]:
    links = bundle.get("link")
    seen: set[str] = set()
    for i, link in enumerate(links if isinstance(links, list) else []):
        rel = link.get("relation") if isinstance(link, dict) else None
        if isinstance(rel, str) and rel in _SINGLE_LINKS:
            if rel in seen:
                yield Issue("error", "invalid", MESSAGES["link-once"](relation=repr(rel)), f"Bundle.link[{i}]")
            seen.add(rel)


def _check_full_urls(resolver: Resolver, btype: object) -> Iterator[Issue]:
    for e in resolver.entries:
        at = f"Bundle.entry[{e.index}]"
        fu = e.full_url
        if fu is not None and not _ABSOLUTE_URI.match(fu):
            yield Issue("error", "invalid", MESSAGES["full-url"](url=repr(fu[:80])), f"{at}.fullUrl")
        elif fu is not None and e.resource is not None:
            m = ABSOLUTE_REF.match(fu)
            r = e.resource
            if m and "id" not in r and btype not in REQUEST_TYPES and btype != "searchset":  # (searchset: below)
                yield Issue("error", "invalid", MESSAGES["full-url-no-id"](url=repr(fu[:120])), f"{at}.fullUrl")
            elif m and (m.group(2) != r.get("resourceType") or ("id" in r and m.group(3) != r.get("id"))):
                yield Issue("error", "invalid", MESSAGES["full-url-end"](
                    url=repr(fu[:120]), type=str(r.get("resourceType")), id=str(r.get("id"))), f"{at}.fullUrl")
        if btype == "searchset" and e.mode == "outcome" and e.resource is not None and e.rtype != "OperationOutcome":
            yield Issue("error", "invalid", MESSAGES["outcome"](type=str(e.rtype)), f"{at}.resource")
        if (btype == "searchset" and e.resource is not None and "id" not in e.resource
                and (e.mode != "outcome" or e.rtype != "OperationOutcome")
                and e.rtype != "OperationOutcome"):
            yield Issue("error", "invalid", MESSAGES["search-ids"](), f"{at}.resource")


def _check_references(resolver: Resolver, btype: str, strict: bool) -> Iterator[Issue]:
    outside: list[tuple[str, str]] = []
    for e in resolver.entries:
        if e.resource is None:
            continue
        base = None
        if e.full_url:
            m = ABSOLUTE_REF.match(e.full_url)
            base = m.group(1) if m else None
        for where, ref in iter_references(e.resource, f"Bundle.entry[{e.index}].resource"):
            issue = _resolve(resolver, ref, where, base, btype, e.index)
            if issue == "outside":
                outside.append((where, ref))
            elif isinstance(issue, Issue):
                yield issue
    if not outside:
        return
    if strict:
        for where, ref in outside:
            yield Issue("error", "not-found", MESSAGES["not-resolved"](ref=repr(ref)), f"{where}.reference")
        return
    targets = sorted({r for _, r in outside})
    yield Issue("information", "not-found",
                MESSAGES["outside"](n=len(outside), targets=len(targets), examples=", ".join(targets[:3])),
                f"{outside[0][0]}.reference")


def _resolve(resolver: Resolver, ref: str, where: str, base: str | None, btype: str,
             index: int) -> Issue | str | None:
    loc = f"{where}.reference"
    if ref.startswith("#"):
        return None  # contained: checked by ref-1
    if "?" in ref and not ref.startswith(("http://", "https://")):
        if btype != "transaction":
            return Issue("error", "invalid", MESSAGES["conditional-not-transaction"](ref=repr(ref)), loc)
        problem = conditional_url_problem(ref, require_type=True)
        return Issue("error", "invalid", MESSAGES["conditional"](ref=repr(ref), problem=problem), loc) if problem else None
    got = resolver.find(ref, base)
    if len({g.index for g in got}) > 1 and len({(g.full_url, g.version) for g in got}) > 1:
        # an error where the Bundle must be closed (a document, message, transaction), else a warning as the
        # HL7 validator says: the reference is not wrong, only not decidable here
        severity: Severity = "error" if btype in ("document", "message", "transaction") else "warning"
        return Issue(severity, "invalid", MESSAGES["ambiguous"](n=len(got), ref=repr(ref)), loc)
    if got:
        return None
    if ref.startswith(("urn:uuid:", "urn:oid:")):
        return Issue("error", "not-found", MESSAGES["urn"](ref=repr(ref), type=btype), loc)
    m = RELATIVE_REF.match(ref)
    if m and m.group(1) not in r4_resource_types():
        return Issue("error", "value", MESSAGES["unknown-type"](ref=repr(ref), type=repr(m.group(1))), loc)
    if index == 0 and ((btype == "document" and ".section" in where) or (btype == "message" and ".focus" in where)):
        return Issue("error", "not-found", MESSAGES["missing"](ref=repr(ref), type=btype), loc)
    if m or ref.startswith(("http://", "https://")):
        return "outside"
    return Issue("warning", "value", MESSAGES["malformed"](ref=repr(ref)), loc)


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
            yield Issue("error", "value", MESSAGES["method-type"](method=method, url=repr(url)), loc)
            return
        if query or url.endswith("?"):
            problem = conditional_url_problem(url, require_type=True)
            if problem:
                yield Issue("error", "invalid", MESSAGES["conditional-url"](method=method, url=repr(url), problem=problem), loc)
        elif method == "POST" and path != head:
            yield Issue("error", "value", MESSAGES["post-url"](url=repr(url)), loc)
        elif method in {"PUT", "DELETE", "PATCH"}:
            m = RELATIVE_REF.match(path)
            if not m:
                yield Issue("error", "value", MESSAGES["url-form"](method=method, url=repr(url)), loc)
            elif method == "PUT" and isinstance(res, dict) and res.get("id") not in (None, m.group(2)):
                yield Issue("error", "value",
                            MESSAGES["put-id"](id=repr(m.group(2)), resource_id=repr(res.get("id"))),
                            f"{where}.resource.id")
        if method in {"POST", "PUT"} and rtype and head != rtype:
            yield Issue("error", "value", MESSAGES["url-names"](method=method, url=repr(url), type=head, held=rtype), loc)
    ine = req.get("ifNoneExist")
    if isinstance(ine, str):
        problem = conditional_url_problem(ine, require_type=False)
        if problem:
            yield Issue("error", "invalid", MESSAGES["if-none-exist"](query=repr(ine), problem=problem),
                        f"{where}.request.ifNoneExist")
        if method != "POST":
            yield Issue("warning", "business-rule", MESSAGES["if-none-exist-post"](),
                        f"{where}.request.ifNoneExist")


def conditional_url_problem(url: str, *, require_type: bool) -> Msg | None:
    """What is wrong with a conditional URL (`Type?name=value[&...]`), or None if well formed.

    Without `require_type` the bare query form (`name=value&...`, as R4's ifNoneExist is defined)
    is accepted as well as `Type?query`.
    """
    if "?" in url:
        rtype, _, query = url.partition("?")
        if rtype not in r4_resource_types():
            return MESSAGES["query-type"](type=repr(rtype))
    elif require_type:
        return MESSAGES["query-form"]()
    else:
        query = url
    if not query:
        return MESSAGES["query-empty"]()
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if not eq or not name or not value:
            return MESSAGES["query-criterion"](part=repr(part))
        if not _QUERY_NAME.match(name):
            return MESSAGES["query-name"](name=repr(name))
    try:
        parse_qsl(query, strict_parsing=True)
    except ValueError as exc:
        return MESSAGES["query-malformed"](error=str(exc))
    return None
