"""Putting the service together and running it on uvicorn: what `fhir3t serve` and `fhir3t watch` call.

uvicorn is the server (ASGI, the reference implementation Starlette is tested on): it handles
SIGTERM and SIGINT by refusing new connections, letting calls in flight finish (up to
`GRACEFUL_SECONDS`) and then running the app's shutdown steps (watcher stopped, Subscriptions
removed, the store closed). Its own log lines go through fhir3t's handlers (JSON with the run id
under --log-format json); its access log is off, since the app logs each request itself without
the client address or query string.
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
from dataclasses import dataclass, field

from fhir3t.errors import Fhir3tError
from fhir3t.pipeline import Definition
from fhir3t.service.fetch import Fetcher
from fhir3t.service.hooks import CdsService
from fhir3t.service.jwt_auth import JwtVerifier
from fhir3t.service.settings import HEAD_TIMEOUT, MAX_CONNECTIONS, ServeSettings
from fhir3t.service.store import Rule, Store, private_token
from fhir3t.service.watch import Watcher

GRACEFUL_SECONDS = 10
#: file descriptors kept for files, the state database and outgoing fetches beside the connections
FILE_MARGIN = 128

log = logging.getLogger("fhir3t.service")


def raise_file_limit(connections: int) -> int:
    """Let the process hold `connections` sockets (plus its files): the soft RLIMIT_NOFILE is raised up to the
    hard one if needed; returns the connections it can hold (fewer when the hard limit is lower)."""
    try:
        import resource
    except ImportError:  # not on this platform: nothing to raise
        return connections
    need = connections + FILE_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return connections
    return max(8, min(connections, soft - FILE_MARGIN))


def build_cds(settings: ServeSettings, definition: Definition) -> tuple[CdsService, Store]:
    store = Store(settings.state_dir, Rule(settings.show_again_after_days, settings.after_override_days,
                                           settings.after_accept_days))
    verifier = JwtVerifier(settings.issuers, store) if settings.require_jwt else None
    return CdsService(definition, settings, store, fetcher=Fetcher(), verifier=verifier), store


def notify_token(settings: ServeSettings) -> str:
    return private_token(settings.notify_token_file or settings.state_dir / "notify.token")


@dataclass
class WatchThread:
    """The watcher's loop on a thread of its own, started and stopped with the app."""

    watcher: Watcher
    interval: float
    endpoint: str | None = None  # where the server sends notifications (None: polling only)
    token: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name="fhir3t-watch", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        """Subscribe (off the startup path: a slow FHIR server does not hold the service up), then loop."""
        if self.endpoint and self.token:
            try:
                active = self.watcher.subscribe(self.endpoint, self.token)
                log.info("watch: %d Subscription(s) active, notifications to %s", len(active), self.endpoint)
            except Fhir3tError as exc:
                log.warning("watch: no Subscriptions (%s); polling only", type(exc).__name__)
        self.watcher.run(self.stop, self.interval)

    def shutdown(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=GRACEFUL_SECONDS)
        self.watcher.unsubscribe()


def route_uvicorn_logs() -> None:
    """uvicorn's log lines through fhir3t's handlers (JSON with the run id when asked)."""
    ours = logging.getLogger("fhir3t")
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = list(ours.handlers)
        lg.setLevel(logging.INFO if ours.getEffectiveLevel() <= logging.INFO else logging.WARNING)
        lg.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


def uvicorn_server(app: object, host: str, port: int, *, max_connections: int = MAX_CONNECTIONS,
                   head_timeout: float = HEAD_TIMEOUT):  # -> uvicorn.Server
    """uvicorn with the service's bounds: at most `max_connections` held (more are answered 503 at once), a
    request head must arrive within `head_timeout` s (service/protocol.py), idle keep-alive closed after 5 s."""
    import uvicorn

    from fhir3t.service.protocol import guarded_protocol

    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",  # type: ignore[arg-type]
                            timeout_graceful_shutdown=GRACEFUL_SECONDS, server_header=False, proxy_headers=False,
                            http=guarded_protocol(head_timeout), limit_concurrency=max_connections,
                            timeout_keep_alive=5, ws="none")
    return uvicorn.Server(config)


def run(app: object, host: str, port: int, *, max_connections: int = MAX_CONNECTIONS) -> int | None:
    """Serve until SIGTERM / SIGINT, then shut down gracefully; returns the signal that stopped it.

    uvicorn re-raises the signal it caught once it has shut down, to the handler that was there before;
    a handler of our own takes it there, so the process ends with the command's exit code (and its
    closing log record) instead of being killed by the default action half-way through the exit."""
    route_uvicorn_logs()
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn_server(app, host, port, max_connections=max_connections).run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return caught[0] if caught else None


class InThread:
    """The app served on a thread (tests, benchmarks): `with InThread(app) as url: ...`."""

    def __init__(self, app: object, host: str = "127.0.0.1", port: int = 0, *, max_connections: int = MAX_CONNECTIONS,
                 head_timeout: float = HEAD_TIMEOUT) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted sockets inherit it: without, each answer waits ~40 ms on the client's delayed ACK (Nagle)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = uvicorn_server(app, host, self.port, max_connections=max_connections, head_timeout=head_timeout)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        import time

        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self.url
            time.sleep(0.02)
        raise RuntimeError("the service did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=GRACEFUL_SECONDS + 5)
        self.sock.close()


__all__ = ["GRACEFUL_SECONDS", "InThread", "WatchThread", "build_cds", "notify_token", "raise_file_limit",
           "route_uvicorn_logs", "run", "uvicorn_server"]
