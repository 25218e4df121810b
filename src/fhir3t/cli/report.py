"""`fhir3t report`: the trial's endpoints and safety tables as a self-contained HTML page and JSON."""
from __future__ import annotations

import argparse
import hashlib
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fhir3t.cli.common import day, report_problems
from fhir3t.cli.safety import EPILOG_CODES, add_input_options, analyse_args
from fhir3t.errors import EXIT_INPUT_FATAL, EXIT_INPUT_SKIPPED, EXIT_OK, InputError, Problems, UsageError
from fhir3t.fhirutil import server_label


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="DSMB safety report: survival, AE incidence (and the conservative line), safety tables, AESIs, narratives",
        description=textwrap.fill(
            "A safety report for the data monitoring committee. Kaplan-Meier survival from D1 (95 % Greenwood CI, "
            "log-log; estimate at day 182; median with its Brookmeyer-Crowley CI; withdrawn subjects censored at "
            "withdrawal, others at last contact); treatment-related AE incidence overall, by drug and by worst grade "
            "with exact Clopper-Pearson CIs, and the conservative causality line beside it; AEs per 100 "
            "patient-weeks with exact Poisson CIs; baseline characteristics; exposure and dose changes per drug; "
            "AEs by CTCAE term and by MedDRA system organ class; adverse events of special interest with time to "
            "first event; lab shift tables; serious AEs with expectedness (SUSARs) and those pending causality "
            "assessment; deaths; SAE and death narratives; disposition with a swimmer plot; accrual against the "
            "target; with --since, figures since the last report; with --screening, the screening flow. Writes a "
            "self-contained HTML page (inline SVG; prints on A4 with page numbers, version, data cut-off and a "
            "confidentiality mark on every page) and, optionally, the JSON report. Subjects come from files "
            "(PATH...) or from a FHIR server (--server URL)."
        , width=100),
        epilog="Examples:\n  fhir3t report samples/safety/ --as-of 2026-11-16 --out report.html --json report.json\n"
               "  fhir3t report samples/safety/ --as-of 2026-11-16 --since 2026-08-16 --report-version 2 --out report.html\n"
               "  fhir3t screen export/ --format json --out screening.json\n"
               "  fhir3t report export/ --screening screening.json --out report.html\n"
               "  fhir3t report --server https://ehr.example.org/fhir --out report.html\n" + EPILOG_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input_options(p)
    p.add_argument("--out", required=True, metavar="HTML", help="write the HTML report here")
    p.add_argument("--json", metavar="FILE", help="also write the JSON report here")
    p.add_argument("--ci", choices=("log-log", "plain"), default="log-log",
                   help="CI transform for the KM estimate (default log-log, as lifelines)")
    p.add_argument("--screening", metavar="FILE",
                   help="a screening run's output (fhir3t screen --format json or ndjson) for the screening flow (default "
                        "with --server or --state: the screening and enrolment log there, as fhir3t log gives it)")
    p.add_argument("--since", type=day, metavar="DATE",
                   help="the previous report's data cut-off: figures since then are shown beside the cumulative ones "
                        "and new serious AEs are marked")
    p.add_argument("--report-version", default="1", metavar="V",
                   help="the report's version, printed on every page with the data cut-off (default 1)")
    from fhir3t.cli.server_options import add_server_options

    add_server_options(p, pull=False, push=False)
    p.add_argument("--patient", action="append", default=[], metavar="ID",
                   help="with --server: report on these patients (repeatable) instead of the study's ResearchSubjects")
    p.set_defaults(run=run)


def _write(path: str, text: str) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def read_screening(path: str) -> list[tuple[object, str]]:
    """A JSON array or NDJSON of screening results → (object, where) pairs; where = file[index] or file:line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list):
        return [(item, f"{p}[{i}]") for i, item in enumerate(data)]
    if isinstance(data, dict):
        return [(data, f"{p}[0]")]
    out: list[tuple[object, str]] = []
    for i, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((orjson.loads(line), f"{p}:{i}"))
        except orjson.JSONDecodeError:
            out.append((None, f"{p}:{i}"))
    if not out:
        raise InputError(f"{p}: no screening results (expected the output of fhir3t screen --format json or ndjson)")
    return out


def flow_from_log(args: argparse.Namespace, enrolled: list[str], order: list[str], titles: dict[str, str]) -> dict:
    """The screening flow from the enrolment log (the latest screening of every patient, the first criterion ruling
    them out), with the study team's chain (contacted, consented, the reasons at each step) as `team`."""
    from fhir3t.cli.common import load_definition
    from fhir3t.cli.state_options import open_store
    from fhir3t.pipeline import Run
    from fhir3t.pipeline.enrolment import log_rows
    from fhir3t.report.flow import screened_from_log, screening_flow

    definition = load_definition(args, concept_maps=())
    store = open_store(args, definition, "report")
    try:
        rows, team = log_rows(definition, Run.start(definition), store)
    finally:
        store.close()
    screened = screened_from_log(rows, order)
    flow = screening_flow(screened, enrolled, order, titles)
    flow["team"] = team
    flow["source"] = store.label
    return flow


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(paths):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def run(args: argparse.Namespace) -> int:
    from fhir3t.profiles import Profiles
    from fhir3t.report import endpoints, render_html
    from fhir3t.report.flow import parse_screening, screening_flow

    problems = Problems()
    as_of, outcomes, definition = analyse_args(args, problems)
    outcomes = sorted(outcomes, key=lambda o: (o.subject.label, o.subject.patient))  # listings by subject number
    cfg = definition.safety.config
    criteria = definition.criteria
    order = [c.id for c in criteria.criteria]
    flow = None
    titles = {c.id: c.title for c in criteria.criteria}
    if args.screening:
        screened = parse_screening(read_screening(args.screening), order, problems)
        flow = screening_flow(screened, [o.subject.patient for o in outcomes], order, titles)
    elif getattr(args, "server", None) or getattr(args, "state", None):
        flow = flow_from_log(args, [o.subject.patient for o in outcomes], order, titles)
    report_problems(problems)
    if not outcomes:
        print(f"fhir3t report: no subjects of {cfg.study_label} with a D1 found in the input", file=sys.stderr)
        return EXIT_INPUT_FATAL
    server = getattr(args, "server", None)
    inputs = (f"FHIR server {server_label(server)}" if server else
              f"{len(args.paths)} path(s): {', '.join(args.paths)}")
    if args.screening:
        inputs += f"; screening run {args.screening}"
    elif flow is not None:
        inputs += f"; enrolment log {flow.get('source', '')}"
    if args.since is not None and args.since >= as_of:
        raise UsageError(f"--since {args.since.isoformat()} is not before the data cut-off {as_of.isoformat()}")
    header: dict[str, Any] = {
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "data_as_of": as_of.isoformat(),
        "data_cutoff": as_of.isoformat(),
        "report_version": args.report_version,
        "since": args.since.isoformat() if args.since else None,
        "inputs": inputs,
        "study_title": criteria.title.split(":", 1)[-1].strip(),
        "hashes": {"safety data": cfg.digest, "criteria": criteria.digest,
                   "profiles": _digest([f for f in Profiles.at(args.profiles).folder.rglob("*.json") if f.is_file()])},
    }
    data = endpoints(outcomes, [d.id for d in cfg.drugs], as_of, args.ci, study=cfg.study_label, header=header,
                     flow=flow, config=cfg, since=args.since)
    findings = [f for o in outcomes for f in o.findings]
    censored = [o.survival_days for o in outcomes if not o.event]
    labels = {o.subject.patient: o.subject.label for o in outcomes}
    _write(args.out, render_html(data, findings, censored, labels))
    if args.json:
        _write(args.json, orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sv = data["survival"]["day182"]
    inc = data["ae_incidence"]["overall"]
    src = data["ae_sources"]
    print(f"fhir3t report: {len(outcomes)} subjects; KM survival at day 182 {sv['estimate']:.3f} "
          f"(95 % CI {sv['ci95'][0]:.3f}-{sv['ci95'][1]:.3f}); {inc['with_related_ae']} with a treatment-related AE; "
          f"AEs found by fhir3t {src['fhir3t']}, recorded by investigators {src['investigator']}, both {src['both']}; "
          f"wrote {args.out}", file=sys.stderr)
    if problems.any_skipped:
        return EXIT_INPUT_SKIPPED
    return EXIT_OK
