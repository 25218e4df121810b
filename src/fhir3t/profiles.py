"""Where fhir3t's reviewed data lives (study, criteria, value sets, profiles, FHIR facts).

A study's own folder (`--profiles DIR`, `FHIR3T_PROFILES`) comes first; what it does not hold
(FHIR facts, code systems, fhir3t's own StructureDefinitions) comes from the built-in profiles:
the checkout's `profiles/` (editable install) or the copy under `<prefix>/share/fhir3t/profiles`.
"""
from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from fhir3t.errors import ConfigError

_selected: Path | None = None


def use_profiles(path: str | Path | None) -> None:
    """Select a study's profiles folder for this process (None: back to the default)."""
    global _selected
    if path is not None and not (Path(path) / "study.json").is_file():
        raise ConfigError(f"{path}: not a profiles folder (no study.json in it)")
    _selected = Path(path) if path is not None else None
    _clear_caches()


def selected_profiles() -> str | None:
    """The profiles folder chosen for this process (to hand to worker processes), if any."""
    if _selected is not None:
        return str(_selected)
    return os.environ.get("FHIR3T_PROFILES") or None


#: caches of data read from the profiles folder, cleared when another folder is selected
_CACHES: list[Any] = []

F = TypeVar("F")


def on_profiles_change(cached: F) -> F:
    """Register a functools.cache'd loader of profiles data (used as a decorator)."""
    _CACHES.append(cached)
    return cached


def _clear_caches() -> None:
    builtin_profiles.cache_clear()
    for c in _CACHES:
        c.cache_clear()


@cache
def builtin_profiles() -> Path:
    candidates = [
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


def profiles_dir() -> Path:
    """The study's profiles folder."""
    if _selected is not None:
        return _selected
    env = os.environ.get("FHIR3T_PROFILES")
    if env:
        return Path(env)
    return builtin_profiles()


def profile_path(*parts: str) -> Path:
    """A profiles file: the study's own if it has one, else the built-in one."""
    own = profiles_dir().joinpath(*parts)
    if own.exists():
        return own
    return builtin_profiles().joinpath(*parts)
