"""fhir3t: a FHIR R4 adapter for one clinical trial (its study profile names which; see profiles/study.json).

One import for a hospital's script:

    import fhir3t
    problems = fhir3t.Problems()
    for r in fhir3t.screen(["export/"], as_of="2026-11-16", problems=problems):
        print(r.patient, r.status, r.unknown)

`screen` (files), `screen_server` (a FHIR server, with a `FhirClient`), `Engine` (load once, screen many),
`Problems` (skipped input, located), `ScreeningResult` (the JSON contract), `deliver` / `Output` (write
results in any format), `use_profiles` (another study's profiles folder).
"""
from __future__ import annotations

from typing import Any

from fhir3t.version import __version__

__all__ = ["Engine", "Output", "Problems", "ScreeningResult", "__version__", "deliver", "screen", "screen_server",
           "use_profiles"]

_LAZY = {
    "screen": ("fhir3t.api", "screen"),
    "screen_server": ("fhir3t.pipeline", "screen_server"),
    "deliver": ("fhir3t.pipeline", "deliver"),
    "Output": ("fhir3t.pipeline", "Output"),
    "Engine": ("fhir3t.pipeline", "Engine"),
    "Problems": ("fhir3t.errors", "Problems"),
    "ScreeningResult": ("fhir3t.criteria.model", "ScreeningResult"),
    "use_profiles": ("fhir3t.profiles", "use_profiles"),
}


def __getattr__(name: str) -> Any:  # lazy: importing fhir3t must stay cheap for the CLI
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(name)
