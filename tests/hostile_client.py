"""Clients that misbehave on purpose against the service on 127.0.0.1 (raw sockets, what requests cannot do).

`slow_body` sends a request head and then dribbles its body a byte at a time; `slow_head` sends its head a
byte at a time; both keep at it until the server closes the connection (or `forever` passes) and report
when that was. `flood` posts the same body as fast as it can from a few threads. The load test and the
reproducers of issue 21 run them beside real hook calls.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests


@dataclass
class Held:
    """One misbehaving connection: when it was opened and when the server let it go (None: still held)."""

    opened: float = field(default_factory=time.monotonic)
    closed: float | None = None
    answer: bytes = b""

    @property
    def held_for(self) -> float | None:
        return None if self.closed is None else self.closed - self.opened


def _connect(url: str) -> socket.socket:
    u = urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _dribble(sock: socket.socket, first: bytes, rest: bytes, every: float, forever: float, held: Held,
             stop: threading.Event) -> None:
    sock.settimeout(every)
    try:
        sock.sendall(first)
        end = time.monotonic() + forever
        i = 0
        while time.monotonic() < end and not stop.is_set():
            try:
                got = sock.recv(4096)
                if not got:
                    break  # the server closed the connection
                held.answer += got
            except TimeoutError:
                pass
            if i < len(rest):
                sock.sendall(rest[i:i + 1])
                i += 1
    except OSError:
        pass  # reset by the server: let go
    finally:
        held.closed = time.monotonic()
        sock.close()


class Crowd:
    """Many misbehaving connections on threads; `stop()` ends the ones still going."""

    def __init__(self) -> None:
        self.held: list[Held] = []
        self.threads: list[threading.Thread] = []
        self.stopped = threading.Event()

    def _start(self, url: str, first: bytes, rest: bytes, every: float, forever: float) -> None:
        held = Held()
        try:
            sock = _connect(url)
        except OSError:
            held.closed = held.opened  # refused at once (the connection cap): not held
            self.held.append(held)
            return
        t = threading.Thread(target=_dribble, args=(sock, first, rest, every, forever, held, self.stopped), daemon=True)
        self.held.append(held)
        self.threads.append(t)
        t.start()

    def slow_body(self, url: str, path: str, n: int, *, every: float = 0.2, forever: float = 60.0,
                  size: int = 10_000) -> Crowd:
        """`n` clients that send a POST head announcing `size` bytes, then one byte every `every` seconds."""
        host = urlsplit(url).netloc
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {size}\r\n\r\n").encode()
        for _ in range(n):
            self._start(url, head, b"{" + b" " * (size - 1), every, forever)
        return self

    def slow_head(self, url: str, path: str, n: int, *, every: float = 0.2, forever: float = 60.0) -> Crowd:
        """`n` clients that send a request head one byte every `every` seconds, never ending it."""
        host = urlsplit(url).netloc
        head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n" + "X-Pad: " + "a" * 4000
        for _ in range(n):
            self._start(url, b"G", head[1:].encode(), every, forever)
        return self

    def still_held(self) -> int:
        return sum(1 for h in self.held if h.closed is None)

    def stop(self) -> None:
        self.stopped.set()
        for t in self.threads:
            t.join(timeout=5)


def flood(url: str, body: bytes, *, threads: int = 4, seconds: float = 5.0,
          stop: threading.Event | None = None) -> tuple[threading.Event, list[int]]:
    """POST `body` to `url` from `threads` threads for `seconds` (or until `stop`); the statuses seen."""
    stop = stop or threading.Event()
    statuses: list[int] = []

    def worker() -> None:
        end = time.monotonic() + seconds
        with requests.Session() as s:
            while time.monotonic() < end and not stop.is_set():
                try:
                    statuses.append(s.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
                                    .status_code)
                except requests.RequestException:
                    statuses.append(0)

    for _ in range(threads):
        threading.Thread(target=worker, daemon=True).start()
    return stop, statuses


def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(every)
    return check()
