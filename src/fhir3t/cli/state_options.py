"""Where the enrolment workflow's records are, for `subject`, `log`, `screen --state` and `push --state`: the
hospital's FHIR server (--server URL, or [server] url), or the SQLite state file (--state FILE; default
$XDG_STATE_HOME/fhir3t/<study>.state.sqlite, or [enrolment] state in the config file).

`[enrolment]` in the config file:

    [enrolment]
    state = "/srv/trial/3t.state.sqlite"   # the state file when no server is given (shared by the team)
    subject_number = "S-{n:03d}"            # study subject numbers (default: profiles/study.json)
    consent_form = "2.1"                   # the consent form version patients sign now
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fhir3t.cli.words import say
from fhir3t.config import Config, check_table
from fhir3t.messages import Message, later, table

if TYPE_CHECKING:
    from fhir3t.pipeline import Definition
    from fhir3t.pipeline.enrolment import Settings
    from fhir3t.state import Store

USING_DEFAULT = Message("state.using-default", "the state file is {path} (give --state FILE or --server URL for "
                                               "another)")
HELP = table("help.state", {
    "file": "the SQLite state file holding the team's records (default: [enrolment] state, else "
            "$XDG_STATE_HOME/fhir3t/<study>.state.sqlite); instead of --server",
    "keep": "also keep this run in the state file (the results, and the ResearchSubjects the push policy allows: a "
            "team status is never overwritten); --state alone: the default file",
})


def add_state_option(p: argparse.ArgumentParser, *, optional_value: bool = False) -> None:
    if optional_value:
        p.add_argument("--state", metavar="FILE", nargs="?", const="", default=None, help=later(HELP["keep"]()))
    else:
        p.add_argument("--state", metavar="FILE", help=later(HELP["file"]()))


def enrolment_table(args: argparse.Namespace) -> dict:
    cfg: Config = getattr(args, "_config", None) or Config()
    return check_table("enrolment", cfg.section("enrolment"), cfg.where("enrolment"))


def settings(args: argparse.Namespace, definition: Definition) -> Settings:
    from fhir3t.pipeline.enrolment import Settings

    enrol = enrolment_table(args)
    return Settings.of(definition, enrol.get("subject_number"), getattr(args, "form", None) or enrol.get("consent_form"))


def state_path(args: argparse.Namespace, definition: Definition, command: str, folder: Path | None = None) -> Path:
    """--state FILE, else [enrolment] state, else the default file in `folder` (the service's state folder) or
    $XDG_STATE_HOME/fhir3t (said on stderr)."""
    from fhir3t.state import default_state_file

    given = getattr(args, "state", None)
    if given:
        return Path(given).expanduser()
    cfg: Config = getattr(args, "_config", None) or Config()
    enrol = enrolment_table(args)
    if "state" in enrol:
        return cfg.resolve(enrol["state"])
    path = folder / default_state_file(definition.study.id).name if folder is not None else \
        default_state_file(definition.study.id)
    say(args, USING_DEFAULT(path=str(path)), command=command)
    return path


def open_store(args: argparse.Namespace, definition: Definition, command: str, folder: Path | None = None) -> Store:
    """The server (--server, or [server] url when no --state is given) or the state file (default in `folder`)."""
    from fhir3t.state import ServerState, StateFile

    if getattr(args, "server", None) and getattr(args, "state", None) is None:
        from fhir3t.cli.server_options import make_client

        return ServerState(make_client(args), (definition.study.system, definition.study.value))
    return StateFile(state_path(args, definition, command, folder))


__all__ = ["add_state_option", "enrolment_table", "open_store", "settings", "state_path"]
