"""The CDS service's parts without HTTP: prefetch templates, reading a prefetch, the card, the how-often rule,
JWT client authentication, the [serve] table."""
from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from datetime import date

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cds_helpers import CONCEPT_MAP, sample_resources
from fhir3t.config import parse_config
from fhir3t.criteria.base import AS_WRITTEN, ORDER_TEST
from fhir3t.criteria.kinds.observation import NONE_IN
from fhir3t.criteria.model import CriterionResult, ScreeningResult
from fhir3t.errors import AuthError, ConfigError
from fhir3t.messages import Text, reason
from fhir3t.pipeline import Definition
from fhir3t.r4facts import r4_facts
from fhir3t.service.bodies import FeedbackItem
from fhir3t.service.cards import build_card, detail, gate, md, study_subjects, summary
from fhir3t.service.jwt_auth import JwtVerifier
from fhir3t.service.prefetch import PrefetchError, as_prefetch, read_prefetch, templates
from fhir3t.service.settings import Issuer, Link, ServeSettings, serve_settings
from fhir3t.service.store import DAY, Rule, Store


@pytest.fixture(scope="module")
def definition() -> Definition:
    return Definition.load(concept_maps=[CONCEPT_MAP])


# ---- prefetch templates -------------------------------------------------------------------
def test_prefetch_asks_one_patient_scoped_query_per_type_the_criteria_read(definition):
    tpls = templates(definition)
    plan_types = definition.screener.plan.types - r4_facts().shared_types
    searched = {t.type for t in tpls.values() if not t.is_read and t.key != "study"}
    assert searched == plan_types - {"Patient"}
    assert tpls["patient"].query == "Patient/{{context.patientId}}"
    for t in tpls.values():
        if t.key in ("patient", "study"):
            continue
        # patient-scoped, and no code filter: records coded locally or only in text are read too
        assert t.query.split("?")[1] in ("patient={{context.patientId}}", "subject={{context.patientId}}"), t.query
    assert tpls["adverseEvent"].query == "AdverseEvent?subject={{context.patientId}}"  # R4 has no AdverseEvent?patient
    assert tpls["study"].query == f"ResearchStudy?identifier={definition.study.system}|{definition.study.value}"


def test_prefetch_follows_the_criteria_when_they_change(definition):
    """Fewer criteria, fewer queries: the discovery document is derived, it cannot drift."""
    keep = [c for c in definition.criteria.criteria if c.id in ("I1-age", "I3-mda5")]
    smaller = Definition.from_parts(definition.tx, dataclasses.replace(definition.criteria, criteria=keep))
    keys = set(templates(smaller))
    assert "observation" in keys and "condition" not in keys and "medicationRequest" not in keys
    assert keys >= {"patient"}


def test_expanded_templates_escape_the_patient_id(definition):
    assert templates(definition)["condition"].expand("a.b-1") == "Condition?patient=a.b-1"
    assert templates(definition)["patient"].expand("x/../y") == "Patient/x%2F..%2Fy"


# ---- reading a prefetch -------------------------------------------------------------------
def test_null_means_no_data_while_missing_outcome_and_paged_keys_are_still_to_fetch(definition):
    tpls = templates(definition)
    res = sample_resources("01-eligible-classic")
    pre = as_prefetch(res, tpls, "p01")
    pre["consent"] = None
    pre.pop("immunization")
    pre["observation"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    pre["condition"] = {**pre["condition"], "link": [{"relation": "next", "url": "http://ehr/fhir?page=2"}]}
    got = read_prefetch(pre, tpls, "p01")
    assert "consent" in got.empty
    assert {t.key for t in got.missing} == {"immunization", "observation", "condition"}
    assert set(got.incomplete) == {"observation", "condition"}
    assert {w for w, _ in got.documents} >= {"prefetch:patient", "prefetch:medicationStatement"}


@pytest.mark.parametrize("bad, message", [
    ("not an object", "JSON object"),
    ({"patient": "Patient/p01"}, "must be a FHIR resource"),
    ({"patient": {"resourceType": "Patient", "id": "someone-else"}}, "not the Patient of context.patientId"),
    ({"patient": {"resourceType": "Observation", "id": "p01"}}, "must be a Patient"),
    ({"condition": {"resourceType": "Condition", "id": "c"}}, "searchset Bundle"),
    ({"condition": {"resourceType": "Bundle", "entry": {"resource": {}}}}, "entry must be a list"),
])
def test_malformed_prefetch_is_refused_with_the_key_named(definition, bad, message):
    with pytest.raises(PrefetchError, match=message):
        read_prefetch(bad, templates(definition), "p01")


# ---- the card -----------------------------------------------------------------------------
def _result(status: str, criteria: tuple[CriterionResult, ...], patient: str = "Patient/p9") -> ScreeningResult:
    return ScreeningResult(patient, status, criteria, date(2026, 11, 16), date(2026, 11, 16))


def test_markdown_from_the_record_is_inert(definition):
    evil = "anti-MDA5 '<img src=x onerror=alert(1)>' [click](http://evil.example) **bold**: order it"
    r = _result("candidate", (CriterionResult("I3-mda5", "inclusion", "unknown", (), reason(AS_WRITTEN(text=evil))),))
    text = detail(r, definition.criteria, definition.study)
    assert re.search(r"(?<!\\)<img", text) is None and "\\<img" in text
    assert "[click](" not in text and "\\[click\\](http\\://evil\\.example)" in text
    assert "**bold**" not in text
    assert md("a\x00b\x1bc") == "a b c"


def test_the_summary_fits_in_140_characters_even_for_a_long_study_title(definition):
    r = _result("candidate", (CriterionResult("I3-mda5", "inclusion", "unknown", (), reason(AS_WRITTEN(text="x"))),))
    long_study = dataclasses.replace(definition.study, short_title="A" * 300)
    assert len(summary(r, long_study)) < 140
    assert summary(r, definition.study) == f"Possible candidate for {definition.study.short_title}: 1 criterion needs data"


def test_card_for_a_candidate_says_what_would_settle_each_unknown(definition):
    hbsag = Text.of("HBsAg")
    c = CriterionResult("E7-hbv", "exclusion", "unknown", (),
                        reason(NONE_IN(test=hbsag, window="2026-10-19..2026-11-16"),
                               ORDER_TEST(test=hbsag, code="LOINC 5196-1")))
    ok = CriterionResult("I1-age", "inclusion", "met", ("Patient/p9",),
                         reason(AS_WRITTEN(text="age 40 at 2026-11-16 (18 or older required)")))
    settings = ServeSettings(links=(Link("Worklist", "https://intranet.example/worklist.html#{patientId}"),
                                    Link("Open in the screening app", "https://app.example/launch", "smart")),
                             study_team="Dr Chen's team", study_url="https://registry.example/study")
    card = build_card(_result("candidate", (ok, c)), definition.criteria, definition.study, settings, card_uuid="c-1",
                      suggestion_uuid="s-1", today=date(2026, 11, 16))
    assert card["indicator"] == "info" and card["uuid"] == "c-1"
    assert "**Hepatitis B** (E7-hbv): order HBsAg (LOINC 5196-1) at screening (none in 2026-10-19..2026-11-16)" in card["detail"]
    assert "- Adult: age 40" in card["detail"]
    assert definition.study.site in card["source"]["label"] and card["source"]["url"] == "https://registry.example/study"
    assert card["selectionBehavior"] == "at-most-one"
    sr = card["suggestions"][0]["actions"][0]["resource"]
    assert sr["resourceType"] == "ServiceRequest" and sr["subject"] == {"reference": "Patient/p9"}
    assert sr["performer"] == [{"display": "Dr Chen's team"}]
    assert card["links"][0] == {"label": "Worklist", "url": "https://intranet.example/worklist.html#p9", "type": "absolute"}
    assert card["links"][1]["type"] == "smart" and json.loads(card["links"][1]["appContext"])["card"] == "c-1"
    assert all(r["display"] for r in card["overrideReasons"])
    no_referral = build_card(_result("eligible", (ok,)), definition.criteria, definition.study,
                             ServeSettings(referral=False), card_uuid="c-2", suggestion_uuid="s-2", today=date(2026, 11, 16))
    assert "suggestions" not in no_referral and "selectionBehavior" not in no_referral and "links" not in no_referral


def test_no_card_for_ineligible_deceased_or_already_enrolled_patients(definition):
    eligible = _result("eligible", ())
    assert gate(_result("ineligible", ()), [], None).reason == "status ineligible"
    assert gate(eligible, [], {"resourceType": "Patient", "deceasedDateTime": "2026-10-01"}).reason == "recorded as deceased"
    assert gate(eligible, [("on-study", True)], None).reason == "already on-study in the study"
    assert gate(eligible, [("screening", True)], None).reason is not None
    # a subject of another study, or one fhir3t wrote as candidate, does not silence the card
    assert gate(eligible, [("on-study", False), ("candidate", True)], None).reason is None


def test_subjects_of_this_study_are_recognised_by_identifier_or_by_the_study_resource(definition):
    study = definition.study
    rs = {"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "ResearchStudy", "id": "rs-9", "identifier": [study.identifier]}},
        {"resource": {"resourceType": "ResearchSubject", "status": "on-study", "study": {"reference": "ResearchStudy/rs-9"},
                      "individual": {"reference": "Patient/p9"}}},
        {"resource": {"resourceType": "ResearchSubject", "status": "withdrawn", "study": {"identifier": {"value": "OTHER-1"}},
                      "individual": {"reference": "Patient/p9"}}},
        {"resource": {"resourceType": "ResearchSubject", "status": "on-study", "study": {"identifier": study.identifier},
                      "individual": {"reference": "Patient/someone-else"}}}]}
    assert study_subjects([("x", rs)], "Patient/p9", study) == [("on-study", True), ("withdrawn", False)]


# ---- the how-often rule -------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_card_shows_at_most_once_per_interval_unless_the_patient_became_eligible(tmp_path):
    clock = Clock()
    store = Store(tmp_path, Rule(show_again_after_days=7, after_override_days=30, after_accept_days=365), clock)
    p = store.patient_key("https|ehr|443", "p1")
    assert store.may_show(p, "candidate") is None
    store.shown("card-1", "svc", p, "candidate", "h1")
    clock.now += 2 * DAY
    assert store.may_show(p, "candidate") == "shown 2 day(s) ago"
    assert store.may_show(p, "eligible") is None  # news: candidate -> eligible
    store.shown("card-2", "svc", p, "eligible", "h2")
    clock.now += 1 * DAY
    assert store.may_show(p, "eligible") is not None
    clock.now += 7 * DAY
    assert store.may_show(p, "eligible") is None
    assert store.may_show(store.patient_key("https|ehr|443", "p2"), "eligible") is None  # another patient


def test_dismissed_and_accepted_cards_keep_quiet_for_their_own_periods(tmp_path):
    clock = Clock()
    store = Store(tmp_path, Rule(show_again_after_days=0, after_override_days=30, after_accept_days=365), clock)
    p, q = store.patient_key("", "p1"), store.patient_key("", "p2")
    store.shown("c1", "svc", p, "eligible", "h")
    store.shown("c2", "svc", q, "eligible", "h")
    assert store.feedback("svc", FeedbackItem("c1", "overridden", "2027-01-15T00:00:00Z", reason_code="not-now",
                                              comment="ask next month"))
    assert store.feedback("svc", FeedbackItem("c2", "accepted", "2027-01-15T00:00:00Z", accepted=("s",)))
    assert not store.feedback("svc", FeedbackItem("never-shown", "accepted", "x", accepted=("s",)))
    clock.now += 29 * DAY
    assert store.may_show(p, "eligible") == "dismissed 29 day(s) ago"
    clock.now += 2 * DAY
    assert store.may_show(p, "eligible") is None
    assert store.may_show(q, "eligible") == "accepted 31 day(s) ago"
    s = store.summary()
    # feedback on a card this service never showed is counted, not stored (a client cannot grow the table)
    assert (s["cards_shown"], s["accepted"], s["overridden"], s["comments"], s["feedback_for_unknown_cards"]) == (2, 1, 1, 1, 1)
    assert s["override_reasons"] == [{"code": "not-now", "display": None, "count": 1}]
    assert "ask next month" not in json.dumps(s)  # the summary never carries free text
    assert [r["comment"] for r in store.feedback_rows()] == ["ask next month", None]


def test_patients_are_stored_as_a_keyed_hash(tmp_path):
    store = Store(tmp_path, Rule())
    key = store.patient_key("https|ehr|443", "p01")
    store.shown("c1", "svc", key, "eligible", "h")
    store.close()
    assert b"p01" not in (tmp_path / "cds.sqlite").read_bytes()
    assert Store(tmp_path, Rule()).patient_key("https|ehr|443", "p01") == key  # the key survives a restart
    assert oct((tmp_path / "patient-hash.key").stat().st_mode & 0o777) == "0o600"


# ---- JWT client authentication ----------------------------------------------------------
AUD = "https://cds.example.org/cds-services/svc"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    priv = ec.generate_private_key(ec.SECP384R1())
    folder = tmp_path_factory.mktemp("jwt")
    pub = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(priv.public_key()))
    pub.update(kid="ehr-1", alg="ES384", use="sig")
    (folder / "jwks.json").write_text(json.dumps({"keys": [pub]}))
    (folder / "pub.pem").write_bytes(priv.public_key().public_bytes(serialization.Encoding.PEM,
                                                                    serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, folder


def token(priv, *, alg="ES384", kid="ehr-1", **claims) -> str:
    now = int(time.time())
    body = {"iss": "https://ehr.example.org", "aud": AUD, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, priv, algorithm=alg, headers={"kid": kid, "typ": "JWT"} if kid else {"typ": "JWT"})


def test_a_jwt_signed_by_an_allowed_issuer_for_this_endpoint_passes_once(keys, tmp_path):
    priv, folder = keys
    v = JwtVerifier([Issuer("https://ehr.example.org", key=folder / "jwks.json")], Store(tmp_path))
    t = token(priv)
    assert v.verify(f"Bearer {t}", [AUD])["iss"] == "https://ehr.example.org"
    with pytest.raises(AuthError, match="replay"):
        v.verify(f"Bearer {t}", [AUD])
    pem = JwtVerifier([Issuer("https://ehr.example.org", key=folder / "pub.pem")], Store(tmp_path / "2"))
    assert pem.verify(f"Bearer {token(priv, aud=[AUD, 'https://other'])}", [AUD])


@pytest.mark.parametrize("change, message", [
    ({"aud": "https://cds.example.org/cds-services/other"}, "aud"),
    ({"iss": "https://stranger.example"}, "allow-list"),
    ({"exp": int(time.time()) - 600}, "expired"),
    ({"jti": None}, "no jti"),
    ({"kid": None}, "no kid"),
    ({"exp": int(time.time()) + 7200}, "more than"),
])
def test_a_jwt_failing_any_check_is_refused_saying_which(keys, tmp_path, change, message):
    priv, folder = keys
    v = JwtVerifier([Issuer("https://ehr.example.org", key=folder / "jwks.json")], Store(tmp_path))
    kid = change.pop("kid", "ehr-1")
    with pytest.raises(AuthError, match=message):
        v.verify(f"Bearer {token(priv, kid=kid, **change)}", [AUD])


def test_unsigned_symmetric_or_foreign_key_jwts_are_refused(keys, tmp_path):
    _priv, folder = keys
    v = JwtVerifier([Issuer("https://ehr.example.org", key=folder / "jwks.json")], Store(tmp_path))
    now = int(time.time())
    claims = {"iss": "https://ehr.example.org", "aud": AUD, "iat": now, "exp": now + 60, "jti": "j"}
    with pytest.raises(AuthError, match="asymmetric"):
        v.verify("Bearer " + jwt.encode(claims, "shared-secret-of-32-bytes-at-least!!", algorithm="HS256",
                                        headers={"kid": "ehr-1"}), [AUD])
    with pytest.raises(AuthError, match="asymmetric"):
        v.verify("Bearer " + jwt.encode(claims, None, algorithm="none", headers={"kid": "ehr-1"}), [AUD])
    other = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(AuthError, match="signature"):
        v.verify(f"Bearer {token(other)}", [AUD])
    with pytest.raises(AuthError, match="required"):
        v.verify(None, [AUD])
    with pytest.raises(AuthError, match="not a JWT"):
        v.verify("Bearer not-a-jwt", [AUD])


def test_keys_come_from_the_issuers_jwks_url_and_a_jku_only_when_allowed(keys, tmp_path, httpserver):
    priv, folder = keys
    jwks = json.loads((folder / "jwks.json").read_text())
    httpserver.expect_request("/jwks").respond_with_json(jwks)
    httpserver.expect_request("/rogue").respond_with_json(jwks)
    url = httpserver.url_for("/jwks")
    v = JwtVerifier([Issuer("https://ehr.example.org", jwks_url=url)], Store(tmp_path))
    assert v.verify(f"Bearer {token(priv)}", [AUD])
    # a jku the issuer does not allow is not followed: the configured JWKS is used
    t = jwt.encode({"iss": "https://ehr.example.org", "aud": AUD, "iat": int(time.time()), "exp": int(time.time()) + 60,
                    "jti": "j2"}, priv, algorithm="ES384", headers={"kid": "ehr-1", "jku": httpserver.url_for("/rogue")})
    assert v.verify(f"Bearer {t}", [AUD])
    assert not any(req.path == "/rogue" for req, _ in httpserver.log)


# ---- the [serve] table ------------------------------------------------------------------
def test_the_serve_table_is_checked_and_typed(tmp_path):
    (tmp_path / "ehr.pem").write_text("x")
    cfg = parse_config({
        "server": {"url": "https://ehr.example.org/fhir"},
        "serve": {"port": 9000, "public_url": "https://cds.example.org/", "require_jwt": True, "show_again_after_days": 0,
                  "issuers": [{"iss": "https://ehr.example.org", "key": "ehr.pem"}],
                  "links": [{"label": "Worklist", "url": "https://intranet.example/w.html"}]},
    }, tmp_path / "fhir3t.toml")
    s = serve_settings(cfg)
    assert (s.host, s.port, s.public_url, s.show_again_after_days) == ("127.0.0.1", 9000, "https://cds.example.org", 0)
    assert s.issuers[0].key == tmp_path / "ehr.pem"
    assert s.fetch_allowed("https://ehr.example.org:443/other") and not s.fetch_allowed("https://evil.example/fhir")
    assert serve_settings(cfg, port=9100, host=None).port == 9100


@pytest.mark.parametrize("table, message", [
    ({"prot": 1}, "did you mean 'port'"),
    ({"require_jwt": True, "public_url": "https://x"}, "at least one"),
    ({"require_jwt": True, "issuers": [{"iss": "a", "jwks_url": "https://a/j"}]}, "needs public_url"),
    ({"issuers": [{"iss": "a"}]}, "exactly one of jwks_url or key"),
    ({"links": [{"label": "x", "url": "javascript:alert(1)"}]}, "http"),
    ({"budget_ms": 5}, "at least 50"),
    ({"token": "abc"}, "secret"),
])
def test_a_wrong_serve_table_is_an_error_that_says_why(table, message):
    with pytest.raises(ConfigError, match=message):
        serve_settings(parse_config({"serve": table}))



def test_a_card_shown_by_a_concurrent_call_after_now_was_read_counts_as_just_shown(tmp_path):
    """Found by the load test: with 8 sessions, a card recorded after another call read the clock came out
    'shown -1 day(s) ago', and show_again_after_days = 0 kept the card from showing."""
    clock = Clock()
    store = Store(tmp_path, Rule(show_again_after_days=0), clock)
    p = store.patient_key("", "p1")
    clock.now += 5
    store.shown("c1", "svc", p, "eligible", "h")
    clock.now -= 5  # the other call read the clock before this one recorded its card
    assert store.may_show(p, "eligible") is None
    store7 = Store(tmp_path / "7", Rule(show_again_after_days=7), clock)
    clock.now += 5
    store7.shown("c1", "svc", p, "eligible", "h")
    clock.now -= 5
    assert store7.may_show(p, "eligible") == "shown 0 day(s) ago"
