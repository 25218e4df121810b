"""Bulk `$export`: kick off a tiny export (Patients changed from now on: next to nothing), poll its
status URL once, and cancel the job; never download a file. An export whose status URL cannot be
reached (another host, a proxy's internal name) is what `fhir3t export` would fail on."""
from __future__ import annotations

from datetime import UTC, datetime

from fhir3t.errors import AuthError, ServerError
from fhir3t.pipeline.servercheck.capability import export_declared
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.session import Session
from fhir3t.transport.http import HttpStatusError, ResponseError
from fhir3t.transport.urls import describe, origin, origin_text

TITLE = "Bulk $export"
STATUS_TITLE = "export status URL"


def export_checks(session: Session, now: datetime | None = None) -> list[Check]:
    client = session.client
    path = export_declared(session.cs)
    if path is None:
        return [Check("export", TITLE, WARNING, "no $export declared: fhir3t export cannot be used with this server "
                      "(screen --server does not need it)", {"declared": False})]
    since = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        resp = client.request("GET", path, params=[("_type", "Patient"), ("_since", since),
                                                   ("_outputFormat", "application/fhir+ndjson")],
                              headers={"Prefer": "respond-async", "Accept": "application/fhir+json"})
    except HttpStatusError as exc:
        return [Check("export", TITLE, FAIL, f"{path} is declared, but the kick-off was refused: {exc}",
                      {"declared": True, "status": exc.status})]
    except AuthError as exc:
        return [Check("export", TITLE, FAIL, f"{path}: the credentials do not allow an export: {exc}",
                      {"declared": True})]
    loc = resp.headers.get("Content-Location")
    if resp.status_code != 202 or not loc:
        return [Check("export", TITLE, FAIL, f"{path}: expected 202 Accepted with a Content-Location, got "
                      f"{resp.status_code}{'' if loc else ' without Content-Location'}: fhir3t export cannot follow it",
                      {"declared": True, "status": resp.status_code})]
    try:
        status_url = client.url(loc)
    except ResponseError as exc:
        return [Check("export", TITLE, FAIL, f"{path}: the status URL cannot be followed: {exc}", {"declared": True})]
    checks = [Check("export", TITLE, OK, f"{path} accepted a tiny export (_type=Patient, _since now): 202 with a "
                    "status URL", {"declared": True, "status": 202})]
    checks.append(_status(session, status_url))
    return checks


def _status(session: Session, url: str) -> Check:
    client = session.client
    where = describe(url)
    o = origin(url)
    foreign = o != client.origin
    elsewhere = f" (on {origin_text(o)}, not {origin_text(client.origin)})" if foreign and o else ""
    details: dict[str, object] = {"url": where, "same_origin": not foreign}
    if not client.credentials_for(url):  # fhir3t export would not follow it: say so, send nothing there
        return Check("export-status", STATUS_TITLE, WARNING, f"{where}{elsewhere}: fhir3t export reads only from "
                     f"origins you named, so it would not follow this status URL; add --allow-origin "
                     f"{origin_text(o) if o else 'ORIGIN'} if that host is the server's", {**details, "reachable": None})
    try:
        resp = client.request("GET", url, headers={"Accept": "application/json"}, ok=(202,))
    except HttpStatusError as exc:
        return Check("export-status", STATUS_TITLE, FAIL, f"{where}{elsewhere} answers {exc.status}: fhir3t export "
                     "could not follow the export", {**details, "reachable": False, "status": exc.status})
    except AuthError as exc:
        if not foreign:
            raise
        return Check("export-status", STATUS_TITLE, FAIL, f"{where}{elsewhere} refused the credentials ({exc})",
                     {**details, "reachable": False})
    except ServerError as exc:  # unreachable, timed out: the message names the host and path that failed
        return Check("export-status", STATUS_TITLE, FAIL, f"{where}{elsewhere} cannot be reached: {exc}",
                     {**details, "reachable": False})
    state = "in progress (202)" if resp.status_code == 202 else f"done ({resp.status_code})"
    cancel = _cancel(session, url)
    return Check("export-status", STATUS_TITLE, OK, f"{where}{elsewhere} reachable: {state}; {cancel}",
                 {**details, "reachable": True, "status": resp.status_code})


def _cancel(session: Session, url: str) -> str:
    """DELETE the job (the Bulk Data way to cancel it); what happened, for the status line."""
    try:
        resp = session.client.request("DELETE", url, headers={"Accept": "application/json"})
    except HttpStatusError as exc:
        return f"the job was not cancelled ({exc.status}): the server lets it expire"
    except (ResponseError, AuthError) as exc:
        return f"the job was not cancelled ({exc})"
    return f"the job was cancelled ({resp.status_code})"
