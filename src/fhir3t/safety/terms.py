"""CTCAE v5.0 adverse-event terms and their MedDRA codes (profiles/safety/ctcae-v5-terms.json).

The term names an AE the same way whatever made it (a graded lab, a coded Condition, an
investigator's AdverseEvent), so the safety tables count subjects per term and an investigator's
record of an AE fhir3t also found is recognised as the same event. A term is reached from a MedDRA
code (its own or an equivalent PT / LLT), a SNOMED CT code, an ICD-10 prefix (the longest wins) or,
last, a synonym equal to the whole (folded) text of the event.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fhir3t.messages import Text
from fhir3t.terminology import Code
from fhir3t.textnorm import fold, name_pattern

SNOMED = "http://snomed.info/sct"


@dataclass(frozen=True)
class AeTerm:
    term: str
    code: str
    soc: str
    system: str
    provenance: str
    specify: str | None = None  # the event of an "Other, specify" term
    #: the name in other languages ({"zh-CN": ...}), as the data give it (for what a person reads)
    names: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """What the tables print and count by: the term, with the specified event for 'Other, specify'."""
        return f"{self.term}: {self.specify}" if self.specify else self.term

    @property
    def text(self) -> Text:
        """The name in every language the data give it."""
        return Text.of(self.name, dict(self.names))

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.name}

    def to_dict(self) -> dict[str, str]:
        return {"term": self.name, "system": self.system, "code": self.code, "soc": self.soc}


def icd_key(code: str) -> str:
    """An ICD-10 code as prefixes are compared: no dot, upper case (B59.x00 -> B59X00)."""
    return code.replace(".", "").strip().upper()


def icd_match(codes: Iterable[Code], prefixes: Iterable[str], systems: frozenset[str]) -> bool:
    """Does any ICD-10 code (of `systems`) start with one of the (icd_key'd) prefixes?"""
    prefixes = tuple(prefixes)
    return any(system in systems and icd_key(code).startswith(prefixes) for system, code in codes) if prefixes else False


@dataclass(frozen=True)
class Terms:
    version: str
    system: str
    by_lab: dict[str, AeTerm]
    by_code: dict[str, AeTerm]  # MedDRA code (the term's own, or an equivalent PT / LLT) -> term
    icd: tuple[tuple[str, AeTerm], ...]  # (normalised ICD-10 prefix, term), longest prefix first
    icd_systems: frozenset[str]
    death: AeTerm | None
    by_snomed: dict[str, AeTerm]
    by_text: dict[str, AeTerm]  # folded synonym -> term
    by_name: dict[str, AeTerm]  # AeTerm.name -> term
    #: MedDRA system organ classes in other languages (`soc_names` of the data)
    soc_names: dict[str, Text]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Terms:
        system = data["system"]
        by_lab: dict[str, AeTerm] = {}
        by_code: dict[str, AeTerm] = {}
        by_snomed: dict[str, AeTerm] = {}
        by_text: dict[str, AeTerm] = {}
        icd: list[tuple[str, AeTerm]] = []
        death = None
        every: dict[str, AeTerm] = {}
        for t in data["terms"]:
            term = AeTerm(t["term"], str(t["code"]), t["soc"], system, t["provenance"], t.get("specify"),
                          tuple(sorted((t.get("names") or {}).items())))
            if term.name in every:
                raise ValueError(f"CTCAE term {term.name!r} listed twice")
            every[term.name] = term
            for code in (term.code, *map(str, t.get("meddra", ()))):
                by_code.setdefault(code, term)
            if t.get("lab"):
                by_lab[t["lab"]] = term
            icd.extend((icd_key(c), term) for c in t.get("icd10", ()))
            for c in t.get("snomed", ()):
                by_snomed.setdefault(str(c), term)
            for text in (term.name, term.term if not term.specify else None, *t.get("synonyms", ())):
                if text:
                    by_text.setdefault(fold(text), term)
            if t.get("death"):
                death = term
        icd.sort(key=lambda p: -len(p[0]))
        socs = {soc: Text.of(soc, names) for soc, names in (data.get("soc_names") or {}).items()}
        return cls(data["version"], system, by_lab, by_code, tuple(icd), frozenset(data["icd10_systems"]), death,
                   by_snomed, by_text, every, socs)

    def for_codes(self, codes: Iterable[Code]) -> AeTerm | None:
        """The term a coded event or Condition maps to: a MedDRA code, else SNOMED CT, else an ICD-10 prefix."""
        codes = tuple(codes)
        for system, code in codes:
            if system == self.system and code in self.by_code:
                return self.by_code[code]
        for system, code in codes:
            if system == SNOMED and code in self.by_snomed:
                return self.by_snomed[code]
        for system, code in codes:
            if system in self.icd_systems:
                c = icd_key(code)
                for prefix, term in self.icd:
                    if c.startswith(prefix):
                        return term
        return None

    def for_text(self, text: str | None, contained: bool = False) -> AeTerm | None:
        """The term whose name or synonym is the whole text (case, width and spacing folded); with `contained`, else
        the longest name or synonym standing in the text as whole words ("New-onset diabetes on <drug>"), or None.

        Only a Condition's naming uses `contained`: whether an investigator's record is the same event as one fhir3t
        found is decided on the whole text ("Febrile neutropenia" is not a neutrophil-count episode)."""
        if not text:
            return None
        folded = fold(text)
        hit = self.by_text.get(folded)
        if hit is not None or not contained:
            return hit
        rx = self._contained
        found = [m.group(0) for m in rx.finditer(folded)] if rx is not None else []
        return self.by_text[max(found, key=len)] if found else None

    @cached_property
    def _contained(self) -> re.Pattern[str] | None:
        """Every name and synonym of four characters or more, as whole words (built on first use)."""
        return name_pattern(t for t in self.by_text if len(t) >= 4)

    def icd_prefixes(self, term: AeTerm) -> tuple[str, ...]:
        return tuple(p for p, t in self.icd if t is term)
