"""Safety: treatment-emergent adverse events after D1 (spec: shared/spec/adverse-events.md).

    from fhir3t.safety import analyse
    for s in analyse(["samples/safety/"], as_of=date(2026, 11, 16)):
        for f in s.findings:
            print(f.patient, f.term, f.grade, f.outcome, f.treatment_related)

Pure core (grading, episodes, causality, subjects) with the file reading at the edge (`analyse`);
FHIR AdverseEvents are built by fhir3t.emit.adverse_event from the `Finding`s.
"""
from __future__ import annotations

from fhir3t.safety.engine import SafetyDefinition, SafetyEngine, SubjectOutcome, analyse
from fhir3t.safety.findings import Finding, Suspect
from fhir3t.safety.subjects import Subject, parse_d1_options, read_d1_csv

__all__ = ["Finding", "SafetyDefinition", "SafetyEngine", "Subject", "SubjectOutcome", "Suspect", "analyse", "parse_d1_options",
           "read_d1_csv"]
