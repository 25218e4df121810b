"""`fhir3t watch`: screen patients when relevant data arrives on a FHIR server, push their ResearchSubjects."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from fhir3t.cli.common import day, load_definition
from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.cli.words import say, site_today, stderr_lang
from fhir3t.errors import EXIT_OK, EXIT_PUSH_PARTIAL, UsageError
from fhir3t.messages import Message, later, render, table

W = table("cli.watch", {
    "interval": "--interval must be positive",
    "no-subscription": "the server's CapabilityStatement offers no Subscription: use --mode poll",
    "polling": "polling {server} every {seconds} s (state {state})",
    "subscriptions": "Subscriptions on {server}, notifications to {endpoint}; polling every {seconds} s too (state {state})",
})

MODES = ("auto", "subscriptions", "poll")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch", help=later(Message("help.watch", "screen patients when relevant data arrives on a FHIR server, push their "
                                                  "ResearchSubjects")()),
        description=(
            later(Message("help.watch.description",
                          "Watch a FHIR server and screen a patient as soon as data the criteria read arrives: through FHIR R4 "
                          "Subscriptions (rest-hook) on the inclusion criteria's codes where the server offers them, and always by polling "
                          "_lastUpdated (every type the criteria read; the state is kept on disk, so a restart resumes). The "
                          "ResearchSubject of every eligible or candidate patient is pushed (and updated for a patient the study already "
                          "has one for); subjects the study team has enrolled are never overwritten.")())
        ),
        epilog=(
            later(Message("help.watch.epilog",
                          "Examples:\n"
                          "  fhir3t watch --server https://ehr.example.org/fhir --once        (one polling round, for cron)\n"
                          "  fhir3t watch --server https://ehr.example.org/fhir --interval 300\n"
                          "  fhir3t watch --server https://ehr.example.org/fhir --mode subscriptions \\\n"
                          "               --listen 0.0.0.0:8089 --endpoint https://fhir3t.hospital.example\n"
                          "  fhir3t watch --server https://ehr.example.org/fhir --notify 'https://chat.hospital.example/hooks/3t'\n"
                          "  fhir3t watch --server https://ehr.example.org/fhir --notify '/usr/local/bin/mail-coordinator'\n"
                          "Logs say counts per round and, for each status change, the ResearchSubject id (a pseudonym) and the\n"
                          "new status (event watch-status-change); never names, identifiers or values.\n"
                          "Exit codes: 0 ok; 2 usage error; 5 server error; 6 auth error; 7 some ResearchSubjects not pushed (--once).")())
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_server_options(p, pull=False, push=False, server_required=True)
    p.add_argument("--mode", choices=MODES, default="auto",
                   help=later(Message("help.watch.mode",
                                      "auto: Subscriptions when the server offers them and can reach --endpoint, else polling")()))
    p.add_argument("--interval", type=float, default=300.0, metavar="SECONDS", help=later(Message("help.watch.interval",
                                                                                                  "seconds between polls (default 300)")()))
    p.add_argument("--once", action="store_true", help=later(Message("help.watch.once", "one polling round, then exit (with its exit "
                                                                                        "code)")()))
    p.add_argument("--since", type=day, metavar="DATE",
                   help=later(Message("help.watch.since",
                                      "on the first run (no state yet), look at data changed since DATE (default: from now on)")()))
    p.add_argument("--state", metavar="FILE", help=later(Message("help.watch.state",
                                                                 "where the polling state is kept (default: one file per server in [serve] "
                                                                 "state_dir, else $XDG_STATE_HOME/fhir3t)")()))
    p.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:8089",
                   help=later(Message("help.watch.listen", "where to receive notifications in subscription mode (default "
                                                           "127.0.0.1:8089)")()))
    p.add_argument("--endpoint", metavar="URL",
                   help=later(Message("help.watch.endpoint",
                                      "the URL the FHIR server reaches --listen at (default: http://HOST:PORT of --listen)")()))
    p.add_argument("--concept-map", action="append", default=[], metavar="FILE",
                   help=later(Message("help.watch.concept-map", "FHIR ConceptMap translating hospital-local codes (repeatable)")()))
    p.add_argument("--as-of", type=day, metavar="DATE", help=later(Message("help.watch.as-of",
                                                                           "screen as if today were DATE (tests; never in production)")()))
    p.add_argument("--notify", metavar="URL|COMMAND",
                   help=later(Message("help.watch.notify",
                                      "tell this webhook (POST, JSON) or command (JSON on stdin, FHIR3T_SUBJECT etc. in its environment) "
                                      "of each newly eligible patient, by ResearchSubject id only")()))
    p.set_defaults(run=run)


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"--listen {value!r}: give HOST:PORT, e.g. 127.0.0.1:8089")
    return host, int(port)


def run(args: argparse.Namespace) -> int:
    from fhir3t.config import Config
    from fhir3t.service.settings import check_state_dir, serve_settings
    from fhir3t.service.watch import NOTIFY_PATH, Watcher, WatchState, state_file

    cfg: Config = getattr(args, "_config", None) or Config()
    settings = serve_settings(cfg)
    if not args.state:
        check_state_dir(settings, cfg)
    if not args.verbose and not cfg.log_level and not args.once:  # rounds are logged at INFO
        logging.getLogger("fhir3t").setLevel(logging.INFO)
    if cfg.log_level != "warning":  # status changes and deliveries (INFO) are what a watch is for, --once too
        for name in ("fhir3t.watch", "fhir3t.notify"):
            logging.getLogger(name).setLevel(min(logging.INFO, logging.getLogger("fhir3t").getEffectiveLevel()))
    if args.interval <= 0:
        raise UsageError(W["interval"]())
    notify = None
    if args.notify is not None:
        from fhir3t.service.notify import Notifier

        notify = Notifier(args.notify)
    client = make_client(args)
    path = Path(args.state) if args.state else state_file(settings.state_dir, client.base)
    start = datetime(args.since.year, args.since.month, args.since.day, tzinfo=UTC).timestamp() if args.since else None
    watcher = Watcher(client, load_definition(args), WatchState.load(path, client.base), start=start,
                      today=(lambda: args.as_of) if args.as_of else site_today(args), notify=notify)
    if args.once:
        rnd = watcher.poll()
        print(f"fhir3t watch: {render(rnd.said(), stderr_lang(args))}", file=sys.stderr)
        return EXIT_PUSH_PARTIAL if rnd.failed else EXIT_OK
    host, port = _listen(args.listen)
    use_subs = args.mode == "subscriptions" or (args.mode == "auto" and watcher.supports_subscriptions()
                                                 and (args.endpoint is not None or _local(client.base)))
    if args.mode == "subscriptions" and not watcher.supports_subscriptions():
        raise UsageError(W["no-subscription"]())
    if not use_subs:
        say(args, W["polling"](server=client.base, seconds=f"{args.interval:.0f}", state=str(path)))
        return _poll_forever(watcher, args.interval)
    from fhir3t.service.app import create_app
    from fhir3t.service.runner import WatchThread, notify_token
    from fhir3t.service.runner import run as serve

    token = notify_token(settings)
    endpoint = (args.endpoint or f"http://{host}:{port}").rstrip("/") + NOTIFY_PATH
    thread = WatchThread(watcher, args.interval, endpoint, token)
    app = create_app(None, watcher=watcher, notify_token=token, on_startup=[thread.start], on_shutdown=[thread.shutdown])
    say(args, W["subscriptions"](server=client.base, endpoint=endpoint, seconds=f"{args.interval:.0f}", state=str(path)))
    serve(app, host, port)
    print("fhir3t watch: stopped", file=sys.stderr)
    return EXIT_OK


def _local(base: str) -> bool:
    from fhir3t.origins import is_loopback

    return is_loopback(base)


def _poll_forever(watcher, interval: float) -> int:
    stop = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    t = threading.Thread(target=watcher.run, args=(stop, interval), name="fhir3t-watch", daemon=True)
    try:
        t.start()
        while t.is_alive() and not stop.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        t.join(timeout=30)
        signal.signal(signal.SIGTERM, previous)
    print("fhir3t watch: stopped", file=sys.stderr)
    return EXIT_OK
