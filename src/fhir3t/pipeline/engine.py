"""The screening engine: study, terminology, criteria, read plan and record builder, loaded once.

`Engine.screen_raw` is the per-patient function: RawRecords in, ScreeningResults out. Every way
of running fhir3t (files, a FHIR server, Spark partitions, the CDS Hooks service) goes through it.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from fhir3t.criteria import CriteriaSet, Screener, load_criteria
from fhir3t.criteria.model import ScreeningResult
from fhir3t.errors import Problems
from fhir3t.records.build import RecordBuilder
from fhir3t.records.relevance import Relevance
from fhir3t.sources.base import RawRecord
from fhir3t.sources.grouping import SharedIndex
from fhir3t.study import Study, load_study
from fhir3t.terminology import Terminology

log = logging.getLogger(__name__)

#: what a malformed resource can raise inside a rule; it costs that patient, never the run
RECORD_ERRORS = (TypeError, AttributeError, ValueError, KeyError, ArithmeticError, RecursionError, IndexError)


@dataclass
class Engine:
    """Terminology + criteria + screener, loaded once and reused across many patients."""

    study: Study
    tx: Terminology
    criteria: CriteriaSet
    screener: Screener
    relevance: Relevance
    problems: Problems = field(default_factory=Problems)
    #: the ConceptMap files the terminology was loaded with (worker processes load the same)
    concept_maps: tuple[Path, ...] = ()
    #: results of reports the criteria read that were referenced but not in the input, this run
    missing_parts: int = 0

    @classmethod
    def load(cls, concept_maps: Iterable[str | Path] = (), criteria_file: str | Path | None = None,
             problems: Problems | None = None) -> Engine:
        study = load_study()
        tx = Terminology.load([Path(p) for p in concept_maps])
        criteria = load_criteria(tx, Path(criteria_file) if criteria_file else study.criteria_file)
        screener = Screener(criteria, tx)
        problems = problems if problems is not None else Problems()
        return cls(study, tx, criteria, screener, Relevance(screener.plan, tx, problems), problems,
                   tuple(Path(p) for p in concept_maps))

    @classmethod
    def from_parts(cls, tx: Terminology, criteria: CriteriaSet, problems: Problems | None = None) -> Engine:
        """An engine over terminology and criteria loaded elsewhere (tests, a second study)."""
        screener = Screener(criteria, tx)
        problems = problems if problems is not None else Problems()
        return cls(load_study(), tx, criteria, screener, Relevance(screener.plan, tx, problems), problems)

    def builder(self) -> RecordBuilder:
        self.relevance.problems = self.problems
        return RecordBuilder(self.relevance, self.problems)

    @property
    def wants(self) -> Relevance:
        """The read filter sources apply while reading (see records.relevance)."""
        return self.relevance

    def screen_raw(self, raws: Iterable[RawRecord], as_of: date, d1: date | None,
                   shared: SharedIndex | None = None) -> Iterator[ScreeningResult]:
        """Screen each record; a record no rule can digest is reported and skipped, the run goes on."""
        builder = self.builder()
        learned = -1
        for raw in raws:
            if shared is not None and len(shared.by_ref) != learned:
                self.screener.learn_studies(shared.studies())
                learned = len(shared.by_ref)
            try:
                result = self.screener.screen(builder.build(raw), as_of, d1)
            except RECORD_ERRORS as exc:
                log.debug("screening %s failed", raw.key, exc_info=True)
                self.problems.add(raw.source, f"{raw.key}: not screened: a resource has an unexpected structure "
                                              f"({type(exc).__name__}); check it with 'fhir3t validate'")
                continue
            yield result
        self.missing_parts += builder.stats.missing_parts

    def summary_problems(self, problems: Problems, missing_parts: int | None = None) -> None:
        """What a run says once at its end (not per patient, not per process)."""
        n = self.missing_parts if missing_parts is None else missing_parts
        if n:
            problems.add("input", f"{n} result(s) of reports the criteria read were referenced but are not in the "
                                  "input (not read)", skipped=False)
