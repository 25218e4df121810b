"""A raw TCP server on 127.0.0.1 that misbehaves on purpose (what pytest-httpserver cannot do).

Each connection reads the request head and then runs `script(send, head)`; `send(data, delay)`
writes after a pause. Used for slow-loris (headers or body trickled byte by byte), bodies cut short and
answers without a length. Threads end when the client hangs up or the server stops.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

Send = Callable[[bytes, float], None]


class RawServer:
    def __init__(self, script: Callable[[Send, bytes], None]) -> None:
        self.script = script
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[bytes] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
            except OSError:
                return
            self.requests.append(head)

            def send(data: bytes, delay: float = 0.0) -> None:
                if self.stopped.wait(delay):
                    raise ConnectionAbortedError
                conn.sendall(data)

            try:
                self.script(send, head)
            except OSError:  # the client hung up (what a deadline is for)
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


def trickle(prefix: bytes, byte: bytes = b"a", every: float = 0.05, forever: float = 30.0) -> Callable[[Send, bytes], None]:
    """A script sending `prefix`, then `byte` every `every` seconds for up to `forever` seconds."""
    def script(send: Send, head: bytes) -> None:
        send(prefix, 0)
        end = time.monotonic() + forever
        while time.monotonic() < end:
            send(byte, every)
    return script


def answer(status: str, body: bytes = b"", content_type: str = "application/fhir+json") -> Callable[[Send, bytes], None]:
    """A script answering every request with `status` ("500 Internal Server Error") and `body`, then closing."""
    def script(send: Send, head: bytes) -> None:
        send(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
             "Connection: close\r\n\r\n".encode() + body, 0)
    return script


def drip_json(declared: int = 100_000, every: float = 0.05, forever: float = 30.0) -> Callable[[Send, bytes], None]:
    """A 200 announcing `declared` bytes of JSON and sending one byte every `every` seconds (a slow terminology
    server, a stalled proxy): only a deadline ends the request."""
    return trickle(f"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: {declared}\r\n\r\n{{"
                   .encode(), b" ", every, forever)
