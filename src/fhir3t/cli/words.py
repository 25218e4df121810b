"""What the CLI says to a person, in their language: the site (language, time zone), the help, stderr lines.

- `site_of(argv, config)`: the run's language (`--lang`, `[site] language`, LC_ALL / LC_MESSAGES / LANG, en)
  and time zone (`--timezone`, `[site] timezone`, the system's).
- `localize(parser, lang)`: subcommands declare their help, descriptions and epilogs as messages; once the
  parser is built, every one is rendered in the run's language (argparse's own words too: usage, options).
- `say(args, msg)`: one stderr line, `fhir3t COMMAND: ...`, in the run's language, except in JSON log
  mode, where stderr is the log and stays English (a log never mixes in translated text).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any

from fhir3t.cli.parser import HELP, OPTIONALS, POSITIONALS, VERSION, CellFormatter, prefixed
from fhir3t.config import Config
from fhir3t.dates import system_zone, zone, zone_name
from fhir3t.errors import UsageError
from fhir3t.messages import Later, Message, Msg, render
from fhir3t.messages import lang as languages

BAD_LANG = Message("cli.bad-lang", "{option} '{value}' is not a language fhir3t speaks: give one of {choices}")
BAD_ZONE = Message("cli.bad-zone", "--timezone '{value}' is not an IANA time zone (such as Asia/Shanghai)")
NOTE = Message("cli.note", "note: {text}")
SKIPPED = Message("cli.skipped", "skipped: {text}")
WARNING = Message("cli.warning", "warning: {text}")
ERROR = Message("cli.error", "error: {text}")
_TAGS = {"note": NOTE, "skipped": SKIPPED, "warning": WARNING, "error": ERROR}


@dataclass(frozen=True)
class Site:
    """The run's language and time zone, and where the zone came from."""

    lang: str
    tz: tzinfo

    @property
    def tz_name(self) -> str:
        return zone_name(self.tz)


def option_value(argv: Sequence[str], name: str) -> str | None:
    """The value of `--name VALUE` / `--name=VALUE` anywhere before `--` (the last one wins)."""
    found = None
    for i, tok in enumerate(argv):
        if tok == "--":
            break
        if tok == name and i + 1 < len(argv):
            found = argv[i + 1]
        elif tok.startswith(name + "="):
            found = tok.split("=", 1)[1]
    return found


def early_lang(argv: Sequence[str]) -> str:
    """The language before the config file is read (for its own errors): --lang, else the environment;
    English when stderr is the JSON log."""
    if option_value(argv, "--log-format") == "json":
        return languages.EN
    return languages.normalize(option_value(argv, "--lang")) or languages.from_env() or languages.DEFAULT


def site_of(argv: Sequence[str], config: Config) -> Site:
    """--lang / --timezone, else the config's [site], else the environment and the system."""
    given = option_value(argv, "--lang")
    if given is not None and languages.normalize(given) is None:
        raise UsageError(BAD_LANG(option="--lang", value=given, choices=", ".join(languages.LANGUAGES)))
    lang = languages.choose(given, config.language)
    tz_given = option_value(argv, "--timezone")
    if tz_given is not None:
        tz = zone(tz_given)
        if tz is None:
            raise UsageError(BAD_ZONE(value=tz_given))
    elif config.timezone:
        tz = zone(config.timezone) or system_zone()  # the schema checked it
    else:
        tz = system_zone()
    return Site(lang, tz)


def site_today(args: argparse.Namespace) -> Callable[[], date]:
    """Today in the site's time zone, asked anew each time (a service runs for days)."""
    from fhir3t.pipeline.run import today_in

    tz = getattr(args, "tz", None) or system_zone()
    clock = getattr(args, "clock", None)
    return lambda: today_in(tz, clock)


def stderr_lang(args: argparse.Namespace) -> str:
    """stderr in JSON log mode is the log: English. Otherwise the person's language."""
    return languages.EN if getattr(args, "log_format_used", "text") == "json" else getattr(args, "lang", languages.EN)


def say(args: argparse.Namespace | None, msg: Msg, *, tag: str | None = None, command: str | None = None) -> None:
    """One line on stderr: `fhir3t COMMAND: [tag: ]message`, in the run's stderr language."""
    lang = stderr_lang(args) if args is not None else languages.EN
    text = render(msg, lang)
    if tag is not None:
        text = render(_TAGS[tag](text=text), lang)
    name = command if command is not None else (getattr(args, "command", None) if args is not None else None)
    print(prefixed(f"fhir3t {name}" if name else "fhir3t", text, lang), file=sys.stderr)


def text(value: Any, lang: str, *, escape: bool = False) -> Any:
    """A help text, description or epilog in `lang` (a Msg rendered; anything else as it is). `escape`: double
    the % signs (argparse %-formats help texts)."""
    if isinstance(value, Later):
        value = value.msg
    if isinstance(value, Msg):
        out = render(value, lang)
        return out.replace("%", "%%") if escape else out
    if isinstance(value, Message):
        return text(value(), lang, escape=escape)
    return value


def localize(parser: argparse.ArgumentParser, lang: str) -> None:
    """Render every message of a built parser (and its subparsers) in `lang`, in place."""
    seen: set[int] = set()
    todo = [parser]
    while todo:
        p = todo.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))
        p.lang = lang  # type: ignore[attr-defined]  # (Parser reads it for its errors and its usage prefix)
        p.formatter_class = CellFormatter
        p.description = text(p.description, lang)
        p.epilog = text(p.epilog, lang)
        for group in p._action_groups:
            if group is p._positionals:
                group.title = render(POSITIONALS(), lang)
            elif group is p._optionals:
                group.title = render(OPTIONALS(), lang)
            else:
                group.title = text(group.title, lang)
            group.description = text(group.description, lang)
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                action.help = render(HELP(), lang)
            elif isinstance(action, argparse._VersionAction):
                action.help = render(VERSION(), lang)
            else:
                action.help = text(action.help, lang, escape=True)
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    choice.help = text(choice.help, lang, escape=True)
                todo.extend(action.choices.values())


__all__ = [
    "ERROR",
    "NOTE",
    "SKIPPED",
    "WARNING",
    "Site",
    "early_lang",
    "localize",
    "option_value",
    "say",
    "site_of",
    "stderr_lang",
    "text",
]
