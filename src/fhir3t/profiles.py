"""Where fhir3t's reviewed data lives (criteria, value sets, schemas, questionnaires).

Looked up in order: $FHIR3T_PROFILES; the checkout's `profiles/` (editable install);
the copy installed under `<prefix>/share/fhir3t/profiles` (wheel install).
"""
from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from fhir3t.errors import ConfigError


@cache
def profiles_dir() -> Path:
    env = os.environ.get("FHIR3T_PROFILES")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parents[2] / "profiles",
        Path(sys.prefix) / "share" / "fhir3t" / "profiles",
    ]
    for c in candidates:
        if (c / "criteria").is_dir():
            return c
    raise ConfigError(
        "cannot find fhir3t's profiles/ folder (criteria and value sets); "
        "set FHIR3T_PROFILES to its path"
    )
