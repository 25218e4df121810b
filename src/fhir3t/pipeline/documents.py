"""Screening one patient from documents held in memory (a CDS Hooks call's prefetch and fetches)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from fhir3t.criteria.model import ScreeningResult
from fhir3t.errors import Problems
from fhir3t.pipeline.engine import Engine
from fhir3t.sources.grouping import SharedIndex, group_documents
from fhir3t.study import StudyMatcher


def screen_documents(engine: Engine, documents: Iterable[tuple[str, object]], patient: str, *, as_of: date,
                     d1: date | None = None, problems: Problems | None = None) -> ScreeningResult | None:
    """Screen `patient` ("Patient/<id>") from parsed Bundles / resources, grouped exactly as files are.

    Only that patient is screened (picked by reference, never by an identifier another patient could
    share); None when the documents hold nothing of theirs. Which ResearchStudy resources are this
    study is learnt afresh from these documents, so one call's data never colours the next one's.
    An Engine is not thread-safe: callers screening concurrently hold a lock around this.
    """
    problems = problems if problems is not None else Problems()
    engine.problems = problems
    engine.relevance.problems = problems
    engine.screener.names = False
    engine.screener.studies = StudyMatcher(engine.criteria.study_system, engine.criteria.study_value)
    engine.missing_parts = 0
    shared = SharedIndex()
    raw = next((r for r in group_documents(documents, problems, shared, engine.wants) if r.key == patient), None)
    if raw is None:
        return None
    return next(iter(engine.screen_raw([raw], as_of, d1 or as_of, shared)), None)


__all__ = ["screen_documents"]
