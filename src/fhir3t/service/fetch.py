"""Fetch, from the CDS client's FHIR server, what the EHR did not prefetch, within a deadline.

The `fhirAuthorization` token goes only to the `fhirServer` origin (FhirClient sends credentials to
its base origin only: a `next` link elsewhere gets none) and is never logged: the client logs method,
path and parameter names. Every query runs in parallel with one attempt (no retries: there is no
time for them) and a read timeout of the remaining budget; whatever is not back by the deadline
counts as not fetched, and the caller answers with no card rather than a card built on part of
the record. Resources the record points at but no patient-scoped search returns (a Medication, the
ResearchStudy of a ResearchSubject) are read in a second round, by id.

Searches ask for pages of `PAGE_SIZE` (`_count`): a server's default page is often 20, and following 250
next links one after the other is what takes a sick inpatient's record past any budget (5,012 Observations
from sekmet: 251 pages in 8.5 s at its default, 6 pages in 0.34 s at `_count=1000`). A searchset the EHR
prefetched with a `next` link is read on from that link (`follow`), on the same terms: within the budget,
and only on an origin the service may read (FhirClient refuses any other before a request is sent).
"""
from __future__ import annotations

import http.cookiejar
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter

from fhir3t.errors import Fhir3tError
from fhir3t.fhirutil import fhir_reference, normalize_reference
from fhir3t.origins import Origin, origin
from fhir3t.r4facts import r4_facts
from fhir3t.service.prefetch import Template, resources_in
from fhir3t.transport.auth import BearerToken
from fhir3t.transport.http import FhirClient, RetryPolicy

log = logging.getLogger("fhir3t.service")

#: requests one CDS call may send (a runaway paging loop stops here)
MAX_REQUESTS = 200
#: ids per `Type?_id=` read of referenced resources
IDS_PER_QUERY = 50
#: entries per page asked of a search (servers may give fewer; see the module doc for the measurement)
PAGE_SIZE = 1000


class DeadlineExceeded(Fhir3tError):
    """The budget ran out before the data was complete."""


@dataclass
class Fetched:
    documents: list[tuple[str, object]] = field(default_factory=list)
    #: template keys (or 'referenced Medication', ...) that could not be fetched, with a reason (no PHI)
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0

    @property
    def complete(self) -> bool:
        return not self.failed


class Sessions:
    """One requests.Session per FHIR origin, shared across calls (keep-alive saves a TLS handshake per
    query) with cookies refused, so nothing one EHR user's call received is sent with another's."""

    def __init__(self) -> None:
        self._by_origin: dict[Origin | None, requests.Session] = {}
        self._lock = threading.Lock()

    def get(self, base: str) -> requests.Session:
        key = origin(base)
        with self._lock:
            s = self._by_origin.get(key)
            if s is None:
                s = requests.Session()
                s.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
                s.mount("http://", adapter)
                s.mount("https://", adapter)
                self._by_origin[key] = s
            return s

    def close(self) -> None:
        with self._lock:
            for s in self._by_origin.values():
                s.close()
            self._by_origin.clear()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the time budget ran out")
    return left


def _search_all(client: FhirClient, url: str, deadline: float, where: str) -> list[dict]:
    """Every entry of a search, all pages, stopping at the deadline (one client per query: the timeout
    of each request is what is left of the budget)."""
    _budget(client, deadline)
    first = client.get(url)
    entries: list[dict] = []
    if isinstance(first, dict) and first.get("resourceType") != "Bundle":
        return [{"resource": first}]  # a read
    for page in client.pages(first, where=where):
        entries.extend(e for e in page.get("entry") or () if isinstance(e, dict))
        _budget(client, deadline)
    return entries


def _budget(client: FhirClient, deadline: float) -> None:
    """The next request may take what is left of the budget (connecting: 3 s at most)."""
    left = _left(deadline)
    client.timeout, client.connect_timeout = left, min(3.0, left)


def _referenced(documents: Iterable[tuple[str, object]]) -> dict[str, set[str]]:
    """Ids of the shared resources (Medication, ResearchStudy) the documents point at but do not hold."""
    shared = r4_facts().shared_types
    held: set[str] = set()
    wanted: dict[str, set[str]] = {}
    resources = resources_in(documents)
    for res in resources:
        if res.get("resourceType") in shared and isinstance(res.get("id"), str):
            held.add(f"{res['resourceType']}/{res['id']}")
    for res in resources:
        for key in ("medicationReference", "study"):
            v = res.get(key)
            ref = v.get("reference") if isinstance(v, dict) else None
            if not isinstance(ref, str) or ref.startswith("#"):
                continue
            norm = normalize_reference(ref, {})
            parsed = fhir_reference(norm)  # a FHIR id, matched whole: `a,b&_x=y` must not extend the query
            if norm and parsed and parsed[0] in shared and norm not in held:
                rtype, rid = parsed
                wanted.setdefault(rtype, set()).add(rid)
    return wanted


class Fetcher:
    """Runs the fetches of many CDS calls on one bounded thread pool."""

    def __init__(self, workers: int = 16) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir3t-cds-fetch")
        self.sessions = Sessions()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.sessions.close()

    def client(self, base: str, token: str | None) -> FhirClient:
        return FhirClient(base, auth=BearerToken(token) if token else None, retry=RetryPolicy(attempts=1),
                          max_requests=MAX_REQUESTS, parallel=1, session=self.sessions.get(base))

    def fetch(self, base: str | None, token: str | None, missing: Iterable[Template], patient_id: str,
              have: list[tuple[str, object]], deadline: float, follow: Iterable[tuple[str, str, str]] = ()) -> Fetched:
        """Fetch the missing templates from `base` (the fhirServer) and read on the prefetched searchsets in
        `follow` ((key, next URL, the base of an allowed origin it is on), with the token only when that base is
        `base`), then what the records point at; stop at the deadline."""
        out = Fetched()
        clients: list[FhirClient] = []

        def submit(url: str, where: str, on: str | None = None) -> Future:
            server = on or base
            assert server is not None
            clients.append(self.client(server, token if server == base else None))
            return self.pool.submit(_search_all, clients[-1], url, deadline, where)

        jobs = {tpl.key: submit(_paged(tpl, patient_id), f"fhirServer {tpl.type} query") for tpl in missing}
        for key, url, server in follow:
            jobs[f"{key} (next pages)"] = submit(url, f"prefetch {key} next page", server)
        self._collect(jobs, deadline, out)
        if not out.complete or base is None:
            out.requests = sum(c.stats.requests for c in clients)
            return out
        wanted = _referenced([*have, *out.documents])
        refs: dict[str, Future] = {}
        for rtype, ids in sorted(wanted.items()):
            ordered = sorted(ids)
            for i in range(0, len(ordered), IDS_PER_QUERY):
                query = f"{rtype}?_id={','.join(ordered[i:i + IDS_PER_QUERY])}"
                refs[f"referenced {rtype} ({i // IDS_PER_QUERY + 1})"] = submit(query, f"fhirServer {rtype} read")
        self._collect(refs, deadline, out)
        out.requests = sum(c.stats.requests for c in clients)
        return out

    @staticmethod
    def _collect(jobs: dict[str, Future], deadline: float, out: Fetched) -> None:
        done, _pending = wait(jobs.values(), timeout=max(0.0, deadline - time.monotonic()))
        for key, fut in jobs.items():
            if fut not in done:
                fut.cancel()
                out.failed[key] = "no answer within the time budget"
                continue
            exc = fut.exception()
            if exc is not None:
                out.failed[key] = _why(exc)
                continue
            entries = fut.result()
            out.documents.append((f"fhirServer:{key}", {"resourceType": "Bundle", "type": "collection",
                                                         "entry": entries}))


def _paged(tpl: Template, patient_id: str) -> str:
    """A template's query for the service's own fetch: searches ask for pages of PAGE_SIZE."""
    query = tpl.expand(patient_id)
    return query if tpl.is_read else f"{query}&_count={PAGE_SIZE}"


def _why(exc: BaseException) -> str:
    """A failure in words that hold no patient data (statuses and error kinds only)."""
    if isinstance(exc, DeadlineExceeded):
        return "no answer within the time budget"
    status = getattr(exc, "status", None)
    if status is not None:
        return f"the server answered {status}"
    text = str(exc)
    for hint in ("no answer", "cannot reach", "request budget", "not valid JSON", "instead of a Bundle"):
        if hint in text:
            return hint
    return type(exc).__name__


__all__ = ["PAGE_SIZE", "DeadlineExceeded", "Fetched", "Fetcher", "Sessions"]
