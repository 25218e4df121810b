"""`fhir3t validate FILE...`: check Bundles/resources and print an OperationOutcome or a list."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from fhir3t.errors import EXIT_FINDINGS, EXIT_OK, InputError, UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="validate FHIR R4 Bundles or resources (JSON, NDJSON, .gz)",
        description=(
            "Check structure, required bindings, Bundle integrity, key invariants and fhir3t's "
            "profiles. Exit 0 when no error is found, 1 when there are errors, 4 when a path is missing."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="a .json resource/Bundle, .ndjson(.gz), or a directory")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: one issue per line (default); json: a FHIR OperationOutcome on stdout")
    p.add_argument("--max-bytes", type=int, default=None, metavar="N",
                   help="largest single JSON document read into memory (default 256 MiB); NDJSON is streamed")
    p.add_argument("--no-warnings", action="store_true", help="text format: list errors only")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fhir3t.validate import DEFAULT_MAX_BYTES, summary_issue, to_operation_outcome, validate_issues

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise InputError("no such file or directory: " + ", ".join(missing))
    max_bytes = args.max_bytes if args.max_bytes is not None else DEFAULT_MAX_BYTES
    if max_bytes <= 0:
        raise UsageError("--max-bytes must be positive")
    issues, count = validate_issues(args.paths, max_bytes=max_bytes)
    summary = summary_issue(issues, count)
    if args.format == "json":
        oo = to_operation_outcome(issues + [summary])
        sys.stdout.write(orjson.dumps(oo, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        shown = [i for i in issues if i.is_error] if args.no_warnings else issues
        for i in shown:
            print(i)
        print(summary.diagnostics)
    return EXIT_FINDINGS if any(i.is_error for i in issues) else EXIT_OK
