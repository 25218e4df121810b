"""The CDS Hooks 2.0 service itself, free of any web framework: discovery, a hook call, feedback.

Two services: `patient-view` (a chart is opened) and `order-select` (a drug the criteria read is being
ordered; see orders.py), with the same prefetch.

A call: check the request (400 with a JSON error naming the field when it is malformed), take what
the EHR prefetched, read on the searchsets it sent with a `next` link and fetch the rest from
`fhirServer` if allowed (412 when something is missing and there is no way to read it, as CDS Hooks
says), screen the one patient with the same definition as every other fhir3t run, then decide: a card
only for an eligible or candidate patient who is alive, not already in the study team's hands, and not
shown to this user too recently (store.Store.may_show). Data that cannot be read within the budget
gives no card (an empty `cards`), never an error card: a clinician is not shown half a record's verdict,
and the EHR is never kept waiting. A card shown keeps its full explanation page (explanation.py) for
its link.

Nothing here logs patient data: log lines carry the service, the hookInstance, counts, timings and
the reason for no card; the token in `fhirAuthorization` and the explanation page's token are never logged.
"""
from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir3t.dates import today_utc
from fhir3t.errors import AuthError
from fhir3t.fhirutil import server_label
from fhir3t.origins import origin
from fhir3t.pipeline import Definition, Run, screen_documents
from fhir3t.service import explanation
from fhir3t.service.bodies import HookRequest, feedback_items, hook_request
from fhir3t.service.cards import build_card, detail, gate, registry_url, study_subjects
from fhir3t.service.failures import HookError
from fhir3t.service.fetch import Fetcher
from fhir3t.service.jwt_auth import JwtVerifier
from fhir3t.service.orders import (
    OrderError,
    OrderRead,
    as_started,
    drug_name,
    effect_of,
    order_head,
    order_summary,
    read_orders,
    remove_suggestions,
    selected_orders,
)
from fhir3t.service.prefetch import (
    PrefetchError,
    Template,
    discovery_prefetch,
    read_prefetch,
    resources_in,
    templates,
)
from fhir3t.service.settings import ServeSettings
from fhir3t.service.store import Store

log = logging.getLogger("fhir3t.service")

OUTCOMES = ("accepted", "overridden")


@dataclass(frozen=True)
class ServiceDef:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, Template]

    def discovery(self) -> dict[str, Any]:
        return {"hook": self.hook, "title": self.title, "description": self.description, "id": self.id,
                "prefetch": discovery_prefetch(self.prefetch),
                "usageRequirements": "Prefetch the listed queries, or pass fhirServer and fhirAuthorization with read "
                                     "access to these resource types for the patient in context."}


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    #: what the request log line says (counts, timings, reasons; never patient data)
    fields: dict[str, Any]


class CdsService:
    """Discovery, hook calls and feedback for the study's screening service (see the module doc)."""

    def __init__(self, definition: Definition, settings: ServeSettings, store: Store, *, fetcher: Fetcher | None = None,
                 verifier: JwtVerifier | None = None, today: Callable[[], date] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        #: shared by every call, never changed: calls screen concurrently, each with a Run of its own
        self.definition = definition
        self.settings = settings
        self.store = store
        self.fetcher = fetcher or Fetcher()
        self.verifier = verifier
        self.today = today or (lambda: settings.as_of or today_utc())
        self.clock = clock
        study = definition.study
        tpls = templates(definition, settings.prefetch)
        n = len(definition.criteria.criteria)
        self.services = {s.id: s for s in [
            ServiceDef(f"{study.id}-patient-view", "patient-view", f"{study.short_title}: trial screening",
                       f"Screens the patient whose chart is opened against the {n} eligibility criteria of {study.value} "
                       f"({study.title}) and shows a card when the patient is eligible or a candidate and not already "
                       "in the study.", tpls),
            ServiceDef(f"{study.id}-order-select", "order-select", f"{study.short_title}: before starting a drug",
                       f"When a drug the {study.value} criteria read is ordered (a study drug, a JAK inhibitor, a "
                       "depleting agent, ...; by its code, its ConceptMap translation or its name), shows a card for a "
                       "patient who is eligible or a candidate, and a warning with a suggestion to remove the draft "
                       "order when starting it would, or may, exclude them. Other orders: no card, answered at once.",
                       tpls)]}

    def close(self) -> None:
        self.fetcher.close()

    # ---- discovery and authentication ------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        return {"services": [s.discovery() for s in self.services.values()]}

    def authenticate(self, authorization: str | None, path: str) -> None:
        """Raise HookError(401) unless the call carries a valid JWT (when the service requires one)."""
        if not self.settings.require_jwt:
            return
        if self.verifier is None or self.settings.public_url is None:
            raise HookError(500, "JWT verification is required but not configured")
        base = self.settings.public_url.rstrip("/")
        audience = [base + path.rstrip("/")]
        if path.endswith("/feedback"):
            audience.append(base + path[: -len("/feedback")])
        try:
            self.verifier.verify(authorization, audience)
        except AuthError as exc:
            raise HookError(401, str(exc)) from None

    def service(self, service_id: str) -> ServiceDef:
        svc = self.services.get(service_id)
        if svc is None:
            raise HookError(404, f"no CDS service '{service_id[:80]}' here (see GET /cds-services)")
        return svc

    # ---- a hook call --------------------------------------------------------------------
    def call(self, service_id: str, body: bytes, base_url: str | None = None) -> Answer:
        """Answer one hook call; `base_url`: where the service was called (the explanation page's base when
        [serve] public_url is not set)."""
        started = self.clock()
        deadline = started + self.settings.budget
        svc = self.service(service_id)
        req = hook_request(body)  # the typed boundary: a malformed envelope is a 400 naming the field
        if req.hook != svc.hook:
            raise HookError(400, f"this service answers the {svc.hook} hook, not '{req.hook[:60]}'")
        instance, pid, server, token = req.instance, req.patient_id, req.server, req.token
        orders: list[OrderRead] | None = None
        if svc.hook == "order-select":
            try:
                chosen, drafts = selected_orders(req.context)
                orders = read_orders(self.definition, chosen, pid, drafts)
            except OrderError as exc:
                raise HookError(400, str(exc)) from None
        try:
            pre = read_prefetch(req.prefetch, svc.prefetch, pid)
        except PrefetchError as exc:
            raise HookError(400, str(exc)) from None
        fields: dict[str, Any] = {"event": "cds-call", "service": svc.id, "hook_instance": str(instance)[:80],
                                  "prefetched": len(pre.documents), "prefetch_null": len(pre.empty),
                                  "to_fetch": len(pre.missing), "paged": len(pre.pages)}
        if orders is not None and not orders:
            return Answer(200, {"cards": []}, {**fields, "outcome": "no-card",
                                               "why": "no selected order is a drug the criteria read"})
        can_fetch = server is not None and self.settings.fetch_allowed(server)
        if server is not None and not can_fetch:
            fields["fhir_server"] = "not allowed"
        documents = list(pre.documents)
        missing = list(pre.missing)
        follow: list[tuple[str, str, str]] = []
        for tpl, url in pre.pages:  # a searchset sent with a next link: read on, where the service may
            on = self._reader_of(url, server if can_fetch else None)
            if on is not None:
                follow.append((tpl.key, url, on))
            else:  # the rest is on an origin the service may not read: fetch it whole, or it is missing
                documents = [d for d in documents if d[0] != f"prefetch:{tpl.key}"]
                missing.append(tpl)
        if missing and not can_fetch:
            keys = ", ".join(t.key for t in missing)
            why = ("this fhirServer is not one the service is configured to read ([serve] fhir_servers)" if server
                   else "no fhirServer was given")
            return Answer(412, {"error": f"prefetch {keys} missing, and {why}"}, {**fields, "outcome": "412"})
        if missing or follow or can_fetch:  # with a fhirServer, what the records point at is read too
            if can_fetch and server is not None:
                fields["fhir_server"] = server_label(server, path=False)
            t0 = self.clock()
            got = self.fetcher.fetch(server if can_fetch else None, token if can_fetch else None, missing, pid,
                                     documents, deadline, follow)
            fields.update(fetch_ms=round((self.clock() - t0) * 1000, 1), fetch_requests=got.requests)
            if not got.complete:
                fields.update(outcome="no-card", why="data not fetched within the budget",
                              not_fetched=sorted(got.failed.items()))
                log.warning("%s: no card: %d quer%s not answered in time or failed (%s)", svc.id, len(got.failed),
                            "y" if len(got.failed) == 1 else "ies", "; ".join(sorted(set(got.failed.values()))),
                            extra={"fields": fields})
                return Answer(200, {"cards": []}, fields)
            documents += got.documents
        lang = self.settings.lang  # the site's language (issue 23 adds the hook call's Accept-Language before it)
        return self._decide(svc, req, documents, fields, started, orders, base_url, lang)

    def _reader_of(self, url: str, server: str | None) -> str | None:
        """The base to read a next link with: the fhirServer when it is on its origin (with its token), else a
        configured server of that origin (without it); None when the service may not read there."""
        o = origin(url)
        if o is None:
            return None
        if server is not None and origin(server) == o:
            return server
        return next((s for s in self.settings.fhir_servers if origin(s) == o), None)

    def _decide(self, svc: ServiceDef, req: HookRequest, documents: list[tuple[str, object]], fields: dict[str, Any],
                started: float, orders: list[OrderRead] | None = None, base_url: str | None = None,
                lang: str = "en") -> Answer:
        today = self.today()
        d = self.definition
        pid, server = req.patient_id, req.server
        run = Run.start(d, as_of=today, lang=lang)
        t0 = self.clock()
        result = screen_documents(d, run, documents, f"Patient/{pid}")
        fields.update(screen_ms=round((self.clock() - t0) * 1000, 1), input_problems=len(run.problems))
        if result is None:
            return Answer(200, {"cards": []}, {**fields, "outcome": "no-card", "why": "no record of the patient"})
        fields.update(status=result.status, unknown=len(result.unknown))
        patient = next((r for r in resources_in(documents) if r.get("resourceType") == "Patient" and r.get("id") == pid),
                       None)
        g = gate(result, study_subjects(documents, result.patient, d.study), patient)
        if g.reason is not None:
            return Answer(200, {"cards": []}, {**fields, "outcome": "no-card", "why": g.reason})
        key = self.store.patient_key("|".join(map(str, origin(server) or ())) if server else "", pid)
        why = self.store.may_show(key, result.status, user=req.user_id, interval=orders is None)
        if why is not None:
            return Answer(200, {"cards": []}, {**fields, "outcome": "no-card", "why": why})
        card_uuid = str(uuid.uuid4())
        page_token = secrets.token_urlsafe(24)
        base = (self.settings.public_url or base_url or "").rstrip("/")
        page_url = f"{base}{explanation.PATH}/{page_token}" if base else None
        new_uuid = lambda: str(uuid.uuid4())  # noqa: E731
        if orders:
            after = screen_documents(d, Run.start(d, as_of=today, lang=lang),
                                     [*documents, ("order-select:draftOrders", as_started(orders, pid, today))],
                                     f"Patient/{pid}")
            eff = effect_of(result, after) if after is not None else None
            drug = drug_name(orders[0].order.resource, lang)
            removes = remove_suggestions(orders, eff, d, lang, new_uuid) if eff is not None and eff.excludes else []
            card = build_card(result, d, self.settings, card_uuid=card_uuid, today=today, new_uuid=new_uuid,
                              explanation_url=page_url, lang=lang, suggestions=removes)
            if eff is not None:
                card["summary"] = order_summary(result, eff, drug, d, lang)
                card["detail"] = detail(result, d, lang, head=order_head(eff, orders, drug, d, lang))
                card["indicator"] = "warning" if eff.excludes else "info"
                fields.update(with_order=after.status if after is not None else None, order_excludes=eff.excludes,
                              order_coded=all(o.coded for o in orders))
        else:
            card = build_card(result, d, self.settings, card_uuid=card_uuid, today=today, new_uuid=new_uuid,
                              explanation_url=page_url, lang=lang)
        page = None if page_url is None else \
            (page_token, explanation.page(result, d, lang, card["summary"], registry_url(d.study, self.settings)))
        self.store.shown(card_uuid, svc.id, key, result.status, req.instance, user=req.user_id,
                         patient_ref=result.patient, server=server_label(server, path=False) if server else None,
                         page=page)
        fields.update(outcome="card", card=card_uuid, indicator=card["indicator"], lang=lang,
                      total_ms=round((self.clock() - started) * 1000, 1))
        return Answer(200, {"cards": [card]}, fields)

    def explanation_page(self, token: str) -> tuple[int, str]:
        """(status, HTML) of an explanation page: 200 with the page, 404 when the token is unknown or expired."""
        page = self.store.explanation(token) if 16 <= len(token) <= 64 and token.isascii() else None
        if page is None:
            return 404, explanation.expired(self.settings.lang)
        return 200, page

    # ---- feedback -----------------------------------------------------------------------
    def feedback(self, service_id: str, body: bytes) -> Answer:
        svc = self.service(service_id)
        items = feedback_items(body)  # the typed boundary: at most 100 items, every value a bounded string
        known = self.store.feedback_many(svc.id, items)
        counts = {o: sum(1 for it in items if it.outcome == o) for o in OUTCOMES}
        fields = {"event": "cds-feedback", "service": svc.id, **counts, "unknown_cards": len(items) - known}
        return Answer(200, {}, fields)


__all__ = ["Answer", "CdsService", "HookError", "ServiceDef"]
