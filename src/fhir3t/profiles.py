"""Where fhir3t's reviewed data lives (study, criteria, value sets, profiles, FHIR facts).

A study's own folder (`--profiles DIR`, `FHIR3T_PROFILES`) comes first; what it does not hold
(FHIR facts, code systems, fhir3t's own StructureDefinitions) comes from the built-in profiles:
the checkout's `profiles/` (editable install) or the copy under `<prefix>/share/fhir3t/profiles`.

The folder is a value (`Profiles`), handed to whatever loads from it: nothing process-wide is
switched, so two studies can be loaded side by side in one process (tests, a service).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fhir3t.errors import ConfigError
from fhir3t.messages import table

#: a profiles folder that cannot be used (the CLI's error line)
E = table("profiles", {
    "no-builtin": "cannot find fhir3t's profiles/ folder (criteria and value sets); set FHIR3T_PROFILES to its path",
    "not-profiles": "{path}: not a profiles folder (no study.json in it)",
})


@cache
def builtin_profiles() -> Path:
    candidates = [
        Path(__file__).resolve().parents[2] / "profiles",
        Path(sys.prefix) / "share" / "fhir3t" / "profiles",
    ]
    for c in candidates:
        if (c / "criteria").is_dir():
            return c
    raise ConfigError(E["no-builtin"]())


@dataclass(frozen=True)
class Profiles:
    """A study's profiles folder, falling back to the built-in one for what it does not hold."""

    folder: Path

    @classmethod
    def at(cls, folder: str | Path | None = None) -> Profiles:
        """The folder given, else $FHIR3T_PROFILES, else the built-in study."""
        if folder is None:
            env = os.environ.get("FHIR3T_PROFILES")
            if not env:
                return cls(builtin_profiles())
            folder = env
        path = Path(folder)
        if not (path / "study.json").is_file():
            raise ConfigError(E["not-profiles"](path=str(path)))
        return cls(path)

    @property
    def is_builtin(self) -> bool:
        return self.folder == builtin_profiles()

    def path(self, *parts: str) -> Path:
        """A profiles file: the study's own if it has one, else the built-in one."""
        own = self.folder.joinpath(*parts)
        if own.exists():
            return own
        return builtin_profiles().joinpath(*parts)


def profile_path(*parts: str) -> Path:
    """A file of the default profiles ($FHIR3T_PROFILES, else built-in): fhir3t's own FHIR facts,
    code systems and schemas, which are not a study's to change."""
    return Profiles.at().path(*parts)
