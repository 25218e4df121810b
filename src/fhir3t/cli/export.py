"""`fhir3t export`: Bulk Data $export from a FHIR server into a folder `fhir3t screen` reads."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from fhir3t.cli.common import day, report_problems
from fhir3t.cli.server_options import MB, add_server_options, make_client
from fhir3t.cli.words import say, stderr_lang
from fhir3t.errors import EXIT_OK, UsageError
from fhir3t.messages import Message, Msg, later, render, table
from fhir3t.transport.limits import DEFAULT_MAX_FILE

W = table("cli.export", {
    "above-0": "--max-wait and --max-file-size must be above 0",
    "done": "{files} files, {errors} error files in {folder}",
    "done-resumed": "{files} files, {errors} error files in {folder} (resumed)",
    "merged": "store {folder}: {lines} lines merged ({added} new, {replaced} replaced, {stale} older than held, "
              "{deleted} deleted); {patients} patients to screen again",
})

if TYPE_CHECKING:
    from fhir3t.sources.bulk import ExportResult
    from fhir3t.sources.statestore import PatientState

#: Default of --max-wait (fhir3t.sources.bulk.DEFAULT_MAX_WAIT, kept here so --help imports nothing heavy).
DEFAULT_MAX_WAIT = 3600.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help=later(Message("help.export", "Bulk Data $export from a FHIR server to NDJSON files")()),
        description=(later(Message("help.export.description",
                                   "Start a FHIR Bulk Data export (Patient/$export or Group/ID/$export), wait for it, and download the "
                                   "NDJSON files into OUT_DIR. An interrupted export is resumed when the same command is run again. Then: "
                                   "fhir3t screen OUT_DIR.")())),
        epilog=(later(Message("help.export.epilog",
                              "Exit codes: 0 done; 2 usage error (also: OUT_DIR cannot be written, e.g. a full disk); 5 server error, or "
                              "the export is incomplete (a file of the manifest could not be downloaded: OUT_DIR must not be screened as "
                              "it is; run the same command again to resume); 6 auth error.")())),
    )
    p.add_argument("out_dir", metavar="OUT_DIR")
    add_server_options(p, pull=False, push=False, server_required=True)
    p.add_argument("--group", metavar="ID", help=later(Message("help.export.group", "export this Group's members (default: all "
                                                                                    "patients)")()))
    p.add_argument("--type", action="append", default=[], metavar="TYPES",
                   help=later(Message("help.export.type",
                                      "resource types to export, comma separated (repeatable; default: what the criteria read)")()))
    p.add_argument("--since", type=day, metavar="DATE", help=later(Message("help.export.since", "only resources changed since DATE")()))
    p.add_argument("--store-dir", metavar="DIR",
                   help=later(Message("help.export.store-dir",
                                      "merge the export into the patient store in DIR (see fhir3t screen --store-dir) and, "
                                      "without --since, export only what changed since the store's last export (Bulk Data "
                                      "_since)")()))
    p.add_argument("--all-types", action="store_true", help=later(Message("help.export.all-types", "export every type the server has")()))
    p.add_argument("--max-wait", type=float, default=DEFAULT_MAX_WAIT, metavar="SECONDS",
                   help=later(Message("help.export.max-wait",
                                      "stop waiting for the server after SECONDS (default {default}); the same command resumes the "
                                      "export later. Polling is never faster than once a second, slower as it goes on")(
                                          default=f"{DEFAULT_MAX_WAIT:.0f}")))
    p.add_argument("--max-file-size", type=int, default=DEFAULT_MAX_FILE // MB, metavar="MB",
                   help=later(Message("help.export.max-file-size", "refuse an NDJSON file larger than MB megabytes (default {default})")(
                             default=DEFAULT_MAX_FILE // MB)))
    p.set_defaults(run=run)


def default_types() -> list[str]:
    from fhir3t.pipeline import Definition
    from fhir3t.r4facts import r4_facts

    return sorted({"Patient", *Definition.load().relevance.types, *r4_facts().shared_types} - {"*"})


def run(args: argparse.Namespace) -> int:
    from fhir3t.sources.bulk import BulkExporter

    if not (args.max_wait > 0) or args.max_file_size < 1:
        raise UsageError(W["above-0"]())
    types = args.type or ([] if args.all_types else default_types())
    client = make_client(args)
    last = {"p": ""}

    def progress(said: str | Msg) -> None:  # the server's X-Progress as written, or fhir3t's own words
        text = said if isinstance(said, str) else render(said, stderr_lang(args))
        if text != last["p"] and sys.stderr.isatty():
            print(f"fhir3t export: {text}", file=sys.stderr)
        last["p"] = text

    state = None
    since = args.since
    if args.store_dir:
        from fhir3t.sources.statestore import PatientState

        state = PatientState(args.store_dir)
        since = since or state.get("export_since")
    try:
        result = BulkExporter(client, args.out_dir, group=args.group, types=types, since=since,
                              max_wait=args.max_wait, max_file_bytes=args.max_file_size * MB, on_progress=progress).run()
    finally:
        client.close()
    done = W["done-resumed" if result.resumed else "done"](files=len(result.files), errors=len(result.errors),
                                                           folder=args.out_dir)
    say(args, done)
    if state is not None:
        try:
            merge_export(state, result, args)
        finally:
            state.close()
    return EXIT_OK


def merge_export(state: PatientState, result: ExportResult, args: argparse.Namespace | None = None) -> None:
    """Merge a finished export into the store; the next export asks for what changed since this one
    began (the manifest's transactionTime: a change made while it ran is exported again, never lost)."""
    from fhir3t.errors import Problems
    from fhir3t.sources.statestore import state_file_mode

    problems = Problems()
    m = state.merge(result.files, problems, deleted=result.deleted)
    state_file_mode(state.folder)
    began = result.manifest.get("transactionTime")
    if isinstance(began, str) and began:
        state.put("export_since", began)
    report_problems(problems, args=args)
    say(args, W["merged"](folder=str(state.folder), lines=m.lines, added=m.added, replaced=m.replaced, stale=m.stale,
                          deleted=m.deleted, patients=len(m.patients)), command="export")
