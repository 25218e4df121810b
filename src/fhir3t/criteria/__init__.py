"""The trial's criteria as data, evaluated per patient with three-valued logic (pure: no I/O).

Rule kinds live one per module in `criteria/kinds/`; `load_criteria` builds the trees from the
criteria file, `check` looks over the definition, `Screener` evaluates a PatientRecord.
"""
from __future__ import annotations

from fhir3t.criteria.load import CriteriaSet, Criterion, load_criteria
from fhir3t.criteria.model import CriterionResult, Outcome, ScreeningResult, status_of
from fhir3t.criteria.screener import Screener

__all__ = [
           "CriteriaSet",
           "Criterion",
           "CriterionResult",
           "Outcome",
           "Screener",
           "ScreeningResult",
           "load_criteria",
           "status_of",
]
