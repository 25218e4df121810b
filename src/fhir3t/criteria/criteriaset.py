"""A loaded criteria definition: the criteria with their rule trees, windows, and where they came from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir3t.criteria.base import Rule
from fhir3t.criteria.context import WindowSpec
from fhir3t.messages import Msg, Text, render


@dataclass(frozen=True)
class Criterion:
    id: str
    kind: str
    #: the short name, in every language the criteria file gives (English first)
    title_text: Text
    requires_review: bool
    rule: Rule
    #: what it asks, generated from the rule tree (Rule.describe), never written by hand
    description_msg: Msg

    @property
    def title(self) -> str:
        return self.title_text.en

    @property
    def description(self) -> str:
        """The generated description in English (render `description_msg` for another language)."""
        return render(self.description_msg, "en")


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
