"""Typed access to untrusted FHIR JSON: every value from a file or a server is checked where read.

A hospital's data (or a hostile server) can put a number where an object belongs; these helpers
turn a wrong shape into "absent" for the caller to judge, instead of an AttributeError deep in a
rule. They are the only place that idiom lives.
"""
from __future__ import annotations

from typing import Any


def obj(value: object) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def objs(value: object) -> list[dict[str, Any]]:
    """The JSON objects in a list (a single object counts as a list of one); others dropped."""
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


def items(value: object) -> list[Any]:
    """`value` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: object) -> str | None:
    """`value` if it is a string, else None."""
    return value if isinstance(value, str) else None


def child(parent: object, key: str) -> dict[str, Any]:
    """parent[key] as an object (empty when absent or of another type)."""
    return obj(parent.get(key)) if isinstance(parent, dict) else {}


def child_text(parent: object, key: str) -> str | None:
    """parent[key] as a string (None when absent or of another type)."""
    return text(parent.get(key)) if isinstance(parent, dict) else None
