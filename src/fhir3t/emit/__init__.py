"""Build FHIR resources and transaction Bundles from results (no I/O here; see sinks)."""
from __future__ import annotations

from fhir3t.emit.bundle import TransactionBuilder
from fhir3t.emit.screening import research_study, research_subject, screening_bundle
from fhir3t.ids import stable_id, urn

__all__ = ["TransactionBuilder", "research_study", "research_subject", "screening_bundle", "stable_id", "urn"]
