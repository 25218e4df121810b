"""uvicorn's HTTP/1.1 protocol (h11) with the two bounds it lacks: a time limit on the request head,
and no connection kept after an answer given before the request body ended.

uvicorn closes idle keep-alive connections, but a client that opens a connection and sends its request
head a byte at a time is held forever, and one answered 408 in the middle of its body (the app's body
timeout) keeps the connection as long as it keeps dribbling. Either way a few hundred such clients would
hold every connection the service allows (`limit_concurrency`) and the EHR's hook calls would be refused.
Here a connection waiting for a request head gets `head_timeout` seconds to deliver it whole, and a
response that completes before the request body did closes the connection.
"""
from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from fhir3t.service.settings import HEAD_TIMEOUT


class GuardedH11Protocol(H11Protocol):
    head_timeout: float = HEAD_TIMEOUT

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._head_timer: asyncio.TimerHandle | None = None

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head() and not self.transport.is_closing():
            self._arm()  # part of a head: the clock runs from its first byte (it is not restarted by the next)
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        if self.conn.their_state not in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED) and not self.transport.is_closing():
            self.transport.close()  # answered before the body ended (413, 408): the rest is not waited for
            return
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def guarded_protocol(head_timeout: float) -> type[GuardedH11Protocol]:
    """The protocol class with this head timeout (uvicorn takes a class, not an instance)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"head_timeout": head_timeout})


__all__ = ["HEAD_TIMEOUT", "GuardedH11Protocol", "guarded_protocol"]
