"""`fhir3t push`: send a transaction Bundle (e.g. from `screen --emit`) to a FHIR server."""
from __future__ import annotations

import argparse
import sys

import orjson

from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.cli.words import say, stderr_lang
from fhir3t.errors import EXIT_OK, EXIT_PUSH_PARTIAL, InputError, UsageError
from fhir3t.messages import Message, later, render, table
from fhir3t.smallfiles import DATA_LIMIT, read_small

W = table("cli.push", {
    "bad-json": "{path}: not valid JSON ({error})",
    "group": "{n} entries {state} - entries {listed} and {more} more (-v lists them all)",
})


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push", help=later(Message("help.push", "send a transaction Bundle to a FHIR server, entry by entry outcome")()),
        description=(later(Message("help.push.description",
                                   "Send a transaction Bundle (as written by `fhir3t screen --emit`), or the study team's "
                                   "records of a state file (--state FILE), to a FHIR server: as a transaction, or as a "
                                   "batch where the server has none. A ResearchSubject already on-study, in follow-up, "
                                   "off-study or withdrawn is never overwritten with a screening status.")())),
        epilog=(later(Message("help.push.epilog",
                              "Exit codes: 0 every entry applied; 2 the Bundle cannot be pushed (named); 5 server error; 6 auth error; 7 "
                              "some entries failed (listed on stderr: N failing the same way make one line, -v lists each). The server's "
                              "diagnostics, which may quote patient data, are shown only with -vv.")())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", metavar="BUNDLE.json", nargs="?",
                   help=later(Message("help.push.bundle", "transaction or batch Bundle (or --state FILE)")()))
    p.add_argument("--state", metavar="FILE", help=later(Message(
        "help.push.state", "send the study team's records of this state file instead (the study, subjects, "
                           "Communications, Consents, Provenances: PUT to their ids, so sending twice duplicates nothing)")()))
    add_server_options(p, pull=False, push=False, server_required=True)
    p.add_argument("--dry-run", action="store_true", help=later(Message("help.push.dry-run", "print what would be sent, send nothing")()))
    p.set_defaults(run=run)


def load_bundle(path: str) -> dict:
    try:
        return orjson.loads(read_small(path, DATA_LIMIT, "the Bundle", InputError))  # a FIFO or a device is refused
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(W["bad-json"](path=str(path), error=str(exc))) from None


#: Entries shown for a group of identical failures before the rest are counted (-v shows all).
SHOW = 3


def print_report(report, out=None, lang: str = "en") -> None:
    """Every entry not applied is accounted for on stderr; N failing the same way make one line."""
    from fhir3t.sinks.fhir_server import said

    out = out or sys.stderr
    import logging

    verbose = logging.getLogger("fhir3t").isEnabledFor(logging.INFO)
    groups: dict[tuple[str, str, str], list] = {}
    for o in report.outcomes:
        if o.state != "ok" or verbose:  # ok ones with -v
            groups.setdefault((o.state, o.status, o.message), []).append(o)
    for (state, status, message), outs in groups.items():
        if verbose or len(outs) <= SHOW or state == "ok":
            for o in outs:
                print(f"fhir3t push: {o.line(lang)}", file=out)
            continue
        listed = ", ".join(f"{o.index} ({o.method} {o.url})" for o in outs[:SHOW])
        message = said(message, lang)
        why = f"{status}: {message}" if status and message else status or message
        # the state, status and message are the server's and push's codes, as written
        line = W["group"](n=len(outs), state=f"{state} {why}" if why else state, listed=listed, more=len(outs) - SHOW)
        print(f"fhir3t push: {render(line, lang)}", file=out)
    for n in report.notes:
        print(f"fhir3t push: note: {said(n, lang)}", file=out)
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    print(f"fhir3t push: {report.mode}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), file=out)


def push_bundle(args: argparse.Namespace, bundle: dict, url: str | None = None, show=None) -> int:
    """Push and report; a dry run writes the Bundle to `show` (default stdout)."""
    from fhir3t.sinks import FhirServerSink

    client = make_client(args, url)
    try:
        report = FhirServerSink(client).push(bundle, dry_run=args.dry_run)
    finally:
        client.close()
    if args.dry_run:
        (show or sys.stdout).write(orjson.dumps(bundle, option=orjson.OPT_INDENT_2).decode() + "\n")
    print_report(report, lang=stderr_lang(args))
    return EXIT_PUSH_PARTIAL if report.failed else EXIT_OK


ONE_INPUT = Message("push.one-input", "give BUNDLE.json or --state FILE (one of them)")
NO_STATE = Message("push.no-state", "{path}: no such state file")


def run(args: argparse.Namespace) -> int:
    from fhir3t.sinks.fhir_server import check_bundle

    if bool(args.bundle) == bool(args.state):
        raise UsageError(ONE_INPUT())
    if args.state:
        return push_state(args)
    bundle = load_bundle(args.bundle)
    check_bundle(bundle)
    return push_bundle(args, bundle)


def push_state(args: argparse.Namespace) -> int:
    """The state file's resources to the server (pipeline.enrolment.state_bundle says what is sent and why not)."""
    from pathlib import Path

    from fhir3t.cli.common import load_definition
    from fhir3t.pipeline import Run
    from fhir3t.pipeline.enrolment import state_bundle
    from fhir3t.state import ServerState, StateFile

    if not Path(args.state).expanduser().is_file():
        raise InputError(NO_STATE(path=args.state))
    definition = load_definition(args)
    state = StateFile(args.state)
    server = ServerState(make_client(args), (definition.study.system, definition.study.value))
    try:
        out = state_bundle(definition, Run.start(definition), state, server)
    finally:
        state.close()
        server.close()
    for note in out.notes:
        say(args, note, tag="note")
    code = push_bundle(args, out.bundle)
    return code or (EXIT_PUSH_PARTIAL if out.notes else EXIT_OK)
