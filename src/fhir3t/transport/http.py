"""One HTTP client for every FHIR server call: deadlines, retries, budgets, bounded parallelism.

Retry policy is kept apart from transport (`RetryPolicy` decides, `FhirClient` sends) so tests can
inject a clock and a sleeper and check the policy without waiting. Requests are logged at DEBUG
with method, path (query *names* only: values can be patient identifiers), status and timing.

What a hostile or broken server cannot do through this client:
- make it read from, or send the credentials to, an origin the user did not name: every URL the
  client follows (a next link, a Bulk status or output URL, a redirect) must be on the origin
  (scheme, host, port) of the base URL or one the user allows (`allow_origins`, --allow-origin);
  anything else is refused with one sentence before a request is sent;
- hold a request open: each attempt has a wall-clock deadline (`timeout`), slow-loris included,
  and a request that ran into it is not sent again;
- exhaust memory or the run: answers are read streamed up to `max_body` bytes, searches follow at
  most `max_pages` pages, and `max_requests` bounds the whole run;
- see a non-idempotent request twice: only idempotent requests are retried once sent.
"""
from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

import orjson
import requests

from fhir3t.errors import AuthError, ServerError, UsageError
from fhir3t.jsonshape import child, child_text, items, objs, text
from fhir3t.messages import table
from fhir3t.transport.deadline import Deadline, guarded_session
from fhir3t.transport.limits import (
    CONNECT_TIMEOUT,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_TIMEOUT,
    ERROR_BODY_LIMIT,
    PROGRESS_BYTES,
)
from fhir3t.transport.urls import Origin, clean, describe, origin, origin_text, parse_origin, safe_path, strip_userinfo
from fhir3t.version import __version__

log = logging.getLogger("fhir3t.http")
# urllib3 logs full URLs (query values may identify patients) at DEBUG: keep it quieter
logging.getLogger("urllib3").setLevel(logging.INFO)

__all__ = ["FhirClient", "HttpStatusError", "ResponseError", "RetryPolicy", "describe", "outcome_text",
           "parse_json", "safe_path"]

FHIR_JSON = "application/fhir+json"
T = TypeVar("T")
R = TypeVar("R")

#: Statuses worth another try (idempotent requests only): timeouts, throttling, transient failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

_RETRY_AFTER_SECONDS = re.compile(r"[0-9]{1,10}", re.ASCII)

#: what a user is told when a server call fails for the whole run, or cannot be made (the CLI's error line, in the
#: reader's language); an unusable answer is a ResponseError's technical text, in English
MESSAGES = table("http", {
    "elsewhere": "{where}: {there} is not the server's origin ({base}) nor one allowed with --allow-origin: fhir3t "
                 "reads only from origins you named and sends the credentials nowhere else; not followed (add "
                 "--allow-origin {allow} if that host is trusted)",
    "retry-after": "{where}: server asks to retry after {seconds} s (more than {limit} s); try again later",
    "positive": "{name} must be a positive number, not {value}",
    "positive-whole": "{name} must be a positive whole number, not {value}",
    "name.timeout": "the timeout",
    "name.connect-timeout": "the connect timeout",
    "name.max-requests": "the request budget",
    "name.max-pages": "the page limit",
    "name.max-body": "the response size limit",
    "not-a-server": "{url} is not an http(s) URL of a FHIR server",
    "credentials-twice": "credentials given twice: in the server URL (user:password@) and as a token or SMART client; "
                         "give them once",
    "budget": "request budget exhausted: {n} requests sent to {base} (raise --max-requests if this is expected)",
    "too-slow": "{where}: no complete answer within {seconds} s (--timeout); not retried",
    "interrupted-download": "download of {where} interrupted: the connection was closed before the end",
    "interrupted-answer": "answer to {where} interrupted: the connection was closed before the end",
    "unreachable": "cannot reach {there} ({request}): {reason}",
    "unreachable-redirected": "cannot reach {there} ({request}, redirected from {url}): {reason}",
    "status": "{where}: {status} {text}",
    "not-fhir": "{base}/metadata is not a FHIR CapabilityStatement; is this a FHIR R4 base URL?",
    "body-not-json": "the request body cannot be written as JSON ({error})",
})


class Auth(Protocol):
    """What the client needs from an auth scheme (see fhir3t.transport.auth)."""

    def headers(self) -> dict[str, str]: ...

    def refresh(self) -> bool:
        """Called once after a 401: get a new credential; True if a retry can help."""
        ...


class ResponseError(ServerError):
    """The server answered, but the answer cannot be used (an error status, not JSON, the wrong
    shape, too large, too many pages). It concerns one response: a source reports it against the
    patients concerned and goes on with the others. Plain ServerErrors (unreachable, timed out,
    budget spent) concern the whole run."""


class HttpStatusError(ResponseError):
    """The server answered with an error status (kept so callers can react to 404, 412, ...)."""

    def __init__(self, message: str, status: int, body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class _Expired(Exception):
    """The deadline passed while the answer was still arriving."""


@dataclass
class RetryPolicy:
    """When to try again and how long to wait: exponential backoff with full jitter.

    `Retry-After` (seconds or an HTTP date) is honoured up to `max_retry_after` seconds; a server
    asking for a longer pause is reported instead of silently stalling a screening run.
    """

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    statuses: frozenset[int] = RETRY_STATUSES
    rng: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based)."""
        return self.rng() * min(self.cap, self.base * (2 ** (attempt - 1)))

    def retry_after(self, value: str | None, now: float | None = None) -> float | None:
        """Seconds a `Retry-After` value asks for; None when absent or unreadable.

        Only ASCII digits count as delta-seconds (`str.isdigit` also accepts '²' and Arabic-Indic
        digits); more than ten digits is "very long", which `delay` reports.
        """
        if not isinstance(value, str) or not value.strip():
            return None
        value = value.strip()
        if value.isascii() and value.isdigit():
            return float(value) if _RETRY_AFTER_SECONDS.fullmatch(value) else 1e10
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        wait = when - (now if now is not None else time.time())
        return max(0.0, wait) if math.isfinite(wait) else None

    def delay(self, attempt: int, response: requests.Response | None) -> float:
        """How long to wait before retry `attempt`; raises ServerError when the server asks too much."""
        if response is not None:
            ra = self.retry_after(response.headers.get("Retry-After"))
            if ra is not None:
                if ra > self.max_retry_after:
                    method = response.request.method if response.request else ""
                    raise ServerError(MESSAGES["retry-after"](where=f"{method} {describe(response.url or '')}",
                                                              seconds=f"{min(ra, 1e9):.0f}",
                                                              limit=f"{self.max_retry_after:.0f}"))
                return ra
        return self.backoff(attempt)


def outcome_text(body: object) -> str:
    """What an OperationOutcome says, safe for stderr: severity, code and element paths.

    `diagnostics` and `details.text` often quote the offending value (a name, a birth date): they
    are added only when DEBUG logging is on (-vv), and the message says that they exist.
    """
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    detail = log.isEnabledFor(logging.DEBUG)
    parts: list[str] = []
    hidden = False
    for issue in objs(body.get("issue"))[:10]:
        bits = [t for t in (text(issue.get("severity")), text(issue.get("code"))) if t]
        paths = [p for p in items(issue.get("expression")) + items(issue.get("location")) if isinstance(p, str)]
        if paths:
            bits.append("at " + ", ".join(paths[:3]))
        codes = [c for c in (child_text(x, "code") for x in objs(child(issue, "details").get("coding"))) if c]
        if codes:
            bits.append(f"[{', '.join(codes[:3])}]")
        diag = text(issue.get("diagnostics")) or child_text(child(issue, "details"), "text")
        if diag:
            if detail:
                bits.append(f"'{diag}'")
            else:
                hidden = True
        if bits:
            parts.append(" ".join(bits))
    out = "; ".join(parts)
    if hidden:
        out += " (the server's diagnostics, which may quote patient data, are shown with -vv)"
    return clean(out, 700)


@dataclass
class Stats:
    """Counts of what was sent, for the request budget, progress and benchmarks."""

    requests: int = 0
    retries: int = 0
    by_method: dict[str, int] = field(default_factory=dict)


def _positive(name: str, value: float | None, *, integer: bool = False) -> None:
    """UsageError unless `value` is a positive (whole) number; `name` is a key of MESSAGES' "name." entries."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0 \
            or (integer and value != int(value)):
        raise UsageError(MESSAGES["positive-whole" if integer else "positive"](name=MESSAGES[f"name.{name}"](),
                                                                               value=repr(value)))


class FhirClient:
    """A `requests.Session` bound to one FHIR base URL (see the module doc for what it guards).

    Thread-safe for the bounded parallel fetches `map` runs. `timeout` is the wall-clock limit of
    one request attempt (a `(connect, total)` pair is accepted too); `max_requests` is a hard
    budget of HTTP requests (retries included), `max_pages` of pages per search, `max_body` of
    bytes per JSON answer. A base URL with `user:password@` becomes HTTP Basic credentials (sent,
    like any other, only to that origin) and is never shown with them.
    """

    def __init__(self, base_url: str, *, auth: Auth | None = None, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 retry: RetryPolicy | None = None, max_requests: int | None = DEFAULT_MAX_REQUESTS,
                 max_pages: int | None = DEFAULT_MAX_PAGES, max_body: int = DEFAULT_MAX_BODY,
                 allow_origins: Iterable[str | Origin] = (), parallel: int = 4,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        base_origin = origin(base_url) if isinstance(base_url, str) else None
        if base_origin is None:
            raise ServerError(MESSAGES["not-a-server"](url=repr(describe(str(base_url)))))
        parts = urlsplit(base_url)
        if parts.username is not None:
            if auth is not None:
                raise UsageError(MESSAGES["credentials-twice"]())
            from fhir3t.transport.auth import BasicCredentials

            auth = BasicCredentials(unquote(parts.username), unquote(parts.password or ""))
        self.base = strip_userinfo(base_url).rstrip("/")
        self.origin = base_origin
        self.auth = auth
        connect, total = timeout if isinstance(timeout, tuple) else (min(CONNECT_TIMEOUT, timeout), timeout)
        _positive("timeout", total)
        _positive("connect-timeout", connect)
        _positive("max-requests", max_requests, integer=True)
        _positive("max-pages", max_pages, integer=True)
        _positive("max-body", max_body, integer=True)
        self.timeout = float(total)
        self.connect_timeout = float(min(connect, total))
        self.retry = retry or RetryPolicy()
        self.max_requests = max_requests
        self.max_pages = max_pages
        self.max_body = max_body
        self.trusted = {base_origin, *(o if isinstance(o, tuple) else parse_origin(o) for o in allow_origins)}
        self.parallel = max(1, parallel)
        self.session = session or guarded_session()
        self.session.headers.update({"Accept": FHIR_JSON, "User-Agent": f"fhir3t/{__version__}"})
        self.sleep = sleep
        self.stats = Stats()
        self._lock = threading.Lock()
        self._capabilities: dict | None = None

    # ---- plumbing ------------------------------------------------------------------------
    def url(self, path_or_url: str) -> str:
        """Absolute URL: links the server gave are used as given (less any userinfo); only http(s)."""
        if not isinstance(path_or_url, str):
            raise ResponseError(f"the server gave a link that is not a string ({type(path_or_url).__name__})")
        try:
            scheme = urlsplit(path_or_url).scheme.lower() if ":" in path_or_url else ""
        except ValueError:  # e.g. an unclosed IPv6 bracket
            scheme = "?"
        if scheme in ("http", "https"):
            if origin(path_or_url) is None:
                raise ResponseError(f"{describe(path_or_url)!r} is not a usable URL")
            return strip_userinfo(path_or_url)
        if scheme:
            raise ResponseError(f"{clean(path_or_url.split('?')[0], 80)!r} is not an http(s) URL; not followed")
        if not path_or_url.strip("/"):
            return self.base  # transactions and batches go to [base] itself
        return urljoin(self.base + "/", path_or_url.lstrip("/"))

    def credentials_for(self, url: str) -> bool:
        """True when `url` is on an origin the user named (the base's or one allowed): the only origins the
        client reads from and sends the credentials to."""
        return origin(url) in self.trusted

    def followable(self, url: str, where: str) -> None:
        """ResponseError (one sentence) unless `url` is on an origin the user named (see the module doc)."""
        if self.credentials_for(url):
            return
        o = origin(url)
        raise ResponseError(MESSAGES["elsewhere"](where=where, there=origin_text(o) if o else describe(url),
                                                  base=origin_text(self.origin), allow=origin_text(o) if o else "ORIGIN"))

    def _redirect_check(self, where: str) -> Callable[..., None]:
        """A requests response hook: a redirect to an origin the user did not name is not followed."""
        def hook(resp: requests.Response, *args: Any, **kw: Any) -> None:
            if resp.is_redirect:
                target = urljoin(resp.url, resp.headers.get("location", ""))
                self.followable(target, f"{where} (redirected)")
        return hook

    def _count(self, method: str) -> None:
        with self._lock:
            if self.max_requests is not None and self.stats.requests >= self.max_requests:
                raise ServerError(MESSAGES["budget"](n=self.max_requests, base=self.base))
            self.stats.requests += 1
            self.stats.by_method[method] = self.stats.by_method.get(method, 0) + 1

    def request(self, method: str, path_or_url: str, *, params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
                json: Any = None, headers: Mapping[str, str] | None = None, idempotent: bool | None = None,
                ok: Iterable[int] = ()) -> requests.Response:
        """Send one request with retries; returns the response (body read, at most `max_body`
        bytes) for 2xx/3xx and statuses in `ok`.

        `idempotent` (default: GET/HEAD/PUT/DELETE) says whether the request may be sent again
        after it reached the server (a 5xx, a lost answer); a request that provably never left is
        always retried. 4xx other than 408/429 raise at once: retrying cannot fix them.
        """
        return self._send(method, path_or_url, params=params, json=json, headers=headers, idempotent=idempotent,
                          ok=ok, consume=lambda resp, url, _dl: _read_body(resp, self.max_body, url))

    def download(self, url: str, write: Callable[[bytes], object], *, headers: Mapping[str, str] | None = None,
                 max_bytes: int | None = None, credentials: bool = True) -> int:
        """GET `url` and hand the body to `write` chunk by chunk; returns the byte count.

        The deadline starts at `timeout` and is renewed each time another PROGRESS_BYTES arrive, so a
        large file may take as long as it keeps coming, a trickle may not. A body beyond
        `max_bytes` is a ResponseError; a connection lost midway is a ServerError naming the URL.
        """
        done = [0]

        def consume(resp: requests.Response, full: str, dl: Deadline) -> None:
            n = last = 0
            for chunk in resp.iter_content(1 << 16):
                n += len(chunk)
                if max_bytes is not None and n > max_bytes:
                    raise ResponseError(f"GET {describe(full)}: larger than {_mb(max_bytes)}; not downloaded "
                                        "(raise --max-file-size if this is expected)")
                write(chunk)
                if n - last >= PROGRESS_BYTES:
                    dl.extend(self.timeout)
                    last = n
            done[0] = n

        self._send("GET", url, headers=headers, idempotent=True, consume=consume, interrupted="download",
                   credentials=credentials)
        return done[0]

    def _send(self, method: str, path_or_url: str, *, params: Any = None, json: Any = None,
              headers: Mapping[str, str] | None = None, idempotent: bool | None = None, ok: Iterable[int] = (),
              consume: Callable[[requests.Response, str, Deadline], None],
              interrupted: str = "answer", credentials: bool = True) -> requests.Response:
        method = method.upper()
        url = self.url(path_or_url)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        self.followable(url, f"{method} {describe(url)}")
        send_auth = credentials and self.auth is not None
        body = _dumps(json) if json is not None else None
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Type", FHIR_JSON)
        refreshed = False
        attempt = 0
        ok_set = set(ok)
        where = f"{method} {describe(url)}"
        while True:
            attempt += 1
            self._count(method)
            h = dict(hdrs)
            if send_auth and self.auth is not None:
                h.update(self.auth.headers())
            t0 = time.monotonic()
            dl = Deadline(self.timeout)
            got_answer = False
            resp: requests.Response | None = None
            try:
                with dl:
                    resp = self.session.request(method, url, params=params, data=body, headers=h,
                                                timeout=(self.connect_timeout, self.timeout), stream=True,
                                                hooks={"response": [self._redirect_check(where)]})
                    got_answer = True
                    if resp.status_code < 400 or resp.status_code in ok_set:
                        consume(resp, resp.url or url, dl)
                    else:
                        _read_body(resp, ERROR_BODY_LIMIT, url, truncate=True)
                if dl.expired:
                    raise _Expired
            except (requests.exceptions.RequestException, _Expired) as exc:
                if resp is not None:
                    resp.close()
                self._log(method, url, None, t0, type(exc).__name__)
                if dl.expired or isinstance(exc, _Expired | requests.exceptions.ReadTimeout):
                    raise ServerError(MESSAGES["too-slow"](where=where, seconds=f"{self.timeout:g}")) from None
                if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
                    sent = got_answer or not _not_sent(exc)
                    if attempt < self.retry.attempts and (idempotent or not sent):
                        self._wait(attempt, None)
                        continue
                    if got_answer:
                        raise ServerError(MESSAGES[f"interrupted-{interrupted}"](where=where)) from None
                    failed = text(getattr(getattr(exc, "request", None), "url", None)) or url  # after redirects
                    o = origin(failed)
                    # another origin (a redirect, a file host) unreachable costs this response, not the run
                    kind = ServerError if o == self.origin else ResponseError
                    there, request = origin_text(o) if o else describe(failed), f"{method} {safe_path(failed)}"
                    raise kind(MESSAGES["unreachable"](there=there, request=request, reason=_reason(exc))
                               if failed == url else
                               MESSAGES["unreachable-redirected"](there=there, request=request, url=describe(url),
                                                                  reason=_reason(exc))) from None
                raise ResponseError(f"{where}: {_reason(exc)}") from None
            except BaseException:
                if resp is not None:
                    resp.close()
                raise
            self._log(method, resp.url or url, resp.status_code, t0)
            status = resp.status_code
            if status < 400 or status in ok_set:
                return resp
            if status == 401 and send_auth and self.auth is not None and not refreshed:
                refreshed = True
                if self.auth.refresh():
                    continue
            if status in (401, 403):
                raise AuthError(MESSAGES["status"](where=where, status=status, text=_status_text(resp)))
            if status in self.retry.statuses and attempt < self.retry.attempts and idempotent:
                self._wait(attempt, resp)
                continue
            raise HttpStatusError(f"{where}: {status} {_status_text(resp)}", status, _body(resp))

    def _wait(self, attempt: int, resp: requests.Response | None) -> None:
        delay = self.retry.delay(attempt, resp)
        with self._lock:
            self.stats.retries += 1
        log.info("retrying in %.1f s (attempt %d of %d)", delay, attempt + 1, self.retry.attempts)
        self.sleep(delay)

    def _log(self, method: str, url: str, status: int | None, t0: float, note: str = "") -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %s %.0f ms %s", method, describe(url), status if status is not None else "-",
                      (time.monotonic() - t0) * 1000, note)

    # ---- FHIR helpers --------------------------------------------------------------------
    def json(self, method: str, path_or_url: str, **kw: Any) -> Any:
        resp = self.request(method, path_or_url, **kw)
        return parse_json(resp)

    def get(self, path_or_url: str, params: Mapping[str, Any] | list[tuple[str, str]] | None = None, **kw: Any) -> Any:
        return self.json("GET", path_or_url, params=params, **kw)

    def capabilities(self) -> dict:
        """The server's CapabilityStatement (read once)."""
        if self._capabilities is None:
            cs = self.get("metadata")
            if not isinstance(cs, dict) or cs.get("resourceType") != "CapabilityStatement":
                raise ServerError(MESSAGES["not-fhir"](base=self.base))
            self._capabilities = cs
        return self._capabilities

    def pages(self, first: Any, *, where: str = "search") -> Iterator[dict]:
        """Yield a searchset and every page after it, following `link[next]` exactly as given."""
        page = first
        seen: set[str] = set()
        count = 1
        while True:
            if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
                raise ResponseError(f"{where}: the server answered with {_kind(page)} instead of a Bundle")
            yield page
            nxt = next_link(page)
            if not nxt:
                return
            if nxt in seen:
                raise ResponseError(f"{where}: the server's next link repeats an earlier page; stopped paging")
            if self.max_pages is not None and count >= self.max_pages:
                raise ResponseError(f"{where}: more than {self.max_pages} pages; stopped paging "
                                    "(raise --max-pages if this is expected)")
            seen.add(nxt)
            count += 1
            try:
                page = self.get(nxt)
            except ResponseError:
                raise
            except (ServerError, AuthError) as exc:
                if origin(self.url(nxt)) == self.origin:
                    raise
                # a link to another origin that fails (or wants credentials it does not get) says
                # nothing about the server itself: it costs this response, not the run
                raise ResponseError(f"{where}: the next link cannot be followed: {exc}") from None

    def search(self, rtype: str, params: list[tuple[str, str]] | Mapping[str, Any]) -> Iterator[dict]:
        """Every `rtype` resource of a search (all pages).

        OperationOutcomes and `include`d resources are skipped; any other entry that is not a
        readable `rtype` resource makes the answer a ResponseError (not a shorter result).
        """
        where = f"{rtype} search"
        first = self.get(rtype, params=params)
        for page in self.pages(first, where=where):
            for e in entries(page, where):
                res = e.get("resource")
                mode = child_text(child(e, "search"), "mode")
                found = text(res.get("resourceType")) if isinstance(res, dict) else None
                if mode in ("outcome", "include") or found == "OperationOutcome":
                    continue
                if found != rtype:
                    raise ResponseError(f"{where}: an entry holds {_kind(res)} where a {rtype} belongs")
                yield res  # type: ignore[misc]

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """fn over items with at most `parallel` requests in flight, results in input order.

        When one call fails, the calls not yet started are cancelled before the error propagates.
        """
        if self.parallel <= 1:
            for it in items:
                yield fn(it)
            return
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="fhir3t-http")
        pending: list[Future[R]] = []
        try:
            for it in items:
                pending.append(pool.submit(fn, it))
                if len(pending) >= self.parallel * 2:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self.session.close()


def entries(bundle: object, where: str = "search") -> list[dict]:
    """A Bundle's entries; ResponseError when `entry` is not a list of objects.

    A broken page is not read as an empty or shorter one: a search whose answer decides whether
    a patient is already enrolled must not come out "nothing found" because an entry was garbled.
    """
    if not isinstance(bundle, dict):
        return []
    got = bundle.get("entry")
    if got is None:
        return []
    if not isinstance(got, list) or not all(isinstance(e, dict) for e in got):
        raise ResponseError(f"{where}: the Bundle's entry is not a list of objects")
    return got


def _dumps(doc: Any) -> bytes:
    """JSON for a request body; integers beyond 64 bits (which orjson refuses) go through the stdlib."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        import json

        try:
            return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise UsageError(MESSAGES["body-not-json"](error=str(exc))) from None


def parse_json(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        raise ResponseError(f"{resp.request.method if resp.request else 'GET'} {describe(resp.url or '')}: "
                            f"the server's answer is not valid JSON ({len(resp.content)} bytes, "
                            f"Content-Type {clean(resp.headers.get('Content-Type', '?'), 80)})") from None


def next_link(bundle: dict) -> str | None:
    for link in objs(items(bundle.get("link"))):
        if link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _read_body(resp: requests.Response, limit: int, url: str, *, truncate: bool = False) -> None:
    """Read the streamed body into `resp.content`, at most `limit` bytes (more: ResponseError, or cut)."""
    declared = resp.headers.get("Content-Length", "")
    if not truncate and declared.isascii() and declared.isdigit() and int(declared) > limit:
        resp.close()
        raise ResponseError(f"{_method(resp)} {describe(url)}: the answer is larger than {_mb(limit)} "
                            f"({_mb(int(declared))}); not read (raise --max-response-size if this is expected)")
    buf = bytearray()
    for chunk in resp.iter_content(1 << 16):
        buf += chunk
        if len(buf) > limit:
            resp.close()
            if truncate:
                del buf[limit:]
                break
            raise ResponseError(f"{_method(resp)} {describe(url)}: the answer is larger than {_mb(limit)}; "
                                "not read (raise --max-response-size if this is expected)")
    resp._content = bytes(buf)
    resp._content_consumed = True  # type: ignore[attr-defined]


def _method(resp: requests.Response) -> str:
    return (resp.request.method or "GET") if resp.request else "GET"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def _not_sent(exc: Exception) -> bool:
    """True when the request provably never reached the server (safe to resend even a POST)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

    inner = exc.args[0] if exc.args else None
    if isinstance(inner, MaxRetryError):
        inner = inner.reason
    return isinstance(inner, NewConnectionError | NameResolutionError)


def _kind(obj: object) -> str:
    if isinstance(obj, dict):
        rtype = text(obj.get("resourceType"))
        return f"a {clean(rtype, 64)}" if rtype else "a JSON object that is not a FHIR resource"
    return "an empty answer" if obj is None else f"a JSON {type(obj).__name__}"


def _body(resp: requests.Response) -> object:
    try:
        return orjson.loads(resp.content) if resp.content else None
    except orjson.JSONDecodeError:
        return None


def _status_text(resp: requests.Response) -> str:
    """The standard phrase of the status (the server's own reason phrase is its choice of text)."""
    try:
        phrase = HTTPStatus(resp.status_code).phrase
    except ValueError:
        phrase = clean(resp.reason or "", 60)
    text_ = outcome_text(_body(resp))
    return phrase + (f": {text_}" if text_ else "")


def _reason(exc: Exception) -> str:
    text_ = str(exc)
    for hint in ("Connection refused", "Name or service not known", "timed out", "Max retries exceeded",
                 "certificate verify failed", "No address associated", "Connection reset",
                 "Temporary failure in name resolution"):
        if hint in text_:
            return hint.lower()
    return type(exc).__name__
