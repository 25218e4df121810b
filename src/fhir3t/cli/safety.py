"""`fhir3t safety`: find AEs of enrolled subjects after D1; table or JSON, optionally a FHIR Bundle."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, date
from typing import IO, TYPE_CHECKING

import orjson

from fhir3t.cli.common import day, load_definition, output, report_problems
from fhir3t.cli.words import say
from fhir3t.errors import EXIT_INPUT_FATAL, EXIT_INPUT_SKIPPED, EXIT_OK, InputError, Problems, UsageError
from fhir3t.messages import Message, Text, Words, later, table

if TYPE_CHECKING:
    from fhir3t.pipeline import Definition, Run

EPILOG_CODES = Message("help.safety.exit-codes",
                       "Exit codes: 0 ok; 2 usage; 3 some input skipped (see stderr); 4 no subjects / no usable input.")
EPILOG = Message("help.safety.epilog", "Examples:\n"
                 "  fhir3t safety samples/safety/ --as-of 2026-11-16\n"
                 "  fhir3t safety export/ --format json --emit adverse-events.json\n"
                 "{codes}")


def add_input_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `safety` and `report`."""
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help=later(Message("help.safety.paths", "Bundle/resource .json files, NDJSON files, or folders of them (or --server "
                                                           "URL)")()))
    p.add_argument("--as-of", type=day, metavar="DATE",
                   help=later(Message("help.safety.as-of",
                                      "analyse as if today were DATE (YYYY-MM-DD); later data is ignored (default: today "
                                      "in the site's time zone, said on stderr)")()))
    p.add_argument("--d1", action="append", default=[], metavar="PATIENT=DATE",
                   help=later(Message("help.safety.d1",
                                      "first-dose day of a patient (id or Patient/id), overriding its ResearchSubject (repeatable)")()))
    p.add_argument("--d1-csv", metavar="FILE", help=later(Message("help.safety.d1-csv", "CSV with columns patient,d1 (same meaning as "
                                                                                        "--d1)")()))
    p.add_argument("--concept-map", action="append", default=[], metavar="FILE",
                   help=later(Message("help.safety.concept-map", "FHIR ConceptMap translating hospital-local codes (repeatable)")()))
    p.add_argument("--state", metavar="FILE",
                   help=later(Message("help.safety.state",
                                      "with PATH...: the subjects (ResearchSubjects with their D1 and subject number) come "
                                      "from this state file of the enrolment workflow (fhir3t subject), besides any in the "
                                      "files")()))


def analyse_args(args: argparse.Namespace, problems: Problems):
    """Run the safety analysis for parsed options: (as_of, outcomes, definition)."""
    from fhir3t.api import with_discovered_maps
    from fhir3t.dates import zone_name
    from fhir3t.pipeline import FileInputs, Run
    from fhir3t.pipeline.run import today_in
    from fhir3t.pipeline.safety import analyse_files
    from fhir3t.safety import parse_d1_options, read_d1_csv

    server = getattr(args, "server", None)
    if bool(args.paths) == bool(server):
        raise UsageError(MESSAGES["paths-or-server"]())
    d1 = read_d1_csv(args.d1_csv) if args.d1_csv else {}
    d1.update(parse_d1_options(args.d1))
    tz = getattr(args, "tz", UTC)
    as_of: date = args.as_of or today_in(tz, getattr(args, "clock", None))
    if args.as_of is None:
        say(args, MESSAGES["as-of-today"](as_of=str(as_of), zone=zone_name(tz)),
            command=getattr(args, "command", None) or "safety")
    maps = with_discovered_maps(args.paths, args.concept_map, problems) if args.paths else list(args.concept_map)
    definition = load_definition(args, maps)
    run = Run.start(definition, as_of=as_of, problems=problems)
    if server:
        return as_of, _pull(args, definition, run, d1), definition
    documents = state_documents(args.state) if getattr(args, "state", None) else ()
    return as_of, analyse_files(definition, run, FileInputs(tuple(args.paths), documents=documents), d1), definition


NO_STATE = Message("safety.no-state", "{path}: no such state file")


def state_documents(path: str) -> tuple[tuple[str, object], ...]:
    """The state file's ResearchStudy and ResearchSubjects, as a document the safety analysis reads with the files."""
    from pathlib import Path

    from fhir3t.state import StateFile

    if not Path(path).expanduser().is_file():
        raise InputError(NO_STATE(path=path))
    state = StateFile(path)
    try:
        resources = state.resources("ResearchStudy") + state.resources("ResearchSubject")
    finally:
        state.close()
    return ((f"{path} (state)", {"resourceType": "Bundle", "type": "collection",
                                 "entry": [{"resource": r} for r in resources]}),)


def _pull(args: argparse.Namespace, definition: Definition, run: Run, d1: dict) -> list:
    """Subjects of the study on the server (or --patient ids), pulled with their recorded AdverseEvents."""
    from fhir3t.cli.server_options import make_client
    from fhir3t.pipeline.safety import analyse_server

    client = make_client(args)
    try:
        outcomes, _pull_info = analyse_server(definition, run, client, d1, list(getattr(args, "patient", [])))
        return outcomes
    finally:
        client.close()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "safety",
        help=later(Message("help.safety", "find adverse events of enrolled subjects (CTCAE v5.0 labs, new conditions, deaths)")()),
        description=(
            later(Message("help.safety.description",
                          "Find treatment-emergent adverse events after D1 for subjects of the study (ResearchSubject on-study / follow-up "
                          "/ off-study, period.start = D1, or --d1): CTCAE v5.0-graded lab episodes, new Conditions with causality from "
                          "known-reaction value sets, deaths, and the AdverseEvents investigators recorded (their causality assessment "
                          "overrides fhir3t's).")())
        ),
        epilog=later(EPILOG(codes=EPILOG_CODES())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_options(p)
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help=later(Message("help.safety.format", "table (default) or json: an array with one object per AE")()))
    p.add_argument("--out", metavar="FILE", help=later(Message("help.safety.out", "write the table/JSON here instead of stdout")()))
    p.add_argument("--emit", metavar="BUNDLE", help=later(Message("help.safety.emit",
                                                                  "also write a FHIR transaction Bundle of AdverseEvents (PUT, stable "
                                                                  "ids)")()))
    from fhir3t.cli.server_options import add_server_options

    add_server_options(p, pull=False, push=True)
    for action in p._actions:  # the shared option's help speaks of screening results
        if action.dest == "push":
            action.help = later(Message("help.safety.push", "send the AdverseEvents (PUT to ids derived from patient + event, so "
                                        "re-running updates them) to this server")())
        elif action.dest == "dry_run":
            action.help = later(Message("help.safety.dry-run", "with --push: print the Bundle that would be sent, send nothing")())
    p.add_argument("--patient", action="append", default=[], metavar="ID",
                   help=later(Message("help.safety.patient",
                                      "with --server: analyse these patients (repeatable) instead of the study's ResearchSubjects")()))
    p.set_defaults(run=run)


#: What a person reads in `fhir3t safety`'s table and on stderr
MESSAGES = table("cli.safety", {
    "table.title": "{study} adverse events",
    "col.subject": "subject",
    "col.ae": "AE (CTCAE v5.0)",
    "col.grade": "grade",
    "col.onset": "onset",
    "col.end": "end",
    "col.outcome": "outcome",
    "col.seriousness": "seriousness",
    "col.related": "related",
    "col.suspects": "suspected drugs",
    "col.flags": "flags",
    "related.yes": "yes",
    "related.no": "no",
    "related.pending": "no (pending)",
    "flag.pending": "causality to assess",
    "flag.susar": "SUSAR",
    "flag.aesi": "AESI",
    "summary": "{subjects} subjects on study; {aes} AEs, {related} treatment-related ({conservative} counting "
               "unassessable / conditional / not yet assessed causality as related); {pending} serious AE(s) pending "
               "the investigator's causality assessment",
    "paths-or-server": "give PATH... to analyse files, or --server URL to analyse a FHIR server (not both)",
    "as-of-today": "as-of {as_of} (today, {zone}): give --as-of DATE to analyse as of another day",
    "cannot-write": "cannot write {path}: {error}",
    "skipped": "{n} subjects analysed, but some input was skipped (see above)",
    "no-subjects": "no subjects of {study} with a D1 found in the input (ResearchSubject on study with period.start, or "
                   "--d1 PATIENT=DATE)",
})


def _table(findings: Sequence, labels: dict[str, str], n_subjects: int, fh: IO[str], study: str, lang: str = "en",
           names: Mapping[str, Text] | None = None) -> None:
    """The listing in `lang`: terms and drugs by the names the safety data give them there (`names_of`)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from fhir3t.report.endpoints import causality_short
    from fhir3t.report.words import name_in, outcome_in, seriousness_in, term_in

    m = Words(MESSAGES, lang)
    comma = ", " if lang == "en" else "、"
    console = Console(file=fh, width=None if fh.isatty() else 160, no_color=not fh.isatty(), highlight=False)
    t = Table(title=escape(m("table.title", study=study)), title_justify="left")
    for col in ("subject", "ae", "grade", "onset", "end", "outcome", "seriousness", "related", "suspects", "flags"):
        t.add_column(escape(m(f"col.{col}")), no_wrap=col in ("subject", "onset", "end"))
    for f in findings:
        short = causality_short(f)
        suspects = comma.join(f"{name_in(names, d, lang)} {c}" for d, c in short.items() if c.rstrip("*") in ("C", "PL", "P")) or "-"
        related = m("related.yes") if f.treatment_related else m("related.pending") if f.needs_assessment else m("related.no")
        flags = [m("flag.pending")] if f.needs_assessment else []
        flags += [m("flag.susar")] if f.susar else []
        flags += [m("flag.aesi")] if f.aesi else []
        # data can hold rich markup ("[bold]..."): every cell is escaped
        t.add_row(*(escape(c) for c in (labels.get(f.patient, f.patient), term_in(f.table_term, lang, names),
                                       "-" if f.grade is None else str(f.grade), f.onset.isoformat(),
                                       f.end.isoformat() if f.end else "-", outcome_in(f.outcome, lang),
                                       seriousness_in(f.seriousness, lang), related, suspects, comma.join(flags) or "-")))
    console.print(t)
    console.print(escape(m("summary", subjects=n_subjects, aes=len(findings),
                           related=sum(f.treatment_related for f in findings),
                           conservative=sum(f.conservative_related for f in findings),
                           pending=sum(f.needs_assessment for f in findings))))


def run(args: argparse.Namespace) -> int:
    problems = Problems()
    _as_of, outcomes, definition = analyse_args(args, problems)
    outcomes = sorted(outcomes, key=lambda o: (o.subject.label, o.subject.patient))  # by subject number
    findings = [f for o in outcomes for f in o.findings]
    labels = {o.subject.patient: o.subject.label for o in outcomes}
    try:
        with output(args.out) as fh:
            if args.format == "json":
                rows = [{**f.to_dict(), "subject": labels.get(f.patient, f.patient)} for f in findings]
                fh.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
            else:
                from fhir3t.report.words import names_of

                _table(findings, labels, len(outcomes), fh, definition.safety.config.study_label, args.lang,
                       names_of(definition.safety.config))
    except OSError as exc:
        raise UsageError(MESSAGES["cannot-write"](path=args.out, error=exc.strerror)) from None
    report_problems(problems, args=args)
    push = getattr(args, "push", None)
    if args.emit or push:
        from fhir3t.emit.adverse_event import safety_bundle
        from fhir3t.emit.screening import research_study
        from fhir3t.sinks import write_json

        bundle, notes = safety_bundle(findings, research_study(definition.criteria), definition.safety.config.digest)
        for n in notes:
            say(args, n, tag="note", command="")
        if args.emit:
            try:
                write_json(bundle, args.emit)
            except OSError as exc:
                raise UsageError(MESSAGES["cannot-write"](path=args.emit, error=exc.strerror)) from None
        if push:
            from fhir3t.cli.push import push_bundle

            code = push_bundle(args, bundle, push, show=sys.stderr if not args.out else None)
            if code:
                return code
    if not outcomes:
        say(args, MESSAGES["no-subjects"](study=definition.safety.config.study_label))
        return EXIT_INPUT_FATAL
    if problems.any_skipped:
        say(args, MESSAGES["skipped"](n=len(outcomes)))
        return EXIT_INPUT_SKIPPED
    return EXIT_OK
