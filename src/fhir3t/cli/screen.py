"""`fhir3t screen`: screen patients from files or a FHIR server against the study's criteria."""
from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fhir3t.cli.common import MAX_JOBS, day, load_definition, positive_seconds, progress_bar, report_problems, whole_number
from fhir3t.cli.extras import require
from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.cli.state_options import add_state_option
from fhir3t.criteria.model import STATUSES
from fhir3t.errors import EXIT_INPUT_FATAL, EXIT_INPUT_SKIPPED, EXIT_OK, Problems, UsageError
from fhir3t.fhirutil import server_label
from fhir3t.formats import FORMATS
from fhir3t.formats.summary import plural
from fhir3t.messages import Message, render

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fhir3t.criteria.model import ScreeningResult
    from fhir3t.formats import RunInfo
    from fhir3t.pipeline import Definition, Run
    from fhir3t.transport.http import FhirClient
    from fhir3t.transport.terminology import TerminologyServer


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
            "  fhir3t screen export/ --html worklist.html --csv worklist.csv\n"
            "  fhir3t screen export/ --format ndjson --out screening.ndjson\n"
            "  fhir3t screen export/ --patient MRN-100016      (one patient: see also fhir3t explain)\n"
            "  fhir3t screen --server https://ehr.example.org/fhir --push https://ehr.example.org/fhir --dry-run\n"
            "Messages on stderr name files, entries and elements, never patient data; values appear only with -vv.\n"
            "Exit codes: 0 all input screened; 3 some input skipped (see stderr); 4 no usable input;\n"
            "5 server error; 6 auth error; 7 push partly failed."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_screen_options(p)
    p.add_argument("--format", choices=sorted(FORMATS), default="table",
                   help="; ".join(f"{n}: {FORMATS[n].help}" for n in sorted(FORMATS)))
    p.add_argument("--out", metavar="FILE", help="write results here instead of stdout (atomically)")
    p.add_argument("--html", metavar="FILE", help="also write the worklist page: one self-contained HTML file "
                                                  "(sort, filter, per-patient detail; opens offline, prints)")
    p.add_argument("--csv", metavar="FILE", help="also write one CSV row per patient (UTF-8 with BOM, for Excel)")
    p.add_argument("--emit", metavar="BUNDLE", help="also write a FHIR transaction Bundle (ResearchStudy, ResearchSubjects, Provenance)")
    add_state_option(p, optional_value=True)
    p.add_argument("--store", choices=("auto", "memory", "disk"), default="auto",
                   help="where records are grouped by patient: auto (memory, moving to disk for big inputs), memory, disk")
    p.add_argument("--native", choices=("auto", "on", "off"), default="auto",
                   help="read NDJSON through DuckDB first, handing Python only the lines a criterion could want "
                        "(same results, faster on big exports; needs the native extra): auto (when installed, for "
                        "NDJSON over 64 MB), on, off")
    p.add_argument("--store-dir", metavar="DIR",
                   help="keep every resource read and each patient's result in DIR (created if needed): PATH... are "
                        "merged into it as a delta (newer versions replace, listed deletions delete) and only the "
                        "patients whose result can change are screened again; every patient's result is written. "
                        "PATH... may be left out (screen the store again, e.g. at a new --as-of)")
    p.add_argument("--jobs", type=whole_number(1, MAX_JOBS), metavar="N",
                   help=f"processes to screen files with, 1 to {MAX_JOBS} (default: all CPUs, up to 8, for inputs over "
                        "256 MB; else 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_server_options(p)
    p.add_argument("--no-check", action="store_true",
                   help="with --server: skip the quick server check before pulling (the CapabilityStatement and one "
                        "search; what it finds missing is said once on stderr; fhir3t check-server does the full one)")
    for action in p._actions:
        if action.dest == "patient":
            action.help = ("screen only this patient (repeatable): its FHIR id, Patient/ID, or an identifier value "
                           "such as the MRN; with --server, instead of finding candidates by diagnosis")
    p.set_defaults(run=run, screen_parser=p)


def auto_jobs(paths: list[str]) -> int:
    """All CPUs (up to 8) for inputs big enough to repay starting processes, else 1."""
    import os
    from pathlib import Path

    total = 0
    for p in map(Path, paths):
        files = p.rglob("*") if p.is_dir() else [p]
        for f in files:
            try:
                total += f.stat().st_size if f.is_file() else 0
            except OSError:
                continue
            if total > 256 * 1024 * 1024:
                return max(1, min(os.cpu_count() or 1, 8))
    return 1


def connect_terminology_option(args: argparse.Namespace, definition: Definition,
                               problems: Problems) -> tuple[Definition, TerminologyServer | None]:
    """With --terminology URL: a copy of the definition the server extends, and the server (else the
    definition as it is, and None)."""
    url = getattr(args, "terminology", None)
    if not url:
        return definition, None
    from fhir3t.transport.http import FhirClient, RetryPolicy
    from fhir3t.transport.terminology import DEFAULT_BUDGET, TerminologyServer

    if not url.startswith(("http://", "https://")):
        raise UsageError("--terminology: give an http:// or https:// FHIR base URL")
    budget = getattr(args, "terminology_budget", None) or DEFAULT_BUDGET
    # one retry, short pauses: the run's budget, not each lookup's patience, bounds what the server may cost
    client = FhirClient(url, timeout=getattr(args, "timeout", None) or 30.0,
                        retry=RetryPolicy(attempts=2, cap=2.0, max_retry_after=5.0))
    server = TerminologyServer(client, budget=budget)
    return definition.with_terminology_server(server, problems), server


def add_screen_options(p: argparse.ArgumentParser) -> None:
    """Inputs and dates, shared by `screen` and `explain`."""
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="Bundle/resource .json files, NDJSON files, or folders of them (or --server URL)")
    p.add_argument("--as-of", type=day, metavar="DATE",
                   help="screening date YYYY-MM-DD: evaluate as if today were this day; later data is ignored "
                        "(default: the date sample files say they were written for, else today, UTC; said on stderr)")
    p.add_argument("--d1", type=day, metavar="DATE", help="planned first-dose date YYYY-MM-DD (default: the --as-of date)")
    p.add_argument("--concept-map", action="append", default=[], metavar="FILE",
                   help="FHIR ConceptMap translating hospital-local codes to standard ones (repeatable)")
    p.add_argument("--criteria", metavar="FILE", help="criteria file to use instead of the study profile's")
    p.add_argument("--id-system", metavar="URI",
                   help="Patient.identifier system to show as the display id (default: the MRN: the identifier "
                        "typed MR, else one whose system names 'mrn', else the first)")
    p.add_argument("--show-names", action="store_true",
                   help="put patients' names in the worklist, CSV and JSON (off by default: the files may travel)")
    p.add_argument("--terminology", metavar="URL",
                   help="a FHIR terminology server: SNOMED CT concepts of the value sets are expanded to their "
                        "descendants ($expand, else $subsumes), local codes translated ($translate); cached for "
                        "the run; what it cannot answer stays unknown")
    p.add_argument("--terminology-budget", type=positive_seconds, metavar="SECONDS",
                   help="with --terminology: seconds the terminology server may cost the whole run (default 120); "
                        "after that, or after 5 failures in a row, it is not asked again and the codes left stay unknown")


def start_run(args: argparse.Namespace, definition: Definition, problems: Problems, command: str) -> Run:
    """The run of a command: its dates by the pipeline's policy (pipeline.run), said on stderr."""
    from fhir3t.pipeline import Run
    from fhir3t.pipeline.run import SAMPLE_AS_OF, SAMPLES, TODAY

    run = Run.start(definition, as_of=args.as_of, d1=args.d1, paths=args.paths or (), problems=problems,
                    names=bool(getattr(args, "show_names", False)), run_id=getattr(args, "run_id", ""))
    dates = run.dates
    if dates.as_of_from == SAMPLES:
        print(f"fhir3t {command}: as-of {dates.as_of}, the date the sample files in the input were written for "
              f"(their Bundle.meta.tag {SAMPLE_AS_OF}); give --as-of DATE to screen as of another day",
              file=sys.stderr)
    elif dates.as_of_from == TODAY:
        if dates.disagreeing:
            print(f"fhir3t {command}: note: the input's sample files were written for different days "
                  f"({', '.join(dates.disagreeing)}): screening as of today", file=sys.stderr)
        print(f"fhir3t {command}: as-of {dates.as_of} (today, UTC): give --as-of DATE to screen as of another day",
              file=sys.stderr)
    return run


def run_info(definition: Definition, run: Run, inputs: str, args: argparse.Namespace) -> RunInfo:
    from fhir3t.formats import RunInfo

    return RunInfo(run.as_of, run.d1, run.dates.as_of_from == "today", definition.study.short_title,
                   definition.label, definition.criteria.digest, inputs,
                   as_of_from=run.dates.as_of_from,
                   criteria_titles=tuple((c.id, c.kind, c.title) for c in definition.criteria.criteria),
                   id_system=args.id_system, names=bool(args.show_names), run_id=getattr(args, "run_id", ""),
                   generated_at=datetime.now(UTC).replace(microsecond=0).isoformat())


def inputs_label(paths: list[str]) -> str:
    from fhir3t.sources.files import expand_paths

    try:
        json_files, ndjson_files = expand_paths(paths, Problems())
    except Exception:  # the pipeline reports a missing path itself
        return ", ".join(paths)
    counts = [plural(len(json_files), "JSON file")] if json_files else []
    counts += [plural(len(ndjson_files), "NDJSON file")] if ndjson_files else []
    return f"{', '.join(paths)} ({', '.join(counts) or 'no files'})"


def outputs(args: argparse.Namespace):
    from fhir3t.pipeline import Output

    outs = [Output(args.format, args.out)]
    if args.html:
        outs.append(Output("html", args.html))
    if args.csv:
        outs.append(Output("csv", args.csv))
    targets = [o.path for o in outs if o.path not in (None, "-")]
    if len(targets) != len(set(targets)):
        raise UsageError("--out, --html and --csv name the same file")
    return outs


def precheck_server(client: FhirClient, definition: Definition, args: argparse.Namespace) -> None:
    """The cheap server checks, before pulling: one stderr line for each thing that will be missing."""
    from fhir3t.pipeline.servercheck import precheck
    from fhir3t.transport.urls import clean

    push_here = bool(args.push) and server_label(args.push).rstrip("/") == server_label(args.server).rstrip("/")
    found = precheck(client, definition, candidates=not (args.patient or args.group), push=push_here)
    for c in found:
        print(f"fhir3t screen: server check: {c.status}: {clean(c.title, 80)}: {clean(c.message, 600)}", file=sys.stderr)
    if found:
        print("fhir3t screen: server check: 'fhir3t check-server URL' tries it all (--no-check skips this)",
              file=sys.stderr)


STORE_SOME = Message("screen.store", "fhir3t screen: store: {lines} delta lines ({added} new, {replaced} replaced, "
                                    "{stale} older than held, {deleted} deleted); {screened} patients screened again, "
                                    "{kept} results kept")
STORE_EVERYONE = Message("screen.store-everyone", "fhir3t screen: store: {lines} delta lines ({added} new, {replaced} "
                                                  "replaced, {stale} older than held, {deleted} deleted); everyone "
                                                  "screened again ({screened} patients; because: {why})")


def screen_store(definition: Definition, run: Run, args: argparse.Namespace) -> Iterator[ScreeningResult]:
    """`--store-dir`: merge PATH... into the store, screen whom that can change, yield every result."""
    from fhir3t.pipeline.incremental import UpdateStats, screen_update
    from fhir3t.sources.statestore import PatientState

    state = PatientState(args.store_dir)
    stats = UpdateStats()
    try:
        yield from screen_update(definition, run, state, args.paths, stats)
        m = stats.merge
        msg = STORE_EVERYONE if stats.everyone else STORE_SOME
        print(render(msg(lines=m.lines, added=m.added, replaced=m.replaced, stale=m.stale, deleted=m.deleted,
                         screened=stats.screened, why=stats.why, kept=stats.kept)), file=sys.stderr)
    finally:
        state.close()


RECORDED = Message("screen.recorded", "fhir3t screen: kept in the state file {path} (run {run}): {n} results, "
                                     "{written} ResearchSubjects written")
KEPT = Message("screen.kept", "fhir3t screen: note: {subject} is {team} (the study team's): kept as it is; today's "
                              "screening says {screening}")


def record_state(args: argparse.Namespace, definition: Definition, run: Run, results: list) -> None:
    """--state: the run's results into the state file (the push policy keeps the team's statuses)."""
    from fhir3t.cli.state_options import state_path
    from fhir3t.emit.screening import subject_id
    from fhir3t.pipeline.enrolment import record_screening
    from fhir3t.state import StateFile

    state = StateFile(state_path(args, definition, "screen"))
    try:
        done = record_screening(definition, run, state, results, args.id_system)
    finally:
        state.close()
    print(render(RECORDED(path=str(state.path), run=done.run, n=len(results), written=done.written)), file=sys.stderr)
    for patient, team, screening in done.kept:  # named by the subject's id (a pseudonym), never the patient's
        print(render(KEPT(subject=f"ResearchSubject/{subject_id(definition.criteria, patient)}", team=team,
                          screening=screening)), file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from fhir3t.pipeline import FileInputs, ServerQuery, deliver, screen_files, screen_server, with_discovered_maps

    problems = Problems()
    if args.store_dir and args.server:
        raise UsageError("--store-dir reads files (a Bulk export's NDJSON), not --server: fhir3t export --store-dir "
                         "DIR merges an export into the store")
    if bool(args.paths) == bool(args.server) and not args.store_dir:
        raise UsageError("give PATH... to screen files, or --server URL to screen a FHIR server (not both)")
    if (args.since or args.group) and not args.server:
        raise UsageError("--group and --since need --server")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs needs a number of processes, 1 or more")
    if args.native == "on":
        require("native")
    outs = outputs(args)
    maps = with_discovered_maps(args.paths, args.concept_map, problems) if args.paths else list(args.concept_map)
    definition, terminology = connect_terminology_option(args, load_definition(args, maps), problems)
    run = start_run(args, definition, problems, "screen")
    as_of, d1 = run.as_of, run.d1
    if args.d1 and d1 < as_of:
        print(f"fhir3t screen: note: --d1 {d1} is before the as-of date {as_of}; 'before D1' windows end on "
              f"{d1}, while screening results up to {as_of} still count", file=sys.stderr)
    jobs = args.jobs or (1 if terminology is not None or args.server else auto_jobs(args.paths))
    client = None
    if args.server:
        client = make_client(args)
        if not args.no_check:
            precheck_server(client, definition, args)
        query = ServerQuery(tuple(args.patient), args.group, args.since, args.strategy,
                            on_candidates=None if args.no_progress else lambda n: print(
                                f"fhir3t screen: {plural(n, 'candidate patient')} on the server", file=sys.stderr))
        stream = screen_server(definition, run, client, query)
        inputs = server_label(args.server)
    elif args.store_dir:
        stream = screen_store(definition, run, args)
        inputs = inputs_label([args.store_dir, *args.paths])
    else:
        stream = screen_files(definition, run, FileInputs(tuple(args.paths), store=args.store, native=args.native,
                                                          jobs=jobs if terminology is None else 1,
                                                          patients=tuple(args.patient)))
        inputs = inputs_label(args.paths)
    info = run_info(definition, run, inputs, args)
    label = "pulled and screened {n} patients" if args.server else "screened {n} patients"
    try:
        with progress_bar(not args.no_progress, label) as tick:
            run_ = deliver(tick(stream), definition, info, outs, stdout=sys.stdout,
                           keep=bool(args.push) or args.state is not None, emit=args.emit)
    finally:
        if client is not None:
            client.close()
        if terminology is not None:
            from fhir3t.pipeline.terminology import terminology_summary

            terminology_summary(terminology, problems)
            terminology.client.close()
    args.summary = {"patients": run_.total, **{s: run_.counts.get(s, 0) for s in STATUSES}}
    report_problems(problems)
    for n in run_.notes:
        print(f"fhir3t: note: {n}", file=sys.stderr)
    hint = run_.stale.hint(as_of)
    if hint:
        print(f"fhir3t screen: note: {hint}", file=sys.stderr)
    if args.state is not None and run_.results:
        record_state(args, definition, run, run_.results)
    if args.push and run_.results:
        from fhir3t.cli.push import push_bundle

        assert run_.bundle is not None
        # results may be on stdout: a dry run shows the Bundle on stderr
        code = push_bundle(args, run_.bundle, args.push, show=sys.stderr if not args.out else None)
        if code:
            return code
    if not run_.total:
        if args.patient and not args.server:  # the ids themselves are not echoed: an MRN is patient data
            print(f"fhir3t screen: no patient given with --patient ({plural(len(args.patient), 'id')}) is in the "
                  "input: give the FHIR id, Patient/ID or an identifier value as written", file=sys.stderr)
        else:
            print("fhir3t screen: no patients found in the input", file=sys.stderr)
        return EXIT_INPUT_FATAL
    if problems.any_skipped:
        print(f"fhir3t screen: {plural(run_.total, 'patient')} screened, but some input was skipped (see above)",
              file=sys.stderr)
        return EXIT_INPUT_SKIPPED
    return EXIT_OK
