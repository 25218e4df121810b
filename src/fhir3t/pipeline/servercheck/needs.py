"""What the study asks of a server, read from the definition: the types the criteria read (and which
criteria read each), how candidates are found, and the study's identifier."""
from __future__ import annotations

from dataclasses import dataclass

from fhir3t.messages import Msg, table
from fhir3t.pipeline.definition import Definition
from fhir3t.r4facts import r4_facts
from fhir3t.terminology import Terminology, ValueSet

W = table("check.needs", {
    "unsafe": "{criteria} would take it as none recorded, so a patient could come out eligible wrongly",
    "unknown": "{criteria} would stay unknown for everyone",
    "references": "fhir3t reads it through references",
})


@dataclass(frozen=True)
class Needs:
    #: resource types some criterion reads, Patient excluded (what a pull asks the server for)
    types: tuple[str, ...]
    #: type -> the criteria that read it
    readers: dict[str, tuple[str, ...]]
    #: type -> the criteria that take "nothing found" as "none recorded" (a left-out type is unsafe for them)
    complete: dict[str, tuple[str, ...]]
    #: types read through references (Medication, ResearchStudy), fetched by id, not per patient
    shared: tuple[str, ...]
    anchor_type: str
    anchor_valueset: ValueSet
    tx: Terminology
    study_system: str
    study_value: str
    #: types read only for what they name (ReadPlan.mention_only: a visit's reasonCode): fetched when the server has
    #: them, and a server without them is no gap to warn of (no criterion reads them for itself)
    optional: tuple[str, ...] = ()

    @property
    def searched(self) -> tuple[str, ...]:
        """The types fetched per patient."""
        return tuple(t for t in self.types if t not in self.shared)

    def consequence(self, rtype: str) -> Msg:
        """What happens to screening when the server never returns `rtype` (for messages)."""
        unsafe = self.complete.get(rtype, ())
        if unsafe:
            return W["unsafe"](criteria=", ".join(unsafe))
        readers = self.readers.get(rtype, ())
        if readers:
            return W["unknown"](criteria=", ".join(readers))
        return W["references"]()


def needs_of(definition: Definition) -> Needs:
    readers: dict[str, list[str]] = {}
    complete: dict[str, list[str]] = {}
    for c in definition.criteria.criteria:
        for r in c.rule.reads():
            if r.type == "Patient":
                continue
            if c.id not in readers.setdefault(r.type, []):
                readers[r.type].append(c.id)
            if r.complete and c.id not in complete.setdefault(r.type, []):
                complete[r.type].append(c.id)
    shared = tuple(sorted(r4_facts().shared_types))
    study = definition.study
    return Needs(types=tuple(sorted(definition.screener.types)), readers={t: tuple(v) for t, v in readers.items()},
                 complete={t: tuple(v) for t, v in complete.items() if v}, shared=shared,
                 anchor_type=study.candidate_type, anchor_valueset=definition.tx.valueset(study.candidate_valueset),
                 tx=definition.tx, study_system=definition.criteria.study_system, study_value=definition.criteria.study_value,
                 optional=tuple(sorted(definition.plan.mention_only)))
