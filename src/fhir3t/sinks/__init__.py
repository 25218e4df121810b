"""Sinks: where emitted Bundles go (a file, a FHIR server), behind one `Sink` interface."""
from fhir3t.sinks.base import FileSink, Sink, atomic_text, write_json
from fhir3t.sinks.fhir_server import EntryOutcome, FhirServerSink, PushReport

__all__ = ["EntryOutcome", "FhirServerSink", "FileSink", "PushReport", "Sink", "atomic_text", "write_json"]
