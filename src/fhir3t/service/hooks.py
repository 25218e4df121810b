"""The CDS Hooks 2.0 service itself, free of any web framework: discovery, a hook call, feedback.

Two services: `patient-view` (a chart is opened) and `order-select` (a drug the criteria read is being
ordered; see orders.py), with the same prefetch.

A call: check the request (400 with a JSON error naming the field when it is malformed), take what
the EHR prefetched, fetch the rest from `fhirServer` if allowed (412 when something is missing and
there is no way to fetch it, as CDS Hooks says), screen the one patient with the same definition as
every other fhir3t run, then decide: a card only for an eligible or candidate patient who is alive,
not already in the study team's hands, and not shown a card too recently (store.Store.may_show).
Data that cannot be fetched within the budget gives no card (an empty `cards`), never an error card:
a clinician is not shown half a record's verdict, and the EHR is never kept waiting.

Nothing here logs patient data: log lines carry the service, the hookInstance, counts, timings and
the reason for no card; the token in `fhirAuthorization` is never logged.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir3t.errors import AuthError
from fhir3t.fhirutil import server_label
from fhir3t.messages.lang import from_accept_language
from fhir3t.origins import origin
from fhir3t.pipeline import Definition, Run, screen_documents
from fhir3t.pipeline.run import today_in
from fhir3t.service.bodies import feedback_items, hook_request
from fhir3t.service.cards import build_card, gate, study_subjects
from fhir3t.service.failures import HookError
from fhir3t.service.fetch import Fetcher
from fhir3t.service.jwt_auth import JwtVerifier
from fhir3t.service.orders import OrderError, as_started, drug_name, order_detail, order_summary, relevant, selected_orders
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
        self.today = today or (lambda: settings.as_of or today_in(settings.tz))
        self.clock = clock
        study = definition.study
        tpls = templates(definition)
        n = len(definition.criteria.criteria)
        self.services = {s.id: s for s in [
            ServiceDef(f"{study.id}-patient-view", "patient-view", f"{study.short_title}: trial screening",
                       f"Screens the patient whose chart is opened against the {n} eligibility criteria of {study.value} "
                       f"({study.title}) and shows a card when the patient is eligible or a candidate and not already "
                       "in the study.", tpls),
            ServiceDef(f"{study.id}-order-select", "order-select", f"{study.short_title}: before starting a drug",
                       f"When a drug the {study.value} criteria read is ordered (a study drug, a JAK inhibitor, a "
                       "depleting agent, ...), shows a card for a patient who is eligible or a candidate, and says "
                       "first when starting it would exclude them. Other orders: no card, answered at once.", tpls)]}

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
    def call(self, service_id: str, body: bytes, accept_language: str | None = None) -> Answer:
        started = self.clock()
        deadline = started + self.settings.budget
        svc = self.service(service_id)
        req = hook_request(body)  # the typed boundary: a malformed envelope is a 400 naming the field
        if req.hook != svc.hook:
            raise HookError(400, f"this service answers the {svc.hook} hook, not '{req.hook[:60]}'")
        instance, pid, server, token = req.instance, req.patient_id, req.server, req.token
        orders: list[dict] | None = None
        if svc.hook == "order-select":
            try:
                chosen = selected_orders(req.context)
                orders = relevant(self.definition, chosen, pid)
            except OrderError as exc:
                raise HookError(400, str(exc)) from None
        try:
            pre = read_prefetch(req.prefetch, svc.prefetch, pid)
        except PrefetchError as exc:
            raise HookError(400, str(exc)) from None
        fields: dict[str, Any] = {"event": "cds-call", "service": svc.id, "hook_instance": str(instance)[:80],
                                  "prefetched": len(pre.documents), "prefetch_null": len(pre.empty),
                                  "to_fetch": len(pre.missing)}
        if orders is not None and not orders:
            return Answer(200, {"cards": []}, {**fields, "outcome": "no-card",
                                               "why": "no selected order is a drug the criteria read"})
        can_fetch = server is not None and self.settings.fetch_allowed(server)
        if server is not None and not can_fetch:
            fields["fhir_server"] = "not allowed"
        documents = list(pre.documents)
        if pre.missing and not can_fetch:
            keys = ", ".join(t.key for t in pre.missing)
            why = ("this fhirServer is not one the service is configured to read ([serve] fhir_servers)" if server
                   else "no fhirServer was given")
            return Answer(412, {"error": f"prefetch {keys} missing, and {why}"}, {**fields, "outcome": "412"})
        if can_fetch and server is not None:
            fields["fhir_server"] = server_label(server, path=False)
            t0 = self.clock()
            got = self.fetcher.fetch(server, token, pre.missing, pid, documents, deadline)
            fields.update(fetch_ms=round((self.clock() - t0) * 1000, 1), fetch_requests=got.requests)
            if not got.complete:
                fields.update(outcome="no-card", why="data not fetched within the budget",
                              not_fetched=sorted(got.failed.items()))
                log.warning("%s: no card: %d quer%s not answered in time or failed (%s)", svc.id, len(got.failed),
                            "y" if len(got.failed) == 1 else "ies", "; ".join(sorted(set(got.failed.values()))),
                            extra={"fields": fields})
                return Answer(200, {"cards": []}, fields)
            documents += got.documents
        lang = from_accept_language(accept_language) or self.settings.lang
        return self._decide(svc, pid, str(instance), server, documents, fields, started, orders, lang)

    def _decide(self, svc: ServiceDef, pid: str, instance: str, server: str | None, documents: list[tuple[str, object]],
                fields: dict[str, Any], started: float, orders: list[dict] | None = None, lang: str = "en") -> Answer:
        today = self.today()
        d = self.definition
        run = Run.start(d, as_of=today)
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
        why = self.store.may_show(key, result.status, interval=orders is None)
        if why is not None:
            return Answer(200, {"cards": []}, {**fields, "outcome": "no-card", "why": why})
        card = build_card(result, d.criteria, d.study, self.settings, card_uuid=str(uuid.uuid4()),
                          suggestion_uuid=str(uuid.uuid4()), today=today, lang=lang)
        if orders:
            after = screen_documents(d, Run.start(d, as_of=today),
                                     [*documents, ("order-select:draftOrders", as_started(orders, pid, today))],
                                     f"Patient/{pid}")
            if after is not None:
                drug = drug_name(orders[0], d, lang)
                card["summary"] = order_summary(result, after, drug, d.study, lang)
                card["detail"] = order_detail(result, after, drug, d.criteria, d.study, lang)
                fields["with_order"] = after.status
        self.store.shown(card["uuid"], svc.id, key, result.status, instance)
        fields.update(outcome="card", card=card["uuid"], lang=lang, total_ms=round((self.clock() - started) * 1000, 1))
        return Answer(200, {"cards": [card]}, fields)

    # ---- feedback -----------------------------------------------------------------------
    def feedback(self, service_id: str, body: bytes) -> Answer:
        svc = self.service(service_id)
        items = feedback_items(body)  # the typed boundary: at most 100 items, every value a bounded string
        known = self.store.feedback_many(svc.id, items)
        counts = {o: sum(1 for it in items if it.outcome == o) for o in OUTCOMES}
        fields = {"event": "cds-feedback", "service": svc.id, **counts, "unknown_cards": len(items) - known}
        return Answer(200, {}, fields)


__all__ = ["Answer", "CdsService", "HookError", "ServiceDef"]
