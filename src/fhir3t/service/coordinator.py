"""The coordinator's page in `fhir3t serve`: the worklist served live from the store (the FHIR server, or the state
file with the last screening results), the day's new or changed screenings on top, each patient's timeline, and
the study team's steps as forms.

    GET  /coordinator/                          the worklist
    GET  /coordinator/patients/{id}             a patient's timeline, and the forms of the steps allowed
    POST /coordinator/patients/{id}/{action}    a step (signed in, CSRF token, the subject's version as If-Match)
    GET  /coordinator/login                     SMART standalone launch (OpenID Connect, PKCE)
    GET  /coordinator/launch?iss=&launch=       SMART EHR launch (from the configured FHIR server only)
    GET  /coordinator/callback                  the authorization server's answer
    POST /coordinator/logout

Writing needs a signed-in user (service/signin.py): a SMART sign-in, or a trusted reverse proxy's user header.
Without one the page is read-only (no forms; a POST is refused 403) on a loopback bind, and shows nothing but the
sign-in link elsewhere (`read_without_signin` says otherwise). Every POST carries the session's CSRF token, and
one whose Origin is not this page's is refused. Logs name the route template, the status and the event, never a
path (it holds a patient id), a form field or a name.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from fhir3t.dates import parse_day
from fhir3t.emit.enrolment import Who
from fhir3t.enrolment import Action, Status
from fhir3t.enrolment.records import Screening
from fhir3t.errors import AuthError, Fhir3tError
from fhir3t.ids import fhir_id
from fhir3t.messages import Message, render
from fhir3t.pipeline import Definition, Run
from fhir3t.pipeline.enrolment import Settings, Step, act, all_records, changed_since_last, patient_records
from fhir3t.service.coordinator_page import CSP, PAGE_ACTIONS, message_page, patient_page, worklist
from fhir3t.service.settings import CoordinatorSettings
from fhir3t.service.signin import Session, Sessions, SmartSignIn, TrustedProxy, csrf_ok
from fhir3t.state import Store

log = logging.getLogger("fhir3t.service")

BASE = "/coordinator"
COOKIE = "fhir3t_coordinator"
#: a step's form is small; a larger body is not one
FORM_MAX = 64 * 1024

NEEDS_SIGNIN = Message("page.needs-signin", "sign in to record a step: nothing was written")
BAD_CSRF = Message("page.bad-csrf", "this form did not come from this page (its CSRF token is missing or old): reload "
                                    "the page; nothing was written")
BAD_ORIGIN = Message("page.bad-origin", "a form from another site cannot record a step: nothing was written")
BAD_FORM = Message("page.bad-form", "the form is not one this page sends: nothing was written")
NO_PATIENT = Message("page.no-patient", "no such patient")
SIGNED_IN_OK = Message("page.signed-in-ok", "signed in")
SIGNIN_FIRST = Message("page.signin-first", "sign in to see the worklist")
WITH_OVERRIDE = Message("page.with-override", "{done} ({override})")


@dataclass
class Coordinator:
    """The page's routes over one store (shared by the requests: both stores are thread-safe)."""

    definition: Definition
    store: Store
    settings: CoordinatorSettings
    public_url: str | None
    loopback: bool
    screen_now: Callable[[Step], Screening | None] | None = None
    enrolment: Settings | None = None
    today: Callable[[], date] = date.today

    def __post_init__(self) -> None:
        c = self.settings
        self.sessions = Sessions(c.session_minutes)
        redirect = f"{(self.public_url or '').rstrip('/')}{BASE}/callback"
        self.signin = SmartSignIn(c.client_id, redirect, authorization_server=c.authorization_server,
                                  fhir_server=c.fhir_server, scope=c.scope) if c.client_id else None
        self.proxy = TrustedProxy(c.proxy_user_header, c.trusted_proxies, c.proxy_name_header) \
            if c.proxy_user_header and c.trusted_proxies else None
        self.read_unsigned = c.read_without_signin if c.read_without_signin is not None else self.loopback
        self.enrolment = self.enrolment or Settings.of(self.definition)
        self.secure = (self.public_url or "").startswith("https://")

    def routes(self) -> list[Route]:
        return [Route(f"{BASE}/", self.home, methods=["GET"]),
                Route(BASE, lambda r: RedirectResponse(f"{BASE}/", 308), methods=["GET"]),
                Route(f"{BASE}/patients/{{pid}}", self.patient, methods=["GET"]),
                Route(f"{BASE}/patients/{{pid}}/{{action}}", self.step, methods=["POST"]),
                Route(f"{BASE}/login", self.login, methods=["GET"]),
                Route(f"{BASE}/launch", self.launch, methods=["GET"]),
                Route(f"{BASE}/callback", self.callback, methods=["GET"]),
                Route(f"{BASE}/logout", self.logout, methods=["POST"])]

    # ---- plumbing -----------------------------------------------------------------------------------------
    @property
    def lang(self) -> str:
        return self.settings.lang

    @property
    def study(self) -> str:
        return self.definition.study.short_title

    def _session(self, request: Request) -> tuple[str, Session, bool]:
        """The request's session (a new one when it has none): (id, session, new)."""
        sid = request.cookies.get(COOKIE)
        s = self.sessions.get(sid)
        if s is not None and sid is not None:
            return sid, s, False
        sid, s = self.sessions.new()
        return sid, s, True

    def _user(self, request: Request, session: Session) -> Who | None:
        if self.proxy is not None:
            who = self.proxy.user(request.client.host if request.client else None, request.headers)
            if who is not None:
                return who
            if session.via == "proxy":
                return None  # a proxy's user is believed per request, never kept
        return session.user if session.via == "smart" else None

    def _html(self, text: str, sid: str, status: int = 200) -> Response:
        resp = HTMLResponse(text, status_code=status, headers=self._headers())
        self._cookie(resp, sid)
        return resp

    def _headers(self) -> dict[str, str]:
        return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                "Cache-Control": "no-store", "X-Frame-Options": "DENY"}

    def _cookie(self, resp: Response, sid: str) -> None:
        resp.set_cookie(COOKIE, sid, max_age=self.settings.session_minutes * 60, path=BASE, httponly=True,
                        samesite="lax", secure=self.secure)

    def _redirect(self, url: str, sid: str) -> Response:
        resp = RedirectResponse(url, status_code=303, headers=self._headers())
        self._cookie(resp, sid)
        return resp

    def _log(self, request: Request, status: int, t0: float, event: str, **fields: Any) -> None:
        route = getattr(request.scope.get("route"), "path", "(no route)")
        ms = round((time.monotonic() - t0) * 1000, 1)
        log.info("%s %s %d %s %.0f ms", request.method, route, status, event, ms,
                 extra={"fields": {"event": event, "method": request.method, "route": route, "status": status, "ms": ms,
                                   **fields}})

    def _run(self) -> Run:
        return Run.start(self.definition, as_of=self.today(), lang=self.lang)

    def _can_sign_in(self) -> bool:
        return self.signin is not None

    # ---- pages --------------------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        t0 = time.monotonic()
        sid, s, _ = self._session(request)
        user = self._user(request, s)
        if user is None and not self.read_unsigned:
            self._log(request, 200, t0, "coordinator-page", signed_in=False)
            return self._html(message_page(render(SIGNIN_FIRST(), self.lang), study=self.study, base=BASE, lang=self.lang,
                                           can_sign_in=self._can_sign_in()), sid)

        def build() -> str:
            run = self._run()
            records = all_records(self.definition, run, self.store)
            return worklist(records, changed_since_last(records), study=self.study, source=self.store.label, user=user,
                            csrf=s.csrf if user else None, base=BASE, lang=self.lang, flash_text=s.flash,
                            flash_ok=s.flash_ok, can_sign_in=self._can_sign_in())
        text = await run_in_threadpool(build)
        s.flash = None
        self._log(request, 200, t0, "coordinator-page", signed_in=user is not None)
        return self._html(text, sid)

    async def patient(self, request: Request) -> Response:
        t0 = time.monotonic()
        sid, s, _ = self._session(request)
        user = self._user(request, s)
        pid = fhir_id(request.path_params["pid"])
        if user is None and not self.read_unsigned:
            return self._redirect(f"{BASE}/", sid)
        if pid is None:
            self._log(request, 404, t0, "coordinator-page")
            return self._html(message_page(render(NO_PATIENT(), self.lang), study=self.study, base=BASE, lang=self.lang),
                              sid, 404)

        def build() -> str:
            run = self._run()
            records = patient_records(self.definition, run, self.store, f"Patient/{pid}")
            assert self.enrolment is not None
            return patient_page(records, study=self.study, user=user, csrf=s.csrf if user else None, base=BASE,
                                lang=self.lang, today=self.today(), consent_form=self.enrolment.consent_form,
                                flash_text=s.flash, flash_ok=s.flash_ok, can_sign_in=self._can_sign_in())
        text = await run_in_threadpool(build)
        s.flash = None
        self._log(request, 200, t0, "coordinator-page", signed_in=user is not None)
        return self._html(text, sid)

    # ---- a step -------------------------------------------------------------------------------------------
    def _same_origin(self, request: Request) -> bool:
        given = request.headers.get("origin")
        if given is None:
            return True  # not sent (an old browser, a same-origin GET-turned-POST): the CSRF token decides
        own = (self.public_url or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")
        from fhir3t.origins import origin

        return origin(given) is not None and origin(given) == origin(own)

    async def _form(self, request: Request) -> dict[str, str] | None:
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return None
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > FORM_MAX:
                return None
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            return None
        return dict(pairs)

    def _refuse(self, request: Request, t0: float, sid: str, status: int, why: str, msg: Message) -> Response:
        self._log(request, status, t0, "coordinator-refused", why=why)
        return self._html(message_page(render(msg(), self.lang), study=self.study, base=BASE, lang=self.lang,
                                       can_sign_in=self._can_sign_in()), sid, status)

    async def step(self, request: Request) -> Response:
        t0 = time.monotonic()
        sid, s, new = self._session(request)
        user = self._user(request, s)
        if user is None:
            return self._refuse(request, t0, sid, 403, "not signed in", NEEDS_SIGNIN)
        if not self._same_origin(request):
            return self._refuse(request, t0, sid, 403, "origin", BAD_ORIGIN)
        form = await self._form(request)
        if new or form is None or not csrf_ok(s, form.get("csrf")):
            return self._refuse(request, t0, sid, 403, "csrf", BAD_CSRF if form is not None else BAD_FORM)
        pid = fhir_id(request.path_params["pid"])
        try:
            action = Action(request.path_params["action"])
            step = self._step_of(f"Patient/{pid}", action, form, user) if pid and action in PAGE_ACTIONS else None
        except (ValueError, KeyError):
            step = None
        if step is None:
            return self._refuse(request, t0, sid, 400, "form", BAD_FORM)

        def record() -> tuple[str, bool]:
            run = self._run()
            shown = self.store.display_ids([step.patient]).get(step.patient)
            try:
                done = act(self.definition, run, self.store, replace(step, shown=shown),
                           settings=self.enrolment,
                           screen_now=self.screen_now if step.action is Action.ENROL else None)
            except Fhir3tError as exc:  # a refusal, a usage error, the server's: one sentence, nothing written
                text = exc.text(self.lang) if hasattr(exc, "text") else str(exc)
                return text, False
            said = WITH_OVERRIDE(done=done.message, override=done.overridden) if done.overridden else done.message
            return render(said, self.lang), True
        text, ok = await run_in_threadpool(record)
        s.flash, s.flash_ok = text, ok
        self._log(request, 303, t0, "coordinator-step", action=step.action.value, outcome="recorded" if ok else "refused",
                  via=s.via or "proxy")
        return self._redirect(f"{BASE}/patients/{pid}", sid)

    def _step_of(self, patient: str, action: Action, form: dict[str, str], who: Who) -> Step:
        def day(name: str) -> date | None:
            v = form.get(name, "").strip()
            return parse_day(v) if v else None
        status = form.get("status") or None
        return Step(patient, action, day("date") or self.today(), who, reason=form.get("reason") or None,
                    note=(form.get("note") or "").strip()[:2000] or None, d1=day("d1"),
                    status=Status(status) if status and status != _default(action) else None,
                    override=(form.get("override") or "").strip()[:500] or None,
                    form=(form.get("form") or "").strip()[:64] or None, medium=form.get("medium") or None,
                    expected=form.get("version") or None)

    # ---- sign-in ------------------------------------------------------------------------------------------
    async def login(self, request: Request, launch: str | None = None) -> Response:
        t0 = time.monotonic()
        sid, s, _ = self._session(request)
        if self.signin is None:
            return self._refuse(request, t0, sid, 404, "no sign-in", NEEDS_SIGNIN)
        signin = self.signin
        try:
            url, pending = await run_in_threadpool(signin.start, launch)
        except AuthError as exc:
            self._log(request, 502, t0, "coordinator-signin", outcome="failed")
            return self._html(message_page(str(exc), study=self.study, base=BASE, lang=self.lang), sid, 502)
        if len(s.pending) > 8:
            s.pending.clear()
        s.pending[pending.state] = pending
        self._log(request, 303, t0, "coordinator-signin", outcome="started", launch=launch is not None)
        return self._redirect(url, sid)

    async def launch(self, request: Request) -> Response:
        t0 = time.monotonic()
        sid, _s, _ = self._session(request)
        iss, launch = request.query_params.get("iss"), request.query_params.get("launch")
        if self.signin is None or not launch or not self.signin.launch_allowed(iss):
            from fhir3t.service.signin import LAUNCH_ISS

            self._log(request, 400, t0, "coordinator-signin", outcome="launch refused")
            return self._html(message_page(render(LAUNCH_ISS(), self.lang), study=self.study, base=BASE, lang=self.lang),
                              sid, 400)
        return await self.login(request, launch[:512])

    async def callback(self, request: Request) -> Response:
        t0 = time.monotonic()
        sid, s, _ = self._session(request)
        if self.signin is None:
            return self._refuse(request, t0, sid, 404, "no sign-in", NEEDS_SIGNIN)
        query = {k: v[:2048] for k, v in request.query_params.items()}
        pending = s.pending.pop(query.get("state", ""), None)
        signin = self.signin
        try:
            who = await run_in_threadpool(signin.finish, pending, query)
        except AuthError as exc:
            self._log(request, 401, t0, "coordinator-signin", outcome="failed")
            return self._html(message_page(str(exc), study=self.study, base=BASE, lang=self.lang), sid, 401)
        renewed = self.sessions.renew(sid)
        if renewed is None:
            return self._redirect(f"{BASE}/", sid)
        sid, s = renewed
        s.user, s.via = who, "smart"
        s.flash, s.flash_ok = render(SIGNED_IN_OK(), self.lang), True
        self._log(request, 303, t0, "coordinator-signin", outcome="signed in")
        return self._redirect(f"{BASE}/", sid)

    async def logout(self, request: Request) -> Response:
        t0 = time.monotonic()
        sid, s, _ = self._session(request)
        form = await self._form(request)
        if form is None or not csrf_ok(s, form.get("csrf")) or not self._same_origin(request):
            return self._refuse(request, t0, sid, 403, "csrf", BAD_CSRF)
        self.sessions.drop(sid)
        sid, _ = self.sessions.new()
        self._log(request, 303, t0, "coordinator-signin", outcome="signed out")
        return self._redirect(f"{BASE}/", sid)


def _default(action: Action) -> str | None:
    from fhir3t.enrolment.transitions import TRANSITIONS

    after = TRANSITIONS[action][1]
    return after.value if after is not None else None


__all__ = ["BASE", "COOKIE", "Coordinator"]
