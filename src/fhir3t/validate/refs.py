"""Finding references inside one resource's JSON (shared by the bundle and invariant layers).

A Reference is recognised as an object whose `reference` is a string; that is exact for R4, where
every element named `reference` holding a string is `Reference.reference`. Nested resources other
than `contained` (Bundle.entry.resource, Parameters.parameter.resource, ...) are separate
resources and are not descended into.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

#: `Type/id` or `Type/id/_history/vid`, optionally after a base URL (the FHIR "literal" form)
RELATIVE_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")
ABSOLUTE_REF = re.compile(
    r"^((?:https?)://[^\s?#]+?)/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$"
)


def iter_references(resource: dict, where: str) -> Iterator[tuple[str, str]]:
    """(location of the Reference, reference string) for every literal reference in `resource`."""
    yield from _walk(resource, where, root=True)


def _walk(obj: Any, where: str, root: bool = False) -> Iterator[tuple[str, str]]:
    if isinstance(obj, dict):
        if not root and "resourceType" in obj:
            return
        ref = obj.get("reference")
        if isinstance(ref, str):
            yield where, ref
        for k, v in obj.items():
            if isinstance(v, dict):
                if k == "contained":
                    continue
                yield from _walk(v, f"{where}.{k}")
            elif isinstance(v, list):
                if k == "contained" and root:
                    for i, c in enumerate(v):
                        if isinstance(c, dict):
                            yield from _walk(c, f"{where}.contained[{i}]", root=True)
                    continue
                for i, item in enumerate(v):
                    if isinstance(item, (dict, list)):
                        yield from _walk(item, f"{where}.{k}[{i}]")
