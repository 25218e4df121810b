"""`fhir3t export`: Bulk Data $export from a FHIR server into a folder `fhir3t screen` reads."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from fhir3t.cli.common import day, report_problems
from fhir3t.cli.server_options import MB, add_server_options, make_client
from fhir3t.errors import EXIT_OK, UsageError
from fhir3t.transport.limits import DEFAULT_MAX_FILE

if TYPE_CHECKING:
    from fhir3t.sources.bulk import ExportResult
    from fhir3t.sources.statestore import PatientState

#: Default of --max-wait (fhir3t.sources.bulk.DEFAULT_MAX_WAIT, kept here so --help imports nothing heavy).
DEFAULT_MAX_WAIT = 3600.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="Bulk Data $export from a FHIR server to NDJSON files",
        description=("Start a FHIR Bulk Data export (Patient/$export or Group/ID/$export), wait for it, and download "
                     "the NDJSON files into OUT_DIR. An interrupted export is resumed when the same command is run "
                     "again. Then: fhir3t screen OUT_DIR."),
        epilog=("Exit codes: 0 done; 2 usage error (also: OUT_DIR cannot be written, e.g. a full disk); 5 server "
                "error, or the export is incomplete (a file of the manifest could not be downloaded: OUT_DIR must not be "
                "screened as it is; run the same command again to resume); 6 auth error."),
    )
    p.add_argument("out_dir", metavar="OUT_DIR")
    add_server_options(p, pull=False, push=False, server_required=True)
    p.add_argument("--group", metavar="ID", help="export this Group's members (default: all patients)")
    p.add_argument("--type", action="append", default=[], metavar="TYPES",
                   help="resource types to export, comma separated (repeatable; default: what the criteria read)")
    p.add_argument("--since", type=day, metavar="DATE", help="only resources changed since DATE")
    p.add_argument("--store-dir", metavar="DIR",
                   help="merge the export into the patient store in DIR (see fhir3t screen --store-dir) and, without "
                        "--since, export only what changed since the store's last export (Bulk Data _since)")
    p.add_argument("--all-types", action="store_true", help="export every type the server has")
    p.add_argument("--max-wait", type=float, default=DEFAULT_MAX_WAIT, metavar="SECONDS",
                   help=f"stop waiting for the server after SECONDS (default {DEFAULT_MAX_WAIT:.0f}); the same command "
                        "resumes the export later. Polling is never faster than once a second, slower as it goes on")
    p.add_argument("--max-file-size", type=int, default=DEFAULT_MAX_FILE // MB, metavar="MB",
                   help=f"refuse an NDJSON file larger than MB megabytes (default {DEFAULT_MAX_FILE // MB})")
    p.set_defaults(run=run)


def default_types() -> list[str]:
    from fhir3t.pipeline import Definition
    from fhir3t.r4facts import r4_facts

    return sorted({"Patient", *Definition.load().relevance.types, *r4_facts().shared_types} - {"*"})


def run(args: argparse.Namespace) -> int:
    from fhir3t.sources.bulk import BulkExporter

    if not (args.max_wait > 0) or args.max_file_size < 1:
        raise UsageError("--max-wait and --max-file-size must be above 0")
    types = args.type or ([] if args.all_types else default_types())
    client = make_client(args)
    last = {"p": ""}

    def progress(text: str) -> None:
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
    note = " (resumed)" if result.resumed else ""
    print(f"fhir3t export: {len(result.files)} files, {len(result.errors)} error files in {args.out_dir}{note}",
          file=sys.stderr)
    if state is not None:
        try:
            merge_export(state, result)
        finally:
            state.close()
    return EXIT_OK


def merge_export(state: PatientState, result: ExportResult) -> None:
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
    report_problems(problems)
    print(f"fhir3t export: store {state.folder}: {m.lines} lines merged ({m.added} new, {m.replaced} replaced, "
          f"{m.stale} older than held, {m.deleted} deleted); {len(m.patients)} patients to screen again", file=sys.stderr)
