"""Adverse events of special interest (profiles/safety/aesi.json) and expectedness against the reference
safety information (profiles/safety/reference-safety-information.json).

Both are data a reviewer can check; this module only applies them to a finished AE (after an
investigator's record was merged with fhir3t's, so every code either carried counts).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fhir3t.messages import Text
from fhir3t.safety.findings import Finding
from fhir3t.safety.terms import Terms, icd_key, icd_match
from fhir3t.textnorm import fold, name_pattern


@dataclass(frozen=True)
class Aesi:
    id: str
    title: str
    parent: str | None
    drugs: tuple[str, ...]
    why: str
    ctcae: frozenset[str]
    icd: tuple[str, ...]  # normalised ICD-10 prefixes
    snomed: frozenset[str]
    names: re.Pattern[str] | None
    socs: frozenset[str]
    serious_or_grade: int | None

    def matches(self, f: Finding, icd_systems: frozenset[str]) -> bool:
        if f.ctcae is not None and f.ctcae.name in self.ctcae:
            return True
        if icd_match(f.codes, self.icd, icd_systems):
            return True
        if any(system == "http://snomed.info/sct" and code in self.snomed for system, code in f.codes):
            return True
        if self.names is not None and f.kind != "lab" and self.names.search(fold(f.term)):
            return True
        if self.socs and f.ctcae is not None and f.ctcae.soc in self.socs and self.serious_or_grade is not None:
            return f.serious or (f.grade or 0) >= self.serious_or_grade
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "parent": self.parent, "drugs": list(self.drugs), "why": self.why}


@dataclass(frozen=True)
class AesiList:
    items: tuple[Aesi, ...]
    icd_systems: frozenset[str]
    #: the titles in other languages (a title -> its names), for what a person reads
    names: dict[str, Text] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: dict[str, Any], terms: Terms, drugs: Iterable[str]) -> AesiList:
        known = set(drugs)
        out = []
        for a in data["aesi"]:
            m = a["match"]
            item = Aesi(a["id"], a["title"], a.get("parent"), tuple(a.get("drugs", ())), a.get("why", ""),
                        frozenset(m.get("ctcae", ())), tuple(icd_key(c) for c in m.get("icd10", ())),
                        frozenset(map(str, m.get("snomed", ()))), name_pattern(m.get("names", ())),
                        frozenset(m.get("socs", ())), m.get("serious_or_grade"))
            unknown = item.ctcae - set(terms.by_name)
            if unknown:
                raise ValueError(f"AESI {item.id!r} names CTCAE terms not in ctcae-v5-terms.json: {sorted(unknown)}")
            if not set(item.drugs) <= known:
                raise ValueError(f"AESI {item.id!r} names an unknown drug")
            out.append(item)
        ids = [a.id for a in out]
        if len(ids) != len(set(ids)) or any(a.parent is not None and a.parent not in ids for a in out):
            raise ValueError("AESI ids must be unique and every parent an AESI of the list")
        return cls(tuple(out), terms.icd_systems, {a["title"]: Text.of(a["title"], a.get("names")) for a in data["aesi"]})

    def of(self, f: Finding) -> tuple[str, ...]:
        return tuple(a.id for a in self.items if a.matches(f, self.icd_systems))


@dataclass(frozen=True)
class ReferenceSafety:
    """Per drug, the AEs its reference safety information lists (CTCAE term names, ICD-10 prefixes)."""

    version: str
    terms: dict[str, frozenset[str]]
    icd: dict[str, tuple[str, ...]]
    sources: dict[str, str]

    @classmethod
    def from_data(cls, data: dict[str, Any], terms: Terms, drugs: Iterable[str]) -> ReferenceSafety:
        by_terms: dict[str, frozenset[str]] = {}
        by_icd: dict[str, tuple[str, ...]] = {}
        sources: dict[str, str] = {}
        for drug in drugs:
            entry = data["drugs"].get(drug)
            if entry is None:
                raise ValueError(f"no reference safety information for {drug!r}")
            names = frozenset(entry.get("ctcae", ()))
            if names - set(terms.by_name):
                raise ValueError(f"RSI of {drug!r} names CTCAE terms not in ctcae-v5-terms.json: {sorted(names - set(terms.by_name))}")
            by_terms[drug] = names
            by_icd[drug] = tuple(icd_key(c) for c in entry.get("icd10", ()))
            sources[drug] = entry.get("source", "")
        return cls(str(data["version"]), by_terms, by_icd, sources)

    def expected(self, drug: str, f: Finding, icd_systems: frozenset[str]) -> bool:
        if f.ctcae is not None and f.ctcae.name in self.terms.get(drug, frozenset()):
            return True
        return icd_match(f.codes, self.icd.get(drug, ()), icd_systems)

    def unexpected_for(self, f: Finding, icd_systems: frozenset[str]) -> tuple[str, ...]:
        return tuple(s.drug for s in f.suspects if not self.expected(s.drug, f, icd_systems))
