"""`fhir3t export`: Bulk Data $export from a FHIR server into a folder `fhir3t screen` reads."""
from __future__ import annotations

import argparse
import sys

from fhir3t.cli.common import day
from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.errors import EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="Bulk Data $export from a FHIR server to NDJSON files",
        description=("Start a FHIR Bulk Data export (Patient/$export or Group/ID/$export), wait for it, and download "
                     "the NDJSON files into OUT_DIR. An interrupted export is resumed when the same command is run "
                     "again. Then: fhir3t screen OUT_DIR."),
        epilog="Exit codes: 0 done; 5 server error; 6 auth error.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR")
    add_server_options(p, pull=False, push=False, server_required=True)
    p.add_argument("--group", metavar="ID", help="export this Group's members (default: all patients)")
    p.add_argument("--type", action="append", default=[], metavar="TYPES",
                   help="resource types to export, comma separated (repeatable; default: what the criteria read)")
    p.add_argument("--since", type=day, metavar="DATE", help="only resources changed since DATE")
    p.add_argument("--all-types", action="store_true", help="export every type the server has")
    p.set_defaults(run=run)


def default_types() -> list[str]:
    from fhir3t.pipeline import Engine
    from fhir3t.r4facts import r4_facts

    return sorted({"Patient", *Engine.load().relevance.types, *r4_facts().shared_types} - {"*"})


def run(args: argparse.Namespace) -> int:
    from fhir3t.sources.bulk import BulkExporter

    types = args.type or ([] if args.all_types else default_types())
    client = make_client(args)
    last = {"p": ""}

    def progress(text: str) -> None:
        if text != last["p"] and sys.stderr.isatty():
            print(f"fhir3t export: {text}", file=sys.stderr)
        last["p"] = text

    try:
        result = BulkExporter(client, args.out_dir, group=args.group, types=types, since=args.since,
                              on_progress=progress).run()
    finally:
        client.close()
    note = " (resumed)" if result.resumed else ""
    print(f"fhir3t export: {len(result.files)} files, {len(result.errors)} error files in {args.out_dir}{note}",
          file=sys.stderr)
    return EXIT_OK
