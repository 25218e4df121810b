"""One HTTP client for every FHIR server call: timeouts, retries, a request budget, bounded parallelism.

Retry policy is kept apart from transport (`RetryPolicy` decides, `FhirClient` sends) so tests can
inject a clock and a sleeper and check the policy without waiting. Requests are logged at DEBUG
with method, path (query *names* only: values can be patient identifiers), status and timing.
"""
from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urljoin, urlsplit

import orjson
import requests

from fhir3t.errors import AuthError, ServerError
from fhir3t.version import __version__

log = logging.getLogger("fhir3t.http")
# urllib3 logs full URLs (query values may identify patients) at DEBUG: keep it quieter
logging.getLogger("urllib3").setLevel(logging.INFO)

FHIR_JSON = "application/fhir+json"
T = TypeVar("T")
R = TypeVar("R")

#: Statuses worth another try: timeouts, throttling and transient server failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Auth(Protocol):
    """What the client needs from an auth scheme (see fhir3t.transport.auth)."""

    def headers(self) -> dict[str, str]: ...

    def refresh(self) -> bool:
        """Called once after a 401: get a new credential; True if a retry can help."""
        ...


class HttpStatusError(ServerError):
    """The server answered with an error status (kept so callers can react to 404, 412, ...)."""

    def __init__(self, message: str, status: int, body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


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
        if not value:
            return None
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when - (now if now is not None else time.time()))

    def delay(self, attempt: int, response: requests.Response | None) -> float:
        """How long to wait before retry `attempt`; raises ServerError when the server asks too much."""
        if response is not None:
            ra = self.retry_after(response.headers.get("Retry-After"))
            if ra is not None:
                if ra > self.max_retry_after:
                    raise ServerError(f"{response.request.method if response.request else ''} "
                                      f"{safe_path(response.url)}: server asks to retry after {ra:.0f} s "
                                      f"(more than {self.max_retry_after:.0f} s); try again later")
                return ra
        return self.backoff(attempt)


def safe_path(url: str) -> str:
    """URL path plus query parameter names, never their values (they may identify a patient)."""
    parts = urlsplit(url)
    names = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True)]
    return parts.path + (("?" + "&".join(f"{n}=…" for n in names)) if names else "")


def outcome_text(body: object) -> str:
    """Readable text of an OperationOutcome (or '' if the body is not one)."""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        texts = []
        for i in body.get("issue") or ():
            if isinstance(i, dict):
                texts.append(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code") or "")
        return "; ".join(t for t in texts if t)[:500]
    return ""


@dataclass
class Stats:
    """Counts of what was sent, for the request budget, progress and benchmarks."""

    requests: int = 0
    retries: int = 0
    by_method: dict[str, int] = field(default_factory=dict)


class FhirClient:
    """A `requests.Session` bound to one FHIR base URL.

    Thread-safe for the bounded parallel fetches `map` runs. `max_requests` is a hard budget of HTTP
    requests (retries included) so a misconfigured query cannot hammer a hospital's server.
    """

    def __init__(self, base_url: str, *, auth: Auth | None = None, timeout: float | tuple[float, float] = (10.0, 120.0),
                 retry: RetryPolicy | None = None, max_requests: int | None = None, parallel: int = 4,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ServerError(f"{base_url!r} is not an http(s) URL of a FHIR server")
        self.base = base_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_requests = max_requests
        self.parallel = max(1, parallel)
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": FHIR_JSON, "User-Agent": f"fhir3t/{__version__}"})
        self.sleep = sleep
        self.stats = Stats()
        self._lock = threading.Lock()
        self._capabilities: dict | None = None

    # ---- plumbing ------------------------------------------------------------------------
    def url(self, path_or_url: str) -> str:
        """Absolute URL: links the server gave are used exactly as given."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        if not path_or_url.strip("/"):
            return self.base  # transactions and batches go to [base] itself
        return urljoin(self.base + "/", path_or_url.lstrip("/"))

    def _count(self, method: str) -> None:
        with self._lock:
            if self.max_requests is not None and self.stats.requests >= self.max_requests:
                raise ServerError(f"request budget exhausted: {self.max_requests} requests sent to {self.base} "
                                  "(raise --max-requests if this is expected)")
            self.stats.requests += 1
            self.stats.by_method[method] = self.stats.by_method.get(method, 0) + 1

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def request(self, method: str, path_or_url: str, *, params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
                json: Any = None, headers: Mapping[str, str] | None = None, idempotent: bool | None = None,
                ok: Iterable[int] = (), auth: bool | None = None, stream: bool = False) -> requests.Response:
        """Send one request with retries; returns the response for 2xx/3xx and statuses in `ok`.

        `idempotent` (default: GET/HEAD/PUT/DELETE) says whether a request whose outcome is unknown
        (read timeout, 5xx) may be sent again. Connection failures before anything was sent are
        always retried. 4xx other than 408/429 raise at once: retrying cannot fix them.
        """
        method = method.upper()
        url = self.url(path_or_url)
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        send_auth = self._same_origin(url) if auth is None else auth
        body = orjson.dumps(json) if json is not None else None
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Type", FHIR_JSON)
        refreshed = False
        attempt = 0
        ok_set = set(ok)
        while True:
            attempt += 1
            self._count(method)
            h = dict(hdrs)
            if send_auth and self.auth is not None:
                h.update(self.auth.headers())
            t0 = time.monotonic()
            try:
                resp = self.session.request(method, url, params=params, data=body, headers=h,
                                            timeout=self.timeout, stream=stream)
            except requests.exceptions.ConnectionError as exc:
                sent = not _not_sent(exc)
                self._log(method, url, None, t0, type(exc).__name__)
                if attempt < self.retry.attempts and (idempotent or not sent):
                    self._wait(attempt, None)
                    continue
                raise ServerError(f"cannot reach {self.base}: {_reason(exc)}") from None
            except requests.exceptions.Timeout:
                self._log(method, url, None, t0, "timeout")
                if attempt < self.retry.attempts and idempotent:
                    self._wait(attempt, None)
                    continue
                raise ServerError(f"{method} {safe_path(url)}: no answer from {self.base} within "
                                  f"{self._read_timeout():.0f} s") from None
            except requests.exceptions.RequestException as exc:
                self._log(method, url, None, t0, type(exc).__name__)
                raise ServerError(f"{method} {safe_path(url)}: {_reason(exc)}") from None
            self._log(method, resp.url or url, resp.status_code, t0)
            status = resp.status_code
            if status < 400 or status in ok_set:
                return resp
            if status == 401 and send_auth and self.auth is not None and not refreshed:
                refreshed = True
                if self.auth.refresh():
                    continue
            if status in (401, 403):
                raise AuthError(f"{method} {safe_path(url)}: {status} {_status_text(resp)}")
            if status in self.retry.statuses and attempt < self.retry.attempts and (idempotent or status in (408, 429, 503)):
                self._wait(attempt, resp)
                continue
            raise HttpStatusError(f"{method} {safe_path(url)}: {status} {_status_text(resp)}", status, _body(resp))

    def _read_timeout(self) -> float:
        return self.timeout[1] if isinstance(self.timeout, tuple) else self.timeout

    def _wait(self, attempt: int, resp: requests.Response | None) -> None:
        delay = self.retry.delay(attempt, resp)
        with self._lock:
            self.stats.retries += 1
        log.info("retrying in %.1f s (attempt %d of %d)", delay, attempt + 1, self.retry.attempts)
        self.sleep(delay)

    def _log(self, method: str, url: str, status: int | None, t0: float, note: str = "") -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %s %.0f ms %s", method, safe_path(url), status if status is not None else "-",
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
                raise ServerError(f"{self.base}/metadata is not a FHIR CapabilityStatement; is this a FHIR R4 base URL?")
            self._capabilities = cs
        return self._capabilities

    def pages(self, first: Any, *, where: str = "search") -> Iterator[dict]:
        """Yield a searchset and every page after it, following `link[next]` exactly as given."""
        page = first
        seen: set[str] = set()
        while True:
            if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
                raise ServerError(f"{where}: the server answered with {_kind(page)} instead of a Bundle")
            yield page
            nxt = next_link(page)
            if not nxt:
                return
            if nxt in seen:
                raise ServerError(f"{where}: the server's next link repeats an earlier page; stopped paging")
            seen.add(nxt)
            page = self.get(nxt)

    def search(self, rtype: str, params: list[tuple[str, str]] | Mapping[str, Any]) -> Iterator[dict]:
        """Every resource matching a search (all pages); `search.mode=outcome` entries are skipped."""
        first = self.get(rtype, params=params)
        for page in self.pages(first, where=f"{rtype} search"):
            for e in page.get("entry") or ():
                if isinstance(e, dict) and (e.get("search") or {}).get("mode") != "outcome" and isinstance(e.get("resource"), dict):
                    yield e["resource"]

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """fn over items with at most `parallel` requests in flight, results in input order."""
        if self.parallel <= 1:
            for it in items:
                yield fn(it)
            return
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="fhir3t-http") as pool:
            pending: list = []
            for it in items:
                pending.append(pool.submit(fn, it))
                if len(pending) >= self.parallel * 2:
                    yield pending.pop(0).result()
            for f in pending:
                yield f.result()

    def close(self) -> None:
        self.session.close()


def parse_json(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        raise ServerError(f"{resp.request.method if resp.request else 'GET'} {safe_path(resp.url)}: "
                          f"the server's answer is not valid JSON ({len(resp.content)} bytes, "
                          f"Content-Type {resp.headers.get('Content-Type', '?')})") from None


def next_link(bundle: dict) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _not_sent(exc: Exception) -> bool:
    """True when the request provably never reached the server (safe to resend even a POST)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    inner = exc.args[0] if exc.args else None
    if isinstance(inner, MaxRetryError):
        inner = inner.reason
    return isinstance(inner, NewConnectionError)


def _kind(obj: object) -> str:
    if isinstance(obj, dict):
        return f"a {obj.get('resourceType') or 'JSON object'}"
    return "an empty answer" if obj is None else type(obj).__name__


def _body(resp: requests.Response) -> object:
    try:
        return orjson.loads(resp.content) if resp.content else None
    except orjson.JSONDecodeError:
        return None


def _status_text(resp: requests.Response) -> str:
    text = ""
    try:
        text = outcome_text(orjson.loads(resp.content)) if resp.content else ""
    except orjson.JSONDecodeError:
        pass
    return (resp.reason or "") + (f": {text}" if text else "")


def _reason(exc: Exception) -> str:
    text = str(exc)
    for hint in ("Connection refused", "Name or service not known", "timed out", "Max retries exceeded",
                 "certificate verify failed", "No address associated"):
        if hint in text:
            return hint.lower()
    return type(exc).__name__
