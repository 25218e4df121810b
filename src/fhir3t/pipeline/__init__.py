"""The one pipeline the CLI, the Python API and the services call.

Every workflow is a task of the form `task(definition, run, ...)`: a `Definition` (the study, loaded
once, immutable, shared) and a `Run` (one execution: dates, problems, what it learnt). sources ->
records -> criteria -> emit -> sinks are wired here and nowhere else, so a hospital script does with
one import what a CLI subcommand does.
"""
from __future__ import annotations

from fhir3t.pipeline.base import FileInputs, ServerQuery, open_source, screen_records
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.run import Run
from fhir3t.pipeline.screening import Output, ScreenRun, deliver, screen_documents, screen_files, screen_server
from fhir3t.sources.files import with_discovered_maps

__all__ = ["Definition", "FileInputs", "Output", "Run", "ScreenRun", "ServerQuery", "deliver", "open_source",
           "screen_documents", "screen_files", "screen_records", "screen_server", "with_discovered_maps"]
