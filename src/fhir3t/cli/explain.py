"""`fhir3t explain PATIENT PATH...`: every criterion of one patient, with result, reason and evidence.

PATIENT is the FHIR id, `Patient/ID`, the urn:uuid of an id-less Patient, or an identifier value such
as the MRN (or `system|value`). The same screening as `fhir3t screen` (same options), shown for a
person at a terminal: every string from the input is escaped before rich renders it.
"""
from __future__ import annotations

import argparse
import sys
from typing import IO

from fhir3t.cli.common import load_definition, progress_bar, report_problems
from fhir3t.cli.screen import PROGRESS, add_screen_options, connect_terminology_option, inputs_label, run_info, start_run
from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.cli.words import say
from fhir3t.criteria.model import ScreeningResult
from fhir3t.enrolment import Status
from fhir3t.errors import EXIT_INPUT_FATAL, EXIT_INPUT_SKIPPED, EXIT_OK, Problems, UsageError
from fhir3t.fhirutil import server_label
from fhir3t.formats import RunInfo
from fhir3t.formats.summary import actions, effect, effect_word, result_word, stale_on, status_word
from fhir3t.formats.table import run_title, safe
from fhir3t.messages import later, table
from fhir3t.messages.cells import wrap

_STYLE = {"passes": "green", "fails": "red", "unknown": "yellow"}
_MARK = {"passes": "+", "fails": "x", "unknown": "?"}

W = table("explain", {
    "help": "all criteria of one patient: result, reason and evidence",
    "description": "Screen the input as `fhir3t screen` does and show one patient's criteria, each with its result, "
                   "the reason and the resources that decided it, and what would settle the unknowns.",
    "epilog": "Examples:\n"
              "  fhir3t explain p03 samples/screening/ --as-of 2026-11-16\n"
              "  fhir3t explain MRN-100016 samples/screening/\n"
              "  fhir3t --lang zh-CN explain p03 samples/screening/\n"
              "  fhir3t explain p03 --server https://ehr.example.org/fhir\n"
              "Exit codes: 0 shown; 3 shown, but some input was skipped; 4 patient not in the input; 5 server error; "
              "6 auth error.",
    "h.patient": "FHIR id, Patient/ID, urn:uuid, or identifier value (MRN)",
    "h.format": "table (default) or json: the result object",
    "h.no-progress": "no progress bar on stderr",
    "who-name": "{name}, {id}",
    "who-ref": "{id} ({reference})",
    "head": "{who}: {status}",
    "criterion": "{id} {title}{review}: {result} ({effect})",
    "review": " (review)",
    "stale": "the latest result, on {day}, is older than the window",
    "evidence": "evidence: {references}",
    "not-met": "not met: {ids}",
    "to-resolve": "to resolve:",
    "todo": "{id}: {actions}",
    "note": "note: {note}",
    "not-found": "the patient given is not in the input: give its FHIR id, Patient/ID, urn:uuid or an identifier value "
                 "as written",
    "paths-or-server": "give PATH... to explain a patient in files, or --server URL (not both)",
    "skipped": "some input was skipped (see above); it may concern this patient",
})


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help=later(W["help"]()),
        description=later(W["description"]()),
        epilog=later(W["epilog"]()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("patient_id", metavar="PATIENT", help=later(W["h.patient"]()))
    add_screen_options(p)
    p.add_argument("--format", choices=("table", "json"), default="table", help=later(W["h.format"]()))
    p.add_argument("--no-progress", action="store_true", help=later(W["h.no-progress"]()))
    add_server_options(p, pull=False, push=False)
    p.set_defaults(run=run, patient=[], since=None, group=None, strategy=None)


def indented(console, text: str, indent: int, style: str | None = None) -> None:
    """Text wrapped to the console with a hanging indent (no trailing padding), escaped for rich. Wrapped by
    display cells (a Chinese character is two), at spaces, and between Chinese characters (messages.cells)."""
    width = max(20, console.width) - indent
    for line in wrap(text, width):
        shown = " " * indent + line
        console.print(f"[{style}]{safe(shown)}[/]" if style else safe(shown), soft_wrap=True)


def show(r: ScreeningResult, info: RunInfo, out: IO[str]) -> None:
    """One block per criterion: mark, id, title and result on a line, then reason and evidence indented (in the
    run's language; colours mark the whole line, so a translated sentence is never cut into styled pieces)."""
    from rich.console import Console

    tty = out.isatty()
    console = Console(file=out, width=None if tty else 80, no_color=not tty, highlight=False, emoji=False)
    lang, say_ = info.lang, info.say
    did = r.display_id(info.id_system)
    who = did if did == r.patient.removeprefix("Patient/") else say_(W["who-ref"](id=did, reference=r.patient))
    if r.name is not None:
        who = say_(W["who-name"](name=r.name, id=who))
    colours: dict[str, str] = {Status.ELIGIBLE: "green", Status.INELIGIBLE: "red", Status.CANDIDATE: "yellow"}
    indented(console, say_(W["head"](who=who, status=status_word(r.status, lang))), 0, f"bold {colours[r.status]}")
    indented(console, run_title(info), 0)
    sep = "；" if lang != "en" else "; "
    for c in r.criteria:
        eff = effect(c)
        line = W["criterion"](id=c.id, title=info.title_of(c.id), review=W["review"]() if c.requires_review else None,
                              result=result_word(c.result, lang), effect=effect_word(eff, lang))
        first, *rest = wrap(f"{_MARK[eff]} {say_(line)}", max(20, console.width))
        console.print(f"[{_STYLE[eff]}]{_MARK[eff]}[/]{safe(first[1:])}", soft_wrap=True)
        for more in rest:
            console.print(safe(more), soft_wrap=True)
        indented(console, c.reason_in(lang), 4)
        stale = stale_on(c)
        if stale:
            indented(console, say_(W["stale"](day=stale)), 4, "yellow")
        if c.evidence:
            indented(console, say_(W["evidence"](references=", ".join(c.evidence))), 4, "dim")
    if r.failing:
        indented(console, say_(W["not-met"](ids=", ".join(r.failing))), 0, "bold")
    todo = [(c.id, actions(c, lang) or [c.reason_in(lang)]) for c in r.criteria if c.id in r.unknown]
    if todo:
        indented(console, say_(W["to-resolve"]()), 0, "bold")
        for cid, acts in todo:
            indented(console, say_(W["todo"](id=cid, actions=sep.join(acts))), 2)
    for note in r.remarks:
        indented(console, say_(W["note"](note=note)), 0)


def run(args: argparse.Namespace) -> int:
    import orjson

    from fhir3t.pipeline import FileInputs, ServerQuery, screen_files, screen_server, with_discovered_maps

    if bool(args.paths) == bool(args.server):
        raise UsageError(W["paths-or-server"]())
    problems = Problems()
    maps = with_discovered_maps(args.paths, args.concept_map, problems) if args.paths else list(args.concept_map)
    definition, terminology = connect_terminology_option(args, load_definition(args, maps), problems)
    run_ = start_run(args, definition, problems, "explain")
    wanted = (args.patient_id,)
    client = None
    try:
        if args.server:
            client = make_client(args)
            stream = screen_server(definition, run_, client, ServerQuery(patients=wanted))
            inputs = server_label(args.server)
        else:
            stream = screen_files(definition, run_, FileInputs(tuple(args.paths), patients=wanted))
            inputs = inputs_label(args.paths)
        with progress_bar(not args.no_progress, PROGRESS, args) as tick:
            results = [r for r in tick(stream) if args.server or r.matches(args.patient_id)]
    finally:
        if client is not None:
            client.close()
        if terminology is not None:
            terminology.client.close()
    info = run_info(definition, run_, inputs, args)
    report_problems(problems, args=args)
    if not results:  # the id itself is not echoed: an MRN is patient data
        say(args, W["not-found"]())
        return EXIT_INPUT_FATAL
    if args.format == "json":
        sys.stdout.write(orjson.dumps([r.to_dict(args.id_system, args.lang) for r in results],
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for n, r in enumerate(results):
            if n:
                print(file=sys.stdout)
            show(r, info, sys.stdout)
    args.summary = {"patients": len(results)}
    if problems.any_skipped:
        say(args, W["skipped"]())
        return EXIT_INPUT_SKIPPED
    return EXIT_OK
