"""The typed boundary of the service: request bodies checked against their schema, then typed.

A hook call is checked against `schemas/cds-hook-request.schema.json`, feedback against
`schemas/cds-feedback.schema.json`; a body that does not fit is a 400 naming the field (via the
service's exception map), and the rest of the service only ever sees the typed objects below, never
a value of unchecked type. The prefetched resources are left to the readers, which judge each
element where they read it (as for every other input).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir3t.service.failures import HTTP_ERRORS as FAILURES
from fhir3t.service.failures import HookError
from fhir3t.shapecheck import check, dotted

#: id -> English template of a malformed request's HTTP error body (the schemas' `x-message` ids, and the checks that
#: span fields): JSON for the calling program, English whatever the language
HTTP_ERRORS = {
    "fhir-server": "{where} must be an http(s) URL with a host (and a port from 1 to 65535)",
    "bearer": "{where} must be Bearer",
    "outcome": "{where} must be accepted or overridden",
    "accepted-ids": "{where} must list the accepted suggestions' ids",
    "accepted-needs": "{where}.acceptedSuggestions must list the accepted suggestions' ids",
    "auth-needs-server": "request.fhirAuthorization needs request.fhirServer",
    "notification": "{where} must be empty, a FHIR resource or a Bundle",
}
#: a feedback request holds at most this many items (the schema says the same: one per card acted on)
MAX_FEEDBACK_ITEMS = 100


def parse(body: bytes) -> Any:
    """JSON, or a 400 (a body nested deeper than orjson reads, 1024 levels, is not valid JSON to it either)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HookError(400, FAILURES["not-json"]) from None


@dataclass(frozen=True)
class HookRequest:
    """A hook call whose envelope has the shape CDS Hooks 2.0 gives it."""

    hook: str
    instance: str
    patient_id: str  # a FHIR id (matched whole)
    user_id: str
    context: dict[str, Any]
    server: str | None = None  # an http(s) URL with a usable origin
    token: str | None = None
    prefetch: dict[str, Any] | None = None


def hook_request(body: bytes) -> HookRequest:
    doc = parse(body)
    # no depth walk over the prefetch (0.4 s for 4.5 MB): the schema checks the envelope only, orjson reads no more
    # than 1024 levels, and a reader that recurses too deep ends in the exception map's 400
    check("cds-hook-request", doc, dotted("request"), HTTP_ERRORS, max_depth=None)
    context = doc["context"]
    auth = doc.get("fhirAuthorization")
    server = doc.get("fhirServer")
    if auth is not None and server is None:
        raise HookError(400, HTTP_ERRORS["auth-needs-server"])
    return HookRequest(hook=doc["hook"], instance=doc["hookInstance"], patient_id=context["patientId"],
                       user_id=context["userId"], context=context, server=server,
                       token=auth["access_token"] if auth else None, prefetch=doc.get("prefetch"))


@dataclass(frozen=True)
class FeedbackItem:
    """One feedback item, every value a bounded string (what the store keeps)."""

    card: str
    outcome: str  # accepted | overridden
    outcome_at: str
    accepted: tuple[str, ...] = ()
    reason_system: str | None = None
    reason_code: str | None = None
    reason_display: str | None = None
    comment: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def feedback_items(body: bytes) -> list[FeedbackItem]:
    doc = parse(body)
    check("cds-feedback", doc, dotted(""), HTTP_ERRORS)
    out = []
    for item in doc["feedback"]:
        reason = item.get("overrideReason") or {}
        coding = reason.get("reason") or {}
        out.append(FeedbackItem(
            card=item["card"], outcome=item["outcome"], outcome_at=item["outcomeTimestamp"],
            accepted=tuple(s["id"] for s in item.get("acceptedSuggestions") or ()),
            reason_system=coding.get("system"), reason_code=coding.get("code"), reason_display=coding.get("display"),
            comment=reason.get("userComment")))
    return out


__all__ = ["HTTP_ERRORS", "MAX_FEEDBACK_ITEMS", "FeedbackItem", "HookRequest", "feedback_items", "hook_request", "parse"]
