"""`fhir3t push`: send a transaction Bundle (e.g. from `screen --emit`) to a FHIR server."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.errors import EXIT_OK, EXIT_PUSH_PARTIAL, InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push", help="send a transaction Bundle to a FHIR server, entry by entry outcome",
        description=("Send a transaction Bundle (as written by `fhir3t screen --emit`) to a FHIR server: as a "
                     "transaction, or as a batch where the server has none. A ResearchSubject already on-study, "
                     "in follow-up, off-study or withdrawn is never overwritten with a screening status."),
        epilog="Exit codes: 0 every entry applied; 5 server error; 6 auth error; 7 some entries failed (listed on stderr).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", metavar="BUNDLE.json", help="transaction or batch Bundle")
    add_server_options(p, pull=False, push=False, server_required=True)
    p.add_argument("--dry-run", action="store_true", help="print what would be sent, send nothing")
    p.set_defaults(run=run)


def load_bundle(path: str) -> dict:
    try:
        return orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def print_report(report, out=None) -> None:
    out = out or sys.stderr
    import logging

    verbose = logging.getLogger("fhir3t").isEnabledFor(logging.INFO)
    for o in report.outcomes:
        if o.state != "ok" or verbose:  # every entry not applied is named; ok ones with -v
            print(f"fhir3t push: {o.line()}", file=out)
    for n in report.notes:
        print(f"fhir3t push: note: {n}", file=out)
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    print(f"fhir3t push: {report.mode}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), file=out)


def push_bundle(args: argparse.Namespace, bundle: dict, url: str | None = None, show=None) -> int:
    """Push and report; a dry run writes the Bundle to `show` (default stdout)."""
    from fhir3t.sinks import FhirServerSink

    client = make_client(args, url)
    try:
        report = FhirServerSink(client).push(bundle, dry_run=args.dry_run)
    finally:
        client.close()
    if args.dry_run:
        (show or sys.stdout).write(orjson.dumps(bundle, option=orjson.OPT_INDENT_2).decode() + "\n")
    print_report(report)
    return EXIT_PUSH_PARTIAL if report.failed else EXIT_OK


def run(args: argparse.Namespace) -> int:
    from fhir3t.sinks.fhir_server import check_bundle

    bundle = load_bundle(args.bundle)
    check_bundle(bundle)
    return push_bundle(args, bundle)
