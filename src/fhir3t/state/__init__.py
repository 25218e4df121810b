"""Where the study team's steps are kept: one interface (base.Store) over the hospital's FHIR server
(server.ServerState) and an embedded SQLite state file (sqlite.StateFile) holding the same FHIR resources."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fhir3t.state.base import Entry, Store, Versioned, Written
from fhir3t.state.server import ServerState
from fhir3t.state.sqlite import StateFile


def default_state_file(study_id: str, env: Mapping[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/fhir3t/<study>.state.sqlite (default ~/.local/state/fhir3t/...): the coordinator's own
    state when no --state FILE and no server are given."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(base) / "fhir3t" / f"{study_id}.state.sqlite"


__all__ = ["Entry", "ServerState", "StateFile", "Store", "Versioned", "Written", "default_state_file"]
