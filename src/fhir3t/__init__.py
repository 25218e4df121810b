"""fhir3t: a FHIR R4 adapter for one clinical trial (its study profile names which; see profiles/study.json).

One import for a hospital's script:

    import fhir3t
    problems = fhir3t.Problems()
    for r in fhir3t.screen(["export/"], as_of="2026-11-16", problems=problems):
        print(r.patient, r.status, r.unknown)

`screen` (files, with the CLI's as-of policy), `Definition` (a study, loaded once, shared), `Run` (one
execution: dates, problems), `screen_files` / `screen_server` (tasks of the form task(definition, run, ...)),
`Problems` (skipped input, located), `ScreeningResult` (the JSON contract), `deliver` / `Output` (write
results in any format). Another study: `Definition.load("path/to/profiles")`.
"""
from __future__ import annotations

from typing import Any

from fhir3t.version import __version__

__all__ = ["Definition", "Output", "Problems", "Run", "ScreeningResult", "__version__", "deliver", "screen",
           "screen_files", "screen_server"]

_LAZY = {
    "screen": ("fhir3t.api", "screen"),
    "screen_server": ("fhir3t.pipeline", "screen_server"),
    "deliver": ("fhir3t.pipeline", "deliver"),
    "Output": ("fhir3t.pipeline", "Output"),
    "Definition": ("fhir3t.pipeline", "Definition"),
    "Run": ("fhir3t.pipeline", "Run"),
    "screen_files": ("fhir3t.pipeline", "screen_files"),
    "Problems": ("fhir3t.errors", "Problems"),
    "ScreeningResult": ("fhir3t.criteria.model", "ScreeningResult"),
}


def __getattr__(name: str) -> Any:  # lazy: importing fhir3t must stay cheap for the CLI
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(name)
