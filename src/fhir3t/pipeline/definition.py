"""The study definition: loaded once, never changed after, shared by every run and thread.

`Definition` holds what a study is — its identity (study.json), terminology (value sets, concept
maps), criteria (rule trees), the read plan derived from them, and the read filter's verdict caches
(which depend only on a resource's content) — the pattern of cumulus-etl's `JobConfig`. Everything
that belongs to one execution (dates, problems, which ResearchStudy resources are this study, the
statistics) is in a `Run` (run.py), so the CDS service screens concurrent calls with one Definition
and no lock, and a watcher shares the service's.

A run that must change what the definition knows (a terminology server adding SNOMED CT descendants)
gets its own copy (`with_terminology_server`, fhirpy's `clone()` idea): the shared one is never
rewritten.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from fhir3t.criteria import CriteriaSet, Screener, load_criteria
from fhir3t.errors import Problems
from fhir3t.pipeline.terminology import connect_terminology
from fhir3t.profiles import Profiles
from fhir3t.records.plan import ReadPlan
from fhir3t.records.relevance import Relevance
from fhir3t.safety import SafetyDefinition
from fhir3t.study import Study, load_study
from fhir3t.terminology import Terminology

if TYPE_CHECKING:
    from fhir3t.transport.terminology import TerminologyServer


@dataclass(frozen=True, eq=False)
class Definition:
    """A study's definition (see the module doc). Build it with `Definition.load`."""

    profiles: Profiles
    study: Study
    tx: Terminology
    criteria: CriteriaSet
    screener: Screener
    relevance: Relevance
    #: the ConceptMap files the terminology was loaded with (worker processes load the same)
    concept_maps: tuple[Path, ...] = ()
    #: the criteria file as given (None: the study profile's)
    criteria_file: Path | None = None

    @classmethod
    def load(cls, profiles: str | Path | Profiles | None = None, concept_maps: Iterable[str | Path] = (),
             criteria_file: str | Path | None = None) -> Definition:
        """The study of the profiles folder (default: $FHIR3T_PROFILES, else the bundled study), with
        these ConceptMaps and (optionally) another criteria file."""
        prof = profiles if isinstance(profiles, Profiles) else Profiles.at(profiles)
        study = load_study(prof)
        maps = tuple(Path(p) for p in concept_maps)
        tx = Terminology.load(maps, prof)
        chosen = Path(criteria_file) if criteria_file else None
        criteria = load_criteria(tx, chosen or study.criteria_file, study=study, profiles=prof)
        return cls.from_parts(tx, criteria, study=study, profiles=prof, concept_maps=maps, criteria_file=chosen)

    @classmethod
    def from_parts(cls, tx: Terminology, criteria: CriteriaSet, *, study: Study | None = None,
                   profiles: Profiles | None = None, concept_maps: tuple[Path, ...] = (),
                   criteria_file: Path | None = None) -> Definition:
        """A definition over terminology and criteria loaded elsewhere (tests, a second study)."""
        prof = profiles or Profiles.at()
        screener = Screener(criteria, tx)
        return cls(prof, study or load_study(prof), tx, criteria, screener, Relevance(screener.plan, tx),
                   concept_maps, criteria_file)

    @property
    def plan(self) -> ReadPlan:
        return self.screener.plan

    @cached_property
    def safety(self) -> SafetyDefinition:
        """The study's safety rules (profiles/safety/), loaded on first use with this terminology."""
        return SafetyDefinition.load(tx=self.tx, profiles=self.profiles)

    @property
    def label(self) -> str:
        """`<criteria id> <version>`, as results and reports name the rules they came from."""
        return f"{self.criteria.id} {self.criteria.version}"

    def with_terminology_server(self, server: TerminologyServer, problems: Problems) -> Definition:
        """A copy of this definition (loaded afresh) whose value sets a terminology server extends; this
        one is left as it was."""
        fresh = Definition.load(self.profiles, self.concept_maps, self.criteria_file)
        connect_terminology(fresh.tx, fresh.plan, server, problems)
        return fresh


__all__ = ["Definition"]
