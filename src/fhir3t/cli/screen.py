"""`fhir3t screen`: screen patients from files or a FHIR server against the study's criteria."""
from __future__ import annotations

import argparse
import sys

from fhir3t.cli.common import day, progress_bar, report_problems
from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.criteria.model import STATUSES
from fhir3t.errors import EXIT_INPUT_FATAL, EXIT_INPUT_SKIPPED, EXIT_OK, Problems, UsageError
from fhir3t.formats import FORMATS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "screen",
        help="screen patients against the study's eligibility criteria",
        description=(
            "Read FHIR Bundles (collection, transaction, batch, searchset), single resources, or "
            "Bulk Data NDJSON — in any mix: every input is grouped by patient first, so a patient's "
            "records may come from several systems' exports — or pull them from a FHIR server, and give "
            "every patient a screening status (eligible / ineligible / candidate) with met / not-met / "
            "unknown, evidence and a reason for each criterion."
        ),
        epilog=(
            "Examples:\n"
            "  fhir3t screen samples/screening/ --as-of 2026-11-16\n"
            "  fhir3t screen export/ --format ndjson --out screening.ndjson\n"
            "  fhir3t screen --server https://ehr.example.org/fhir --push https://ehr.example.org/fhir --dry-run\n"
            "Messages on stderr name files, entries and elements, never patient data; values appear only with -vv.\n"
            "Exit codes: 0 all input screened; 3 some input skipped (see stderr); 4 no usable input;\n"
            "5 server error; 6 auth error; 7 push partly failed."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="Bundle/resource .json files, NDJSON files, or folders of them (or --server URL)")
    p.add_argument("--as-of", type=day, metavar="DATE",
                   help="screening date YYYY-MM-DD: evaluate as if today were this day; later data is ignored "
                        "(default: today, UTC, said on stderr)")
    p.add_argument("--d1", type=day, metavar="DATE", help="planned first-dose date YYYY-MM-DD (default: the --as-of date)")
    p.add_argument("--concept-map", action="append", default=[], metavar="FILE",
                   help="FHIR ConceptMap translating hospital-local codes to standard ones (repeatable)")
    p.add_argument("--criteria", metavar="FILE", help="criteria file to use instead of the study profile's")
    p.add_argument("--format", choices=sorted(FORMATS), default="table",
                   help="; ".join(f"{n}: {FORMATS[n].help}" for n in sorted(FORMATS)))
    p.add_argument("--out", metavar="FILE", help="write results here instead of stdout (atomically)")
    p.add_argument("--emit", metavar="BUNDLE", help="also write a FHIR transaction Bundle (ResearchStudy, ResearchSubjects, Provenance)")
    p.add_argument("--store", choices=("auto", "memory", "disk"), default="auto",
                   help="where records are grouped by patient: auto (memory, moving to disk for big inputs), memory, disk")
    p.add_argument("--jobs", type=int, metavar="N", help="processes to screen with (default: 1; 'auto' use of both "
                                                         "cores comes with large inputs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_server_options(p)
    p.set_defaults(run=run, screen_parser=p)


def _info(engine, as_of, d1, defaulted: bool, inputs: str):
    from fhir3t.formats import RunInfo

    return RunInfo(as_of, d1, defaulted, engine.study.short_title, f"{engine.criteria.id} {engine.criteria.version}",
                   engine.criteria.digest, inputs)


def run(args: argparse.Namespace) -> int:
    from fhir3t.dates import today_utc
    from fhir3t.pipeline import Engine, Output, deliver, screen_files, screen_server, with_discovered_maps

    problems = Problems()
    if bool(args.paths) == bool(args.server):
        raise UsageError("give PATH... to screen files, or --server URL to screen a FHIR server (not both)")
    if (args.patient or args.since or args.group) and not args.server:
        raise UsageError("--patient, --group and --since need --server")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs needs a number of processes, 1 or more")
    as_of = args.as_of or today_utc()
    if args.as_of is None:
        print(f"fhir3t screen: as-of {as_of} (today, UTC): give --as-of DATE to screen as of another day", file=sys.stderr)
    d1 = args.d1 or as_of
    if args.d1 and d1 < as_of:
        print(f"fhir3t screen: note: --d1 {d1} is before the as-of date {as_of}; 'before D1' windows end on "
              f"{d1}, while screening results up to {as_of} still count", file=sys.stderr)
    maps = with_discovered_maps(args.paths, args.concept_map, problems) if args.paths else list(args.concept_map)
    engine = Engine.load(maps, args.criteria, problems)
    client = None
    if args.server:
        client = make_client(args)
        stream = screen_server(client, engine, as_of=as_of, d1=d1, patients=args.patient, group=args.group,
                               since=args.since, strategy=args.strategy, problems=problems,
                               on_candidates=None if args.no_progress else lambda n: print(
                                   f"fhir3t screen: {n} candidate patients on the server", file=sys.stderr))
        inputs = client.display_base if hasattr(client, "display_base") else "FHIR server"
    else:
        stream = screen_files(args.paths, as_of=as_of, d1=d1, engine=engine, problems=problems, store=args.store,
                              jobs=args.jobs or 1)
        inputs = ", ".join(args.paths)
    info = _info(engine, as_of, d1, args.as_of is None, inputs)
    label = "pulled and screened {n} patients" if args.server else "screened {n} patients"
    try:
        with progress_bar(not args.no_progress, label) as tick:
            run_ = deliver(tick(stream), engine, info, [Output(args.format, args.out)], stdout=sys.stdout,
                           keep=bool(args.push), emit=args.emit)
    finally:
        if client is not None:
            client.close()
    args.summary = {"patients": run_.total, **{s: run_.counts.get(s, 0) for s in STATUSES}}
    report_problems(problems)
    for n in run_.notes:
        print(f"fhir3t: note: {n}", file=sys.stderr)
    if args.push and run_.results:
        from fhir3t.cli.push import push_bundle

        assert run_.bundle is not None
        # results may be on stdout: a dry run shows the Bundle on stderr
        code = push_bundle(args, run_.bundle, args.push, show=sys.stderr if not args.out else None)
        if code:
            return code
    if not run_.total:
        print("fhir3t screen: no patients found in the input", file=sys.stderr)
        return EXIT_INPUT_FATAL
    if problems.any_skipped:
        print(f"fhir3t screen: {run_.total} patients screened, but some input was skipped (see above)", file=sys.stderr)
        return EXIT_INPUT_SKIPPED
    return EXIT_OK
