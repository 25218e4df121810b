"""Who is signed in to the coordinator's page: SMART App Launch (OpenID Connect authorization code with PKCE,
standalone or launched from the EHR) or a trusted reverse proxy's user header; and the page's sessions.

- **SMART App Launch.** The authorization server is the one configured (`authorization_server`, an OpenID
  Connect issuer: its `/.well-known/openid-configuration`), else the FHIR server's SMART configuration
  (`/.well-known/smart-configuration`); never one a request names. A sign-in sends the browser there with a
  random `state`, a `nonce` and a PKCE S256 challenge (public client, no secret); the callback checks the
  state, exchanges the code with the verifier at the discovered token endpoint (on the authorization
  server's own origin), and verifies the id token (signature by a key of the issuer's JWKS, an asymmetric
  algorithm, `iss`, `aud` = the client id, `nonce`, `exp`). The user is the token's `fhirUser` (a
  Practitioner reference, as SMART defines it), named by `name` / `preferred_username`, else `sub`. An EHR
  launch (`/coordinator/launch?iss=...&launch=...`) is accepted only from the configured FHIR server, and
  carries `launch` and `aud` on to the authorization server.
- **A reverse proxy** that signs people in (a hospital's SSO in front): its user header (configurable) is
  believed only on requests that come from one of the configured proxy addresses; from anywhere else it is
  ignored (a browser can send any header).
- **Sessions** live in memory (a restart signs everyone out): a random id in an HttpOnly, SameSite=Lax cookie,
  each with its CSRF token (a hidden field every form carries back), its sign-in in progress, and one message
  to show after a redirect. Nothing about a patient is kept in a session.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import requests

from fhir3t.emit.enrolment import Who
from fhir3t.errors import AuthError, ConfigError
from fhir3t.messages import Message, render
from fhir3t.origins import origin
from fhir3t.service.jwt_auth import ALGORITHMS, LEEWAY, _family, _key_family, _RemoteJwks

#: a discovery document or token answer larger than this is not one
MAX_ANSWER = 256 * 1024
PENDING_SECONDS = 600.0  # a sign-in must come back within this
MAX_SESSIONS = 10_000

DISCOVERY = Message("signin.discovery", "the sign-in server {where} cannot be used ({why})")
WRONG_ISSUER = Message("signin.wrong-issuer", "the sign-in server says it is {found}, not {issuer}")
ELSEWHERE = Message("signin.elsewhere", "the sign-in server's {what} is on another origin than the server itself; "
                                        "not used")
STATE = Message("signin.state", "this sign-in was not started here, or it is more than 10 minutes old: sign in again")
REFUSED = Message("signin.refused", "the sign-in server refused the sign-in ({error})")
TOKEN = Message("signin.token", "the sign-in server did not give a usable token ({why})")
ID_TOKEN = Message("signin.id-token", "the sign-in server's id token does not verify ({why})")
NOT_CONFIGURED = Message("signin.not-configured", "sign-in is not configured: set [serve.coordinator] client_id (and "
                                                  "authorization_server, or a FHIR server with a SMART configuration)")
LAUNCH_ISS = Message("signin.launch-iss", "this page is launched only from the FHIR server it is configured for")


@dataclass(frozen=True)
class Pending:
    """A sign-in on its way: what the callback must see again, and the PKCE verifier."""

    state: str
    nonce: str
    verifier: str
    started: float
    launch: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _get_json(url: str, timeout: float, *, data: dict | None = None) -> Any:
    """GET (or POST a form to) `url`: bounded, no redirects; the parsed JSON, or ValueError saying why not."""
    try:
        kw: dict[str, Any] = {"timeout": (min(3.0, timeout), timeout), "stream": True, "allow_redirects": False,
                              "headers": {"Accept": "application/json"}}
        with (requests.post(url, data=data, **kw) if data is not None else requests.get(url, **kw)) as resp:
            raw = b""
            for chunk in resp.iter_content(1 << 14):
                raw += chunk
                if len(raw) > MAX_ANSWER:
                    raise ValueError(f"answer larger than {MAX_ANSWER // 1024} KB")
            status = resp.status_code
    except requests.RequestException as exc:
        raise ValueError(type(exc).__name__) from None
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ValueError(f"HTTP {status}, not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError(f"HTTP {status}, not a JSON object")
    if status != 200:
        err = doc.get("error")
        raise ValueError(str(err)[:60] if isinstance(err, str) else f"HTTP {status}")
    return doc


class SmartSignIn:
    """The OpenID Connect / SMART App Launch client of the coordinator's page (see the module doc)."""

    def __init__(self, client_id: str, redirect_uri: str, *, authorization_server: str | None = None,
                 fhir_server: str | None = None, scope: str = "openid fhirUser profile", timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        if not client_id or not (authorization_server or fhir_server):
            raise ConfigError(render(NOT_CONFIGURED()))
        self.client_id, self.redirect_uri, self.scope = client_id, redirect_uri, scope
        self.issuer = (authorization_server or fhir_server or "").rstrip("/")
        self.fhir_server = fhir_server.rstrip("/") if fhir_server else None
        self.oidc = authorization_server is not None
        self.timeout, self.clock = timeout, clock
        self._config: dict[str, Any] | None = None
        self._jwks: _RemoteJwks | None = None
        self._lock = threading.Lock()

    def config(self) -> dict[str, Any]:
        """The authorization server's endpoints (discovered once)."""
        with self._lock:
            if self._config is None:
                well_known = "openid-configuration" if self.oidc else "smart-configuration"
                try:
                    doc = _get_json(f"{self.issuer}/.well-known/{well_known}", self.timeout)
                except ValueError as exc:
                    raise AuthError(render(DISCOVERY(where=self.issuer, why=str(exc)))) from None
                found = str(doc.get("issuer") or "").rstrip("/")
                if self.oidc and found != self.issuer:
                    raise AuthError(render(WRONG_ISSUER(found=found[:200], issuer=self.issuer)))
                here = origin(found or self.issuer)
                for what in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    url = doc.get(what)
                    if not isinstance(url, str) or origin(url) is None:
                        raise AuthError(render(DISCOVERY(where=self.issuer, why=f"no usable {what}")))
                    if what != "authorization_endpoint" and origin(url) != here:
                        raise AuthError(render(ELSEWHERE(what=what)))
                self._config = doc
            return self._config

    def start(self, launch: str | None = None) -> tuple[str, Pending]:
        """Where to send the browser, and what the callback will check."""
        cfg = self.config()
        verifier = _b64(secrets.token_bytes(48))
        pending = Pending(_b64(secrets.token_bytes(24)), _b64(secrets.token_bytes(24)), verifier, self.clock(), launch)
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": ("launch " + self.scope) if launch else self.scope, "state": pending.state,
                  "nonce": pending.nonce, "code_challenge_method": "S256",
                  "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest())}
        if self.fhir_server:
            params["aud"] = self.fhir_server
        if launch:
            params["launch"] = launch
        sep = "&" if "?" in cfg["authorization_endpoint"] else "?"
        return f"{cfg['authorization_endpoint']}{sep}{urlencode(params)}", pending

    def finish(self, pending: Pending | None, query: dict[str, str]) -> Who:
        """The signed-in user from the callback's query (AuthError with one sentence otherwise)."""
        if pending is None or not hmac.compare_digest(pending.state, query.get("state", "")) or \
                self.clock() - pending.started > PENDING_SECONDS:
            raise AuthError(render(STATE()))
        if "error" in query:
            raise AuthError(render(REFUSED(error=query["error"][:60])))
        if query.get("iss") and query["iss"].rstrip("/") != self.issuer:  # RFC 9207: a mix-up would name another
            raise AuthError(render(WRONG_ISSUER(found=query["iss"][:200], issuer=self.issuer)))
        cfg = self.config()
        try:
            tokens = _get_json(cfg["token_endpoint"], self.timeout, data={
                "grant_type": "authorization_code", "code": query.get("code", ""), "redirect_uri": self.redirect_uri,
                "client_id": self.client_id, "code_verifier": pending.verifier})
        except ValueError as exc:
            raise AuthError(render(TOKEN(why=str(exc)))) from None
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise AuthError(render(TOKEN(why="no id_token: ask for the openid scope")))
        claims = self._verify(id_token, pending.nonce)
        fhir_user = claims.get("fhirUser") or tokens.get("fhirUser")
        name = next((claims[k] for k in ("name", "preferred_username") if isinstance(claims.get(k), str)), None)
        if isinstance(fhir_user, str) and fhir_user:
            return Who(fhir_user[:256], (name or fhir_user)[:200], fhir_user[:256])
        return Who(str(claims.get("sub"))[:256], (name or str(claims.get("sub")))[:200])

    def _verify(self, token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(render(ID_TOKEN(why="not a JWT"))) from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthError(render(ID_TOKEN(why="not signed with an asymmetric algorithm")))
        if self._jwks is None:
            self._jwks = _RemoteJwks(self.config()["jwks_uri"], self.timeout, time.monotonic)
        try:
            key = self._jwks.key(str(header.get("kid")))
        except AuthError as exc:
            raise AuthError(render(ID_TOKEN(why=str(exc)))) from None
        if _key_family(key) != _family(str(alg)):
            raise AuthError(render(ID_TOKEN(why="the algorithm does not fit the key")))
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[str(alg)], audience=self.client_id,
                                                issuer=self.config().get("issuer") or self.issuer, leeway=LEEWAY,
                                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise AuthError(render(ID_TOKEN(why=type(exc).__name__))) from None
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise AuthError(render(ID_TOKEN(why="the nonce is not this sign-in's")))
        return claims

    def launch_allowed(self, iss: str | None) -> bool:
        """An EHR launch names the FHIR server it launches from: only the configured one is accepted."""
        return bool(iss) and self.fhir_server is not None and str(iss).rstrip("/") == self.fhir_server


@dataclass(frozen=True)
class TrustedProxy:
    """A reverse proxy that signs people in: its user header, believed only from its addresses."""

    header: str
    addresses: tuple[str, ...]
    name_header: str | None = None

    def user(self, client_host: str | None, headers: Any) -> Who | None:
        if not client_host or not self._trusted(client_host):
            return None
        value = headers.get(self.header)
        if not isinstance(value, str) or not value.strip() or len(value) > 256 or not value.isprintable():
            return None
        name = headers.get(self.name_header) if self.name_header else None
        shown = name.strip()[:200] if isinstance(name, str) and name.strip() and name.isprintable() else None
        return Who(value.strip(), shown)

    def _trusted(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        for a in self.addresses:
            try:
                if ip in ipaddress.ip_network(a, strict=False):
                    return True
            except ValueError:
                continue
        return False


@dataclass
class Session:
    csrf: str
    expires: float
    user: Who | None = None
    via: str | None = None  # smart | proxy
    pending: dict[str, Pending] = field(default_factory=dict)
    flash: str | None = None  # one sentence to show after a redirect (no patient data)
    flash_ok: bool = True


class Sessions:
    """In-memory sessions (see the module doc); thread-safe, bounded."""

    def __init__(self, minutes: int = 480, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = minutes * 60.0
        self.clock = clock
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            s = self._by_id.get(sid)
            if s is not None and s.expires < self.clock():
                del self._by_id[sid]
                return None
            return s

    def new(self) -> tuple[str, Session]:
        now = self.clock()
        with self._lock:
            if len(self._by_id) >= MAX_SESSIONS:
                for k in [k for k, v in self._by_id.items() if v.expires < now] or sorted(
                        self._by_id, key=lambda k: self._by_id[k].expires)[: MAX_SESSIONS // 10]:
                    del self._by_id[k]
            sid = secrets.token_urlsafe(32)
            s = self._by_id[sid] = Session(secrets.token_urlsafe(32), now + self.lifetime)
            return sid, s

    def renew(self, sid: str) -> tuple[str, Session] | None:
        """A new id for a session whose user changed (the old id is no longer valid: no session fixation)."""
        with self._lock:
            s = self._by_id.pop(sid, None)
            if s is None:
                return None
            new = secrets.token_urlsafe(32)
            s.csrf = secrets.token_urlsafe(32)
            s.expires = self.clock() + self.lifetime
            self._by_id[new] = s
            return new, s

    def drop(self, sid: str) -> None:
        with self._lock:
            self._by_id.pop(sid, None)


def csrf_ok(session: Session | None, given: str | None) -> bool:
    return session is not None and isinstance(given, str) and hmac.compare_digest(session.csrf, given)


__all__ = ["Pending", "Session", "Sessions", "SmartSignIn", "TrustedProxy", "csrf_ok"]
