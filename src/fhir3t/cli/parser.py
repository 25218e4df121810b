"""The argument parser: usage errors as one sentence with a suggestion, never the whole usage block.

argparse's own message ("usage: ... error: argument --format: invalid choice: 'cvs' (choose from ...)")
is rewritten to "fhir3t screen: --format 'cvs' is not one of csv, csv-long, ...; did you mean 'csv'?",
and an option or subcommand typed wrong gets the nearest real one.
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable
from typing import NoReturn

from fhir3t.errors import EXIT_USAGE

_CHOICE = re.compile(r"argument (?P<arg>[^:]+): invalid choice: '(?P<got>[^']*)' \(choose from (?P<opts>.*)\)$")
_ARG = re.compile(r"argument (?P<arg>[^:]+): (?P<rest>.*)$")
_REQUIRED = re.compile(r"the following arguments are required: (?P<args>.*)$")


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return found[0] if found else None


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


def unknown_options_message(extras: list[str], parser: argparse.ArgumentParser) -> str:
    """'unknown option --as-off; did you mean --as-of?' for arguments no option took."""
    opts = [e for e in extras if e.startswith("-")]
    if not opts:
        return f"unexpected argument {extras[0]!r}" + (f" (and {len(extras) - 1} more)" if len(extras) > 1 else "")
    first = opts[0].split("=", 1)[0]
    hint = nearest(first, option_strings(parser))
    more = f" (and {len(opts) - 1} more)" if len(opts) > 1 else ""
    return f"unknown option {first}{more}" + (f"; did you mean {hint}?" if hint else "")


def friendly(message: str) -> str:
    """argparse's error text as one plain sentence."""
    m = _CHOICE.match(message)
    if m:
        arg, got = m["arg"], m["got"]
        options = [o.strip().strip("'") for o in m["opts"].split(",")]
        hint = nearest(got, options)
        if arg == "COMMAND":
            return f"unknown command '{got}'" + (f"; did you mean '{hint}'?" if hint else f" (commands: {', '.join(options)})")
        return f"{arg} '{got}' is not one of {', '.join(options)}" + (f"; did you mean '{hint}'?" if hint else "")
    m = _REQUIRED.match(message)
    if m:
        return f"{m['args']} {'is' if ',' not in m['args'] else 'are'} required"
    m = _ARG.match(message)
    if m:
        rest = m["rest"]
        if rest == "expected one argument":
            return f"{m['arg']} needs a value"
        return f"{m['arg']}: {rest}"
    return message


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit code 2 (subparsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {friendly(message)} (see '{self.prog} --help')\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)
