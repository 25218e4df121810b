"""Hypothesis strategies that corrupt valid FHIR JSON one value at a time (for the fuzz tests).

`mutated(doc)` replaces, deletes or re-types one to three nodes anywhere in the tree with values
a hostile server would send: wrong JSON types, unhashable objects where strings belong, path
traversal, control characters, other patients' references. `answer(doc)` also produces bodies
that are not JSON at all, cut short, or empty.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

NASTY = st.sampled_from([
    "", " ", "../../../etc/passwd", "/abs/path", "Patient/other", "Patient/../../x", "urn:uuid:nope", "#missing",
    "http://127.0.0.1:9/fhir/Patient/victim", "\x1b[2J\x1b]8;;http://x\x07", "\u202eevil", "a[/x]", "[b]p02",
    "²", "١٢", "9" * 30, "-1", "1e999", "2026-13-45", "0001-01-01", "NaN", "null", "true", "Patient", "Bundle",
    "OperationOutcome", "entered-in-error", "On-Study", "x" * 300,
])
LEAF = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), NASTY)
VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6) | NASTY, inner,
                                                                                     max_size=3), max_leaves=6)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _set(doc: Any, path: tuple, value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def mutated(draw: st.DrawFn, doc: Any, max_changes: int = 3) -> Any:
    """`doc` with 1..max_changes nodes replaced, deleted or re-typed."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_changes))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete", "wrap", "stringify"]))
        if action == "delete" and path:
            doc = _set(doc, path, None, delete=True)
            continue
        cur: Any = doc
        for k in path:
            cur = cur[k]
        if action == "wrap":
            new = draw(st.sampled_from([[cur], {"value": cur}, [cur, cur]]))
        elif action == "stringify":
            new = json.dumps(cur)[:200]
        else:
            new = draw(VALUE)
        doc = _set(doc, path, new)
    return doc


def answer(doc: Any) -> st.SearchStrategy[bytes]:
    """A server body: mostly `doc` mutated, sometimes not JSON, cut short or empty."""
    body = _dumps(doc)
    return st.one_of(
        mutated(doc).map(_dumps),
        mutated(doc).map(_dumps),
        mutated(doc).map(_dumps),
        st.integers(0, max(0, len(body) - 1)).map(lambda n: body[:n]),
        st.binary(max_size=64),
        st.just(b""),
        VALUE.map(_dumps),
    )


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()  # not orjson: a hostile body may hold integers beyond 64 bits
