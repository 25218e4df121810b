"""`fhir3t screen`: screen patients from files against the trial's criteria."""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import IO

import orjson

from fhir3t.cli.common import day, output, progress_bar, report_problems
from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.criteria.model import STATUSES, ScreeningResult
from fhir3t.errors import EXIT_INPUT_FATAL, EXIT_INPUT_SKIPPED, EXIT_OK, Problems, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "screen",
        help="screen patients against the 22 criteria of NCT06438679",
        description=(
            "Read FHIR Bundles (collection, transaction, batch, searchset), single resources, or "
            "Bulk Data NDJSON, and give every patient a screening status (eligible / ineligible / "
            "candidate) with met / not-met / unknown, evidence and a reason for each criterion."
        ),
        epilog=(
            "Examples:\n"
            "  fhir3t screen samples/ --as-of 2026-11-16 --concept-map samples/conceptmaps/hospital-local.json\n"
            "  fhir3t screen export/ --format json --out screening.json\n"
            "  fhir3t screen --server https://ehr.example.org/fhir --push https://ehr.example.org/fhir\n"
            "Exit codes: 0 all input screened; 3 some input skipped (see stderr); 4 no usable input;\n"
            "5 server error; 6 auth error; 7 push partly failed."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="Bundle/resource .json files, NDJSON files, or folders of them (or --server URL)")
    p.add_argument("--as-of", type=day, metavar="DATE",
                   help="screening date YYYY-MM-DD: evaluate as if today were this day; later data is ignored (default: today, UTC)")
    p.add_argument("--d1", type=day, metavar="DATE", help="planned first-dose date YYYY-MM-DD (default: the --as-of date)")
    p.add_argument("--concept-map", action="append", default=[], metavar="FILE",
                   help="FHIR ConceptMap translating hospital-local codes to standard ones (repeatable)")
    p.add_argument("--criteria", metavar="FILE", help="criteria file to use instead of profiles/criteria/nct06438679.json")
    p.add_argument("--format", choices=("table", "json", "ndjson"), default="table",
                   help="table (default): one row per patient; json: array; ndjson: one object per line")
    p.add_argument("--out", metavar="FILE", help="write results here instead of stdout")
    p.add_argument("--emit", metavar="BUNDLE", help="also write a FHIR transaction Bundle (ResearchStudy, ResearchSubjects, Provenance)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="screen Bundle files on N processes (default: all CPUs for 200+ files, else 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_server_options(p)
    p.set_defaults(run=run, screen_parser=p)


def _write_json(results: Iterable[ScreeningResult], fh: IO[str], ndjson: bool) -> None:
    first = True
    if not ndjson:
        fh.write("[")
    for r in results:
        text = orjson.dumps(r.to_dict(), option=0 if ndjson else orjson.OPT_INDENT_2).decode()
        if ndjson:
            fh.write(text + "\n")
        else:
            fh.write(("\n" if first else ",\n") + text)
        first = False
    if not ndjson:
        fh.write("\n]\n" if not first else "]\n")


def _write_table(results: list[ScreeningResult], fh: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=fh, width=None if fh.isatty() else 140, no_color=not fh.isatty(), highlight=False)
    table = Table(title="NCT06438679 screening", title_justify="left")
    table.add_column("patient", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("failing criteria")
    table.add_column("unknown (to resolve)")
    style = {"eligible": "green", "ineligible": "red", "candidate": "yellow"}
    for r in results:
        table.add_row(r.patient, f"[{style[r.status]}]{r.status}[/]", ", ".join(r.failing) or "-", ", ".join(r.unknown) or "-")
    console.print(table)
    for r in results:
        for note in r.notes:
            console.print(f"[bold]note[/] {r.patient}: {note}")
    counts = Counter(r.status for r in results)
    console.print(f"{len(results)} patients: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES))


def _pull(args: argparse.Namespace, engine, problems: Problems):
    """Screen from a FHIR server: RestSource records through the same engine as files."""
    from fhir3t.dates import today_utc
    from fhir3t.sources.grouping import SharedIndex
    from fhir3t.sources.rest import RestSource

    client = make_client(args)
    shared = SharedIndex()
    source = RestSource(client, engine.tx, sorted(engine.screener.types), problems, shared,
                        patients=args.patient, group=args.group, since=args.since, strategy=args.strategy,
                        on_candidates=lambda n: print(f"fhir3t screen: {n} candidate patients on the server",
                                                      file=sys.stderr) if not args.no_progress else None)
    as_of = args.as_of or today_utc()
    return engine.screen_raw(source, as_of, args.d1 or as_of, shared), client


def _jobs(args: argparse.Namespace) -> int:
    """--jobs, or all CPUs when there are enough Bundle files to repay starting processes."""
    if args.jobs is not None:
        if args.jobs < 1:
            raise UsageError("--jobs needs a number of processes, 1 or more")
        return args.jobs
    import os

    from fhir3t.sources.files import expand_paths

    json_files, _ = expand_paths(args.paths)
    return min(os.cpu_count() or 1, 8) if len(json_files) >= 200 else 1


def run(args: argparse.Namespace) -> int:
    from fhir3t.api import Engine, screen, with_discovered_maps

    problems = Problems()
    if bool(args.paths) == bool(args.server):  # argparse's own usage error (exit 2), as for other bad options
        args.screen_parser.error("give PATH... to screen files, or --server URL to screen a FHIR server (not both)")
    if (args.patient or args.since or args.group) and not args.server:
        raise UsageError("--patient, --group and --since need --server")
    if args.d1 and args.as_of and args.d1 < args.as_of:
        print(f"fhir3t screen: note: --d1 {args.d1} is before --as-of {args.as_of}; 'before D1' windows end on "
              f"{args.d1}, while screening results up to {args.as_of} still count", file=sys.stderr)
    maps = with_discovered_maps(args.paths, args.concept_map, problems) if args.paths else list(args.concept_map)
    engine = Engine.load(maps, args.criteria, problems)
    counts: Counter[str] = Counter()
    kept: list[ScreeningResult] | None = [] if (args.emit or args.push) else None
    client = None
    if args.server:
        stream, client = _pull(args, engine, problems)
    else:
        jobs = _jobs(args)
        stream = screen(args.paths, as_of=args.as_of, d1=args.d1, engine=engine if jobs == 1 else None,
                        concept_maps=maps, criteria_file=args.criteria, problems=problems, jobs=jobs,
                        discover_maps=False)

    def tally(it: Iterable[ScreeningResult]) -> Iterator[ScreeningResult]:
        for r in it:
            counts[r.status] += 1
            if kept is not None:
                kept.append(r)
            yield r

    label = "pulled and screened {n} patients" if args.server else "screened {n} patients"
    try:
        with progress_bar(not args.no_progress, label) as tick:
            results = tally(tick(stream))
            try:
                with output(args.out) as fh:
                    if args.format == "table":
                        _write_table(list(results), fh)
                    else:
                        _write_json(results, fh, args.format == "ndjson")
            except OSError as exc:
                raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
    finally:
        if client is not None:
            client.close()
    report_problems(problems)
    if args.emit and kept is not None:
        from fhir3t.emit import write_screening_bundle

        try:
            write_screening_bundle(kept, engine, args.emit)
        except OSError as exc:
            raise UsageError(f"cannot write {args.emit}: {exc.strerror}") from None
    if args.push and kept:
        from fhir3t.cli.push import push_bundle
        from fhir3t.emit import screening_bundle

        bundle, notes = screening_bundle(kept, engine.criteria)
        for n in notes:
            print(f"fhir3t: note: {n}", file=sys.stderr)
        # results may be on stdout: a dry run shows the Bundle on stderr
        code = push_bundle(args, bundle, args.push, show=sys.stderr if not args.out else None)
        if code:
            return code
    if not counts:
        print("fhir3t screen: no patients found in the input", file=sys.stderr)
        return EXIT_INPUT_FATAL
    if problems.any_skipped:
        print(f"fhir3t screen: {sum(counts.values())} patients screened, but some input was skipped (see above)",
              file=sys.stderr)
        return EXIT_INPUT_SKIPPED
    return EXIT_OK
