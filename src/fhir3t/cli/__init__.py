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
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from fhir3t.cli.configure import apply_defaults, apply_server, config_from_argv, mark_required_server
from fhir3t.cli.extras import COMMAND_EXTRAS, missing_extra_message, require
from fhir3t.cli.logs import RunLog, Timer, new_run_id, run_logging
from fhir3t.cli.parser import Parser, prefixed, unknown_options_message
from fhir3t.cli.words import Site, early_lang, localize, option_value, say, site_of, stderr_lang
from fhir3t.config import LOG_FORMATS, LOG_LEVELS, Config
from fhir3t.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_MEANINGS, EXIT_USAGE, EXIT_WORDS, Fhir3tError
from fhir3t.messages import LANGUAGES, Message, later, many, render
from fhir3t.version import __version__

DESCRIPTION = Message("help.fhir3t", "FHIR R4 adapter for one clinical trial: screen patients against the trial's criteria, "
                      "emit ResearchSubjects and AdverseEvents, validate Bundles, talk to a FHIR server.")
EPILOG = Message("help.fhir3t.epilog", "Exit codes: {codes}.")
EXIT_CODE = Message("help.exit-code", "{code} {meaning}")
INTERRUPTED = Message("cli.interrupted", "interrupted")
INTERNAL = Message("cli.internal", "internal error (a bug in fhir3t); rerun with -vv for details")

#: subcommand name -> module under fhir3t.cli (imported lazily so `--help` stays fast)
COMMANDS: dict[str, str] = {
    "screen": "screen",
    "explain": "explain",
    "codes": "codes",
    "validate": "validate",
    "check-server": "check_server",
    "today": "today",
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
    g = parser.add_argument_group(later(Message("help.general-options", "general options")())) if not top else parser
    g.add_argument("-v", "--verbose", action="count", dest=f"{pre}verbose", **({"default": 0} if top else sup),
                   help=later(Message("help.verbose", "more log output on stderr (-v info, -vv debug); messages name files, "
                                      "entries and elements; values and servers' error texts (which may quote patient data) "
                                      "appear only with -vv")()))
    g.add_argument("--log-format", choices=LOG_FORMATS, dest=f"{pre}log_format", **sup,
                   help=later(Message("help.log-format", "text (default) or json: one JSON object per stderr line, with a run "
                                      "id, no patient data (in English, whatever --lang says)")()))
    g.add_argument("--config", metavar="FILE", dest=f"{pre}config", **sup,
                   help=later(Message("help.config", "read this config file (default: ./fhir3t.toml, "
                                      "$XDG_CONFIG_HOME/fhir3t/config.toml, /etc/fhir3t/config.toml, the first found); "
                                      "command-line options win")()))
    g.add_argument("--no-config", action="store_true", dest=f"{pre}no_config", **sup,
                   help=later(Message("help.no-config", "read no config file")()))
    g.add_argument("--profiles", metavar="DIR", dest=f"{pre}profiles", **sup,
                   help=later(Message("help.profiles", "another study's profiles folder (study.json, criteria/, valuesets/, "
                                      "...; what it lacks comes from fhir3t's own); default: $FHIR3T_PROFILES, else the "
                                      "bundled study")()))
    g.add_argument("--lang", metavar="LANG", dest=f"{pre}lang", **sup,
                   help=later(Message("help.lang", "the language of what people read: {choices} (default: [site] language "
                                      "in the config file, else the locale of LC_ALL / LC_MESSAGES / LANG, else en); JSON "
                                      "fields, codes and logs stay English")(choices=many(LANGUAGES, "or"))))
    g.add_argument("--timezone", metavar="ZONE", dest=f"{pre}timezone", **sup,
                   help=later(Message("help.timezone", "the site's IANA time zone, such as Asia/Shanghai (default: [site] "
                                      "timezone in the config file, else the system's): the default as-of date is today "
                                      "there and times are shown in it; criteria still read the day each record writes")()))


def build_parser(config: Config | None = None, lang: str = "en") -> argparse.ArgumentParser:
    """The whole command line, its help in `lang`."""
    parser = Parser(
        prog="fhir3t",
        description=later(DESCRIPTION()),
        epilog=later(EPILOG(codes=many((EXIT_CODE(code=code, meaning=EXIT_WORDS[str(code)]()) for code in EXIT_MEANINGS),
                                       "; "))),
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
    localize(parser, lang)
    return parser


def _merge_general(args: argparse.Namespace, config: Config) -> tuple[int, str]:
    verbose = args.verbose + getattr(args, "sub_verbose", 0)
    if not verbose and config.log_level:
        verbose = LOG_LEVELS.index(config.log_level)
    fmt = getattr(args, "sub_log_format", None) or args.log_format or config.log_format or "text"
    return verbose, fmt


def _site_args(args: argparse.Namespace, site: Site) -> None:
    """The run's language and time zone on the options every subcommand reads (args.lang, args.tz)."""
    args.lang = site.lang
    args.tz = site.tz
    args.tz_name = site.tz_name


def _command_of(argv: Sequence[str]) -> str | None:
    names = {**COMMANDS, **_optional_commands()}
    return next((t for t in argv if t in names), None)


def main(argv: Sequence[str] | None = None, clock: Callable[[], datetime] | None = None) -> int:
    """The command line. `clock` replaces the wall clock (tests: a run at 18:30 UTC in Hangzhou)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    lang = early_lang(argv)
    try:
        config = config_from_argv(argv)
        site = site_of(argv, config)
    except Fhir3tError as exc:
        print(f"fhir3t{f' {command}' if command else ''}: {exc.text(lang)}", file=sys.stderr)
        return exc.exit_code
    fmt = option_value(argv, "--log-format") or config.log_format or "text"
    lang = "en" if fmt == "json" else site.lang  # stderr in JSON mode is the log: English
    try:
        parser = build_parser(config, site.lang)
    except Fhir3tError as exc:  # a config key that no option takes
        print(f"fhir3t{f' {command}' if command else ''}: {exc.text(lang)}", file=sys.stderr)
        return exc.exit_code
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = args._commands.get(args.command) if args.command else None
        target = sub or parser
        target.error(later(unknown_options_message(extras, target)))
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    verbose, fmt = _merge_general(args, config)
    args.verbose = verbose
    args.log_format_used = fmt
    _site_args(args, site)
    args.clock = clock
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
        lang = stderr_lang(args)
        log.failed(prefixed(f"fhir3t {args.command}", exc.text(lang), lang), exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        say(args, INTERRUPTED(), command="")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except ModuleNotFoundError as exc:  # an optional dependency missing deeper down: say which extra, not "a bug"
        sentence = missing_extra_message(exc.name)
        if sentence is None:
            return _internal_error(args, log)
        lang = stderr_lang(args)
        log.failed(prefixed(f"fhir3t {args.command}", render(sentence, lang), lang), EXIT_USAGE)
        return EXIT_USAGE
    except Exception:  # a bug: say so plainly, keep the traceback for -vv
        return _internal_error(args, log)


def _internal_error(args: argparse.Namespace, log: RunLog) -> int:
    logging.getLogger("fhir3t").debug("internal error", exc_info=True)
    log.failed(f"fhir3t {args.command}: {render(INTERNAL(), stderr_lang(args))}", EXIT_INTERNAL, event="internal-error")
    if args.verbose >= 2:
        raise
    return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
