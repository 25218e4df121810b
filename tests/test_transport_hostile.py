"""FhirClient against hostile servers on 127.0.0.1 (real sockets): credentials stay on their origin,
secrets never reach a message, a trickling server cannot outlive --timeout, answers are size-capped,
only idempotent requests are sent twice, and malformed JSON shapes are reported, not crashed on."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from fhir3t.errors import ServerError, UsageError
from fhir3t.transport.auth import BearerToken
from fhir3t.transport.http import FhirClient, ResponseError, RetryPolicy
from fhir3t.transport.urls import clean, describe
from hostile_server import RawServer, trickle

BUNDLE = {"resourceType": "Bundle", "type": "searchset"}


@pytest.fixture(scope="module")
def _pool() -> Iterator[list[HTTPServer]]:
    servers = [HTTPServer(host="127.0.0.1", port=0, threaded=True) for _ in range(2)]
    for s in servers:
        s.start()
    yield servers
    for s in servers:
        s.stop()  # werkzeug takes ~0.5 s each: started once per module


@pytest.fixture
def make_server(_pool) -> Iterator:
    """make() -> one of two loopback servers (two distinct origins), cleared after the test."""
    free = list(_pool)
    yield free.pop
    for s in _pool:
        s.clear()


@pytest.fixture
def raw() -> Iterator:
    started: list[RawServer] = []

    def make(script) -> RawServer:
        s = RawServer(script)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def client(base: str, **kw) -> FhirClient:
    kw.setdefault("retry", RetryPolicy(attempts=3, rng=lambda: 0.0))
    kw.setdefault("timeout", 10.0)
    return FhirClient(base, sleep=lambda s: None, parallel=1, **kw)


def auth_headers(server: HTTPServer) -> list[str | None]:
    return [req.headers.get("Authorization") for req, _ in server.log]


# ---- security 1: reads and credentials only to origins the user named -------------------------------
def test_a_next_link_on_another_origin_is_refused_in_one_sentence_and_nothing_is_sent_there(make_server):
    home, other = make_server(), make_server()  # same host, other port: another origin
    home.expect_request("/fhir/Observation").respond_with_json(
        {**BUNDLE, "link": [{"relation": "next", "url": other.url_for("/page2")}]})
    other.expect_request("/page2").respond_with_json(BUNDLE)
    c = client(home.url_for("/fhir"), auth=BearerToken("s3cret-token"))
    with pytest.raises(ResponseError) as exc:
        list(c.search("Observation", {}))
    assert auth_headers(home) == ["Bearer s3cret-token"]
    assert other.log == []  # neither the token nor a request: the server's data comes only from where the user said
    msg = str(exc.value)
    assert f"http://127.0.0.1:{other.port} is not the server's origin" in msg and "--allow-origin" in msg
    assert "\n" not in msg and "s3cret" not in msg


def test_an_origin_the_user_allows_gets_the_token(make_server):
    home, cdn = make_server(), make_server()
    cdn.expect_request("/f").respond_with_data("x")
    c = client(home.url_for("/fhir"), auth=BearerToken("tok"), allow_origins=[cdn.url_for("/").rstrip("/")])
    c.download(cdn.url_for("/f"), lambda b: None)
    assert auth_headers(cdn) == ["Bearer tok"]


def test_a_redirect_to_another_origin_is_not_followed(make_server):
    home, other = make_server(), make_server()
    home.expect_request("/fhir/Patient/a").respond_with_response(
        Response(status=302, headers={"Location": other.url_for("/Patient/a")}))
    other.expect_request("/Patient/a").respond_with_json({"resourceType": "Patient", "id": "a"})
    c = client(home.url_for("/fhir"), auth=BearerToken("tok"))
    with pytest.raises(ResponseError, match=r"\(redirected\): http://127\.0\.0\.1:\d+ is not the server's origin"):
        c.get("Patient/a")
    assert other.log == []
    # a redirect within the server's origin is followed (with the token: same origin)
    home.expect_request("/fhir/Patient/b").respond_with_response(Response(status=302, headers={"Location": "/fhir/Patient/c"}))
    home.expect_request("/fhir/Patient/c").respond_with_json({"resourceType": "Patient", "id": "c"})
    assert c.get("Patient/b")["id"] == "c"
    assert auth_headers(home)[-1] == "Bearer tok"


# ---- security 3: userinfo in the URL -----------------------------------------------------------
def test_password_in_the_server_url_becomes_basic_auth_for_that_origin_and_is_never_shown(make_server):
    home, other = make_server(), make_server()
    home.expect_request("/fhir/metadata").respond_with_json(
        {"resourceType": "CapabilityStatement", "link": []})
    other.expect_request("/x").respond_with_json(BUNDLE)
    base = home.url_for("/fhir").replace("http://", "http://alice:pa%24%24word@")
    c = client(base)
    assert "pa" not in c.base and "alice" not in c.base and "alice" not in repr(c.auth)
    c.capabilities()
    assert auth_headers(home)[0].startswith("Basic ")  # alice:pa$$word
    with pytest.raises(ResponseError):
        c.get(other.url_for("/x"))
    assert other.log == []


def test_password_never_appears_in_connection_errors():
    c = client("http://alice:hunter2@127.0.0.1:9/fhir")  # discard port: nothing listens
    with pytest.raises(ServerError) as exc:
        c.get("metadata")
    assert "hunter2" not in str(exc.value) and "alice" not in str(exc.value)
    assert "cannot reach http://127.0.0.1:9 (GET /fhir/metadata)" in str(exc.value)


def test_describe_and_clean_remove_secrets_values_and_terminal_controls():
    assert describe("https://u:p@h.example:8443/fhir/Patient?name=Zhang&_count=5") == \
        "https://h.example:8443/fhir/Patient?name=…&_count=…"
    assert clean("ok\x1b[2J\u202eevil\r\n") == "ok?[2J?evil??"


# ---- hangs: total deadline, slow-loris -----------------------------------------------------------
@pytest.mark.parametrize("script", [
    trickle(b"HTTP/1.1 200 OK\r\nX-Slow: "),                                         # headers never end
    trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"),                   # body trickles
    trickle(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"resourceType\": \"Bundle\"", b" "),  # no length
], ids=["headers", "body", "until-close"])
def test_a_trickling_server_cannot_outlive_the_timeout(raw, script):
    srv = raw(script)
    c = client(srv.url + "/fhir", timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="no complete answer within 1 s") as exc:
        c.get("Patient")
    assert time.monotonic() - t0 < 3.0
    assert not isinstance(exc.value, ResponseError)  # a run-level failure: not tried for every patient
    assert len(srv.requests) == 1  # not retried


def test_a_download_may_take_longer_than_the_timeout_while_it_keeps_coming(raw):
    # 2.4 MB in 1.6 s with --timeout 1: the deadline is renewed per MB that arrives
    def script(send, head):
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 2400000\r\n\r\n")
        for _ in range(8):
            send(b"x" * 300_000, 0.2)
    srv = raw(script)
    got = bytearray()
    c = client(srv.url, timeout=1.0)
    t0 = time.monotonic()
    assert c.download(srv.url + "/f.ndjson", got.extend) == 2_400_000 and len(got) == 2_400_000
    assert time.monotonic() - t0 > 1.0


# ---- memory: size limits -------------------------------------------------------------------------
def test_an_answer_larger_than_the_limit_is_refused_even_without_a_length(raw):
    def script(send, head):
        send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(40):
            send(b" " * 65536)
    c = client(raw(script).url, max_body=1024 * 1024)
    with pytest.raises(ResponseError, match="larger than 1 MB"):
        c.get("Patient")


def test_a_declared_length_over_the_limit_is_refused_unread(make_server):
    s = make_server()
    s.expect_request("/fhir/Patient").respond_with_data("x" * 5000, content_type="application/fhir+json")
    with pytest.raises(ResponseError, match=r"larger than 4096 bytes .5000 bytes."):
        client(s.url_for("/fhir"), max_body=4096).get("Patient")


def test_a_connection_cut_mid_body_is_a_server_error_naming_the_url(raw):
    def script(send, head):
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    srv = raw(script)
    c = client(srv.url)
    with pytest.raises(ServerError, match=f"download of GET http://127.0.0.1:{srv.port}/f interrupted"):
        c.download(srv.url + "/f", lambda b: None)


# ---- runaway loops ---------------------------------------------------------------------------------
def test_endless_distinct_next_links_stop_at_the_page_limit(make_server):
    s = make_server()
    n = {"i": 0}

    def page(request):
        n["i"] += 1
        return Response(f'{{"resourceType":"Bundle","link":[{{"relation":"next","url":"{s.url_for("/fhir/p")}?page={n["i"]}"}}]}}',
                        content_type="application/fhir+json")

    s.expect_request("/fhir/Condition").respond_with_handler(page)
    s.expect_request("/fhir/p").respond_with_handler(page)
    c = client(s.url_for("/fhir"), max_pages=25)
    with pytest.raises(ResponseError, match="more than 25 pages"):
        list(c.search("Condition", {}))
    assert len(s.log) == 25


def test_there_is_a_default_request_budget_and_page_limit():
    c = FhirClient("http://127.0.0.1:9/fhir")
    assert c.max_requests and c.max_requests <= 1_000_000 and c.max_pages and c.max_pages <= 10_000


# ---- integrity: retries ----------------------------------------------------------------------------
def test_a_post_answered_503_is_not_sent_again(make_server):
    s = make_server()
    s.expect_request("/fhir", method="POST").respond_with_data("busy", status=503)
    c = client(s.url_for("/fhir"))
    with pytest.raises(ServerError, match="503 Service Unavailable"):
        c.json("POST", "", json={"resourceType": "Bundle", "type": "transaction"})
    assert len(s.log) == 1


def test_an_idempotent_get_answered_503_is_retried(make_server):
    s = make_server()
    s.expect_oneshot_request("/fhir/Patient/a").respond_with_data("busy", status=503)
    s.expect_request("/fhir/Patient/a").respond_with_json({"resourceType": "Patient", "id": "a"})
    assert client(s.url_for("/fhir")).get("Patient/a")["id"] == "a"
    assert len(s.log) == 2


@pytest.mark.parametrize("value", ["²", "¹²³", "12.5", "-3", "Wed, 99 Foo 2026", "Mon, 01 Jan 99999 00:00:00 GMT", "9" * 40])
def test_retry_after_with_odd_digits_never_crashes(make_server, value):
    s = make_server()
    s.expect_oneshot_request("/fhir/Patient/a").respond_with_data("", status=429, headers={"Retry-After": value})
    s.expect_request("/fhir/Patient/a").respond_with_json({"resourceType": "Patient", "id": "a"})
    slept: list[float] = []
    c = FhirClient(s.url_for("/fhir"), sleep=slept.append, retry=RetryPolicy(rng=lambda: 1.0), parallel=1, timeout=10)
    try:
        c.get("Patient/a")
    except ServerError as exc:  # only "the server asks to wait too long" may end it
        assert "retry after" in str(exc) and value == "9" * 40
    else:
        assert slept == [0.5]  # unreadable: the usual backoff


@pytest.mark.parametrize("value", ["١٢", "𝟡", "²", "٣.٥", "\x00", " "])
def test_retry_after_reads_only_ascii_digits(value):
    assert RetryPolicy().retry_after(value) is None
    assert RetryPolicy().retry_after(" 12 ") == 12.0


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_a_timeout_that_is_not_positive_is_a_usage_error(timeout):
    with pytest.raises(UsageError):
        FhirClient("http://127.0.0.1:9/fhir", timeout=timeout)


# ---- malformed server JSON ---------------------------------------------------------------------------
@pytest.mark.parametrize("page", [
    {"resourceType": "Bundle", "entry": "nope"},
    {"resourceType": "Bundle", "entry": [{"search": "match", "resource": {"resourceType": "Condition", "id": "a"}}, 5, "x"]},
    {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": ["Condition"], "id": "b"}}]},
    {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "b"}}]},
])
def test_a_garbled_searchset_is_a_response_error_never_a_shorter_result(make_server, page):
    # a search that decides "already enrolled?" must not read a broken page as "nothing found"
    s = make_server()
    s.expect_request("/fhir/Condition").respond_with_json(page)
    with pytest.raises(ResponseError, match="Condition search"):
        list(client(s.url_for("/fhir")).search("Condition", {}))


@pytest.mark.parametrize("page", [
    {"resourceType": "Bundle", "link": 7},
    {"resourceType": "Bundle", "link": [{"relation": "next", "url": 5}, "x"]},
    {"resourceType": "Bundle", "entry": [{"search": {"mode": "outcome"}, "resource": {"resourceType": "OperationOutcome"}},
                                         {"search": "match", "resource": {"resourceType": "Condition", "id": "a"}}]},
])
def test_odd_links_and_envelopes_are_passed_over(make_server, page):
    s = make_server()
    s.expect_request("/fhir/Condition").respond_with_json(page)
    got = list(client(s.url_for("/fhir")).search("Condition", {}))
    assert all(r["resourceType"] == "Condition" for r in got)


@pytest.mark.parametrize("link", ["file:///etc/passwd", "urn:uuid:1", "javascript:alert(1)", "http://[::1"])
def test_a_next_link_that_is_not_http_is_refused(make_server, link):
    s = make_server()
    s.expect_request("/fhir/Condition").respond_with_json({**BUNDLE, "link": [{"relation": "next", "url": link}]})
    with pytest.raises(ResponseError, match="not"):
        list(client(s.url_for("/fhir")).search("Condition", {}))
    assert len(s.log) == 1


def test_a_non_json_answer_and_a_non_bundle_answer_are_response_errors(make_server):
    s = make_server()
    s.expect_request("/fhir/A").respond_with_data("<html>", content_type="text/html")
    s.expect_request("/fhir/B").respond_with_json([1, 2])
    c = client(s.url_for("/fhir"))
    with pytest.raises(ResponseError, match="not valid JSON"):
        c.get("A")
    with pytest.raises(ResponseError, match="a JSON list instead of a Bundle"):
        list(c.search("B", {}))


@pytest.mark.parametrize("option", [["--timeout", "0"], ["--timeout", "-5"], ["--timeout", "nan"], ["--max-requests", "0"],
                                    ["--max-pages", "-1"], ["--max-response-size", "0"], ["--allow-origin", "https://x/path"],
                                    ["--allow-origin", "ftp://x"]])
def test_bad_limits_on_the_command_line_are_usage_errors(tmp_path, capsys, option):
    from fhir3t.cli import main

    f = tmp_path / "b.json"
    f.write_text('{"resourceType": "Bundle", "type": "transaction", "entry": []}')
    assert main(["push", str(f), "--server", "http://127.0.0.1:9/fhir", *option]) == 2
    err = capsys.readouterr().err
    assert option[0] in err and "internal error" not in err


def test_a_password_in_server_is_not_echoed_by_a_usage_error(tmp_path, capsys):
    from fhir3t.cli import main

    f = tmp_path / "b.json"
    f.write_text('{"resourceType": "Bundle", "type": "transaction", "entry": []}')
    assert main(["push", str(f), "--server", "http://u:hunter2@127.0.0.1:9/fhir", "--timeout", "0"]) == 2
    assert main(["push", str(f), "--server", "htp://u:hunter2@127.0.0.1:9/fhir"]) == 2
    assert "hunter2" not in capsys.readouterr().err
