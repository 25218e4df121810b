"""fhir3t: FHIR R4 adapter for trial NCT06438679 (3T therapy in MDA5-positive dermatomyositis)."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "screen"]


def __getattr__(name: str):  # lazy: importing fhir3t must stay cheap for the CLI
    if name == "screen":
        from fhir3t.api import screen

        return screen
    raise AttributeError(name)
