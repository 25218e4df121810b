"""Build FHIR resources and transaction Bundles from results (no network here; see sinks)."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fhir3t.emit.bundle import TransactionBuilder
from fhir3t.emit.screening import research_study, research_subject, screening_bundle
from fhir3t.ids import stable_id, urn

if TYPE_CHECKING:
    from fhir3t.api import Engine
    from fhir3t.criteria.model import ScreeningResult

__all__ = ["TransactionBuilder", "research_study", "research_subject", "screening_bundle", "stable_id", "urn",
           "write_json", "write_screening_bundle"]


def write_json(obj: object, path: str | Path) -> None:
    """Write JSON atomically (never a half-written Bundle)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")
    tmp.replace(target)


def write_screening_bundle(results: Sequence[ScreeningResult], engine: Engine, path: str | Path) -> dict:
    bundle, notes = screening_bundle(results, engine.criteria)
    for n in notes:
        print(f"fhir3t: note: {n}", file=sys.stderr)
    write_json(bundle, path)
    return bundle
