"""`fhir3t serve`: the CDS Hooks service (and, with --watch, event-driven screening) over HTTP."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from fhir3t.cli.common import day, load_definition
from fhir3t.cli.server_options import add_server_options, make_client
from fhir3t.config import Config
from fhir3t.errors import EXIT_OK, UsageError
from fhir3t.messages import Message, render


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the CDS Hooks service (a card in the EHR when a patient is eligible or a candidate)",
        description=(
            "Serve CDS Hooks 2.0 for the study: GET /cds-services (discovery, with prefetch templates for exactly what "
            "the criteria read), POST /cds-services/{id} (patient-view: a card when the patient is eligible or a "
            "candidate and not already in the study; order-select: the same when a drug the criteria read is ordered, "
            "saying first if starting it would exclude the patient), POST /cds-services/{id}/feedback, GET /health. "
            "Configured by "
            "the [serve] table of the config file (see README, 'In the EHR: CDS Hooks'); binds 127.0.0.1 unless told "
            "otherwise; stops gracefully on SIGTERM. With --watch it also screens patients when new data arrives on "
            "[server] url (FHIR Subscriptions to /fhir3t/notify, else polling) and pushes their ResearchSubjects. It also "
            "serves the coordinator's page at /coordinator/ (the worklist with the day's new or changed screenings, "
            "each patient's timeline, the study team's steps as forms for a signed-in user: SMART App Launch or a "
            "trusted proxy's header, [serve.coordinator]) over the FHIR server, or the state file (--state FILE)."
        ),
        epilog=(
            "Examples:\n"
            "  fhir3t serve                                    (127.0.0.1:8088, [serve] in ./fhir3t.toml)\n"
            "  fhir3t serve --log-format json --port 9000\n"
            "  fhir3t serve --watch --server https://ehr.example.org/fhir\n"
            "  fhir3t serve --feedback                         (what clinicians did with the cards, as JSON)\n"
            "Logs name routes, statuses, timings and counts, never patient data or tokens.\n"
            "Exit codes: 0 stopped cleanly; 2 usage error; 4 bad configuration; 5 server error (with --watch)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", help="address to bind (default: [serve] host, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default: [serve] port, else 8088)")
    p.add_argument("--public-url", metavar="URL", help="the URL the EHR calls this service at (the JWT audience)")
    p.add_argument("--state-dir", metavar="DIR", help="card history, feedback and watch state (default: [serve] "
                                                      "state_dir, else $XDG_STATE_HOME/fhir3t)")
    p.add_argument("--concept-map", action="append", default=[], metavar="FILE",
                   help="FHIR ConceptMap translating hospital-local codes (repeatable; [terminology] ones are added)")
    p.add_argument("--as-of", type=day, metavar="DATE",
                   help="screen as if today were DATE (demonstrations with the samples; never in production)")
    p.add_argument("--watch", action="store_true", default=None,
                   help="also screen patients of --server / [server] url when new data arrives, and push their ResearchSubjects")
    p.add_argument("--state", metavar="FILE",
                   help="the coordinator's page reads and writes this state file (default: the FHIR server of --server / "
                        "[server] url, else [enrolment] state, else <study>.state.sqlite in the service's state folder)")
    p.add_argument("--no-coordinator", action="store_true", help="do not serve the coordinator's page (/coordinator/)")
    p.add_argument("--feedback", action="store_true", help="print what clinicians did with the cards (JSON counts) and exit")
    p.add_argument("--feedback-rows", action="store_true",
                   help="print every feedback item with the patient, the clinician and their comment (JSON lines; for "
                        "the study team) and exit")
    p.add_argument("--patient", metavar="ID", help="with --feedback-rows: only this patient's (a FHIR id or Patient/id)")
    add_server_options(p, pull=False, push=False)
    p.set_defaults(run=run)


def settings_from(args: argparse.Namespace):  # -> ServeSettings
    from fhir3t.service.settings import serve_settings

    cfg: Config = getattr(args, "_config", None) or Config()
    return serve_settings(cfg, host=args.host, port=args.port, public_url=args.public_url,
                          state_dir=Path(args.state_dir) if args.state_dir else None, as_of=args.as_of,
                          watch=args.watch, lang=getattr(args, "lang", None))


#: message id -> English template (the startup lines say loudly how calls are authenticated)
MESSAGES = {
    "listening": "fhir3t serve: CDS Hooks for {study} on http://{host}:{port}/cds-services{public}",
    "public": " (public URL {url})",
    "auth-off": "fhir3t serve: WARNING: AUTHENTICATION IS OFF. Any program that can reach {host}:{port} can call the "
                "service and write feedback; this is allowed only because {host} is a loopback address. Set [serve] "
                "require_jwt = true with [[serve.issuers]] before a proxy or an EHR reaches it.",
    "auth-on": "fhir3t serve: JWT client authentication required on every call: {n} issuer(s) trusted ({issuers}); "
               "audience {url}/cds-services/...",
    "connections": "fhir3t serve: note: at most {n} connections (the open-file limit allows no more)",
}


def run(args: argparse.Namespace) -> int:
    from fhir3t.service.settings import check_bind, check_state_dir

    cfg: Config = getattr(args, "_config", None) or Config()
    settings = settings_from(args)
    check_state_dir(settings, cfg)
    if args.feedback or args.feedback_rows:
        from fhir3t.service.store import Rule, Store

        store = Store(settings.state_dir, Rule())
        try:
            if args.feedback:
                print(json.dumps(store.summary(), indent=2, ensure_ascii=False))
            else:
                for row in store.feedback_rows(args.patient):
                    print(json.dumps(row, ensure_ascii=False))
        finally:
            store.close()
        return EXIT_OK
    check_bind(settings, cfg)  # authentication may be off only on loopback
    if not args.verbose and not cfg.log_level:  # a service's request lines are INFO: on unless asked otherwise
        logging.getLogger("fhir3t").setLevel(logging.INFO)
    from fhir3t.service.app import create_app
    from fhir3t.service.runner import WatchThread, build_cds, notify_token, raise_file_limit, run
    from fhir3t.service.watch import NOTIFY_PATH, Watcher, WatchState, state_file

    definition = load_definition(args)
    cds, store = build_cds(settings, definition)
    startup, shutdown = [], []
    watcher = token = None
    if settings.watch:
        if not args.server:
            raise UsageError("--watch needs the FHIR server to watch: --server URL or [server] url")
        client = make_client(args)
        watcher = Watcher(client, definition, WatchState.load(state_file(settings.state_dir, client.base), client.base),
                          today=(lambda: settings.as_of) if settings.as_of else None)
        token = notify_token(settings)
        endpoint = None
        if watcher.supports_subscriptions() and settings.public_url:
            endpoint = settings.public_url.rstrip("/") + NOTIFY_PATH
        thread = WatchThread(watcher, settings.watch_interval, endpoint, token)
        startup.append(thread.start)
        shutdown.append(thread.shutdown)
    shutdown += [cds.close, store.close]
    coordinator = None
    if settings.coordinator.enabled and not args.no_coordinator:
        coordinator = build_coordinator(args, settings, definition)
        shutdown.append(coordinator.store.close)
    app = create_app(cds, watcher=watcher, notify_token=token, max_body=int(settings.max_body_mb * 1024 * 1024),
                     body_timeout=settings.body_timeout, cors_origins=settings.cors_origins, on_startup=startup,
                     on_shutdown=shutdown, coordinator=coordinator)
    connections = raise_file_limit(settings.max_connections)
    for line in startup_lines(settings, definition.study.value):
        print(line, file=sys.stderr)
    if coordinator is not None:
        print(coordinator_line(settings, coordinator), file=sys.stderr)
    if connections < settings.max_connections:
        print(MESSAGES["connections"].format(n=connections), file=sys.stderr)
    if not settings.require_jwt:
        logging.getLogger("fhir3t.service").warning("authentication is off (loopback %s only)", settings.host,
                                                   extra={"fields": {"event": "auth-off", "host": settings.host}})
    stopped = run(app, settings.host, settings.port, max_connections=connections)
    if stopped is not None:
        print(f"fhir3t serve: stopped ({signal.Signals(stopped).name}), calls in flight finished", file=sys.stderr)
    return EXIT_OK


PAGE_LINE = Message("serve.page", "fhir3t serve: the coordinator's page on http://{host}:{port}/coordinator/ ({source}); "
                                   "writing needs {signin}")
SIGNIN_SMART = Message("serve.signin-smart", "a SMART sign-in at {issuer}")
SIGNIN_PROXY = Message("serve.signin-proxy", "the {header} header from {proxies}")
SIGNIN_NONE = Message("serve.signin-none", "a sign-in, and none is configured ([serve.coordinator]): read only")
SIGNIN_BOTH = Message("serve.signin-both", "{smart}, or {proxy}")


def build_coordinator(args: argparse.Namespace, settings, definition):  # -> Coordinator
    """The coordinator's page over the FHIR server (--server / [server] url) or the state file."""
    from fhir3t.cli.state_options import open_store
    from fhir3t.cli.state_options import settings as enrolment_settings
    from fhir3t.pipeline.enrolment import server_screener
    from fhir3t.service.coordinator import Coordinator
    from fhir3t.state import ServerState

    store = open_store(args, definition, "serve", settings.state_dir)
    screen_now = server_screener(definition, store.client) if isinstance(store, ServerState) else None
    today = (lambda: settings.as_of) if settings.as_of else None
    extra = {"today": today} if today else {}
    return Coordinator(definition, store, settings.coordinator, settings.public_url or f"http://{settings.host}:{settings.port}",
                       settings.loopback, screen_now, enrolment_settings(args, definition), **extra)


def coordinator_line(settings, coordinator) -> str:
    c = settings.coordinator
    smart = SIGNIN_SMART(issuer=c.authorization_server or c.fhir_server or "-") if coordinator.signin else None
    proxy = SIGNIN_PROXY(header=c.proxy_user_header, proxies=", ".join(c.trusted_proxies)) if coordinator.proxy else None
    signin = SIGNIN_BOTH(smart=smart, proxy=proxy) if smart and proxy else smart or proxy or SIGNIN_NONE()
    return render(PAGE_LINE(host=settings.host, port=settings.port, source=coordinator.store.label, signin=signin))


def startup_lines(settings, study: str) -> list[str]:  # settings: ServeSettings
    """What `serve` says as it starts: where it listens, and how calls are authenticated (loudly when they are not)."""
    public = MESSAGES["public"].format(url=settings.public_url) if settings.public_url else ""
    lines = [MESSAGES["listening"].format(study=study, host=settings.host, port=settings.port, public=public)]
    if settings.require_jwt:
        issuers = ", ".join(i.iss for i in settings.issuers)
        lines.append(MESSAGES["auth-on"].format(n=len(settings.issuers), issuers=issuers, url=settings.public_url))
    else:
        lines.append(MESSAGES["auth-off"].format(host=settings.host, port=settings.port))
    return lines
