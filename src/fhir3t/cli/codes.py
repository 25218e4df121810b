"""`fhir3t codes PATH...`: the codes an input set uses and what fhir3t makes of each (for a ConceptMap)."""
from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from typing import IO, TYPE_CHECKING

import orjson

from fhir3t.cli.common import load_definition, report_problems
from fhir3t.cli.words import say
from fhir3t.errors import EXIT_INPUT_FATAL, EXIT_OK, Problems, UsageError
from fhir3t.formats.table import safe
from fhir3t.messages import Message, Words, later, table
from fhir3t.pipeline.codes import MATCHED, OTHER, CodeRow

if TYPE_CHECKING:
    from fhir3t.pipeline import Definition


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "codes",
        help=later(Message("help.codes", "the codes in the input, which value set each matches, and the ones to map (for a ConceptMap)")()),
        description=(
            later(Message("help.codes.description",
                          "Read the input (Bundles, NDJSON, folders) and list, per resource type the criteria read, every coding (system, "
                          "code) with how many resources carry it, its display, the value sets it matches, and why an unmatched one "
                          "matters: a code system fhir3t does not know (write a ConceptMap for it), a display that names a criterion's "
                          "concept (map or recode it), a malformed code. Counts and terminology only: no patient identifiers, no free "
                          "text, no values.")())),
        epilog=(later(Message("help.codes.epilog",
                              "Examples:\n"
                              "  fhir3t codes export/                      # what to map, most relevant first\n"
                              "  fhir3t codes export/ --all --format csv --out codes.csv\n"
                              "  fhir3t codes export/ --conceptmap-draft local-codes.draft.json   # review it, then:\n"
                              "  fhir3t screen export/ --concept-map local-codes.draft.json\n"
                              "Exit codes: 0 listed; 2 usage; 4 no usable input.")())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help=later(Message("help.codes.paths",
                                                                          "Bundle/resource .json files, NDJSON files, or folders")()))
    p.add_argument("--concept-map", action="append", default=[], metavar="FILE",
                   help=later(Message("help.codes.concept-map", "ConceptMaps already written: their codes count as read (repeatable)")()))
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help=later(Message("help.codes.format",
                                                                                                     "table (default), csv or json")()))
    p.add_argument("--out", metavar="FILE", help=later(Message("help.codes.out", "write here instead of stdout")()))
    p.add_argument("--all", action="store_true", help=later(Message("help.codes.all", "also list codes that matter to no criterion")()))
    p.add_argument("--conceptmap-draft", metavar="FILE",
                   help=later(Message("help.codes.conceptmap-draft",
                                      "also write a FHIR ConceptMap draft of every unmapped local code: counts, candidate targets with a "
                                      "confidence and no equivalence; review it (set equivalence, status active), then give it to "
                                      "--concept-map")()))
    p.set_defaults(run=run)


MESSAGES = table("cli.codes", {
    "draft-written": "wrote a ConceptMap draft of {n} unmapped local code(s), {proposed} with candidate targets, to {path}: "
                     "review each target (set its equivalence or delete it) before giving it to --concept-map",
    "draft-none": "no unmapped local codes: no ConceptMap draft written",
    "title": "codes in the input",
    "col.type": "type",
    "col.system": "system",
    "col.code": "code",
    "col.n": "n",
    "col.display": "display",
    "col.what": "what fhir3t makes of it",
    "in": "in {valuesets}",
    "named": "{verdict}: {names}",
    "no-system": "(no system)",
    "count": "{n} {verdict}",
    "hidden": "{counts}; {hidden} other codes not shown (--all)",
    "cannot-write": "cannot write {path}: {error}",
    "none": "no coded resources of the types the criteria read were found",
})


def _table(rows: list[CodeRow], out: IO[str], hidden: int, lang: str = "en") -> None:
    from rich.console import Console
    from rich.table import Table

    w = Words(MESSAGES, lang)
    console = Console(file=out, width=None if out.isatty() else 120, no_color=not out.isatty(), highlight=False)
    t = Table(title=safe(w("title")), title_justify="left")
    for col in ("type", "system", "code", "n", "display", "what"):
        t.add_column(safe(w(f"col.{col}")), overflow="fold")
    for r in rows:  # a verdict is a code (matched, unknown system, ...): as written
        what = w("in", valuesets=", ".join(r.valuesets)) if r.verdict == MATCHED else \
            w("named", verdict=r.verdict, names=", ".join(r.named)) if r.named else r.verdict
        t.add_row(*(safe(x) for x in (r.type, r.system_name or w("no-system"), r.code, str(r.count), r.display, what)))
    console.print(t)
    verdicts = Counter(r.verdict for r in rows)
    counts = ", ".join(w("count", n=n, verdict=v) for v, n in verdicts.most_common())
    console.print(safe(w("hidden", counts=counts, hidden=hidden) if hidden else counts))


def _write_draft(args: argparse.Namespace, rows: list[CodeRow], definition: Definition) -> None:
    from fhir3t.pipeline.conceptmap_draft import draft
    from fhir3t.sinks import atomic_text

    cm = draft(rows, definition, ", ".join(str(p) for p in args.paths))
    codes = {(g["source"], e["code"]) for g in cm["group"] for e in g["element"]}
    if not codes:
        say(args, MESSAGES["draft-none"]())
        return
    proposed = {(g["source"], e["code"]) for g in cm["group"] for e in g["element"] if e.get("target")}
    try:
        with atomic_text(args.conceptmap_draft) as fh:
            fh.write(orjson.dumps(cm, option=orjson.OPT_INDENT_2).decode() + "\n")
    except OSError as exc:
        raise UsageError(MESSAGES["cannot-write"](path=args.conceptmap_draft, error=exc.strerror)) from None
    say(args, MESSAGES["draft-written"](n=len(codes), proposed=len(proposed), path=args.conceptmap_draft))


def run(args: argparse.Namespace) -> int:
    from fhir3t.pipeline import with_discovered_maps
    from fhir3t.pipeline.codes import inventory
    from fhir3t.sinks import atomic_text

    problems = Problems()
    maps = with_discovered_maps(args.paths, args.concept_map, problems)
    definition = load_definition(args, maps)
    rows = inventory(args.paths, definition, problems)
    shown = rows if args.all else [r for r in rows if r.verdict != OTHER]
    hidden = len(rows) - len(shown)

    def write(out: IO[str]) -> None:
        if args.format == "json":
            out.write(orjson.dumps([r.to_dict() for r in shown], option=orjson.OPT_INDENT_2).decode() + "\n")
        elif args.format == "csv":
            w = csv.writer(out, lineterminator="\r\n")
            w.writerow(["type", "system", "code", "count", "display", "verdict", "valuesets", "named_like"])
            for r in shown:
                w.writerow([r.type, r.system, r.code, r.count, r.display, r.verdict, " ".join(r.valuesets),
                            " ".join(r.named)])
        else:
            _table(shown, out, hidden, args.lang)

    try:
        if args.out:
            with atomic_text(args.out, bom=args.format == "csv") as fh:
                write(fh)
        else:
            write(sys.stdout)
    except OSError as exc:
        raise UsageError(MESSAGES["cannot-write"](path=args.out, error=exc.strerror)) from None
    if args.conceptmap_draft:
        _write_draft(args, rows, definition)
    report_problems(problems, args=args)
    if not rows:
        say(args, MESSAGES["none"]())
        return EXIT_INPUT_FATAL
    return EXIT_OK
