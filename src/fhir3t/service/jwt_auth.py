"""CDS Hooks 2.0 client authentication: the `Authorization: Bearer <JWT>` an EHR signs for every call.

Checked (PyJWT does the cryptography): an asymmetric algorithm (never `none`, never HMAC), a `kid`,
an issuer on the allow-list, a signature by that issuer's key (its configured JWKS URL or key file;
a `jku` header only if that issuer allows that exact URL), `aud` = the URL of the endpoint called
(`{public_url}/cds-services/...`), `exp` and `iat` present and current (30 s leeway), and a `jti` not
seen before (replays are refused until the token expires). Failures are answered 401 with a reason
that names the check, never the token.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWKClient

from fhir3t.errors import AuthError, ConfigError
from fhir3t.service.settings import Issuer
from fhir3t.service.store import Store
from fhir3t.smallfiles import KEY_LIMIT, read_small

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
LEEWAY = 30
#: a JWT valid for longer than this is refused (CDS Hooks tokens are per call)
MAX_LIFETIME = 3600


def _load_keys(path: Path) -> dict[str | None, Any]:
    """kid -> public key from a PEM file (kid None) or a JWK / JWKS JSON file."""
    try:
        data = read_small(path, KEY_LIMIT, "the CDS client's public key file")
    except FileNotFoundError:
        raise ConfigError(f"{path}: cannot read the CDS client's public key (no such file)") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            return {None: load_pem_public_key(data)}
        except ValueError as exc:
            raise ConfigError(f"{path}: not a PEM public key ({exc})") from None
    try:
        obj = json.loads(data)
        keys = obj["keys"] if isinstance(obj, dict) and "keys" in obj else [obj]
        return {k.get("kid"): jwt.PyJWK(k).key for k in keys}
    except (ValueError, KeyError, TypeError, jwt.PyJWKError) as exc:
        raise ConfigError(f"{path}: not a JWK or JWKS public key ({type(exc).__name__})") from None


class JwtVerifier:
    def __init__(self, issuers: Sequence[Issuer], store: Store, *, timeout: float = 5.0) -> None:
        self.issuers = {i.iss: i for i in issuers}
        self.store = store
        self.timeout = timeout
        self._files = {i.iss: _load_keys(i.key) for i in issuers if i.key is not None}
        self._clients: dict[str, PyJWKClient] = {}
        self._lock = threading.Lock()

    def _jwks(self, url: str) -> PyJWKClient:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = self._clients[url] = PyJWKClient(url, cache_keys=True, lifespan=300, timeout=self.timeout)
            return client

    def _key(self, issuer: Issuer, header: dict[str, Any]) -> Any:
        kid = header.get("kid")
        jku = header.get("jku")
        url = jku if isinstance(jku, str) and jku.rstrip("/") in issuer.jku else issuer.jwks_url
        if url is not None:
            try:
                return self._jwks(url).get_signing_key(str(kid)).key
            except jwt.PyJWKClientConnectionError:
                raise AuthError("the issuer's JWKS cannot be fetched") from None
            except jwt.PyJWKClientError:
                raise AuthError("no key with this kid in the issuer's JWKS") from None
        keys = self._files.get(issuer.iss, {})
        if kid in keys:
            return keys[kid]
        if None in keys and len(keys) == 1:
            return keys[None]
        raise AuthError("no key with this kid for the issuer")

    def verify(self, authorization: str | None, audience: Sequence[str]) -> dict[str, Any]:
        """The token's claims, or AuthError saying which check failed."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("a JWT is required: Authorization: Bearer <JWT>")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("the bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthError("the JWT must be signed with an asymmetric algorithm (e.g. ES384 or RS384)")
        if not header.get("kid"):
            raise AuthError("the JWT header has no kid")
        if header.get("typ") not in (None, "JWT"):
            raise AuthError("the JWT header typ must be JWT")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthError("the JWT issuer is not on the allow-list")
        key = self._key(issuer, header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], audience=list(audience), issuer=issuer.iss, leeway=LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("the JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("the JWT aud is not the URL of this endpoint") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the JWT has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the JWT signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"the JWT is not valid ({type(exc).__name__})") from None
        exp, iat = float(claims["exp"]), float(claims["iat"])
        if exp - iat > MAX_LIFETIME:
            raise AuthError(f"the JWT is valid for more than {MAX_LIFETIME} s")
        if not self.store.use_jti(issuer.iss, str(claims["jti"]), exp):
            raise AuthError("the JWT was used before (jti replay)")
        return claims


__all__ = ["ALGORITHMS", "JwtVerifier"]
