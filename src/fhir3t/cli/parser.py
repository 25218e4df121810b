"""The argument parser: usage errors as one sentence with a suggestion, never the whole usage block.

argparse's own message ("usage: ... error: argument --format: invalid choice: 'cvs' (choose from ...)")
is rewritten to "fhir3t screen: --format 'cvs' is not one of csv, csv-long, ...; did you mean 'csv'?",
and an option or subcommand typed wrong gets the nearest real one. The sentences are messages, said in
the parser's language (`lang`, set by fhir3t.cli.words.localize); one argparse says that is not
recognised here is passed on as argparse wrote it.
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable
from typing import NoReturn

from fhir3t.errors import EXIT_USAGE
from fhir3t.messages import Later, Message, Msg, Plural, many, render, table
from fhir3t.messages.cells import cells, wrap

_CHOICE = re.compile(r"argument (?P<arg>[^:]+): invalid choice: '(?P<got>[^']*)' \(choose from (?P<opts>.*)\)$")
_ARG = re.compile(r"argument (?P<arg>[^:]+): (?P<rest>.*)$")
_REQUIRED = re.compile(r"the following arguments are required: (?P<args>.*)$")

UNEXPECTED = Message("cli.unexpected-argument", "unexpected argument {arg}{more}")
UNKNOWN_OPTION = Message("cli.unknown-option", "unknown option {option}{more}")
UNKNOWN_OPTION_NEAR = Message("cli.unknown-option-near", "unknown option {option}{more}; did you mean {hint}?")
AND_MORE = Plural("cli.and-more", " (and {n} more)", " (and {n} more)")
UNKNOWN_COMMAND = Message("cli.unknown-command", "unknown command '{got}' (commands: {options})")
UNKNOWN_COMMAND_NEAR = Message("cli.unknown-command-near", "unknown command '{got}'; did you mean '{hint}'?")
NOT_ONE_OF = Message("cli.not-one-of", "{arg} '{got}' is not one of {options}")
NOT_ONE_OF_NEAR = Message("cli.not-one-of-near", "{arg} '{got}' is not one of {options}; did you mean '{hint}'?")
REQUIRED = Plural("cli.required", "{args} is required", "{args} are required")
NEEDS_VALUE = Message("cli.needs-value", "{arg} needs a value")
ARG_PROBLEM = Message("cli.arg-problem", "{arg}: {problem}")
AS_WRITTEN = Message("cli.as-written", "{text}")
SEE_HELP = Message("cli.see-help", "{prog}: {error} (see '{prog} --help')")
#: a line on stderr: the program (and command) that speaks, then what it says (Chinese takes a full-width colon)
PREFIX = Message("cli.prefix", "{prog}: {text}")


def prefixed(prog: str, text: str, lang: str) -> str:
    """`fhir3t screen: text` in `lang` (prog and text as given)."""
    return render(PREFIX(prog=prog, text=text), lang)
#: argparse's own words
USAGE = Message("cli.usage", "usage: ")
POSITIONALS = Message("cli.positionals", "positional arguments")
OPTIONALS = Message("cli.optionals", "options")
HELP = Message("cli.help", "show this help message and exit")
VERSION = Message("cli.version", "show program's version number and exit")


#: the option types' errors (fhir3t.cli.common's day, whole_number, seconds): argparse passes them on as text
TYPE_ERRORS = table("cli.common", {
    "day": "expected a date YYYY-MM-DD, got {value}",
    "whole": "must be a whole number, not {value}",
    "range": "must be between {low} and {high}, not {n}",
    "seconds": "must be a number of seconds, not {value}",
    "seconds-above": "must be a number of seconds above 0, not {value}",
})


def _unrender(text: str) -> Msg | None:
    """An option type's English error as its message again, so it is said in the parser's language."""
    for m in TYPE_ERRORS.values():
        parts = re.split(r"\{(\w+)\}", m.en)
        pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
        found = re.fullmatch(pattern, text, re.DOTALL)
        if found is not None:
            return m(**found.groupdict())
    return None


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return found[0] if found else None


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


def unknown_options_message(extras: list[str], parser: argparse.ArgumentParser) -> Msg:
    """'unknown option --as-off; did you mean --as-of?' for arguments no option took."""
    opts = [e for e in extras if e.startswith("-")]
    if not opts:
        return UNEXPECTED(arg=repr(extras[0]), more=AND_MORE(len(extras) - 1) if len(extras) > 1 else None)
    first = opts[0].split("=", 1)[0]
    hint = nearest(first, option_strings(parser))
    more = AND_MORE(len(opts) - 1) if len(opts) > 1 else None
    return UNKNOWN_OPTION_NEAR(option=first, more=more, hint=hint) if hint else UNKNOWN_OPTION(option=first, more=more)


def friendly(message: str) -> Msg:
    """argparse's error text as one plain sentence."""
    m = _CHOICE.match(message)
    if m:
        arg, got = m["arg"], m["got"]
        options = [o.strip().strip("'") for o in m["opts"].split(",")]
        hint = nearest(got, options)
        if arg == "COMMAND":
            return UNKNOWN_COMMAND_NEAR(got=got, hint=hint) if hint else UNKNOWN_COMMAND(got=got, options=", ".join(options))
        if hint:
            return NOT_ONE_OF_NEAR(arg=arg, got=got, options=", ".join(options), hint=hint)
        return NOT_ONE_OF(arg=arg, got=got, options=", ".join(options))
    m = _REQUIRED.match(message)
    if m:
        names = [a.strip() for a in m["args"].split(",")]
        return REQUIRED(len(names), args=many(names))
    m = _ARG.match(message)
    if m:
        rest = m["rest"]
        if rest == "expected one argument":
            return NEEDS_VALUE(arg=m["arg"])
        return ARG_PROBLEM(arg=m["arg"], problem=_unrender(rest) or rest)
    return AS_WRITTEN(text=message)


_WIDE_HEADING = re.compile(r"^(\S*[\u3400-\u9fff]\S*):$", re.M)


class CellFormatter(argparse.RawDescriptionHelpFormatter):
    """Help wrapped by display cells, so Chinese help fits the terminal as English does; a description's or
    epilog's lines are kept as written (examples stay one a line) and only a line too long is wrapped."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return wrap(" ".join(text.split()), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            lead = line[:len(line) - len(line.lstrip())]
            if cells(line) <= width or line.startswith("  "):
                lines.append(indent + line)
            else:
                lines += [indent + lead + part for part in wrap(line.strip(), width - len(lead))]
        return "\n".join(lines)

    def format_help(self) -> str:
        # argparse ends a section heading with an ASCII colon; a Chinese heading takes the full-width one
        return _WIDE_HEADING.sub(r"\1：", super().format_help())


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit code 2 (subparsers inherit it)."""

    lang = "en"

    def error(self, message: str) -> NoReturn:
        error = message.msg if isinstance(message, Later) else friendly(message)
        self.exit(EXIT_USAGE, render(SEE_HELP(prog=self.prog, error=error), self.lang) + "\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)

    def _get_formatter(self) -> argparse.HelpFormatter:
        formatter = super()._get_formatter()
        lang = self.lang
        add_usage = formatter.add_usage

        def localized_usage(usage, actions, groups, prefix=None):
            return add_usage(usage, actions, groups, prefix if prefix is not None else render(USAGE(), lang))

        formatter.add_usage = localized_usage  # type: ignore[method-assign]
        return formatter
