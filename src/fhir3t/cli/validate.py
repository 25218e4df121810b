"""`fhir3t validate FILE...`: check Bundles/resources; a grouped report or an OperationOutcome."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from fhir3t.errors import EXIT_FINDINGS, EXIT_OK, InputError, UsageError
from fhir3t.messages import Message, later, table

W = table("cli.validate", {
    "missing": "no such file or directory: {paths}",
    "max-bytes": "--max-bytes must be positive",
})


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help=later(Message("help.validate", "validate FHIR R4 Bundles or resources (JSON, NDJSON, .gz)")()),
        description=(
            later(Message("help.validate.description",
                          "Check resources against the R4 (4.0.1) definitions (structure, cardinality, JSON types, bindings, invariants, "
                          "extensions, narrative), Bundle integrity and fhir3t's profiles. Exit 0 when no error is found, 1 when there are "
                          "errors, 4 when a path is missing.")())
        ),
    )
    p.add_argument("paths", nargs="+", metavar="FILE",
                   help=later(Message("help.validate.paths", "a .json or .xml resource/Bundle, .ndjson(.gz), or a directory")()))
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help=later(Message("help.validate.format",
                                      "text: issues grouped by kind, with counts (default); json: a FHIR OperationOutcome listing every "
                                      "issue with its expression")()))
    p.add_argument("--min-severity", choices=("error", "warning", "information"), default="information",
                   help=later(Message("help.validate.min-severity",
                                      "leave out issues below this severity (the exit code still counts every error)")()))
    p.add_argument("--strict-refs", action="store_true",
                   help=later(Message("help.validate.strict-refs",
                                      "references to resources outside the Bundle are errors, each listed (default: one information "
                                      "issue)")()))
    p.add_argument("--allow-extension-domain", action="append", default=[], metavar="URL",
                   help=later(Message("help.validate.allow-extension-domain",
                                      "extensions whose URL starts with this are accepted without a definition (repeatable)")()))
    p.add_argument("--supporting", action="append", default=[], metavar="FILE",
                   help=later(Message("help.validate.supporting",
                                      "resources used to check the input but not validated themselves, such as the Questionnaire of a "
                                      "QuestionnaireResponse (repeatable)")()))
    p.add_argument("--max-bytes", type=int, default=None, metavar="N",
                   help=later(Message("help.validate.max-bytes",
                                      "largest single JSON document read into memory (default 256 MiB); NDJSON is streamed")()))
    p.add_argument("--no-warnings", action="store_true", help=later(Message("help.validate.no-warnings", "the same as --min-severity "
                                                                                                         "error")()))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fhir3t.validate import (
        DEFAULT_MAX_BYTES,
        Options,
        load_context,
        summary_issue,
        to_operation_outcome,
        validate_issues,
    )
    from fhir3t.validate.summary import at_least, render

    missing = [p for p in [*args.paths, *args.supporting] if not Path(p).exists()]
    if missing:
        raise InputError(W["missing"](paths=", ".join(missing)))
    max_bytes = args.max_bytes if args.max_bytes is not None else DEFAULT_MAX_BYTES
    if max_bytes <= 0:
        raise UsageError(W["max-bytes"]())
    context, unread = load_context(args.supporting, max_bytes=max_bytes)
    options = Options(strict_refs=args.strict_refs, allowed_extension_domains=tuple(args.allow_extension_domain),
                      context=context)
    issues, tally = validate_issues(args.paths, max_bytes=max_bytes, options=options)
    issues = unread + issues
    summary = summary_issue(issues, tally)
    lang = getattr(args, "lang", "en")  # what people read (the OperationOutcome's details.text, the grouped report)
    shown = at_least(issues, "error" if args.no_warnings else args.min_severity)
    if args.format == "json":
        oo = to_operation_outcome(shown + [summary], lang)
        sys.stdout.write(orjson.dumps(oo, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for line in render(shown, summary.text(lang), lang=lang):
            print(line)
    return EXIT_FINDINGS if any(i.is_error for i in issues) else EXIT_OK
