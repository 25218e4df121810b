"""Reviewed data the validator reads from `profiles/`: binding tables and R4 resource types.

Loaded once per process (cached) because validation runs per resource in tight loops.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fhir3t.errors import ConfigError


def profiles_path() -> Path:
    from fhir3t.profiles import profiles_dir

    return profiles_dir()


@cache
def bindings() -> dict[str, Any]:
    path = profiles_path() / "bindings.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read binding table {path}: {exc}") from exc


@cache
def r4_resource_types() -> frozenset[str]:
    """The 146 resource types of FHIR R4 (4.0.1); R4B-only types are not among them."""
    return frozenset(bindings()["resourceTypes"])
