"""One patient's resources, cleaned and indexed for the rules; what to keep is declared by the rules.

plan (Read, ReadPlan) -> relevance (the one keep/drop decision) -> build (RawRecord -> PatientRecord).
"""
from __future__ import annotations

from fhir3t.records.build import RecordBuilder, first_date, never_counts, span_of, status_code
from fhir3t.records.concepts import MED_TYPES, describe_concept, main_concept, medication_concept
from fhir3t.records.model import PatientRecord, Res
from fhir3t.records.plan import Read, ReadPlan, read
from fhir3t.records.relevance import Relevance

__all__ = [
           "MED_TYPES",
           "PatientRecord",
           "Read",
           "ReadPlan",
           "RecordBuilder",
           "Relevance",
           "Res",
           "describe_concept",
           "first_date",
           "main_concept",
           "medication_concept",
           "never_counts",
           "read",
           "span_of",
           "status_code",
]
