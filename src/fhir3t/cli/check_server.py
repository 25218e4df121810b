"""`fhir3t check-server URL`: what a FHIR server does of what fhir3t needs, one line a check."""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from fhir3t.cli.common import load_definition
from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.cli.words import say
from fhir3t.errors import UsageError
from fhir3t.messages import Message, later


class _ServerURL(argparse.Action):
    """The positional URL is --server by another name (so the config's credentials rules apply to it)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        if isinstance(values, str):
            namespace.server = values


NO_URL = Message("cli.check-server.no-url", "give the server's base URL: fhir3t check-server URL")
AS_WRITTEN = Message("cli.check-server.error", "{text}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-server",
        help=later(Message("help.check-server", "check what a FHIR server does of what fhir3t needs (read-only)")()),
        description=(
            later(Message("help.check-server.description",
                          "Read the server's CapabilityStatement and try what screening, push and export need, one line\n"
                          "each (ok / warning / fail): FHIR version; the fetch strategy screen --server will use; the\n"
                          "resource types the criteria read; one patient end to end; whether every type comes back with a\n"
                          "patient's record ($everything or the searches); whether the search parameters fhir3t sends are\n"
                          "applied (each is also searched with a value that matches nothing: a server that ignores a\n"
                          "parameter answers with everything); transaction or batch; conditional create; Bulk $export and\n"
                          "its status URL (a tiny export is started, polled once and cancelled; nothing is downloaded).\n"
                          "\n"
                          "Read-only unless --write-test. The cheap part runs quietly at the start of screen --server.")())
        ),
        epilog=(
            later(Message("help.check-server.epilog",
                          "Examples:\n"
                          "  fhir3t check-server https://ehr.example.org/fhir\n"
                          "  fhir3t check-server https://test-fhir.example.org/fhir --write-test --format json\n"
                          "Exit codes: 0 no check failed (warnings allowed); 1 a check failed; 2 usage error;\n"
                          "5 server error (unreachable, not FHIR, request budget spent; the checks done so far are shown);\n"
                          "6 auth error.")())
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", nargs="?", metavar="URL", action=_ServerURL,
                   help=later(Message("help.check-server.url", "FHIR R4 base URL (or --server URL, or [server] url in the config file)")()))
    add_server_options(p, pull=False, push=False)
    p.add_argument("--patient", metavar="ID",
                   help=later(Message("help.check-server.patient",
                                      "the patient to try end to end (FHIR id; default: the first candidate the study's diagnosis search "
                                      "finds)")()))
    p.add_argument("--write-test", action="store_true",
                   help=later(Message("help.check-server.write-test",
                                      "ONLY ON A TEST SERVER: also push a test ResearchStudy the way fhir3t push sends the study "
                                      "(conditional create in a transaction, else a batch), push it again, and delete what was made. "
                                      "Without it nothing is written")()))
    p.add_argument("--no-export", action="store_true", help=later(Message("help.check-server.no-export", "do not try Bulk $export")()))
    p.add_argument("--concept-map", action="append", default=[], metavar="FILE",
                   help=later(Message("help.check-server.concept-map",
                                      "FHIR ConceptMap of hospital-local codes (the candidate search sends their codes too; "
                                      "repeatable)")()))
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help=later(Message("help.check-server.format", "text: one line a check (default); json: the report as one JSON "
                                                                  "object")()))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fhir3t.pipeline.servercheck import check_server
    from fhir3t.pipeline.servercheck.render import as_json, text

    if not args.server:
        raise UsageError(NO_URL())
    definition = load_definition(args)
    client = make_client(args)
    try:
        report = check_server(client, definition, patient=args.patient, write_test=args.write_test,
                              export=not args.no_export)
    finally:
        client.close()
    if args.format == "json":
        sys.stdout.write(as_json(report))
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        sys.stdout.write(text(report, shutil.get_terminal_size((80, 24)).columns, colour, args.lang))
    if report.error:
        say(args, AS_WRITTEN(text=report.error) if isinstance(report.error, str) else report.error)
    return report.exit_code
