"""`fhir3t today`: today's date in the site's time zone, the date a run without --as-of screens as of.

The nightly script names its folder by it, so a run at 02:30 in Hangzhou (18:30 UTC) files the worklist
under the Hangzhou date, the date it screened as of.
"""
from __future__ import annotations

import argparse
import sys

from fhir3t.errors import EXIT_OK
from fhir3t.messages import Message, later


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "today",
        help=later(Message("help.today", "print today's date in the site's time zone (YYYY-MM-DD): the date a run "
                                         "without --as-of screens as of")()),
        description=later(Message("help.today.description",
                                  "Print today's date in the site's time zone (--timezone, else [site] timezone in "
                                  "the config file, else the system's) as YYYY-MM-DD: what fhir3t screen takes as the "
                                  "as-of date when none is given, and what the nightly script names its folder by.")()),
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fhir3t.pipeline.run import today_in

    sys.stdout.write(today_in(args.tz, getattr(args, "clock", None)).isoformat() + "\n")
    return EXIT_OK
