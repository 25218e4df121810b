"""A wall-clock deadline per HTTP request, and a requests Session that honours it.

`requests`' timeout bounds each socket read, not the request: a server that trickles one byte
every few seconds (slow-loris) keeps a read going forever. Here every socket a request opens or
reuses is attached to the `Deadline` active in that thread; one watchdog thread shuts those
sockets down when the deadline passes, which ends the blocked read at once. The caller then sees
`Deadline.expired` and reports a timeout (a cut-off body is never taken as a complete one).
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_local = threading.local()


class Deadline:
    """`with Deadline(seconds):` the requests sent inside end at the latest `seconds` from now.

    `extend(seconds)` moves the end later (a download that keeps making progress); it never moves
    it earlier.
    """

    def __init__(self, seconds: float, clock=time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.at = float("inf")
        self.expired = False
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self._outer: Deadline | None = None

    def __enter__(self) -> Deadline:
        self.at = self.clock() + self.seconds
        self._outer = getattr(_local, "deadline", None)
        _local.deadline = self
        _WATCHDOG.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _WATCHDOG.remove(self)
        _local.deadline = self._outer
        with self._lock:
            self._sockets.clear()

    def extend(self, seconds: float) -> None:
        self.at = max(self.at, self.clock() + seconds)

    def attach(self, sock: Any) -> None:
        with self._lock:
            if not self.expired:
                self._sockets.append(sock)
                return
        _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            socks, self._sockets = self._sockets, []
        for s in socks:
            _shutdown(s)


def _shutdown(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):  # already closed, or detached by the TLS wrapper
        pass


def _attach(sock: Any) -> None:
    d = getattr(_local, "deadline", None)
    if d is not None and sock is not None:
        d.attach(sock)


class _Watchdog:
    """One daemon thread that expires deadlines; started on first use."""

    def __init__(self) -> None:
        self._active: set[Deadline] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, d: Deadline) -> None:
        with self._cond:
            self._active.add(d)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fhir3t-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, d: Deadline) -> None:
        with self._cond:
            self._active.discard(d)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._active:
                    self._cond.wait()
                    continue
                due = [d for d in self._active if d.clock() >= d.at]
                self._active.difference_update(due)
                if not due:
                    # wake at the nearest deadline, and at least every second: extend() and
                    # injected clocks move deadlines without telling the watchdog
                    nearest = min(d.at - d.clock() for d in self._active)
                    self._cond.wait(max(0.005, min(nearest, 1.0)))
                    continue
            for d in due:
                d.expire()


_WATCHDOG = _Watchdog()


class _Guarded:
    """Attach every socket a connection opens or reuses to the thread's current deadline."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _attach(self.sock)  # after TLS: the wrapped socket is the one reads block on

    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        _attach(sock)  # covers the TLS handshake of a plain socket's life too
        return sock

    def request(self, *args: Any, **kw: Any) -> Any:
        if self.sock is not None:  # a kept-alive connection reused for this request
            _attach(self.sock)
        return super().request(*args, **kw)  # type: ignore[misc]


class _HTTPConnection(_Guarded, HTTPConnection):
    pass


class _HTTPSConnection(_Guarded, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class GuardedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections honour the thread's Deadline."""

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        super().init_poolmanager(*args, **kw)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **kw: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kw)
        if hasattr(manager, "pool_classes_by_scheme") and not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def guarded_session() -> requests.Session:
    """A Session whose requests can be bounded with `with Deadline(seconds):`."""
    s = requests.Session()
    adapter = GuardedAdapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
