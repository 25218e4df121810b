"""CTCAE v5.0 adverse-event terms and their MedDRA codes (profiles/safety/ctcae-v5-terms.json).

The term names an AE the same way whatever made it (a graded lab, a coded Condition, an
investigator's AdverseEvent), so the safety table can count subjects per term.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir3t.terminology import Code


@dataclass(frozen=True)
class AeTerm:
    term: str
    code: str
    soc: str
    system: str
    provenance: str

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.term}

    def to_dict(self) -> dict[str, str]:
        return {"term": self.term, "system": self.system, "code": self.code, "soc": self.soc}


def _icd(code: str) -> str:
    return code.replace(".", "").strip().upper()


@dataclass(frozen=True)
class Terms:
    version: str
    system: str
    by_lab: dict[str, AeTerm]
    by_code: dict[str, AeTerm]  # MedDRA code -> term
    icd: tuple[tuple[str, AeTerm], ...]  # (normalised ICD-10 prefix, term), longest prefix first
    icd_systems: frozenset[str]
    death: AeTerm | None

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Terms:
        system = data["system"]
        by_lab: dict[str, AeTerm] = {}
        by_code: dict[str, AeTerm] = {}
        icd: list[tuple[str, AeTerm]] = []
        death = None
        for t in data["terms"]:
            term = AeTerm(t["term"], str(t["code"]), t["soc"], system, t["provenance"])
            by_code[term.code] = term
            if t.get("lab"):
                by_lab[t["lab"]] = term
            icd.extend((_icd(c), term) for c in t.get("icd10", ()))
            if t.get("death"):
                death = term
        icd.sort(key=lambda p: -len(p[0]))
        return cls(data["version"], system, by_lab, by_code, tuple(icd), frozenset(data["icd10_systems"]), death)

    def for_codes(self, codes: Iterable[Code]) -> AeTerm | None:
        """The term a coded event or Condition maps to: its MedDRA code, else an ICD-10 prefix."""
        codes = tuple(codes)
        for system, code in codes:
            if system == self.system and code in self.by_code:
                return self.by_code[code]
        for system, code in codes:
            if system in self.icd_systems:
                c = _icd(code)
                for prefix, term in self.icd:
                    if c.startswith(prefix):
                        return term
        return None
