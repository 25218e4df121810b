"""Auth schemes: SMART Backend Services discovery, signed assertion, caching, refresh after 401."""
from __future__ import annotations

import json
from urllib.parse import parse_qs

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir3t.errors import AuthError
from fhir3t.transport.auth import BearerToken, ClientSecretBasicAuth, SmartBackendAuth, load_signing_key, make_auth
from fhir3t.transport.http import FhirClient, RetryPolicy

BASE = "https://fhir.test/fhir"
TOKEN_URL = "https://fhir.test/auth/token"  # on the FHIR server's origin: discovery may name it
AUTH_SERVER = "https://auth.test/token"  # another origin: only when the user names it


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def pem(tmp_path, rsa_key):
    p = tmp_path / "key.pem"
    p.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return p


def smart_config():
    responses.get(f"{BASE}/.well-known/smart-configuration", json={"token_endpoint": TOKEN_URL})


@responses.activate
def test_smart_discovers_endpoint_and_signs_rs384_assertion(pem, rsa_key):
    smart_config()
    responses.post(TOKEN_URL, json={"access_token": "tok-1", "expires_in": 300})
    auth = SmartBackendAuth(BASE, "client-7", pem)
    assert auth.headers() == {"Authorization": "Bearer tok-1"}
    form = parse_qs(responses.calls[1].request.body)
    assert form["grant_type"] == ["client_credentials"]
    assertion = form["client_assertion"][0]
    assert jwt.get_unverified_header(assertion)["alg"] == "RS384"
    claims = jwt.decode(assertion, rsa_key.public_key(), algorithms=["RS384"], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == "client-7"
    assert claims["exp"] - claims["iat"] <= 300


@responses.activate
def test_token_is_cached_until_expiry(pem):
    smart_config()
    responses.post(TOKEN_URL, json={"access_token": "tok-1", "expires_in": 3600})
    responses.post(TOKEN_URL, json={"access_token": "tok-2", "expires_in": 3600})
    now = [1000.0]
    auth = SmartBackendAuth(BASE, "c", pem, clock=lambda: now[0])
    auth.headers()
    auth.headers()
    assert auth.fetches == 1
    now[0] += 3600  # past expiry (minus the safety margin)
    assert auth.headers()["Authorization"] == "Bearer tok-2"
    assert auth.fetches == 2


@responses.activate
def test_401_refreshes_the_token_once_then_succeeds(pem):
    smart_config()
    responses.post(TOKEN_URL, json={"access_token": "old", "expires_in": 3600})
    responses.post(TOKEN_URL, json={"access_token": "new", "expires_in": 3600})
    responses.get(f"{BASE}/Patient/a", status=401)
    responses.get(f"{BASE}/Patient/a", json={"resourceType": "Patient", "id": "a"})
    c = FhirClient(BASE, auth=SmartBackendAuth(BASE, "c", pem), retry=RetryPolicy(rng=lambda: 0), sleep=lambda s: None)
    assert c.get("Patient/a")["id"] == "a"
    gets = [call.request for call in responses.calls if call.request.method == "GET" and "Patient" in call.request.url]
    assert [g.headers["Authorization"] for g in gets] == ["Bearer old", "Bearer new"]


@responses.activate
def test_second_401_is_an_auth_error_with_exit_6(pem):
    smart_config()
    responses.post(TOKEN_URL, json={"access_token": "t", "expires_in": 3600})
    responses.get(f"{BASE}/Patient/a", status=401)
    c = FhirClient(BASE, auth=SmartBackendAuth(BASE, "c", pem), sleep=lambda s: None)
    with pytest.raises(AuthError) as exc:
        c.get("Patient/a")
    assert exc.value.exit_code == 6
    assert len([x for x in responses.calls if "Patient" in x.request.url]) == 2


@responses.activate
def test_refused_token_request_names_the_client_not_the_secret():
    smart_config()
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client", "error_description": "bad secret"})
    auth = ClientSecretBasicAuth(BASE, "app", "hunter2-secret")
    with pytest.raises(AuthError) as exc:
        auth.headers()
    assert "app" in str(exc.value) and "hunter2" not in str(exc.value)
    assert "hunter2" not in repr(auth)
    assert responses.calls[1].request.headers["Authorization"].startswith("Basic ")


def test_es384_from_jwks(tmp_path):
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    jwk["kid"] = "my-kid"
    p = tmp_path / "jwks.json"
    p.write_text(json.dumps({"keys": [jwk]}))
    _, alg, kid = load_signing_key(p)
    assert (alg, kid) == ("ES384", "my-kid")


def test_pem_gets_a_thumbprint_kid(pem):
    _, alg, kid = load_signing_key(pem)
    assert alg == "RS384" and len(kid) == 43


def test_unreadable_key_is_an_auth_error(tmp_path):
    bad = tmp_path / "k.pem"
    bad.write_text("not a key")
    with pytest.raises(AuthError):
        load_signing_key(bad)


def test_make_auth_precedence(monkeypatch, pem):
    monkeypatch.setenv("FHIR3T_TOKEN", "env-token")
    assert make_auth(BASE).headers() == {"Authorization": "Bearer env-token"}
    assert make_auth(BASE, token="flag").headers() == {"Authorization": "Bearer flag"}
    assert isinstance(make_auth(BASE, client_id="c", key=str(pem)), SmartBackendAuth)
    assert isinstance(make_auth(BASE, client_id="c", client_secret="s"), ClientSecretBasicAuth)
    with pytest.raises(AuthError):
        make_auth(BASE, key=str(pem))
    assert "env-token" not in repr(BearerToken("env-token"))


# ---- hostile discovery and key files (issue 10: security 3, crashes) ---------------------------------
@responses.activate
@pytest.mark.parametrize("endpoint", ["http://evil.test/token", "ftp://evil.test/token", "http://10.0.0.5/token"])
def test_a_token_endpoint_that_is_not_https_gets_no_credentials(endpoint):
    responses.get(f"{BASE}/.well-known/smart-configuration", json={"token_endpoint": endpoint})
    auth = ClientSecretBasicAuth(BASE, "app", "hunter2-secret")
    with pytest.raises(AuthError, match=r"not (https|an http)"):
        auth.headers()
    assert [c.request.method for c in responses.calls] == ["GET"]  # the secret was never sent


def test_plain_http_token_endpoint_is_allowed_on_loopback_only():
    auth = ClientSecretBasicAuth("http://127.0.0.1:8080/fhir", "app", "s", token_url="http://127.0.0.1:8081/token")
    assert auth._check_endpoint("http://127.0.0.1:8081/token") == "http://127.0.0.1:8081/token"
    assert auth._check_endpoint("http://127.0.0.1:8080/auth/token") == "http://127.0.0.1:8080/auth/token"
    with pytest.raises(AuthError):
        auth._check_endpoint("http://127.0.0.1.evil.test/token")


@responses.activate
@pytest.mark.parametrize("scheme", ["smart", "client-secret"])
def test_a_token_endpoint_discovered_on_another_origin_is_refused_and_gets_no_credentials(pem, scheme):
    """Issue 21: the server's .well-known named another origin; the client id and secret (or the signed
    assertion) went there as HTTP Basic with only a warning. Now: one sentence, nothing sent."""
    responses.get(f"{BASE}/.well-known/smart-configuration", json={"token_endpoint": AUTH_SERVER})
    stolen = responses.post(AUTH_SERVER, json={"access_token": "t1", "expires_in": 300})
    auth = (SmartBackendAuth(BASE, "app", pem) if scheme == "smart"
            else ClientSecretBasicAuth(BASE, "app", "hunter2-secret"))
    with pytest.raises(AuthError) as exc:
        auth.headers()
    msg = str(exc.value)
    assert stolen.call_count == 0 and exc.value.exit_code == 6
    assert "https://auth.test" in msg and "https://fhir.test" in msg and "token_url" in msg and "\n" not in msg
    assert "hunter2" not in msg
    # the user names the authorization server: the credentials go there (and discovery is not asked)
    named = (SmartBackendAuth(BASE, "app", pem, token_url=AUTH_SERVER) if scheme == "smart"
             else ClientSecretBasicAuth(BASE, "app", "hunter2-secret", token_url=AUTH_SERVER))
    assert named.headers() == {"Authorization": "Bearer t1"} and stolen.call_count == 1


@responses.activate
def test_a_token_endpoint_on_an_allowed_origin_is_used(pem):
    responses.get(f"{BASE}/.well-known/smart-configuration", json={"token_endpoint": AUTH_SERVER})
    responses.post(AUTH_SERVER, json={"access_token": "t1", "expires_in": 300})
    auth = make_auth(BASE, client_id="app", key=str(pem), allow_origins=[("https", "auth.test", 443)])
    assert auth.headers() == {"Authorization": "Bearer t1"}


@responses.activate
def test_a_password_in_the_server_url_never_reaches_discovery_or_messages():
    responses.get("http://fhir.test/fhir/.well-known/smart-configuration", status=404)
    auth = make_auth("http://alice:hunter2@fhir.test/fhir", client_id="app", client_secret="s")
    with pytest.raises(AuthError) as exc:
        auth.headers()
    assert "hunter2" not in str(exc.value) and "alice" not in str(exc.value)
    assert "Authorization" not in responses.calls[0].request.headers


@pytest.mark.parametrize("doc", [{"keys": 5}, {"keys": [5, "x", None]}, [1, 2], {"keys": {"kty": "RSA"}},
                                 {"keys": [{"kty": "RSA", "d": 5, "n": [], "e": {}}]}, {"kty": "EC", "d": "x", "kid": 7}, "key"])
def test_a_malformed_key_file_is_an_auth_error_not_a_crash(tmp_path, doc):
    p = tmp_path / "k.json"
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else "{" + doc)
    with pytest.raises(AuthError) as exc:
        load_signing_key(p)
    assert exc.value.exit_code == 6 and str(p) in str(exc.value)
