"""`fhir3t log`: the screening and enrolment log (one row per screened patient) with the flow counts."""
from __future__ import annotations

import argparse
import textwrap
from datetime import UTC, datetime

from fhir3t.cli.common import day, output
from fhir3t.cli.server_options import add_server_options
from fhir3t.cli.state_options import add_state_option
from fhir3t.enrolment.log import STEPS
from fhir3t.errors import EXIT_OK, UsageError
from fhir3t.formats.enrolment_log import FORMATS
from fhir3t.messages import Message, render

CANNOT_WRITE = Message("log.cannot-write", "cannot write {path}: {reason}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "log",
        help="the screening and enrolment log: one row per screened patient, and the flow counts",
        description=textwrap.fill(
            "The screening and enrolment log an ethics committee asks for (ICH E6 essential documents): one row per "
            "screened patient (first and latest screening, status, criteria not met, contact attempts, consent, "
            "enrolment with subject number and D1, or the reason not enrolled, withdrawal), and the flow counts "
            "screened -> eligible -> contacted -> consented -> enrolled with the reasons patients stopped at each "
            "step (fhir3t report reads the same flow). From the FHIR server (--server, or [server] url) or the "
            "state file (--state FILE).", width=100),
        epilog=("Examples:\n  fhir3t log --state 3t.state.sqlite\n  fhir3t log --format csv --out log.csv\n"
                "  fhir3t log --server https://ehr.example.org/fhir --format html --out log.html --since 2026-11-01\n"
                "Exit codes: 0 written; 2 usage; 4 bad configuration; 5 server error; 6 auth error."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default), csv (UTF-8 with BOM, for Excel), json (rows and flow), html (one page)")
    p.add_argument("--since", type=day, metavar="DATE", help="only patients with anything recorded on or after DATE")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    add_state_option(p)
    add_server_options(p, pull=False, push=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fhir3t.cli.common import load_definition
    from fhir3t.cli.state_options import open_store
    from fhir3t.formats.enrolment_log import write
    from fhir3t.pipeline import Run
    from fhir3t.pipeline.enrolment import log_rows

    definition = load_definition(args)
    run_ = Run.start(definition, run_id=getattr(args, "run_id", ""))
    store = open_store(args, definition, "log")
    try:
        rows, flow = log_rows(definition, run_, store, args.since)
        meta = {"study": definition.study.short_title, "source": store.label,
                "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "since": args.since.isoformat() if args.since else None}
    finally:
        store.close()
    try:
        with output(args.out) as fh:
            write(args.format, rows, flow, meta, fh, run_.lang)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise UsageError(render(CANNOT_WRITE(path=str(args.out), reason=exc.strerror or type(exc).__name__))) from None
    args.summary = {"patients": len(rows), **{k: flow[k] for k in STEPS}}
    return EXIT_OK
