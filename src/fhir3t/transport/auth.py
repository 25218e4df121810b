"""Credentials for a FHIR server: a static bearer token, SMART Backend Services, client-secret basic,
HTTP Basic from the server URL.

SMART Backend Services (client_credentials + private_key_jwt): the token endpoint is discovered
from `[base]/.well-known/smart-configuration`; each token request carries a fresh client assertion
signed RS384 or ES384 (the algorithms the SMART spec requires servers to accept). The access token
is cached until shortly before it expires and fetched again after one 401. Secrets (tokens, keys,
client secrets) never appear in messages or logs.

The client credentials (assertion or secret) go only to an https token endpoint (plain http is
accepted on loopback, for tests) on an origin the user configured: the FHIR server's, the origin of a
token endpoint named in the configuration (`[server] token_url`, `--smart-token-url`), or one allowed
with --allow-origin. Hospitals do run separate authorization servers; but discovery is the server's
word, so a token endpoint it names on any other origin is refused in one sentence (name it in the
configuration if it is yours), never sent the client secret or the signed assertion.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import requests

from fhir3t.errors import AuthError, ServerError
from fhir3t.jsonshape import items, text
from fhir3t.messages import table
from fhir3t.secretfiles import why_unreadable
from fhir3t.smallfiles import KEY_LIMIT, read_small
from fhir3t.transport.deadline import Deadline, guarded_session
from fhir3t.transport.urls import Origin, clean, describe, is_loopback, origin, origin_text, strip_userinfo

log = logging.getLogger("fhir3t.auth")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_SCOPE = ("system/*.read system/ResearchStudy.write system/ResearchSubject.write system/Provenance.write "
                 "system/AdverseEvent.write")
#: Refresh this many seconds before the server says the token expires (clock skew, slow requests).
EXPIRY_MARGIN = 60

#: what a user is told when signing in to the server fails (the CLI's error line, in the reader's language)
MESSAGES = table("auth", {
    "endpoint-elsewhere": "the server's SMART configuration names a token endpoint on {there}, not on the FHIR server's "
                          "origin ({base}) nor one you configured: fhir3t sends the client credentials only to origins "
                          "you named; if that is your authorization server, give it as [server] token_url (or "
                          "--smart-token-url)",
    "unreachable": "cannot reach {url}: {error}",
    "discovery-slow": "SMART discovery: no complete answer from {url} within {seconds} s",
    "discovery-status": "SMART discovery failed: GET {url} answered {status}; give the token endpoint explicitly or "
                        "check the server URL",
    "discovery-not-json": "SMART discovery: {url} is not JSON (or larger than 1 MB)",
    "discovery-no-endpoint": "SMART discovery: {url} has no token_endpoint ",
    "endpoint-not-http": "the token endpoint {url} is not an http(s) URL",
    "endpoint-not-https": "the token endpoint {url} is not https: fhir3t sends the client credentials only over https "
                          "(plain http only to a loopback address)",
    "token-unreachable": "cannot reach the token endpoint {url}: {error}",
    "token-slow": "the token endpoint {url} gave no complete answer within {seconds} s",
    "token-refused": "token request for client {client} refused: {answer}",
    "key-file": "the SMART key file",
    "key-missing": "cannot read the SMART key file {path}: no such file",
    "key-unreadable": "cannot read the SMART key file {path}",
    "key-not-json": "{path}: not valid JSON (expected a JWKS or a JWK)",
    "key-no-private": "{path}: no RSA or EC private key (a JWK with 'd') found",
    "key-bad-jwk": "{path}: unusable JWK ({error})",
    "key-bad-pem": "{path}: not a readable PEM private key ({error}); set FHIR3T_KEY_PASSWORD for an encrypted key",
    "key-kind": "{path}: SMART Backend Services needs an RSA or EC (P-384) key",
    "client-needs-key": "--smart-client-id needs --smart-key KEY.pem|JWKS (or FHIR3T_CLIENT_SECRET for client-secret "
                        "basic)",
    "key-needs-client": "--smart-key needs --smart-client-id",
})


class BearerToken:
    """A token given by the user (flag or FHIR3T_TOKEN); it cannot be refreshed."""

    def __init__(self, token: str) -> None:
        self._token = token.strip()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def refresh(self) -> bool:
        return False

    def __repr__(self) -> str:  # never show the token
        return "BearerToken(***)"


class BasicCredentials:
    """HTTP Basic from `user:password@` in the server URL (the URL itself is shown without them)."""

    def __init__(self, user: str, password: str) -> None:
        self._value = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._value}

    def refresh(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "BasicCredentials(***)"


class _TokenCache:
    """Shared logic of the OAuth client_credentials schemes: discovery, caching, refresh."""

    def __init__(self, fhir_base: str, client_id: str, *, scope: str = DEFAULT_SCOPE, token_url: str | None = None,
                 allow_origins: Iterable[Origin] = (), session: requests.Session | None = None, timeout: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.fhir_base = fhir_base.rstrip("/")
        self.client_id = client_id
        self.scope = scope
        self.token_url = token_url
        #: the origins the client credentials may go to: the FHIR server's, a configured token endpoint's, allowed ones
        self.credential_origins = {o for o in (origin(self.fhir_base), origin(token_url or ""), *allow_origins) if o}
        self.session = session or guarded_session()
        self.timeout = timeout
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.fetches = 0  # how many tokens were requested (tests, benchmarks)
        self.smart_config: dict[str, Any] = {}

    def discover(self) -> str:
        if self.token_url:
            return self._check_endpoint(self.token_url)
        url = f"{self.fhir_base}/.well-known/smart-configuration"
        try:
            with Deadline(self.timeout) as dl:
                resp = self.session.get(url, headers={"Accept": "application/json"}, timeout=self.timeout, stream=True)
                raw = _head(resp)
        except requests.RequestException as exc:
            raise ServerError(MESSAGES["unreachable"](url=describe(url), error=type(exc).__name__)) from None
        if dl.expired:
            raise ServerError(MESSAGES["discovery-slow"](url=describe(url), seconds=f"{self.timeout:g}"))
        if resp.status_code != 200:
            raise AuthError(MESSAGES["discovery-status"](url=describe(url), status=resp.status_code))
        try:
            cfg = json.loads(raw)
        except ValueError:
            raise AuthError(MESSAGES["discovery-not-json"](url=describe(url))) from None
        token_url = cfg.get("token_endpoint") if isinstance(cfg, dict) else None
        if not isinstance(token_url, str):
            raise AuthError(MESSAGES["discovery-no-endpoint"](url=describe(url)))
        self.smart_config = cfg if isinstance(cfg, dict) else {}
        self.token_url = self._check_endpoint(token_url)
        return self.token_url

    def _check_endpoint(self, url: str) -> str:
        """The token endpoint, if the client credentials may be sent there (https, or loopback http)."""
        o = origin(url)
        if o is None:
            raise AuthError(MESSAGES["endpoint-not-http"](url=repr(describe(url))))
        if o[0] != "https" and not is_loopback(url):
            raise AuthError(MESSAGES["endpoint-not-https"](url=describe(url)))
        if o not in self.credential_origins:
            base = origin(self.fhir_base)
            raise AuthError(MESSAGES["endpoint-elsewhere"](there=origin_text(o), base=origin_text(base) if base else "?"))
        return url

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self.clock() >= self._expires:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def refresh(self) -> bool:
        with self._lock:
            self._token = None
            self._fetch()
        return True

    def _fetch(self) -> None:
        url = self.discover()
        data, headers = self._credentials(url)
        data.update({"grant_type": "client_credentials", "scope": self.scope})
        try:
            with Deadline(self.timeout) as dl:
                resp = self.session.post(url, data=data, headers={"Accept": "application/json", **headers},
                                         timeout=self.timeout, allow_redirects=False, stream=True)
                raw = _head(resp)
        except requests.RequestException as exc:
            raise ServerError(MESSAGES["token-unreachable"](url=describe(url), error=type(exc).__name__)) from None
        if dl.expired:
            raise ServerError(MESSAGES["token-slow"](url=describe(url), seconds=f"{self.timeout:g}"))
        self.fetches += 1
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        if resp.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            err = text(body.get("error")) or "" if isinstance(body, dict) else ""
            desc = text(body.get("error_description")) or "" if isinstance(body, dict) else ""
            answer = f"{resp.status_code} {err} {desc}".strip()  # the server's error code and description, cleaned
            raise AuthError(MESSAGES["token-refused"](client=clean(repr(self.client_id), 80), answer=clean(answer, 300)))
        self._token = body["access_token"]
        try:
            lifetime = float(body.get("expires_in", 300))
        except (TypeError, ValueError, OverflowError):
            lifetime = 300.0
        if not 0 <= lifetime < 10 ** 9:  # NaN, inf, negative: take the usual five minutes
            lifetime = 300.0
        self._expires = self.clock() + max(0.0, lifetime - EXPIRY_MARGIN)
        log.info("got an access token for client %s (expires in %.0f s)", clean(self.client_id, 80), lifetime)

    def _credentials(self, token_url: str) -> tuple[dict[str, str], dict[str, str]]:
        raise NotImplementedError


def _head(resp: requests.Response, limit: int = 1024 * 1024) -> bytes:
    """At most `limit` bytes of a streamed body (a discovery document or token answer is small)."""
    buf = bytearray()
    for chunk in resp.iter_content(1 << 14):
        buf += chunk
        if len(buf) > limit:
            break
    resp.close()
    return bytes(buf[: limit + 1])


class SmartBackendAuth(_TokenCache):
    """SMART Backend Services: private_key_jwt client assertion, RS384 or ES384."""

    def __init__(self, fhir_base: str, client_id: str, key: str | Path, *, alg: str | None = None,
                 kid: str | None = None, **kw: Any) -> None:
        super().__init__(fhir_base, client_id, **kw)
        self._key, key_alg, key_kid = load_signing_key(key)
        self.alg = alg or key_alg
        self.kid = kid or key_kid

    def _credentials(self, token_url: str) -> tuple[dict[str, str], dict[str, str]]:
        import jwt

        now = int(self.clock())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": token_url, "jti": uuid.uuid4().hex,
                  "iat": now, "exp": now + 240}
        headers = {"kid": self.kid} if self.kid else {}
        assertion = jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}, {}

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, alg={self.alg})"


class ClientSecretBasicAuth(_TokenCache):
    """OAuth client_credentials with a shared secret sent as HTTP Basic (the fallback scheme)."""

    def __init__(self, fhir_base: str, client_id: str, secret: str, **kw: Any) -> None:
        super().__init__(fhir_base, client_id, **kw)
        self._secret = secret

    def _credentials(self, token_url: str) -> tuple[dict[str, str], dict[str, str]]:
        raw = f"{self.client_id}:{self._secret}".encode()
        return {}, {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def __repr__(self) -> str:
        return f"ClientSecretBasicAuth(client_id={self.client_id!r})"


def load_signing_key(source: str | Path) -> tuple[Any, str, str | None]:
    """(private key, RS384|ES384, kid) from a PEM file or a JWKS / JWK JSON file holding a private key."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    path = Path(source)
    try:
        raw = read_small(path, KEY_LIMIT, MESSAGES["key-file"](), AuthError)
    except FileNotFoundError:
        raise AuthError(MESSAGES["key-missing"](path=str(path))) from None
    except AuthError:
        if os.access(path, os.F_OK) and not os.access(path, os.R_OK):
            # unreadable for the uid fhir3t runs as (the usual container mistake): who owns it and what works
            raise AuthError(why_unreadable(path, MESSAGES["key-file"]()) or MESSAGES["key-unreadable"](path=str(path))) from None
        raise
    kid: str | None = None
    head = raw.lstrip()
    if head.startswith(b"{"):
        try:
            doc = json.loads(raw)
        except ValueError:
            raise AuthError(MESSAGES["key-not-json"](path=str(path))) from None
        keys = items(doc.get("keys", [doc])) if isinstance(doc, dict) else []
        private = [k for k in keys if isinstance(k, dict) and "d" in k and k.get("kty") in ("RSA", "EC")]
        pick = next((k for k in private if k.get("alg") in ("RS384", "ES384")), private[0] if private else None)
        if pick is None:
            raise AuthError(MESSAGES["key-no-private"](path=str(path)))
        try:
            algo = jwt.algorithms.RSAAlgorithm if pick["kty"] == "RSA" else jwt.algorithms.ECAlgorithm
            key = algo.from_jwk(json.dumps(pick))
        except Exception as exc:  # malformed JWK members
            raise AuthError(MESSAGES["key-bad-jwk"](path=str(path), error=type(exc).__name__)) from None
        kid = text(pick.get("kid"))
    else:
        try:
            key = serialization.load_pem_private_key(raw, password=_key_password())  # type: ignore[assignment]
        except (ValueError, TypeError) as exc:
            raise AuthError(MESSAGES["key-bad-pem"](path=str(path), error=exc.__class__.__name__)) from None
    if isinstance(key, rsa.RSAPrivateKey):
        alg = "RS384"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        alg = "ES384"
    else:
        raise AuthError(MESSAGES["key-kind"](path=str(path)))
    return key, alg, kid or jwk_thumbprint(key)


def jwk_thumbprint(private_key: Any) -> str:
    """RFC 7638 thumbprint of the public key: a stable kid when the key file names none."""
    import jwt

    pub = private_key.public_key()
    algo = jwt.algorithms.RSAAlgorithm if hasattr(pub, "public_numbers") and hasattr(pub.public_numbers(), "e") \
        else jwt.algorithms.ECAlgorithm
    jwk = json.loads(algo.to_jwk(pub))
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canon = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode()


def _key_password() -> bytes | None:
    pw = os.environ.get("FHIR3T_KEY_PASSWORD")
    return pw.encode() if pw else None


def make_auth(base_url: str, *, token: str | None = None, client_id: str | None = None,
              key: str | None = None, client_secret: str | None = None, scope: str | None = None,
              token_url: str | None = None, allow_origins: Iterable[Origin] = (),
              session: requests.Session | None = None):
    """Pick the scheme from what was given: token > SMART key > client secret > FHIR3T_TOKEN > none.

    `token_url`: the token endpoint the user configured (else discovered, and then only on an origin the user
    named: the FHIR server's or one of `allow_origins`)."""
    base_url = strip_userinfo(base_url)  # discovery must not carry (or show) a password from the URL
    kw: dict[str, Any] = {"session": session, "token_url": token_url, "allow_origins": tuple(allow_origins)}
    if scope:
        kw["scope"] = scope
    if token:
        return BearerToken(token)
    if client_id and key:
        return SmartBackendAuth(base_url, client_id, key, **kw)
    secret = client_secret or os.environ.get("FHIR3T_CLIENT_SECRET")
    if client_id and secret:
        return ClientSecretBasicAuth(base_url, client_id, secret, **kw)
    if client_id:
        raise AuthError(MESSAGES["client-needs-key"]())
    if key:
        raise AuthError(MESSAGES["key-needs-client"]())
    env = os.environ.get("FHIR3T_TOKEN")
    if env:
        return BearerToken(env)
    return None
