"""Which copy of a resource is the newest: the one rule for every input that may hold a resource twice.

The same `Type/id` can reach a run more than once: two exports of one server, an export and a later
server pull, a history Bundle listing every version, a CDS prefetch beside a fetch. Only the newest
copy is the record; an older one (an `active` diagnosis whose newer version is `entered-in-error`)
must never count. The order, in this precedence:

1. `meta.versionId`, when both copies have one and both are whole numbers (servers count versions;
   an opaque version string says nothing about order);
2. `meta.lastUpdated`, when both are instants with a zone;
3. inside one history Bundle, the entry order (R4 http.html#history: newest first).

Copies whose order cannot be told are one record when they are equal without `meta`; otherwise the
answer is `Undecided`, and whoever asked keeps every criterion the copies could decide unknown,
naming both (the records layer compares them on what the criteria read). A history Bundle's
`DELETE` is a `Deleted` tombstone ordered by the same rule (its `response.etag` / `lastModified`):
newer than a copy, it removes it; of unknown order, it is `Undecided` too.

The interface is small on purpose (other stores merge deltas by it):

    newest(a, b)            -> a | b | Undecided       two copies (dicts or Deleted)
    newest_of(copies)       -> copy | Undecided        any number
    order(a, b)             -> 1 | -1 | 0 | None       a newer | b newer | same version | cannot tell
    history_entries(bundle) -> (list of (index, copy)) a history Bundle's entries, resources and DELETEs
    reconcile(resources, deleted)                     one patient's (resource, where) list: newest
                                                      copies kept, undecided ones handed back

Pure functions, no I/O, no state.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fhir3t.dates import instant


@dataclass(frozen=True, slots=True)
class Deleted:
    """A history Bundle's DELETE of `Type/id`: a tombstone with the version it was deleted at."""

    ref: str  # "Type/id"
    version_id: str | None = None
    last_updated: str | None = None
    where: str = ""
    #: (document, entry index) inside the history Bundle it came from
    position: tuple[str, int] | None = None


Copy = dict | Deleted


#: the key of the stand-in a shared index files under a reference whose copies differ and cannot be ordered (the
#: number of distinct copies): no element of R4 is named so, and the stand-in carries nothing else to read
COPIES_DIFFER = "_fhir3t_copies_differ"


@dataclass(frozen=True)
class Undecided:
    """Copies of one resource that differ and whose order cannot be told (at least two)."""

    copies: tuple[Copy, ...]


@dataclass(frozen=True)
class Conflict:
    """A patient's resource held in copies that `reconcile` could not order: each with where it was read."""

    ref: str
    copies: tuple[tuple[Copy, str], ...]


@dataclass
class Reconciled:
    """One patient's resources after `reconcile`: the newest copies, the undecided, how many dropped."""

    resources: list[tuple[dict, str]]
    conflicts: list[Conflict] = field(default_factory=list)
    superseded: int = 0  # older copies dropped
    deleted: int = 0  # copies a newer DELETE removed


_DIGITS = re.compile(r"\d{1,18}")
_ETAG = re.compile(r'^(?:W/)?"?([^"]*)"?$')


def _meta(copy: Copy) -> tuple[str | None, str | None, tuple[str, int] | None]:
    if isinstance(copy, Deleted):
        return copy.version_id, copy.last_updated, copy.position
    meta = copy.get("meta")
    if not isinstance(meta, dict):
        return None, None, None
    vid, lu = meta.get("versionId"), meta.get("lastUpdated")
    return (vid if isinstance(vid, str) and vid else None, lu if isinstance(lu, str) and lu else None, None)


def order(a: Copy, b: Copy, positions: Callable[[Copy], tuple[str, int] | None] | None = None) -> int | None:
    """1 when `a` is the newer copy, -1 when `b` is, 0 when they are the same version, None when it cannot
    be told (see the module doc). `positions`: where each copy sat in a history Bundle, if anywhere."""
    va, la, pa = _meta(a)
    vb, lb, pb = _meta(b)
    if positions is not None:
        pa, pb = pa or positions(a), pb or positions(b)
    if va is not None and vb is not None and va != vb and _DIGITS.fullmatch(va) and _DIGITS.fullmatch(vb):
        return 1 if int(va) > int(vb) else -1
    ta, tb = instant(la), instant(lb)
    if ta is not None and tb is not None and ta != tb:
        return 1 if ta > tb else -1
    if pa is not None and pb is not None and pa[0] == pb[0] and pa[1] != pb[1]:
        return 1 if pa[1] < pb[1] else -1  # a history Bundle lists the newest version first
    if va is not None and va == vb and (ta is None or ta == tb):
        return 0
    return None


def later_version(resource: dict) -> bool:
    """Does the resource say it is a version after the first (meta.versionId a number above 1)? Such a
    copy is kept by a reader even when nothing in it is read: it may supersede a copy that counts."""
    meta = resource.get("meta")
    vid = meta.get("versionId") if type(meta) is dict else None
    return type(vid) is str and _DIGITS.fullmatch(vid) is not None and int(vid) > 1


def same_content(a: Copy, b: Copy) -> bool:
    """Equal as records: everything but `meta` (two readings of one version), or two tombstones."""
    if isinstance(a, Deleted) or isinstance(b, Deleted):
        return isinstance(a, Deleted) and isinstance(b, Deleted)
    return {k: v for k, v in a.items() if k != "meta"} == {k: v for k, v in b.items() if k != "meta"}


def newest(a: Copy, b: Copy) -> Copy | Undecided:
    """The newer of two copies of one resource; `a` when they are the same record; else Undecided."""
    return newest_of((a, b))


def newest_of(copies: Sequence[Copy], positions: Callable[[Copy], tuple[str, int] | None] | None = None) \
        -> Copy | Undecided:
    """The newest of any number of copies of one resource (the first of equal ones), or Undecided with
    every copy no other copy is provably newer than."""
    if len(copies) == 1:
        return copies[0]
    top = [c for i, c in enumerate(copies)
           if not any(j != i and order(o, c, positions) == 1 for j, o in enumerate(copies))]
    if not top:  # cannot happen with a consistent order; be safe
        top = list(copies)
    first = top[0]
    if all(same_content(first, c) for c in top[1:]):
        return first
    distinct: list[Copy] = []
    for c in top:
        if not any(same_content(c, d) for d in distinct):
            distinct.append(c)
    return Undecided(tuple(distinct))


def _etag_version(etag: object) -> str | None:
    if not isinstance(etag, str):
        return None
    m = _ETAG.match(etag.strip())
    return m.group(1) if m and m.group(1) else None


def _ref_of_url(url: object) -> str | None:
    """`Type/id` of a DELETE's request.url (relative or absolute, `_history` dropped); None otherwise."""
    if not isinstance(url, str) or "?" in url:
        return None  # a conditional delete names no single resource
    parts = url.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2][:1].isupper() and parts[-1]:
        return f"{parts[-2]}/{parts[-1]}"
    return None


def history_entries(entries: Iterable[object], document: str) -> list[tuple[int, Copy]]:
    """The entries of a history Bundle as (index, copy): each resource, and a `Deleted` for each DELETE
    (request.method DELETE, with request.url naming `Type/id`). Entries of another shape are left out
    (the Bundle reader reports them)."""
    out: list[tuple[int, Copy]] = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            continue
        request: dict = e["request"] if isinstance(e.get("request"), dict) else {}
        res = e.get("resource")
        if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
            out.append((i, res))
            continue
        if request.get("method") == "DELETE":
            ref = _ref_of_url(request.get("url"))
            if ref is None:
                continue
            response: dict = e["response"] if isinstance(e.get("response"), dict) else {}
            vid = _etag_version(response.get("etag"))
            lm = response.get("lastModified")
            out.append((i, Deleted(ref, vid, lm if isinstance(lm, str) else None, f"{document}#entry[{i}]",
                                   (document, i))))
    return out


def ref_of(copy: Copy) -> str | None:
    """`Type/id` of a copy (None for a resource without an id)."""
    if isinstance(copy, Deleted):
        return copy.ref
    rtype, rid = copy.get("resourceType"), copy.get("id")
    return f"{rtype}/{rid}" if isinstance(rtype, str) and isinstance(rid, str) and rid else None


def newest_in_history(entries: Sequence[tuple[int, Copy]], document: str) -> list[tuple[int, Copy]]:
    """A history Bundle reduced to the newest copy of each resource (a resource or its tombstone), in
    entry order. Copies of one resource whose order the Bundle cannot tell either are all kept."""
    positions = {id(c): (document, i) for i, c in entries}

    def pos(c: Copy) -> tuple[str, int] | None:
        return positions.get(id(c))

    by_ref: dict[str, list[tuple[int, Copy]]] = {}
    loose: list[tuple[int, Copy]] = []
    for i, c in entries:
        ref = ref_of(c)
        if ref is None:
            loose.append((i, c))
        else:
            by_ref.setdefault(ref, []).append((i, c))
    kept = list(loose)
    for group in by_ref.values():
        if len(group) == 1:
            kept.append(group[0])
            continue
        found = newest_of([c for _, c in group], pos)
        winners = found.copies if isinstance(found, Undecided) else (found,)
        kept.extend((i, c) for i, c in group if any(c is w for w in winners))
    kept.sort(key=lambda ic: ic[0])
    return kept


def reconcile(resources: Sequence[tuple[dict, str]], deleted: Mapping[str, Sequence[Deleted]] | None = None) -> Reconciled:
    """One patient's resources with every `Type/id` held once: the newest copy (see the module doc),
    minus what a newer DELETE removed. Copies that cannot be ordered and differ come back as conflicts
    (not among `resources`). Resources without an id, and the Patient, are passed through."""
    seen: dict[str, list[int]] = {}
    for i, (res, _) in enumerate(resources):
        ref = ref_of(res)
        if ref is not None and res.get("resourceType") != "Patient":
            seen.setdefault(ref, []).append(i)
    tombstones = deleted or {}
    repeated = {ref: idx for ref, idx in seen.items() if len(idx) > 1 or ref in tombstones}
    if not repeated:
        return Reconciled(list(resources))
    out = Reconciled([])
    drop: set[int] = set()
    for ref, idx in repeated.items():
        copies: list[Copy] = [resources[i][0] for i in idx]
        wheres = {id(resources[i][0]): resources[i][1] for i in idx}
        gone = list(tombstones.get(ref, ()))
        found = newest_of([*copies, *gone])
        if isinstance(found, Undecided):
            drop.update(idx)
            out.conflicts.append(Conflict(ref, tuple((c, c.where if isinstance(c, Deleted) else wheres[id(c)])
                                                     for c in found.copies)))
            continue
        for i in idx:
            if resources[i][0] is not found:
                drop.add(i)
                if isinstance(found, Deleted):
                    out.deleted += 1
                else:
                    out.superseded += 1
    out.resources = [rw for i, rw in enumerate(resources) if i not in drop]
    return out


__all__ = ["Conflict", "Copy", "Deleted", "Reconciled", "Undecided", "history_entries", "later_version", "newest",
           "newest_in_history",
           "newest_of", "order", "reconcile", "ref_of", "same_content"]
