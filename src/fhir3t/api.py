"""The Python API: what `fhir3t screen` does, for a hospital's own scripts.

    import fhir3t
    for result in fhir3t.screen(["samples/"], as_of="2026-11-16"):
        print(result.patient, result.status, result.unknown)
"""
from __future__ import annotations

from fhir3t.pipeline import Engine, screen_files, with_discovered_maps

screen = screen_files

__all__ = ["Engine", "screen", "with_discovered_maps"]
