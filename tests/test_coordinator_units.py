"""The coordinator page's pieces without a network: who a proxy header may name, sessions (expiry, a new id at sign-in),
a sign-in callback that was not started here, the [serve.coordinator] table, subject number patterns, and the page's
HTML escaping."""
from __future__ import annotations

from datetime import date

import pytest

from fhir3t.config import parse_config
from fhir3t.emit.enrolment import Who
from fhir3t.enrolment.numbers import SubjectNumbers
from fhir3t.enrolment.records import Contact, PatientRecords, SubjectFacts
from fhir3t.errors import AuthError, ConfigError
from fhir3t.service.coordinator_page import patient_page
from fhir3t.service.settings import serve_settings
from fhir3t.service.signin import Pending, Sessions, SmartSignIn, TrustedProxy, csrf_ok


@pytest.mark.parametrize("client,header,expected", [
    ("10.0.0.5", "li.na", "li.na"),
    ("10.0.0.200", "li.na", "li.na"),          # inside the trusted network
    ("10.0.1.5", "li.na", None),               # outside it: anyone can send a header
    ("127.0.0.1", "li.na", None),
    (None, "li.na", None),
    ("10.0.0.5", "", None),
    ("10.0.0.5", "x" * 300, None),
    ("10.0.0.5", "li\x00na", None),
    ("not-an-address", "li.na", None),
])
def test_a_proxy_header_names_the_user_only_from_the_proxy(client, header, expected):
    proxy = TrustedProxy("X-Remote-User", ("10.0.0.0/24", "bad-entry"), "X-Remote-Name")
    who = proxy.user(client, {"X-Remote-User": header, "X-Remote-Name": "Li Na"})
    assert (who.id if who else None) == expected
    if who:
        assert who.shown == "Li Na"


def test_sessions_expire_and_get_a_new_id_at_sign_in():
    now = [1000.0]
    sessions = Sessions(minutes=10, clock=lambda: now[0])
    sid, s = sessions.new()
    assert sessions.get(sid) is s and csrf_ok(s, s.csrf) and not csrf_ok(s, "x") and not csrf_ok(None, s.csrf)
    old_csrf = s.csrf
    renewed = sessions.renew(sid)
    assert renewed is not None
    new_sid, same = renewed
    assert same is s and new_sid != sid and sessions.get(sid) is None and s.csrf != old_csrf  # no fixation
    now[0] += 601
    assert sessions.get(new_sid) is None


def test_a_callback_not_started_here_or_too_old_is_refused_before_any_request():
    clock = [0.0]
    signin = SmartSignIn("client", "http://127.0.0.1:1/coordinator/callback", authorization_server="http://127.0.0.1:9",
                         fhir_server="http://127.0.0.1:8/fhir", clock=lambda: clock[0])
    pending = Pending("state-1", "nonce", "verifier", 0.0)
    with pytest.raises(AuthError, match="not started here"):
        signin.finish(None, {"state": "state-1", "code": "c"})
    with pytest.raises(AuthError, match="not started here"):
        signin.finish(pending, {"state": "state-2", "code": "c"})
    clock[0] = 601
    with pytest.raises(AuthError, match="more than 10 minutes old"):
        signin.finish(pending, {"state": "state-1", "code": "c"})
    assert signin.launch_allowed("http://127.0.0.1:8/fhir/") and not signin.launch_allowed("http://127.0.0.1:8/other")
    assert not signin.launch_allowed(None)
    with pytest.raises(ConfigError, match="sign-in is not configured"):
        SmartSignIn("", "http://x/cb")


def test_the_coordinator_table_is_checked():
    cfg = parse_config({"server": {"url": "https://ehr.example.org/fhir"}, "serve": {"coordinator": {
        "client_id": "fhir3t", "authorization_server": "https://sso.example.org/realms/h", "trusted_proxies": ["10.0.0.5"],
        "proxy_user_header": "X-Remote-User", "lang": "zh-CN"}}})
    c = serve_settings(cfg).coordinator
    assert (c.client_id, c.fhir_server, c.lang, c.trusted_proxies) == \
        ("fhir3t", "https://ehr.example.org/fhir", "zh-CN", ("10.0.0.5",))
    for bad in ({"clientid": "x"}, {"authorization_server": "ftp://x"}, {"proxy_user_header": "X Remote"},
                {"session_minutes": 0}):
        with pytest.raises(ConfigError):
            serve_settings(parse_config({"serve": {"coordinator": bad}}))
    with pytest.raises(ConfigError, match="enrolment"):
        from fhir3t.config import check_table
        check_table("enrolment", {"subject_number": "no field"}, "fhir3t.toml [enrolment]")


@pytest.mark.parametrize("pattern,given,expected", [
    ("3T-{n:03d}", [], "3T-001"),
    ("3T-{n:03d}", ["3T-009", "3T-010", "ZJU-1", None, 7], "3T-011"),
    ("{n}", ["1", "2", "10"], "11"),
    ("S{n:04d}-ZJ", ["S0001-ZJ", "S0001-zj"], "S0002-ZJ"),
])
def test_subject_numbers_follow_their_pattern(pattern, given, expected):
    assert SubjectNumbers(pattern).next(given) == expected


def test_the_page_escapes_what_records_hold():
    r = PatientRecords("Patient/x1", display_id="<img src=x onerror=alert(1)>")
    r.subject = SubjectFacts("rs1", "2", "eligible", "Patient/x1", None, None, None, None)
    r.contacts.append(Contact("c1", date(2026, 11, 16), True, None, "phone", "<script>alert(2)</script>"))
    html = patient_page(r, study="S", user=Who("li", "<b>Li</b>"), csrf='"><script>', base="/coordinator", lang="en",
                        today=date(2026, 11, 16), consent_form="1.0")
    assert "<script>" not in html and "<img" not in html and "<b>Li</b>" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
