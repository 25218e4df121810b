"""The one pipeline the CLI, the Python API and the services call.

sources -> records -> criteria -> emit -> sinks, wired here and nowhere else: `screen_files`,
`screen_server`, `safety_*`, `emit_*`, `push_*` take plain arguments and return results (and
problems in a `Problems`), so a hospital script does with one import what a CLI subcommand does.
"""
from __future__ import annotations

from fhir3t.pipeline.engine import Engine
from fhir3t.pipeline.screening import Output, ScreenRun, deliver, screen_files, screen_server
from fhir3t.sources.files import with_discovered_maps

__all__ = ["Engine", "Output", "ScreenRun", "deliver", "screen_files", "screen_server", "with_discovered_maps"]
