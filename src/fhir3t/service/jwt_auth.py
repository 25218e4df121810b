"""CDS Hooks 2.0 client authentication: the `Authorization: Bearer <JWT>` an EHR signs for every call.

Checked (PyJWT does the cryptography): an asymmetric algorithm (never `none`, never HMAC), a `kid`,
an issuer on the allow-list, a signature by that issuer's key (its configured JWKS URL or key file;
a `jku` header only if that issuer allows that exact URL), `aud` = the URL of the endpoint called
(`{public_url}/cds-services/...`), `exp` and `iat` present and current (30 s leeway), and a `jti` not
seen before (replays are refused until the token expires). Failures are answered 401 with a reason
that names the check, never the token.

A JWKS answer is the issuer's to give, so it is a typed boundary like a request body: fetched with a
time limit and a size bound (no redirects), checked against `schemas/jwks.schema.json`, and a set
without a usable key is a 401 saying so. A JWKS is read again at most every `REFETCH_SECONDS` for a kid
it does not hold (tokens with made-up kids cannot make the service hammer the issuer). The key must be
of the algorithm's family (an RS256 token against an EC key is refused before any signature check).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jwt
import requests

from fhir3t.errors import AuthError, ConfigError
from fhir3t.messages import table
from fhir3t.service.settings import Issuer
from fhir3t.service.store import Store
from fhir3t.shapecheck import ShapeError, check, dotted
from fhir3t.smallfiles import KEY_LIMIT, read_small

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
LEEWAY = 30
#: a JWT valid for longer than this is refused (CDS Hooks tokens are per call)
MAX_LIFETIME = 3600
#: a JWKS is kept this long, and read again for an unknown kid at most this often
JWKS_LIFESPAN, REFETCH_SECONDS = 300.0, 60.0
#: a JWKS answer larger than this is not a key set
JWKS_MAX_BYTES = 256 * 1024

#: a configured public key file the service cannot start with (the CLI's error line)
KEY_FILE = table("serve.key-file", {
    "what": "the CDS client's public key file",
    "missing": "{path}: cannot read the CDS client's public key (no such file)",
    "not-pem": "{path}: not a PEM public key ({error})",
    "not-json": "{path}: not a JWK or JWKS public key (not JSON)",
    "unusable": "{path}: the issuer's JWKS is not usable ({why})",
    "no-key": "{path}: the issuer's JWKS has no usable key",
})
#: id -> English template of a refused call's HTTP 401 body: JSON for the calling program (an EHR), English
HTTP_ERRORS = {
    "jwks-unreachable": "the issuer's JWKS cannot be fetched",
    "jwks-unusable": "the issuer's JWKS is not usable ({why})",
    "jwks-no-key": "the issuer's JWKS has no usable key",
    "no-kid-jwks": "no key with this kid in the issuer's JWKS",
    "no-kid": "no key with this kid for the issuer",
    "alg-key": "the JWT's alg {alg} does not fit the issuer's key",
    "need-jwt": "a JWT is required: Authorization: Bearer <JWT>",
    "not-jwt": "the bearer token is not a JWT",
    "asymmetric": "the JWT must be signed with an asymmetric algorithm (e.g. ES384 or RS384)",
    "no-kid-header": "the JWT header has no kid",
    "typ": "the JWT header typ must be JWT",
    "issuer": "the JWT issuer is not on the allow-list",
    "expired": "the JWT has expired",
    "aud": "the JWT aud is not the URL of this endpoint",
    "missing-claim": "the JWT has no {claim} claim",
    "signature": "the JWT signature does not verify",
    "invalid": "the JWT is not valid ({kind})",
    "lifetime": "the JWT is valid for more than {seconds} s",
    "replay": "the JWT was used before (jti replay)",
}


def _family(alg: str) -> str:
    return "EC" if alg.startswith("ES") else "RSA"


def _key_family(key: Any) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return "EC"
    return None


def _keys_of(jwks: object, where: str, error: type[Exception]) -> dict[str | None, Any]:
    """kid -> public key of a JWK Set (checked against its schema); the keys PyJWT cannot use are left out."""
    try:
        check("jwks", jwks, dotted(where))
    except ShapeError as exc:
        raise (ConfigError(KEY_FILE["unusable"](path=where, why=exc.said)) if error is ConfigError
               else error(HTTP_ERRORS["jwks-unusable"].format(why=exc))) from None
    out: dict[str | None, Any] = {}
    for k in jwks["keys"]:  # type: ignore[index]
        try:
            out[k.get("kid")] = jwt.PyJWK(k).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue  # a key of a kind or curve PyJWT does not take: not a key this service can use
    if not out:
        raise ConfigError(KEY_FILE["no-key"](path=where)) if error is ConfigError else error(HTTP_ERRORS["jwks-no-key"])
    return out


def _load_keys(path: Path) -> dict[str | None, Any]:
    """kid -> public key from a PEM file (kid None) or a JWK / JWKS JSON file."""
    try:
        data = read_small(path, KEY_LIMIT, KEY_FILE["what"]())
    except FileNotFoundError:
        raise ConfigError(KEY_FILE["missing"](path=str(path))) from None
    if data.lstrip().startswith(b"-----BEGIN"):
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            return {None: load_pem_public_key(data)}
        except (ValueError, TypeError) as exc:
            raise ConfigError(KEY_FILE["not-pem"](path=str(path), error=type(exc).__name__)) from None
    try:
        obj = json.loads(data)
    except ValueError:
        raise ConfigError(KEY_FILE["not-json"](path=str(path))) from None
    doc = obj if isinstance(obj, dict) and "keys" in obj else {"keys": [obj]}
    return _keys_of(doc, str(path), ConfigError)  # a ConfigError names the file


class _RemoteJwks:
    """One issuer's JWKS URL: fetched bounded, kept `JWKS_LIFESPAN` s, read again for a new kid at most every
    `REFETCH_SECONDS` s."""

    def __init__(self, url: str, timeout: float, clock: Callable[[], float]) -> None:
        self.url, self.timeout, self.clock = url, timeout, clock
        self.keys: dict[str | None, Any] = {}
        self.fetched = -float("inf")
        self.lock = threading.Lock()

    def _fetch(self) -> None:
        try:
            with requests.get(self.url, timeout=(min(3.0, self.timeout), self.timeout), stream=True,
                              allow_redirects=False, headers={"Accept": "application/json"}) as resp:
                if resp.status_code != 200:
                    raise AuthError(HTTP_ERRORS["jwks-unreachable"])
                raw = b""
                for chunk in resp.iter_content(1 << 14):
                    raw += chunk
                    if len(raw) > JWKS_MAX_BYTES:
                        raise AuthError(HTTP_ERRORS["jwks-unusable"].format(why=f"larger than {JWKS_MAX_BYTES // 1024} KB"))
        except requests.RequestException:
            raise AuthError(HTTP_ERRORS["jwks-unreachable"]) from None
        try:
            doc = json.loads(raw)
        except ValueError:
            raise AuthError(HTTP_ERRORS["jwks-unusable"].format(why="not JSON")) from None
        self.keys = _keys_of(doc, "jwks", AuthError)

    def key(self, kid: str) -> Any:
        with self.lock:
            now = self.clock()
            stale = now - self.fetched > JWKS_LIFESPAN
            if stale or (kid not in self.keys and now - self.fetched > REFETCH_SECONDS):
                self.fetched = now  # a failed fetch waits its turn too
                self._fetch()
            if kid in self.keys:
                return self.keys[kid]
        raise AuthError(HTTP_ERRORS["no-kid-jwks"])


class JwtVerifier:
    def __init__(self, issuers: Sequence[Issuer], store: Store, *, timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.issuers = {i.iss: i for i in issuers}
        self.store = store
        self.timeout = timeout
        self.clock = clock
        self._files = {i.iss: _load_keys(i.key) for i in issuers if i.key is not None}
        self._remote: dict[str, _RemoteJwks] = {}
        self._lock = threading.Lock()

    def _jwks(self, url: str) -> _RemoteJwks:
        with self._lock:
            remote = self._remote.get(url)
            if remote is None:
                remote = self._remote[url] = _RemoteJwks(url, self.timeout, self.clock)
            return remote

    def _key(self, issuer: Issuer, header: dict[str, Any]) -> Any:
        kid = header.get("kid")
        jku = header.get("jku")
        url = jku if isinstance(jku, str) and jku.rstrip("/") in issuer.jku else issuer.jwks_url
        if url is not None:
            return self._jwks(url).key(str(kid))
        keys = self._files.get(issuer.iss, {})
        if kid in keys:
            return keys[kid]
        if None in keys and len(keys) == 1:
            return keys[None]
        raise AuthError(HTTP_ERRORS["no-kid"])

    def verify(self, authorization: str | None, audience: Sequence[str]) -> dict[str, Any]:
        """The token's claims, or AuthError saying which check failed."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError(HTTP_ERRORS["need-jwt"])
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthError(HTTP_ERRORS["not-jwt"]) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise AuthError(HTTP_ERRORS["asymmetric"])
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError(HTTP_ERRORS["no-kid-header"])
        if header.get("typ") not in (None, "JWT"):
            raise AuthError(HTTP_ERRORS["typ"])
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthError(HTTP_ERRORS["issuer"])
        key = self._key(issuer, header)
        if _key_family(key) != _family(alg):
            raise AuthError(HTTP_ERRORS["alg-key"].format(alg=alg))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], audience=list(audience), issuer=issuer.iss, leeway=LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.ExpiredSignatureError:
            raise AuthError(HTTP_ERRORS["expired"]) from None
        except jwt.InvalidAudienceError:
            raise AuthError(HTTP_ERRORS["aud"]) from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(HTTP_ERRORS["missing-claim"].format(claim=exc.claim)) from None
        except jwt.InvalidSignatureError:
            raise AuthError(HTTP_ERRORS["signature"]) from None
        except jwt.PyJWTError as exc:
            raise AuthError(HTTP_ERRORS["invalid"].format(kind=type(exc).__name__)) from None
        except (ValueError, TypeError) as exc:  # a key PyJWT cannot use for this token, whatever the cause
            raise AuthError(HTTP_ERRORS["invalid"].format(kind=type(exc).__name__)) from None
        try:
            exp, iat = float(claims["exp"]), float(claims["iat"])
        except (TypeError, ValueError):
            raise AuthError(HTTP_ERRORS["invalid"].format(kind="exp or iat not a number")) from None
        if exp - iat > MAX_LIFETIME:
            raise AuthError(HTTP_ERRORS["lifetime"].format(seconds=MAX_LIFETIME))
        if not self.store.use_jti(issuer.iss, str(claims["jti"])[:256], exp):
            raise AuthError(HTTP_ERRORS["replay"])
        return claims


__all__ = ["ALGORITHMS", "JwtVerifier"]
