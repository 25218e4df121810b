"""Bulk `$export`: kick off a tiny export (Patients changed from now on: next to nothing), poll its
status URL once, and cancel the job; never download a file. An export whose status URL cannot be
reached (another host, a proxy's internal name) is what `fhir3t export` would fail on."""
from __future__ import annotations

from datetime import UTC, datetime

from fhir3t.errors import AuthError, ServerError
from fhir3t.messages import Msg, table
from fhir3t.pipeline.servercheck.capability import export_declared
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.session import Session
from fhir3t.transport.http import HttpStatusError, ResponseError
from fhir3t.transport.urls import describe, origin, origin_text

W = table("check.export", {
    "t.export": "Bulk $export",
    "t.status": "export status URL",
    "none": "no $export declared: fhir3t export cannot be used with this server (screen --server does not need it)",
    "refused": "{path} is declared, but the kick-off was refused: {error}",
    "credentials": "{path}: the credentials do not allow an export: {error}",
    "not-202": "{path}: expected 202 Accepted with a Content-Location, got {status}: fhir3t export cannot follow it",
    "not-202-no-location": "{path}: expected 202 Accepted with a Content-Location, got {status} without "
                           "Content-Location: fhir3t export cannot follow it",
    "unfollowable": "{path}: the status URL cannot be followed: {error}",
    "accepted": "{path} accepted a tiny export (_type=Patient, _since now): 202 with a status URL",
    "elsewhere": " (on {origin}, not {server})",
    "not-followed": "{url}{elsewhere}: fhir3t export reads only from origins you named, so it would not follow this "
                    "status URL; add --allow-origin {origin} if that host is the server's",
    "answers": "{url}{elsewhere} answers {status}: fhir3t export could not follow the export",
    "refused-credentials": "{url}{elsewhere} refused the credentials ({error})",
    "unreachable": "{url}{elsewhere} cannot be reached: {error}",
    "reachable": "{url}{elsewhere} reachable: {state}; {cancel}",
    "in-progress": "in progress (202)",
    "done": "done ({status})",
    "not-cancelled-status": "the job was not cancelled ({status}): the server lets it expire",
    "not-cancelled": "the job was not cancelled ({error})",
    "cancelled": "the job was cancelled ({status})",
})
TITLE = W["t.export"]()
STATUS_TITLE = W["t.status"]()


def export_checks(session: Session, now: datetime | None = None) -> list[Check]:
    client = session.client
    path = export_declared(session.cs)
    if path is None:
        return [Check("export", TITLE, WARNING, W["none"](), {"declared": False})]
    since = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        resp = client.request("GET", path, params=[("_type", "Patient"), ("_since", since),
                                                   ("_outputFormat", "application/fhir+ndjson")],
                              headers={"Prefer": "respond-async", "Accept": "application/fhir+json"})
    except HttpStatusError as exc:
        return [Check("export", TITLE, FAIL, W["refused"](path=path, error=str(exc)),
                      {"declared": True, "status": exc.status})]
    except AuthError as exc:
        return [Check("export", TITLE, FAIL, W["credentials"](path=path, error=str(exc)), {"declared": True})]
    loc = resp.headers.get("Content-Location")
    if resp.status_code != 202 or not loc:
        return [Check("export", TITLE, FAIL, W["not-202" if loc else "not-202-no-location"](path=path, status=resp.status_code),
                      {"declared": True, "status": resp.status_code})]
    try:
        status_url = client.url(loc)
    except ResponseError as exc:
        return [Check("export", TITLE, FAIL, W["unfollowable"](path=path, error=str(exc)), {"declared": True})]
    checks = [Check("export", TITLE, OK, W["accepted"](path=path), {"declared": True, "status": 202})]
    checks.append(_status(session, status_url))
    return checks


def _status(session: Session, url: str) -> Check:
    client = session.client
    where = describe(url)
    o = origin(url)
    foreign = o != client.origin
    elsewhere = W["elsewhere"](origin=origin_text(o), server=origin_text(client.origin)) if foreign and o else None
    details: dict[str, object] = {"url": where, "same_origin": not foreign}
    if not client.credentials_for(url):  # fhir3t export would not follow it: say so, send nothing there
        return Check("export-status", STATUS_TITLE, WARNING,
                     W["not-followed"](url=where, elsewhere=elsewhere, origin=origin_text(o) if o else "ORIGIN"),
                     {**details, "reachable": None})
    try:
        resp = client.request("GET", url, headers={"Accept": "application/json"}, ok=(202,))
    except HttpStatusError as exc:
        return Check("export-status", STATUS_TITLE, FAIL, W["answers"](url=where, elsewhere=elsewhere, status=exc.status),
                     {**details, "reachable": False, "status": exc.status})
    except AuthError as exc:
        if not foreign:
            raise
        return Check("export-status", STATUS_TITLE, FAIL,
                     W["refused-credentials"](url=where, elsewhere=elsewhere, error=str(exc)), {**details, "reachable": False})
    except ServerError as exc:  # unreachable, timed out: the message names the host and path that failed
        return Check("export-status", STATUS_TITLE, FAIL, W["unreachable"](url=where, elsewhere=elsewhere, error=str(exc)),
                     {**details, "reachable": False})
    state = W["in-progress"]() if resp.status_code == 202 else W["done"](status=resp.status_code)
    cancel = _cancel(session, url)
    return Check("export-status", STATUS_TITLE, OK, W["reachable"](url=where, elsewhere=elsewhere, state=state, cancel=cancel),
                 {**details, "reachable": True, "status": resp.status_code})


def _cancel(session: Session, url: str) -> Msg:
    """DELETE the job (the Bulk Data way to cancel it); what happened, for the status line."""
    try:
        resp = session.client.request("DELETE", url, headers={"Accept": "application/json"})
    except HttpStatusError as exc:
        return W["not-cancelled-status"](status=exc.status)
    except (ResponseError, AuthError) as exc:
        return W["not-cancelled"](error=str(exc))
    return W["cancelled"](status=resp.status_code)
