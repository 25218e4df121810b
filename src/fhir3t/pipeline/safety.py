"""Safety tasks: the enrolled subjects' adverse events and survival data, `task(definition, run, ...)`.

The study's safety rules are part of its Definition (`definition.safety`, loaded once, shared); each run
analyses with a `SafetyEngine` of its own (its problems, the ResearchStudy resources it learnt).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING

from fhir3t.pipeline.base import FileInputs
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.run import Run
from fhir3t.safety import SafetyEngine, SubjectOutcome
from fhir3t.sources.grouping import GroupingSource

if TYPE_CHECKING:
    from fhir3t.safety.server import ServerPull
    from fhir3t.transport.http import FhirClient


def analyse_files(definition: Definition, run: Run, inputs: FileInputs,
                  d1: Mapping[str, date] | None = None) -> list[SubjectOutcome]:
    """Every subject's AEs and survival data in Bundle / NDJSON / XML files (D1 from their ResearchSubject,
    or `d1` by patient)."""
    engine = SafetyEngine.for_run(definition.safety, run.problems)
    # No read filter: every dated resource counts for 'last known alive' (the censoring day).
    source = GroupingSource(inputs.paths, run.problems, limits=inputs.limits, documents=inputs.documents)
    return list(engine.analyse_raw(source, run.as_of, d1, source.shared))


def analyse_server(definition: Definition, run: Run, client: FhirClient, d1: Mapping[str, date] | None = None,
                   patients: Sequence[str] = ()) -> tuple[list[SubjectOutcome], ServerPull]:
    """The study's subjects on a FHIR server (or the given patients), analysed with their recorded AEs."""
    from fhir3t.safety.server import server_outcomes

    engine = SafetyEngine.for_run(definition.safety, run.problems)
    return server_outcomes(client, engine, run.as_of, dict(d1 or {}), run.problems, patients)


__all__ = ["analyse_files", "analyse_server"]
