"""`fhir3t report`: the trial's endpoints (26-week KM survival, AE incidence) as HTML and JSON."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from fhir3t.cli.common import report_problems
from fhir3t.cli.safety import EPILOG_CODES, add_input_options, analyse_args
from fhir3t.errors import EXIT_INPUT_FATAL, EXIT_INPUT_SKIPPED, EXIT_OK, Problems, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="endpoints report: Kaplan-Meier survival at 26 weeks, treatment-related AE incidence",
        description=(
            "Kaplan-Meier survival from D1 with a 95 % Greenwood CI (log-log) and the estimate at day 182, "
            "numbers at risk, events and censored; treatment-related AE incidence overall, by drug and by worst "
            "grade; AEs per 100 patient-weeks. Writes a self-contained HTML page (inline SVG plot) and, "
            "optionally, the JSON report."
        ),
        epilog="Example:\n  fhir3t report samples/safety/ --as-of 2026-11-16 --out report.html --json report.json\n"
               + EPILOG_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_options(p)
    p.add_argument("--out", required=True, metavar="HTML", help="write the HTML report here")
    p.add_argument("--json", metavar="FILE", help="also write the JSON report here")
    p.add_argument("--ci", choices=("log-log", "plain"), default="log-log",
                   help="CI transform for the KM estimate (default log-log, as lifelines)")
    p.set_defaults(run=run)


def _write(path: str, text: str) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    from fhir3t.report import endpoints, render_html

    problems = Problems()
    as_of, outcomes, engine = analyse_args(args, problems)
    report_problems(problems)
    if not outcomes:
        print("fhir3t report: no subjects of NCT06438679 with a D1 found in the input", file=sys.stderr)
        return EXIT_INPUT_FATAL
    data = endpoints(outcomes, [d.id for d in engine.config.drugs], as_of, args.ci)
    findings = [f for o in outcomes for f in o.findings]
    censored = [o.survival_days for o in outcomes if not o.event]
    _write(args.out, render_html(data, findings, censored))
    if args.json:
        _write(args.json, orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sv = data["survival"]["day182"]
    inc = data["ae_incidence"]["overall"]
    print(f"fhir3t report: {len(outcomes)} subjects; KM survival at day 182 {sv['estimate']:.3f} "
          f"(95 % CI {sv['ci95'][0]:.3f}-{sv['ci95'][1]:.3f}); {inc['with_related_ae']} with a treatment-related AE; "
          f"wrote {args.out}", file=sys.stderr)
    if problems.any_skipped:
        return EXIT_INPUT_SKIPPED
    return EXIT_OK
