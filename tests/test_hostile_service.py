"""Issue 21, a reproducer for each finding of the adversarial round against 0.2.0: the service, the watcher,
the config, validate. Each ends in a one-sentence error, a 4xx, or a bounded stop: never a 500, a
traceback, exit 70, a credential sent elsewhere, or an unbounded read. (Credentials to a SMART token
endpoint on another origin: test_auth.py; next links, redirects and Bulk URLs off the allowed origins:
test_transport_hostile.py, test_bulk.py.)"""
from __future__ import annotations

import json
import os
import re
import stat
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from markdown_it import MarkdownIt

from cds_helpers import (
    CONCEPT_MAP,
    SAMPLES_AS_OF,
    SERVICE,
    Recorder,
    full_prefetch,
    hook_request,
    running,
    sample_resources,
)
from fhir3t.cli import main
from fhir3t.errors import EXIT_AUTH, EXIT_INPUT_FATAL, AuthError, InputError
from fhir3t.formats.csvout import cell
from fhir3t.pipeline import Definition
from fhir3t.service.cards import detail
from fhir3t.service.jwt_auth import JwtVerifier
from fhir3t.service.settings import Issuer, ServeSettings
from fhir3t.service.store import Store
from fhir3t.service.watch import Watcher, WatchState
from fhir3t.shapecheck import ShapeError
from fhir3t.transport.http import FhirClient, RetryPolicy
from fhir3t.transport.terminology import MAX_FAILURES_IN_A_ROW, TerminologyServer
from hostile_client import Crowd, wait_until
from hostile_server import RawServer, answer, drip_json

FEEDBACK = f"/cds-services/{SERVICE}/feedback"


@pytest.fixture(scope="module")
def definition() -> Definition:
    return Definition.load(concept_maps=[CONCEPT_MAP])


@pytest.fixture
def service(definition, tmp_path):
    with running(ServeSettings(state_dir=tmp_path / "state", as_of=SAMPLES_AS_OF), definition) as (url, cds):
        yield url, cds


def post(url: str, path: str, body: object, headers: dict | None = None) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url + path, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                         timeout=30)


def one_sentence(r: requests.Response) -> str:
    assert r.headers["content-type"].startswith("application/json"), r.text
    msg = r.json()["error"]
    assert isinstance(msg, str) and msg and "\n" not in msg and "Traceback" not in msg
    return msg


# ---- 1. credentials and reads follow no server-supplied URL ----------------------------------------------
def test_a_notification_focus_is_parsed_as_a_reference_never_joined_as_a_path(definition, tmp_path, httpserver):
    """`Observation/../../x` made the watcher GET /x outside the FHIR base, with the token."""
    httpserver.expect_request("/fhir/Observation/o1").respond_with_json(
        {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p01"}})
    base = httpserver.url_for("/fhir")
    w = Watcher(FhirClient(base, auth=None, parallel=1), definition, WatchState(tmp_path / "w.json", base))
    focus = ["Observation/../../x", "Observation/..%2F..%2Fx", f"{base}/../x/Observation/o2", "http://evil.example/fhir/Observation/o3",
             "Observation/o1?_format=xml", "observation/o1", "Observation/", "Observation/o1", f"{base}/Observation/o1/_history/2"]
    note = {"resourceType": "Bundle", "type": "history", "entry": [{"resource": {
        "resourceType": "Parameters", "parameter": [{"name": "notification-event", "part": [
            {"name": "focus", "valueReference": {"reference": ref}} for ref in focus]}]}}]}
    assert w.notified(json.dumps(note).encode()) == 2  # the two spellings of Observation/o1; the rest refused
    ids, poll, _n = w._drain(w.queue.get_nowait())
    assert ids == {"p01"} and not poll
    assert [req.path for req, _ in httpserver.log] == ["/fhir/Observation/o1", "/fhir/Observation/o1"]
    # the path form of a notification (…/notify/{type}/{id}) goes through the same parser
    assert w.notified(b"", "Observation", "..") == 1 and w.queue.get_nowait() == ("poll", "")


def test_the_service_reads_only_from_its_fhir_servers_not_from_a_next_link_elsewhere(definition, tmp_path):
    """An allowed fhirServer answered with a `next` link to another origin, which the service followed."""
    elsewhere = Recorder(lambda path: (200, {"resourceType": "Bundle", "type": "searchset", "entry": []}, 0.0))

    def answer(path: str):
        if "/Patient/" in path:
            return 200, {"resourceType": "Patient", "id": "p01", "birthDate": "1970-01-01"}, 0.0
        return 200, {"resourceType": "Bundle", "type": "searchset", "entry": [],
                     "link": [{"relation": "next", "url": f"{elsewhere.base}/Observation?page=2"}]}, 0.0
    home = Recorder(answer)
    try:
        settings = ServeSettings(state_dir=tmp_path / "s", as_of=SAMPLES_AS_OF, fhir_servers=(home.base,))
        with running(settings, definition) as (url, _cds):
            r = post(url, f"/cds-services/{SERVICE}", hook_request(
                "p01", fhirServer=home.base, fhirAuthorization={"access_token": "ehr-token", "token_type": "Bearer"}))
        assert r.status_code == 200 and r.json() == {"cards": []}  # not fetched completely: no card
        assert elsewhere.seen == []  # neither a request nor the token went there
        assert home.seen and all(auth == "Bearer ehr-token" for _p, auth in home.seen)
    finally:
        home.stop()
        elsewhere.stop()


# ---- 3. no internal error on bad input: one typed boundary, one exception map ---------------------------
def jwt_service(definition, tmp_path, jwks: dict | None = None, *, url: str | None = None) -> ServeSettings:
    issuer = Issuer("https://ehr.example.org", jwks_url=url) if url else None
    if jwks is not None:
        (tmp_path / "jwks.json").write_text(json.dumps(jwks))
        issuer = Issuer("https://ehr.example.org", key=tmp_path / "jwks.json")
    assert issuer is not None
    return ServeSettings(state_dir=tmp_path / "s", as_of=SAMPLES_AS_OF, require_jwt=True,
                         public_url="https://cds.example.org", issuers=(issuer,))


def bearer(key, alg: str, path: str = "/cds-services", kid: str = "k1") -> dict:
    now = int(time.time())
    t = jwt.encode({"iss": "https://ehr.example.org", "aud": "https://cds.example.org" + path, "iat": now,
                    "exp": now + 60, "jti": str(uuid.uuid4())}, key, algorithm=alg, headers={"kid": kid})
    return {"Authorization": f"Bearer {t}"}


def test_a_jwt_whose_alg_does_not_fit_the_key_and_a_jwks_without_keys_are_401s(definition, tmp_path, httpserver):
    ec_key = ec.generate_private_key(ec.SECP384R1())
    pub = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    with running(jwt_service(definition, tmp_path, {"keys": [{**pub, "kid": "k1"}]}), definition) as (url, _cds):
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        r = requests.get(f"{url}/cds-services", headers=bearer(rsa_key, "RS256"), timeout=10)  # RS256 against an EC key
        assert r.status_code == 401 and "RS256 does not fit" in one_sentence(r)
        assert requests.get(f"{url}/cds-services", headers=bearer(ec_key, "ES384"), timeout=10).status_code == 200
    for jwks in ({"keys": []}, {"keys": [{"kty": "EC", "crv": "P-999", "x": "a", "y": "b", "kid": "k1"}]}, {"keys": 5},
                 [1], "nonsense"):
        httpserver.clear()
        httpserver.expect_request("/jwks").respond_with_data(json.dumps(jwks) if not isinstance(jwks, str) else jwks)
        v = JwtVerifier([Issuer("https://ehr.example.org", jwks_url=httpserver.url_for("/jwks"))], Store(tmp_path / "j"))
        with pytest.raises(AuthError, match="JWKS"):
            v.verify(bearer(ec_key, "ES384")["Authorization"], ["https://cds.example.org/cds-services"])
    httpserver.clear()
    httpserver.expect_request("/big").respond_with_data(b"{" + b" " * 400_000 + b"}")
    v = JwtVerifier([Issuer("https://ehr.example.org", jwks_url=httpserver.url_for("/big"))], Store(tmp_path / "k"))
    with pytest.raises(AuthError, match="larger than"):
        v.verify(bearer(ec_key, "ES384")["Authorization"], ["https://cds.example.org/cds-services"])


@pytest.mark.parametrize("server, message", [
    ("https://ehr.example:99999/fhir", "port"), ("https://ehr.example:x/fhir", "port"), ("http://[::1/fhir", "http(s) URL"),
    ("http://[zz::1]/fhir", "http(s) URL"), ("https:///fhir", "http(s) URL"), (5, "http(s) URL"),
])
def test_a_fhir_server_with_a_bad_port_or_a_broken_ipv6_literal_is_a_400(service, server, message):
    url, cds = service
    body = hook_request("p01", full_prefetch(cds, sample_resources("01-eligible-classic")), fhirServer=server)
    r = post(url, f"/cds-services/{SERVICE}", body)
    assert r.status_code == 400 and message in one_sentence(r) and "fhirServer" in one_sentence(r)


@pytest.mark.parametrize("reason, message", [
    ({"system": {"a": 1}, "code": "not-now"}, "system"), ({"code": "x", "display": ["y"]}, "display"),
    ({"code": 5}, "code"), ("not-now", "Coding"), ({"code": "x" * 300}, "at most 256"),
])
def test_feedback_with_a_reason_of_the_wrong_type_is_a_400(service, reason, message):
    url, _cds = service
    body = {"feedback": [{"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-16T09:00:00Z",
                          "overrideReason": {"reason": reason}}]}
    r = post(url, FEEDBACK, body)
    assert r.status_code == 400 and message in one_sentence(r)


@pytest.mark.parametrize("body", [
    {"resourceType": "Bundle", "entry": 80},
    {"resourceType": "Bundle", "entry": [80, "x", None]},
    {"resourceType": "Bundle", "entry": [{"resource": 80}]},
    {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Parameters", "parameter": 5}}]},
    {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Parameters", "parameter": [{"part": {"name": "focus"}}]}}]},
    {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Parameters", "parameter": [
        {"part": [{"name": "focus", "valueReference": "Observation/o1"}]}]}}]},
    {"resourceType": 5}, [1, 2], "text", 12,
    {"resourceType": "Observation", "subject": [1], "identifier": 80},
    {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "subject": {"reference": ["x"]}}}] * 3},
])
def test_odd_notification_bodies_are_answered_without_a_500(definition, tmp_path, body):
    """Five sites in the notification handler answered a plain-text 500 with a traceback in the log."""
    from fhir3t.service.app import create_app
    from fhir3t.service.runner import InThread

    base = "http://127.0.0.1:9/fhir"  # never asked: a notification only queues
    w = Watcher(FhirClient(base, parallel=1), definition, WatchState(tmp_path / "w.json", base))
    with InThread(create_app(None, watcher=w, notify_token="tkn")) as url:
        r = requests.post(f"{url}/fhir3t/notify", data=json.dumps(body), headers={"Authorization": "Bearer tkn"}, timeout=10)
        assert r.status_code in (200, 400), r.text
        if r.status_code == 400:
            one_sentence(r)
        r = requests.post(f"{url}/fhir3t/notify", data=b"x", headers={"Authorization": "Bearer wrong"}, timeout=10)
        assert r.status_code == 401 and one_sentence(r)


@pytest.mark.parametrize("state, message", [
    ({"server": "S", "seen": []}, "seen"), ({"server": "S", "seen": {"a": "x"}}, "number"), ({"server": 5}, "server"),
    ({"server": "S", "mark": {"x": 1}}, "mark"), ([1], "object"), ({"server": "S", "mark": "9999-12-31T00:00:00Z"}, "future"),
])
def test_a_tampered_watch_state_is_one_sentence_exit_4(tmp_path, state, message, capsys):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(state).replace('"S"', json.dumps("http://127.0.0.1:9/fhir")))
    with pytest.raises(InputError, match=message) as exc:
        WatchState.load(path, "http://127.0.0.1:9/fhir")
    assert exc.value.exit_code == EXIT_INPUT_FATAL and "\n" not in str(exc.value)
    # the command: one sentence, exit 4, before any request (nothing listens on port 9)
    code = main(["--no-config", "watch", "--server", "http://127.0.0.1:9/fhir", "--once", "--state", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT_FATAL and "internal error" not in err and str(path) in err


@pytest.mark.parametrize("cs", [
    {"resourceType": "CapabilityStatement", "rest": {"resource": 5}},
    {"resourceType": "CapabilityStatement", "rest": [5, {"resource": "Subscription"}]},
    {"resourceType": "CapabilityStatement", "rest": [{"resource": [{"type": "Subscription", "interaction": 7}]}]},
    {"resourceType": "CapabilityStatement", "rest": [{"resource": [{"type": ["Observation"]}, {"type": "Subscription",
                                                                                               "interaction": [{"code": {}}]}]}]},
])
def test_an_odd_capability_statement_means_not_offered_not_a_crash(definition, tmp_path, httpserver, cs):
    httpserver.expect_request("/fhir/metadata").respond_with_json(cs)
    httpserver.expect_request(re.compile(r"/fhir/[A-Za-z]+")).respond_with_json({"resourceType": "Bundle", "type": "searchset"})
    base = httpserver.url_for("/fhir")
    w = Watcher(FhirClient(base, parallel=1, retry=RetryPolicy(attempts=1)), definition, WatchState(tmp_path / "w.json", base),
                start=time.time())
    assert w.supports_subscriptions() is False
    w.changes()  # the types it polls are not limited by an unreadable statement


def test_a_server_lastupdated_in_the_future_is_not_taken_as_the_mark(definition, tmp_path, httpserver):
    """A mark in year 9999 made the watcher miss every change silently."""
    httpserver.expect_request("/fhir/metadata").respond_with_json({"resourceType": "CapabilityStatement"})
    httpserver.expect_request("/fhir/Observation").respond_with_json({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "Observation", "id": "o1", "meta": {"lastUpdated": "9999-12-31T00:00:00Z"},
                      "subject": {"reference": "Patient/p01"}}}]})
    httpserver.expect_request(re.compile(r"/fhir/[A-Za-z]+")).respond_with_json({"resourceType": "Bundle", "type": "searchset"})
    base = httpserver.url_for("/fhir")
    st = WatchState(tmp_path / "w.json", base)
    w = Watcher(FhirClient(base, parallel=1), definition, st, start=time.time())
    w.changes()
    assert st.mark is not None and st.mark < time.time() + 86400
    assert any("in the future" in p.message for p in w.problems)


def test_deeply_nested_toml_and_odd_serve_tables_are_one_sentence_exit_4(tmp_path, capsys):
    cases = {
        "a = " + "[" * 5000 + "]" * 5000: "nested too deeply",
        "[screen]\n" + "a." * 100 + "b = 1": "nested more than",
        "[serve]\nport = 99999": "'port' must be at most 65535",
        "[serve]\nbudget_ms = \"fast\"": "'budget_ms' must be a whole number",
        "[serve]\nfhir_servers = [\"https://x:99999/fhir\"]": "fhir_servers[0] must be an http",
        "[serve]\nissuers = [5]": "issuers[0] must be",
        "[[serve.issuers]]\niss = \"x\"\njwks_url = \"https://x/j\"\nkey = \"k.pem\"": "exactly one of jwks_url or key",
        "[serve]\nmax_body_mb = 1e9": "'max_body_mb' must be at most 1024",
        "[server]\nurl = \"https://x.example/fhir\"\nauth = \"smart\"\nclient_id = 7\nkey = \"k.pem\"": "'client_id' must be a string",
    }
    for text, message in cases.items():
        (tmp_path / "c.toml").write_text(text)
        code = main(["--config", str(tmp_path / "c.toml"), "serve", "--feedback"])
        err = capsys.readouterr().err.strip()
        assert code == EXIT_INPUT_FATAL and message in err and "internal error" not in err, (text[:40], err)
        assert len(err.splitlines()) == 1 and str(tmp_path / "c.toml") in err


def test_a_state_dir_that_cannot_hold_files_is_one_sentence_exit_4(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('[serve]\nstate_dir = "/proc"\n')
    assert main(["--config", str(tmp_path / "c.toml"), "serve", "--as-of", "2026-11-16"]) == EXIT_INPUT_FATAL
    err = capsys.readouterr().err
    assert "state_dir /proc cannot hold the service's state" in err and "internal error" not in err


def test_validate_on_a_bundle_type_or_coding_system_that_is_a_list_or_an_object(tmp_path, capsys):
    """`x in set` on a list or a dict: exit 70 in validate (invariants.py, instance.py)."""
    docs = [{"resourceType": "Bundle", "type": ["collection"], "entry": []},
            {"resourceType": "Bundle", "type": {"a": 1}, "entry": [{"fullUrl": "urn:uuid:1", "resource": {
                "resourceType": "Patient", "id": "a", "gender": "male"}}]},
            {"resourceType": "Observation", "id": "o", "status": "final",
             "code": {"coding": [{"system": {"x": 1}, "code": "1"}]}, "category": [{"coding": [{"system": ["s"]}]}]}]
    for i, doc in enumerate(docs):
        (tmp_path / f"{i}.json").write_text(json.dumps(doc))
    code = main(["validate", *(str(tmp_path / f"{i}.json") for i in range(len(docs)))])
    assert code == 1 and "internal error" not in capsys.readouterr().err


# ---- 4. bounds: file reads, page loops, retries, bodies, tables, time ------------------------------------
def test_a_key_from_dev_zero_or_a_fifo_is_refused_unread(tmp_path, capsys):
    """`key = "/dev/zero"` was read until the kernel killed fhir3t (24 GB)."""
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    for key in ("/dev/zero", str(fifo)):
        (tmp_path / "c.toml").write_text(f'[server]\nurl = "https://ehr.example/fhir"\nauth = "smart"\nclient_id = "c"\n'
                                         f'key = "{key}"\n')
        t0 = time.monotonic()
        code = main(["--config", str(tmp_path / "c.toml"), "screen", "--no-progress", "--as-of", "2026-11-16"])
        err = capsys.readouterr().err
        assert code == EXIT_AUTH and "is not a regular file" in err and time.monotonic() - t0 < 10
    (tmp_path / "big.pem").write_bytes(b"-" * (2 * 1024 * 1024))
    (tmp_path / "c.toml").write_text('[server]\nurl = "https://ehr.example/fhir"\nauth = "smart"\nclient_id = "c"\n'
                                     'key = "big.pem"\n')
    assert main(["--config", str(tmp_path / "c.toml"), "screen", "--no-progress", "--as-of", "2026-11-16"]) == EXIT_AUTH
    assert "larger than 1 MB; not read" in capsys.readouterr().err


def test_jobs_beyond_the_bound_in_the_config_is_one_sentence(tmp_path, capsys):
    """`jobs = 1000000` hung (a million processes asked for)."""
    (tmp_path / "c.toml").write_text("[screen]\njobs = 1000000\n")
    assert main(["--config", str(tmp_path / "c.toml"), "screen", "x.json"]) == EXIT_INPUT_FATAL
    assert "'jobs' must be between 1 and 64, not 1000000" in capsys.readouterr().err


def test_a_terminology_server_repeating_one_page_with_a_huge_total_is_paged_twice(httpserver):
    page = {"resourceType": "ValueSet", "expansion": {"total": 10 ** 9, "contains": [
        {"system": "http://snomed.info/sct", "code": str(c)} for c in range(1000)]}}
    httpserver.expect_request("/fhir/ValueSet/$expand").respond_with_json(page)
    server = TerminologyServer(FhirClient(httpserver.url_for("/fhir"), parallel=1, sleep=lambda s: None))
    assert server.expand_isa("http://snomed.info/sct", "363346000") is None  # not answered: its codes stay unread
    assert len(httpserver.log) == 2


@pytest.mark.parametrize("kind", ["500", "drip"])
def test_a_failing_or_dripping_terminology_server_costs_the_run_at_most_its_budget(kind):
    """Each lookup was retried on its own, with no overall deadline: `screen` ran past 600 s."""
    raw = RawServer(answer("500 Internal Server Error") if kind == "500" else drip_json())
    try:
        client = FhirClient(raw.url + "/fhir", timeout=30, parallel=1, retry=RetryPolicy(attempts=2, cap=0.1, rng=lambda: 0.0))
        server = TerminologyServer(client, budget=1.5)
        t0 = time.monotonic()
        for i in range(200):
            server.translate("http://hospital.example/codes", f"L{i}", ["http://hl7.org/fhir/sid/icd-10"])
        took = time.monotonic() - t0
    finally:
        raw.stop()
    assert took < 1.5 + 3.0  # the budget, plus the one request cut off at its end
    assert server.stopped is not None and server.skipped > 100
    said = server.summary() or ""
    assert ("budget" in said or f"{MAX_FAILURES_IN_A_ROW} failures in a row" in said) and "stay unread" in said
    assert len(raw.requests) <= MAX_FAILURES_IN_A_ROW * 2 + 2


def test_a_feedback_flood_in_one_request_is_refused_and_unknown_cards_are_not_stored(service):
    """One request with 50,000 items held a worker for 22-40 s; the feedback table grew without limit."""
    url, cds = service
    item = {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-16T09:00:00Z", "acceptedSuggestions": [{"id": "s"}]}
    t0 = time.monotonic()
    r = post(url, FEEDBACK, {"feedback": [item] * 50_000})
    assert r.status_code in (400, 413) and time.monotonic() - t0 < 10
    one_sentence(r)
    for _ in range(20):  # a hundred items a request, for cards never shown
        r = post(url, FEEDBACK, {"feedback": [{**item, "card": str(uuid.uuid4())} for _ in range(100)]})
        assert r.status_code == 200
    rows = cds.store._db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
    assert rows == 0 and cds.store.summary()["feedback_for_unknown_cards"] == 2000


def test_cards_are_kept_up_to_a_bound(tmp_path):
    store = Store(tmp_path, max_cards=100)
    for i in range(250):
        store.shown(f"c{i}", "svc", f"p{i}", "eligible", "h")
    n = store._db.execute("SELECT COUNT(*) FROM cards").fetchone()[0]
    assert n <= 100 and store._db.execute("SELECT COUNT(*) FROM cards WHERE uuid = 'c249'").fetchone()[0] == 1


def test_clients_dribbling_bodies_or_heads_are_let_go_and_hook_calls_still_answered(definition, tmp_path):
    """300 clients dribbling request bodies were all still held after 35 s (no body timeout, no cap)."""
    settings = ServeSettings(state_dir=tmp_path / "s", as_of=SAMPLES_AS_OF, body_timeout=1.0)
    with running(settings, definition, head_timeout=1.0) as (url, cds):
        crowd = Crowd().slow_body(url, f"/cds-services/{SERVICE}", 40).slow_head(url, "/cds-services", 20)
        try:
            body = hook_request("p01", full_prefetch(cds, sample_resources("01-eligible-classic")))
            r = post(url, f"/cds-services/{SERVICE}", body)
            assert r.status_code == 200 and len(r.json()["cards"]) == 1  # answered while they dribble
            assert wait_until(lambda: crowd.still_held() == 0, timeout=15), crowd.still_held()
        finally:
            crowd.stop()
    bodies = [h for h in crowd.held[:40]]
    assert all(b"408" in h.answer.split(b"\r\n", 1)[0] for h in bodies)  # answered 408, then let go
    assert all(h.held_for is not None and h.held_for < 10 for h in crowd.held)


def test_connections_beyond_the_cap_are_answered_503_at_once(definition, tmp_path):
    settings = ServeSettings(state_dir=tmp_path / "s", as_of=SAMPLES_AS_OF, max_connections=8, body_timeout=5.0)
    with running(settings, definition) as (url, _cds):
        # uvicorn counts every open connection when a request head arrives (limit_concurrency): seven slow clients,
        # each let in before the next connects (opened all at once, the heads of the later ones would already
        # find eight connections open and be refused), hold seven; the eighth request is answered 503 at once
        crowd = Crowd()
        for _ in range(7):
            crowd.slow_body(url, f"/cds-services/{SERVICE}", 1)
            time.sleep(0.2)
        assert crowd.still_held() == 7
        try:
            assert wait_until(lambda: requests.get(f"{url}/health", timeout=10).status_code == 503, timeout=10)
        finally:
            crowd.stop()
        assert wait_until(lambda: requests.get(f"{url}/health", timeout=10).status_code == 200, timeout=10)


# ---- 5. authentication off only on loopback --------------------------------------------------------------
def test_serve_refuses_a_non_loopback_bind_without_jwt(tmp_path, capsys):
    for host in ("0.0.0.0", "::", "192.0.2.10", "cds.hospital.example"):
        code = main(["--no-config", "serve", "--host", host, "--state-dir", str(tmp_path), "--as-of", "2026-11-16"])
        err = capsys.readouterr().err
        assert code == EXIT_INPUT_FATAL and f"listen on {host}, which is not a loopback address" in err
        assert "require_jwt" in err and len(err.strip().splitlines()) == 1


def test_serve_says_loudly_how_calls_are_authenticated(tmp_path):
    from fhir3t.cli.serve import startup_lines

    off = startup_lines(ServeSettings(host="127.0.0.1", port=8088, state_dir=tmp_path), "NCT06438679")
    assert "AUTHENTICATION IS OFF" in off[1] and "loopback" in off[1]
    on = startup_lines(ServeSettings(host="0.0.0.0", port=8088, state_dir=tmp_path, require_jwt=True,
                                     public_url="https://cds.hospital.example/fhir3t",
                                     issuers=(Issuer("https://ehr.hospital.example", jwks_url="https://ehr/j"),)), "NCT06438679")
    assert on[0].startswith("fhir3t serve: CDS Hooks for NCT06438679 on http://0.0.0.0:8088/cds-services")
    assert "JWT client authentication required" in on[1] and "https://ehr.hospital.example" in on[1]


# ---- 6. the small ones ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pid", ["p01\n", "p01\r\n", " p01", "p01/../p02", "p\u200b01", "x" * 65])
def test_the_patient_id_must_match_whole(service, pid):
    url, cds = service
    body = hook_request("p01", full_prefetch(cds, sample_resources("01-eligible-classic")))
    body["context"]["patientId"] = pid
    r = post(url, f"/cds-services/{SERVICE}", body)
    assert r.status_code == 400 and "FHIR id" in one_sentence(r)


def test_record_text_in_a_card_renders_as_text_never_as_a_link(definition):
    from fhir3t.criteria.base import AS_WRITTEN
    from fhir3t.criteria.model import CriterionResult, ScreeningResult
    from fhir3t.messages import reason

    evil = "see https://evil.example/x, www.evil.example or mail x@evil.example; <https://evil.example> [a](https://e.example)"
    r = ScreeningResult(patient="Patient/p1", status="candidate", criteria=(CriterionResult("I3-mda5", "inclusion",
                        "unknown", (), reason(AS_WRITTEN(text=evil))),), as_of=SAMPLES_AS_OF, d1=SAMPLES_AS_OF)
    text = detail(r, definition)
    assert "evil" in text
    for renderer in (MarkdownIt("gfm-like"), MarkdownIt("commonmark").enable("linkify")):
        html = renderer.render(text)
        assert "<a " not in html and "https://evil.example/x" in html  # shown as written, not clickable


@pytest.mark.parametrize("value", [" =1+1", "\n=1+1", "\uff1d1+1", "\uff0bcmd", "\u3000=1", "\r=1", "\t=1", "=1", "@SUM(A1)"])
def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(value):
    assert cell(value) == "'" + value


def test_the_watch_state_file_is_private(tmp_path):
    st = WatchState(tmp_path / "w.json", "http://127.0.0.1:9/fhir", mark=time.time(), seen={"Observation/o1/1": 1.0})
    st.save()
    assert stat.S_IMODE(os.stat(st.path).st_mode) == 0o600
    assert WatchState.load(st.path, st.server).seen == {"Observation/o1/1": 1.0}


def test_the_exception_map_answers_every_known_failure_and_only_bugs_are_500():
    from fhir3t.service.failures import Busy, TooLarge, TooSlow, answer_for

    assert answer_for(ShapeError("request.x must be a string"))[0] == 400
    assert answer_for(AuthError("the JWT has expired")) == (401, "the JWT has expired")
    assert answer_for(TooLarge(1024 * 1024))[0] == 413 and answer_for(TooSlow(10))[0] == 408
    assert answer_for(Busy("feedback"))[0] == 503 and answer_for(RecursionError())[0] == 400
    assert answer_for(KeyError("x")) == (500, "internal error in the CDS service")  # the text of a bug is never shown


def test_a_prefetch_nested_a_thousand_deep_is_answered_without_a_500(service):
    url, cds = service
    res = sample_resources("01-eligible-classic")
    body = hook_request("p01", full_prefetch(cds, res))
    body["prefetch"]["condition"]["entry"][0]["resource"]["note"] = "DEEP"
    raw = json.dumps(body).replace('"DEEP"', "[" * 1000 + '"x"' + "]" * 1000).encode()  # orjson reads up to 1024
    r = post(url, f"/cds-services/{SERVICE}", raw)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        one_sentence(r)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x", None])
def test_a_body_a_web_page_could_send_cross_site_is_refused(service, content_type):
    """State-changing requests are CSRF-protected: a page can make a browser POST these without a preflight."""
    url, _cds = service
    body = json.dumps({"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-16T00:00:00Z"}]})
    headers = {"Content-Type": content_type} if content_type else {}
    r = requests.post(url + FEEDBACK, data=body.encode(), headers=headers, timeout=10)
    assert r.status_code == 415 and "application/json" in one_sentence(r)
    assert post(url, FEEDBACK, json.loads(body), {"Content-Type": "application/json; charset=utf-8"}).status_code == 200
