"""The ASGI application: Starlette routes over the framework-free CDS service and watcher.

    GET  /health                                  liveness, version, study, watcher state (no auth)
    GET  /cds-services                            discovery
    POST /cds-services/{id}                       a hook call
    POST /cds-services/{id}/feedback              what the clinician did with a card
    POST|PUT /fhir3t/notify[/{type}/{id}]         FHIR Subscription rest-hook notifications (with a watcher)

Every error is JSON ({"error": ...}) with its status; bodies above `max_body_mb` are refused (413)
before they are read whole. The screening runs in the thread pool (CPU work and blocking fetches),
so the event loop keeps accepting calls. One log line per request: method, route, status, time,
and the handler's counts; never a body, a header or a query.
"""
from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fhir3t import __version__
from fhir3t.service.hooks import Answer, CdsService, HookError
from fhir3t.service.watch import NOTIFY_PATH, Watcher

log = logging.getLogger("fhir3t.service")


class TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _route_label(request: Request) -> str:
    """The route template matched ('/cds-services/{service_id}'), never the path itself (it may hold an id)."""
    path = getattr(request.scope.get("route"), "path", None)
    return path if isinstance(path, str) else "(no route)"


def _log(request: Request, status: int, started: float, fields: dict[str, Any] | None = None) -> None:
    ms = round((time.monotonic() - started) * 1000, 1)
    route = _route_label(request)
    extra = {"event": "request", "method": request.method, "route": route, "status": status, "ms": ms, **(fields or {})}
    outcome = f" {fields['outcome']}" if fields and "outcome" in fields else ""
    level = logging.ERROR if status >= 500 else logging.INFO  # a 5xx is the service failing a call: alert
    log.log(level, "%s %s %d%s %.0f ms", request.method, route, status, outcome, ms, extra={"fields": extra})


class _Handlers:
    """The route handlers over one CDS service and/or watcher."""

    def __init__(self, cds: CdsService | None, watcher: Watcher | None, notify_token: str | None, max_body: int) -> None:
        self.cds, self.watcher, self.notify_token, self.max_body = cds, watcher, notify_token, max_body
        self.started_at = time.time()

    async def health(self, request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok", "version": __version__, "uptime_s": round(time.time() - self.started_at, 1)}
        cds, watcher = self.cds, self.watcher
        if cds is not None:
            body.update(study=cds.definition.study.value, criteria=cds.definition.label,
                        services=sorted(cds.services))
        if watcher is not None:
            body["watch"] = {"rounds": watcher.rounds, "subscriptions": len(watcher.subscriptions),
                             "last_error": watcher.last_error}
        return JSONResponse(body)

    async def _guarded(self, request: Request, fn: Callable[[bytes], Answer] | None) -> Response:
        t0 = time.monotonic()
        cds = self.cds
        assert cds is not None
        try:
            await run_in_threadpool(cds.authenticate, request.headers.get("authorization"), request.url.path)
            if fn is None:
                answer = Answer(200, cds.discovery(), {"event": "cds-discovery"})
            else:
                body = await read_body(request, self.max_body)
                answer = await run_in_threadpool(fn, body)
        except HookError as exc:
            _log(request, exc.status, t0, {"error": exc.message})
            return _error(exc.status, exc.message)
        except TooLarge:
            _log(request, 413, t0)
            return _error(413, f"the request body is larger than {self.max_body // (1024 * 1024)} MB")
        except Exception as exc:  # a bug: say so, never a card built on it
            log.debug("internal error", exc_info=True)
            _log(request, 500, t0, {"error": type(exc).__name__})
            return _error(500, "internal error in the CDS service")
        _log(request, answer.status, t0, answer.fields)
        return JSONResponse(answer.body, status_code=answer.status)

    async def discovery(self, request: Request) -> Response:
        return await self._guarded(request, None)

    async def call(self, request: Request) -> Response:
        cds, sid = self.cds, request.path_params["service_id"]
        assert cds is not None
        return await self._guarded(request, lambda body: cds.call(sid, body))

    async def feedback(self, request: Request) -> Response:
        cds, sid = self.cds, request.path_params["service_id"]
        assert cds is not None
        return await self._guarded(request, lambda body: cds.feedback(sid, body))

    async def notify(self, request: Request) -> Response:
        t0 = time.monotonic()
        watcher, token = self.watcher, self.notify_token
        assert watcher is not None and token is not None
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            _log(request, 401, t0)
            return _error(401, "a notification must carry the watcher's bearer token")
        try:
            body = await read_body(request, self.max_body)
        except TooLarge:
            _log(request, 413, t0)
            return _error(413, "notification too large")
        queued = watcher.notified(body, request.path_params.get("rtype"), request.path_params.get("rid"))
        _log(request, 200, t0, {"event": "notification", "queued": queued})
        return JSONResponse({"resourceType": "OperationOutcome",
                             "issue": [{"severity": "information", "code": "informational", "diagnostics": "queued"}]})

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        _log(request, status, time.monotonic())
        return _error(status, str(detail))


def create_app(cds: CdsService | None, *, watcher: Watcher | None = None, notify_token: str | None = None,
               max_body: int = 32 * 1024 * 1024, cors_origins: Sequence[str] = (),
               on_startup: Sequence[Callable[[], None]] = (), on_shutdown: Sequence[Callable[[], None]] = ()) -> Starlette:
    """The service's ASGI app: CDS Hooks when `cds` is given, notifications when `watcher` is; `on_startup` /
    `on_shutdown` run (in the thread pool) when the server starts and when it stops."""
    h = _Handlers(cds, watcher, notify_token, max_body)
    routes = [Route("/health", h.health, methods=["GET"])]
    if cds is not None:
        routes += [Route("/cds-services", h.discovery, methods=["GET"]),
                   Route("/cds-services/{service_id}", h.call, methods=["POST"]),
                   Route("/cds-services/{service_id}/feedback", h.feedback, methods=["POST"])]
    if watcher is not None:
        if not notify_token:
            raise ValueError("a watcher's notification endpoint needs a token")
        routes += [Route(NOTIFY_PATH, h.notify, methods=["POST", "PUT"]),
                   Route(NOTIFY_PATH + "/{rtype}/{rid}", h.notify, methods=["POST", "PUT"])]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for fn in on_startup:
            await run_in_threadpool(fn)
        try:
            yield
        finally:
            for fn in on_shutdown:
                try:
                    await run_in_threadpool(fn)
                except Exception as exc:  # shutting down: say what failed, go on with the rest
                    log.warning("shutdown step failed: %s", type(exc).__name__)

    middleware = []
    if cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                                     allow_headers=["Authorization", "Content-Type"]))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={HTTPException: h.http_error})


__all__ = ["create_app", "read_body"]
