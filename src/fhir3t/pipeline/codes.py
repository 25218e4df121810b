"""`fhir3t codes`: the codes an input set uses, and what fhir3t makes of each, for writing a ConceptMap.

Per resource type and coding (system, code): how many resources carry it, its display, which of the
criteria's value sets it is in, and why it matters when it is in none: a code system fhir3t does not
know (map it), a display that names a criterion's concept (a suspect: map or code it), or nothing (most
of a record). Counts and terminology only: no patient identifiers, no free text (a CodeableConcept's
`text` can be anything a clinician typed), no values.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fhir3t.errors import Problems
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.mapmatch import named_like
from fhir3t.records.concepts import main_concept
from fhir3t.sources.files import Limits, iter_resources
from fhir3t.sources.grouping import SharedIndex

MATCHED, UNKNOWN_SYSTEM, SUSPECT, INVALID, OTHER = "matched", "unknown system", "named like a criterion", "malformed", "-"
ORDER = {MATCHED: 0, SUSPECT: 1, UNKNOWN_SYSTEM: 2, INVALID: 3, OTHER: 4}


@dataclass
class CodeRow:
    type: str
    system: str
    code: str
    count: int = 0
    displays: Counter[str] = field(default_factory=Counter)
    valuesets: tuple[str, ...] = ()
    verdict: str = OTHER
    named: tuple[str, ...] = ()  # value sets whose names the display uses
    system_name: str = ""  # 'LOINC', 'ICD-10 (WHO)', or the URI of a system fhir3t does not know

    @property
    def display(self) -> str:
        return self.displays.most_common(1)[0][0] if self.displays else ""

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "system": self.system, "code": self.code, "count": self.count,
                "display": self.display, "verdict": self.verdict, "valuesets": list(self.valuesets),
                "named_like": list(self.named)}


def _codings(concept: object) -> Iterator[dict]:
    if not isinstance(concept, dict):
        return
    codings = concept.get("coding")
    for c in codings if isinstance(codings, list) else ():
        if isinstance(c, dict) and isinstance(c.get("code"), str):
            yield c


def inventory(paths: Iterable[str | Path], definition: Definition, problems: Problems, limits: Limits | None = None,
              ) -> list[CodeRow]:
    """The codes of the types the criteria read, classified (see the module doc)."""
    types = definition.relevance.types - {"Patient"}
    rows: dict[tuple[str, str, str], CodeRow] = {}
    shared = SharedIndex()
    pending: list[tuple[str, dict]] = []
    for res, _where in iter_resources(paths, problems, limits or Limits()):
        rtype = res.get("resourceType")
        if rtype in ("Medication", "ResearchStudy"):
            shared.add(res)
        if not isinstance(rtype, str) or rtype not in types:
            continue
        pending.append((rtype, res)) if "medicationReference" in res else _count(rows, rtype, res, shared.get)
    for rtype, res in pending:  # drug records pointing at Medications read anywhere in the input
        _count(rows, rtype, res, shared.get)
    for row in rows.values():
        _classify(row, definition)
    return sorted(rows.values(), key=lambda r: (ORDER[r.verdict], r.type, -r.count, r.system, r.code))


def _count(rows: dict[tuple[str, str, str], CodeRow], rtype: str, res: dict, resolve) -> None:
    concepts = [main_concept(rtype, res, resolve)]
    if rtype == "Observation" and isinstance(res.get("component"), list):
        concepts += [c.get("code") for c in res["component"] if isinstance(c, dict)]
    for concept in concepts:
        for c in _codings(concept):
            system: str = c["system"] if isinstance(c.get("system"), str) else ""
            key = (rtype, system, c["code"])
            row = rows.get(key)
            if row is None:
                row = rows[key] = CodeRow(rtype, system, c["code"])
            row.count += 1
            if isinstance(c.get("display"), str) and c["display"].strip():
                row.displays[c["display"].strip()[:80]] += 1


def _classify(row: CodeRow, definition: Definition) -> None:
    tx, plan = definition.tx, definition.plan
    codes = tx.codes({"coding": [{"system": row.system, "code": row.code}]})
    valid = [c for c in codes if tx.systems.valid(*c)]
    sets = plan.valuesets.get(row.type, ())
    row.valuesets = tuple(vs.id for vs in sets if any(c in vs for c in valid))
    row.named = named_like(row.displays, plan.valuesets.get(row.type, ())) if row.displays else ()
    system = tx.systems.system(row.system) if row.system else ""
    row.system_name = tx.systems.name(system) if system else ""
    if row.valuesets:
        row.verdict = MATCHED
    elif codes and not valid:
        row.verdict = INVALID
    elif not system or (not tx.systems.known(system) and system not in tx.maps.source_systems):
        row.verdict = UNKNOWN_SYSTEM
    elif row.named:
        row.verdict = SUSPECT
    else:
        row.verdict = OTHER


__all__ = ["CodeRow", "inventory"]
