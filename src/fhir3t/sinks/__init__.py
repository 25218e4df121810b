"""Sinks write results somewhere else than a file: a FHIR server (see fhir_server)."""
from fhir3t.sinks.fhir_server import EntryOutcome, FhirServerSink, PushReport

__all__ = ["EntryOutcome", "FhirServerSink", "PushReport"]
