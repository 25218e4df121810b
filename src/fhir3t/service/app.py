"""The ASGI application: Starlette routes over the framework-free CDS service and watcher.

    GET  /health                                  liveness, version, study, watcher state (no auth)
    GET  /cds-services                            discovery
    POST /cds-services/{id}                       a hook call
    POST /cds-services/{id}/feedback              what the clinician did with a card
    GET  /fhir3t/explain/{token}                  a card's full explanation page (the token is the card link's)
    POST|PUT /fhir3t/notify[/{type}/{id}]         FHIR Subscription rest-hook notifications (with a watcher)
    GET|POST /coordinator/...                     the coordinator's page (service/coordinator.py)

Browser-based CDS clients (the CDS Hooks sandbox, a SMART-enabled EHR front end) call from another origin:
a CORS preflight (OPTIONS) from an origin in `[serve] cors_origins` is answered (methods GET and POST, headers
Authorization and Content-Type, cached for 10 minutes) and the answers to its calls carry
Access-Control-Allow-Origin; a preflight from any other origin, or with no origin configured, is refused with
403 and a JSON error, and no answer carries the header, so the browser does not let that page read it.

Every error is JSON ({"error": ...}) with the status the service's one exception map gives it
(service/failures.py); nothing a request holds can make a 500 or a traceback. A hook call or feedback
must be sent as application/json (415 otherwise): what a browser cannot send cross-site without a CORS
preflight, so no web page can call the service in a clinician's name.

Bounded: a body larger than its route's limit is refused (413) before it is read whole, and one that
takes longer than `body_timeout` to arrive is answered 408 and let go (a client dribbling its body holds
a connection, never a worker). Work runs in lanes: hook calls on their own threads, feedback on two
(with a short queue; beyond it 503), so a flood of feedback cannot take the threads hook calls need.
The screening runs in the thread pool (CPU work and blocking fetches), so the event loop keeps
accepting calls. One log line per request: method, route, status, time, and the handler's counts;
never a body, a header or a query.
"""
from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from fhir3t import __version__
from fhir3t.service import explanation
from fhir3t.service.coordinator import Coordinator
from fhir3t.service.failures import Busy, HookError, TooLarge, TooSlow, answer_for
from fhir3t.service.hooks import Answer, CdsService
from fhir3t.service.settings import BODY_TIMEOUT
from fhir3t.service.watch import NOTIFY_PATH, Watcher

log = logging.getLogger("fhir3t.service")

#: a feedback request is small (at most 100 items of short strings): a larger body is not feedback
FEEDBACK_MAX_BODY = 1024 * 1024
#: threads screening hook calls at once (screening holds the GIL: more threads only queue inside Python)
HOOK_THREADS = 8
#: threads recording feedback, and feedback requests that may wait for one (beyond: 503)
FEEDBACK_THREADS, FEEDBACK_WAITING = 2, 16

#: id -> English template of an HTTP error body (and the names of the request lanes a 503 body names): JSON for the
#: calling program, English whatever the language
HTTP_ERRORS = {
    "notify-token": "a notification must carry the watcher's bearer token",
    "feedback": "feedback",
    "hook-calls": "hook calls",
    "gone": "the client closed the connection before the body ended",
    "json-only": "the request body must be sent as application/json",
    "cors": "cross-origin calls are allowed only from the origins in [serve] cors_origins",
}
#: seconds a browser may cache a preflight's answer
CORS_MAX_AGE = 600


class Cors(CORSMiddleware):
    """Starlette's CORS middleware, with a refused preflight answered 403 with a JSON error (the app's errors are
    JSON), also when no origin is configured (instead of the 405 a route without OPTIONS would give)."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(app, allow_origins=list(origins), allow_methods=["GET", "POST"],
                         allow_headers=["Authorization", "Content-Type", "Accept"], allow_private_network=bool(origins),
                         max_age=CORS_MAX_AGE)

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code == 200:
            return answer
        return JSONResponse({"error": HTTP_ERRORS["cors"]}, status_code=403, headers={"Vary": "Origin"})


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    """The request body, refusing (413) more than `limit` bytes without reading them all, and (408) a body
    that takes longer than `timeout` seconds to arrive."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(timeout) as scope:
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(limit)
                chunks.append(chunk)
        except ClientDisconnect:
            raise HookError(400, HTTP_ERRORS["gone"]) from None
    if scope.cancelled_caught:
        raise TooSlow(timeout)
    return b"".join(chunks)


class Lane:
    """At most `threads` calls of one kind running, at most `waiting` more queued; beyond that, Busy (503)."""

    def __init__(self, what: str, threads: int, waiting: int | None = None) -> None:
        self.what = what
        self.limiter = anyio.CapacityLimiter(threads)
        self.waiting = waiting
        self.queued = 0

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.waiting is not None and self.queued >= self.waiting + int(self.limiter.total_tokens):
            raise Busy(self.what)
        self.queued += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        finally:
            self.queued -= 1


def _json_content(request: Request) -> None:
    """415 unless the body is declared JSON: a web page can make a browser POST text/plain or a form to a
    service on loopback without asking (no CORS preflight), but not application/json, so a page the
    clinician visits cannot write feedback or call a hook in their name (CSRF)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not (kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))):
        raise HookError(415, HTTP_ERRORS["json-only"])


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


def _failed(request: Request, exc: BaseException, t0: float) -> JSONResponse:
    """The exception map's answer to a failure, logged with its status (and, for a bug, its type only)."""
    status, message = answer_for(exc)
    fields: dict[str, Any] = {"error": message}
    if status == 500:
        log.debug("internal error", exc_info=exc)
        fields = {"error": type(exc).__name__}
    _log(request, status, t0, fields)
    return _error(status, message)


class _Handlers:
    """The route handlers over one CDS service and/or watcher."""

    def __init__(self, cds: CdsService | None, watcher: Watcher | None, notify_token: str | None, max_body: int,
                 body_timeout: float) -> None:
        self.cds, self.watcher, self.notify_token, self.max_body = cds, watcher, notify_token, max_body
        self.body_timeout = body_timeout
        self.started_at = time.time()
        self.hooks = Lane(HTTP_ERRORS["hook-calls"], HOOK_THREADS)
        self.feedback_lane = Lane(HTTP_ERRORS["feedback"], FEEDBACK_THREADS, FEEDBACK_WAITING)

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

    async def _guarded(self, request: Request, fn: Callable[[bytes], Answer] | None, lane: Lane | None = None,
                       limit: int | None = None) -> Response:
        t0 = time.monotonic()
        cds = self.cds
        assert cds is not None
        try:
            await run_in_threadpool(cds.authenticate, request.headers.get("authorization"), request.url.path)
            if fn is None:
                answer = Answer(200, cds.discovery(), {"event": "cds-discovery"})
            else:
                _json_content(request)
                body = await read_body(request, self.max_body if limit is None else min(limit, self.max_body),
                                       self.body_timeout)
                answer = await (lane or self.hooks).run(fn, body)
        except Exception as exc:  # every failure through the one exception map
            return _failed(request, exc, t0)
        _log(request, answer.status, t0, answer.fields)
        return JSONResponse(answer.body, status_code=answer.status)

    async def discovery(self, request: Request) -> Response:
        return await self._guarded(request, None)

    async def call(self, request: Request) -> Response:
        cds, sid = self.cds, request.path_params["service_id"]
        assert cds is not None
        base = str(request.base_url).rstrip("/")
        language = request.headers.get("accept-language")
        return await self._guarded(request, lambda body: cds.call(sid, body, base, language))

    async def explain(self, request: Request) -> Response:
        """A card's explanation page: read by its token alone (the clinician's browser has no JWT), never logged."""
        t0 = time.monotonic()
        cds = self.cds
        assert cds is not None
        try:
            status, page = await run_in_threadpool(cds.explanation_page, request.path_params["token"])
        except Exception as exc:  # every failure through the one exception map
            return _failed(request, exc, t0)
        _log(request, status, t0, {"event": "explanation"})
        return HTMLResponse(page, status_code=status, headers=explanation.HEADERS)

    async def feedback(self, request: Request) -> Response:
        cds, sid = self.cds, request.path_params["service_id"]
        assert cds is not None
        return await self._guarded(request, lambda body: cds.feedback(sid, body), self.feedback_lane, FEEDBACK_MAX_BODY)

    async def notify(self, request: Request) -> Response:
        t0 = time.monotonic()
        watcher, token = self.watcher, self.notify_token
        assert watcher is not None and token is not None
        try:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {token}".encode()):
                raise HookError(401, HTTP_ERRORS["notify-token"])
            body = await read_body(request, self.max_body, self.body_timeout)
            queued = watcher.notified(body, request.path_params.get("rtype"), request.path_params.get("rid"))
        except Exception as exc:  # every failure through the one exception map
            return _failed(request, exc, t0)
        _log(request, 200, t0, {"event": "notification", "queued": queued})
        return JSONResponse({"resourceType": "OperationOutcome",
                             "issue": [{"severity": "information", "code": "informational", "diagnostics": "queued"}]})

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        _log(request, status, time.monotonic())
        return _error(status, str(detail))


def create_app(cds: CdsService | None, *, watcher: Watcher | None = None, notify_token: str | None = None,
               max_body: int = 32 * 1024 * 1024, body_timeout: float = BODY_TIMEOUT, cors_origins: Sequence[str] = (),
               on_startup: Sequence[Callable[[], None]] = (), on_shutdown: Sequence[Callable[[], None]] = (),
               coordinator: Coordinator | None = None) -> Starlette:
    """The service's ASGI app: CDS Hooks when `cds` is given, notifications when `watcher` is, the coordinator's page
    when `coordinator` is; `on_startup` / `on_shutdown` run (in the thread pool) when the server starts and stops."""
    h = _Handlers(cds, watcher, notify_token, max_body, body_timeout)
    routes = [Route("/health", h.health, methods=["GET"])]
    if cds is not None:
        routes += [Route("/cds-services", h.discovery, methods=["GET"]),
                   Route("/cds-services/{service_id}", h.call, methods=["POST"]),
                   Route("/cds-services/{service_id}/feedback", h.feedback, methods=["POST"]),
                   Route(explanation.PATH + "/{token}", h.explain, methods=["GET"])]
    if watcher is not None:
        if not notify_token:
            raise ValueError("a watcher's notification endpoint needs a token")
        routes += [Route(NOTIFY_PATH, h.notify, methods=["POST", "PUT"]),
                   Route(NOTIFY_PATH + "/{rtype}/{rid}", h.notify, methods=["POST", "PUT"])]
    if coordinator is not None:
        routes += coordinator.routes()

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

    middleware = [Middleware(Cors, origins=tuple(cors_origins))]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={HTTPException: h.http_error, Exception: h.http_error})


__all__ = ["CORS_MAX_AGE", "FEEDBACK_MAX_BODY", "Cors", "Lane", "create_app", "read_body"]
