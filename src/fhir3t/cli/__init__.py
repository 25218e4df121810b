"""The `fhir3t` command: one sub-module per subcommand, each with `add_parser` and `run`.

Subcommands only parse options, call the library and map errors to exit codes
(see fhir3t.errors); the logic lives in the library so the Python API behaves the same.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from typing import Any

from fhir3t.cli.configure import apply_defaults, apply_server, config_from_argv, mark_required_server
from fhir3t.cli.extras import COMMAND_EXTRAS, missing_extra_message, require
from fhir3t.cli.logs import RunLog, Timer, new_run_id, run_logging
from fhir3t.cli.parser import Parser, unknown_options_message
from fhir3t.config import LOG_FORMATS, LOG_LEVELS, Config
from fhir3t.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_MEANINGS, EXIT_USAGE, Fhir3tError
from fhir3t.version import __version__

#: subcommand name -> module under fhir3t.cli (imported lazily so `--help` stays fast)
COMMANDS: dict[str, str] = {
    "screen": "screen",
    "explain": "explain",
    "codes": "codes",
    "validate": "validate",
    "check-server": "check_server",
}


def _optional_commands() -> dict[str, str]:
    """Subcommands whose module may not exist yet in a partial checkout."""
    out = {}
    for name, mod in {"push": "push", "export": "export", "safety": "safety", "report": "report", "serve": "serve",
                      "watch": "watch", "subject": "subject", "log": "log"}.items():
        if importlib.util.find_spec(f"fhir3t.cli.{mod}") is not None:
            out[name] = mod
    return out


def _general_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-v, --log-format, --config: accepted before the subcommand and after it (`fhir3t screen -v ...`)."""
    sup: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    pre = "" if top else "sub_"
    g = parser.add_argument_group("general options") if not top else parser
    g.add_argument("-v", "--verbose", action="count", dest=f"{pre}verbose", **({"default": 0} if top else sup),
                   help="more log output on stderr (-v info, -vv debug); messages name files, entries and elements; "
                        "values and servers' error texts (which may quote patient data) appear only with -vv")
    g.add_argument("--log-format", choices=LOG_FORMATS, dest=f"{pre}log_format", **sup,
                   help="text (default) or json: one JSON object per stderr line, with a run id, no patient data")
    g.add_argument("--config", metavar="FILE", dest=f"{pre}config", **sup,
                   help="read this config file (default: ./fhir3t.toml, $XDG_CONFIG_HOME/fhir3t/config.toml, "
                        "/etc/fhir3t/config.toml, the first found); command-line options win")
    g.add_argument("--no-config", action="store_true", dest=f"{pre}no_config", **sup,
                   help="read no config file")
    g.add_argument("--profiles", metavar="DIR", dest=f"{pre}profiles", **sup,
                   help="another study's profiles folder (study.json, criteria/, valuesets/, ...; what it lacks comes "
                        "from fhir3t's own); default: $FHIR3T_PROFILES, else the bundled study")


def build_parser(config: Config | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="fhir3t",
        description=(
            "FHIR R4 adapter for one clinical trial: screen patients against the trial's criteria, emit "
            "ResearchSubjects and AdverseEvents, validate Bundles, talk to a FHIR server."
        ),
        epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_MEANINGS.items()) + ".",
    )
    parser.add_argument("--version", action="version", version=f"fhir3t {__version__}")
    _general_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, mod in {**COMMANDS, **_optional_commands()}.items():
        module = importlib.import_module(f"fhir3t.cli.{mod}")
        module.add_parser(sub)
    commands: dict[str, argparse.ArgumentParser] = dict(sub.choices)
    for p in commands.values():
        _general_options(p, top=False)
    mark_required_server(commands)
    if config is not None:
        apply_defaults(config, commands)
    parser.set_defaults(_commands=commands)
    return parser


def _merge_general(args: argparse.Namespace, config: Config) -> tuple[int, str]:
    verbose = args.verbose + getattr(args, "sub_verbose", 0)
    if not verbose and config.log_level:
        verbose = LOG_LEVELS.index(config.log_level)
    fmt = getattr(args, "sub_log_format", None) or args.log_format or config.log_format or "text"
    return verbose, fmt


def _command_of(argv: Sequence[str]) -> str | None:
    names = {**COMMANDS, **_optional_commands()}
    return next((t for t in argv if t in names), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    try:
        config = config_from_argv(argv)
    except Fhir3tError as exc:
        print(f"fhir3t{f' {command}' if command else ''}: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        parser = build_parser(config)
    except Fhir3tError as exc:  # a config key that no option takes
        print(f"fhir3t{f' {command}' if command else ''}: {exc}", file=sys.stderr)
        return exc.exit_code
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = args._commands.get(args.command) if args.command else None
        target = sub or parser
        target.error(unknown_options_message(extras, target))
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    verbose, fmt = _merge_general(args, config)
    args.verbose = verbose
    args.run_id = new_run_id()
    timer = Timer()
    with run_logging(verbose, fmt, args.command, args.run_id) as log:
        log.event(f"fhir3t {__version__} {args.command}" + (f" (config {config.path})" if config.path else ""),
                  event="run-start", version=__version__, config=str(config.path) if config.path else None)
        code = _run(args, config, log)
        log.end(code, timer.seconds, **getattr(args, "summary", {}))
    return code


def _run(args: argparse.Namespace, config: Config, log: RunLog) -> int:
    try:
        for extra in COMMAND_EXTRAS.get(args.command, ()):
            require(extra)
        # the study's profiles folder travels with the options to wherever a Definition is loaded
        args.profiles = getattr(args, "sub_profiles", None) or args.profiles
        args._config = config  # for subcommands that read a table of their own ([serve])
        apply_server(config, args)
        return int(args.run(args))
    except Fhir3tError as exc:
        log.failed(f"fhir3t {args.command}: {exc}", exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fhir3t: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except ModuleNotFoundError as exc:  # an optional dependency missing deeper down: say which extra, not "a bug"
        sentence = missing_extra_message(exc.name)
        if sentence is None:
            return _internal_error(args, log)
        log.failed(f"fhir3t {args.command}: {sentence}", EXIT_USAGE)
        return EXIT_USAGE
    except Exception:  # a bug: say so plainly, keep the traceback for -vv
        return _internal_error(args, log)


def _internal_error(args: argparse.Namespace, log: RunLog) -> int:
    logging.getLogger("fhir3t").debug("internal error", exc_info=True)
    log.failed(f"fhir3t {args.command}: internal error (a bug in fhir3t); rerun with -vv for details", EXIT_INTERNAL,
               event="internal-error")
    if args.verbose >= 2:
        raise
    return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
