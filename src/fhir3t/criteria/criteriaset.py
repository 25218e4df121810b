"""A loaded criteria definition: the criteria with their rule trees, windows, and where they came from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir3t.criteria.base import Rule
from fhir3t.criteria.context import WindowSpec


@dataclass(frozen=True)
class Criterion:
    id: str
    kind: str
    title: str
    description: str
    requires_review: bool
    rule: Rule


@dataclass
class CriteriaSet:
    id: str
    version: str
    title: str
    study_system: str
    study_value: str
    checklist: str
    windows: dict[str, WindowSpec]
    criteria: list[Criterion]
    digest: str  # sha256 over criteria, value sets and the FHIR facts: names the exact rules a result came from
    source: dict[str, Any]
    path: Path
