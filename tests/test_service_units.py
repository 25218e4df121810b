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


def test_by_code_prefetch_filters_observations_by_the_codes_read_and_the_hospitals_local_codes(definition):
    """[serve] prefetch = "by-code": Observation (the voluminous type) filtered with combo-code by every code the
    criteria's Observation value sets list, the ConceptMap's local codes for them and each local system whole;
    the types whose absence decides stay unfiltered."""
    tpls = templates(definition, "by-code")
    obs = tpls["observation"]
    assert obs.by_code and obs.query.startswith("Observation?patient={{context.patientId}}&combo-code=")
    tokens = obs.query.split("combo-code=", 1)[1].split(",")
    wanted = {f"{c[0]}|{c[1]}" for vs in definition.plan.valuesets["Observation"] for c in vs.exact_only() or ()}
    assert wanted <= set(tokens)
    assert "http://hospital.example.org/CodeSystem/lab|HBSAG" in tokens  # the hospital's code for HBsAg
    assert "http://hospital.example.org/CodeSystem/lab|" in tokens  # and every code of its lab system
    for key in ("condition", "medicationRequest", "allergyIntolerance", "diagnosticReport"):
        assert not tpls[key].by_code and "code" not in tpls[key].query, key
    assert templates(definition)["observation"].query == "Observation?patient={{context.patientId}}"


# ---- reading a prefetch -------------------------------------------------------------------
def test_null_means_no_data_an_outcome_is_still_to_fetch_and_a_paged_searchset_is_read_on(definition):
    tpls = templates(definition)
    res = sample_resources("01-eligible-classic")
    pre = as_prefetch(res, tpls, "p01")
    pre["consent"] = None
    pre.pop("immunization")
    pre["observation"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    pre["condition"] = {**pre["condition"], "link": [{"relation": "next", "url": "http://ehr/fhir?page=2"}]}
    got = read_prefetch(pre, tpls, "p01")
    assert "consent" in got.empty
    assert {t.key for t in got.missing} == {"immunization", "observation"}
    assert [(t.key, url) for t, url in got.pages] == [("condition", "http://ehr/fhir?page=2")]
    assert set(got.incomplete) == {"observation", "condition"}
    # the first page is kept: the rest is read on from its next link
    assert {w for w, _ in got.documents} >= {"prefetch:patient", "prefetch:medicationStatement", "prefetch:condition"}


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


def _uuids():
    n = iter(range(100))
    return lambda: f"s-{next(n)}"


def test_markdown_from_the_record_is_inert(definition):
    evil = "anti-MDA5 '<img src=x onerror=alert(1)>' [click](http://evil.example) **bold**: order it"
    r = _result("candidate", (CriterionResult("I3-mda5", "inclusion", "unknown", (), reason(NONE_IN(test=Text.of("x"), window="w"),
                                                                                           AS_WRITTEN(text=evil))),))
    text = detail(r, definition)
    assert re.search(r"(?<!\\)<img", text) is None and "\\<img" in text
    assert "[click](" not in text and "\\[click\\](http\\://evil\\.example)" in text
    assert "**bold**" not in text
    assert md("a\x00b\x1bc") == "a b c"


def test_the_summary_fits_in_140_characters_even_for_a_long_study_title(definition):
    r = _result("candidate", (CriterionResult("I3-mda5", "inclusion", "unknown", (), reason(AS_WRITTEN(text="x"))),))
    long_study = dataclasses.replace(definition.study, short_title="A" * 300)
    assert len(summary(r, long_study)) < 140
    assert summary(r, definition.study) == f"Possible candidate for {definition.study.short_title}: 1 criterion needs data"


def test_card_for_a_candidate_names_the_tests_that_would_settle_each_unknown_and_drafts_them(definition):
    hbsag = Text.of("HBsAg")
    c = CriterionResult("E7-hbv", "exclusion", "unknown", (),
                        reason(NONE_IN(test=hbsag, window="2026-10-19..2026-11-16"),
                               ORDER_TEST(test=hbsag, code="LOINC 5196-1")))
    ok = CriterionResult("I1-age", "inclusion", "met", ("Patient/p9",),
                         reason(AS_WRITTEN(text="age 40 at 2026-11-16 (18 or older required)")))
    settings = ServeSettings(links=(Link("Worklist", "https://intranet.example/worklist.html#{patientId}"),
                                    Link("Open in the screening app", "https://app.example/launch", "smart")),
                             study_team="Dr Chen's team", study_url="https://registry.example/study")
    card = build_card(_result("candidate", (ok, c)), definition, settings, card_uuid="c-1", new_uuid=_uuids(),
                      today=date(2026, 11, 16), explanation_url="https://cds.example/fhir3t/explain/tok")
    assert card["indicator"] == "info" and card["uuid"] == "c-1"
    assert "- **Hepatitis B**: order HBsAg" in card["detail"] and "LOINC" not in card["detail"]
    assert "1 of 2 criteria pass as of 2026-11-16" in card["detail"]
    assert definition.study.site in card["source"]["label"] and card["source"]["url"] == "https://registry.example/study"
    assert card["selectionBehavior"] == "any"
    tests, refer = card["suggestions"]
    (action,) = tests["actions"]
    sr = action["resource"]
    assert (action["type"], sr["resourceType"], sr["status"], sr["code"]["text"]) == ("create", "ServiceRequest", "draft", "HBsAg")
    assert sr["code"]["coding"][0] == {"system": "http://hospital.example.org/CodeSystem/lab", "code": "HBSAG",
                                       "display": "Hepatitis B surface antigen"}
    assert sr["code"]["coding"][-1]["code"] == "5196-1" and sr["subject"] == {"reference": "Patient/p9"}
    referral = refer["actions"][0]["resource"]
    assert referral["resourceType"] == "ServiceRequest" and referral["performer"] == [{"display": "Dr Chen's team"}]
    assert [link["label"] for link in card["links"]] == ["Full screening explanation", "NCT06438679 in the trial registry",
                                                         "Worklist", "Open in the screening app"]
    assert card["links"][0]["url"] == "https://cds.example/fhir3t/explain/tok"
    assert card["links"][2] == {"label": "Worklist", "url": "https://intranet.example/worklist.html#p9", "type": "absolute"}
    assert card["links"][3]["type"] == "smart" and json.loads(card["links"][3]["appContext"])["card"] == "c-1"
    assert all(r["display"] for r in card["overrideReasons"])
    no_referral = build_card(_result("eligible", (ok,)), definition, ServeSettings(referral=False), card_uuid="c-2",
                             new_uuid=_uuids(), today=date(2026, 11, 16))
    assert "suggestions" not in no_referral and "selectionBehavior" not in no_referral
    # the registry entry comes from the study's data when no study_url is configured
    assert no_referral["links"] == [{"label": "NCT06438679 in the trial registry",
                                     "url": "https://clinicaltrials.gov/study/NCT06438679", "type": "absolute"}]


def test_an_either_is_settled_by_its_first_missing_test_and_an_all_by_every_one(definition):
    """E10's TB test is IGRA or else TST: an IGRA decides it, so only the IGRA is ordered; E7's
    anti-HBc-and-HBV-DNA needs both to decide whatever they show."""
    from fhir3t.service.cards import tests_to_settle

    crit = {c.id: c for c in definition.criteria.criteria}
    igra, tst = Text.of("IGRA"), Text.of("TST induration")
    # a test is known by its English name (the rule's title also carries its zh-CN name)
    assert [t.title.en for t in tests_to_settle(crit["E10-tb"].rule, frozenset({igra, tst}))] == ["IGRA"]
    assert [t.title.en for t in tests_to_settle(crit["E10-tb"].rule, frozenset({tst}))] == ["TST induration"]
    names = {Text.of("HBsAg"), Text.of("anti-HBc"), Text.of("HBV DNA")}
    assert [t.title.en for t in tests_to_settle(crit["E7-hbv"].rule, frozenset(names))] == ["HBsAg", "anti-HBc", "HBV DNA"]


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


def test_the_coordinator_sees_feedback_by_patient_and_user_while_the_rule_keys_on_a_keyed_hash(tmp_path):
    store = Store(tmp_path, Rule())
    key = store.patient_key("https|ehr|443", "p01")
    store.shown("c1", "svc", key, "eligible", "h", user="Practitioner/dr-wang", patient_ref="Patient/p01",
                server="https://ehr")
    store.shown("c2", "svc", store.patient_key("https|ehr|443", "p02"), "candidate", "h", user="Practitioner/dr-li",
                patient_ref="Patient/p02", server="https://ehr")
    store.feedback("svc", FeedbackItem("c1", "overridden", "2026-11-16T09:00:00Z", reason_code="patient-declines",
                                       comment="asked twice"))
    store.feedback("svc", FeedbackItem("c2", "accepted", "2026-11-16T09:05:00Z", accepted=("s",)))
    rows = store.feedback_rows()
    assert [(r["patient"], r["user"], r["outcome"], r["reason_code"], r["comment"]) for r in rows] == [
        ("Patient/p01", "Practitioner/dr-wang", "overridden", "patient-declines", "asked twice"),
        ("Patient/p02", "Practitioner/dr-li", "accepted", None, None)]
    assert [r["card"] for r in store.feedback_rows("p02")] == ["c2"] == [r["card"] for r in store.feedback_rows("Patient/p02")]
    store.close()
    assert Store(tmp_path, Rule()).patient_key("https|ehr|443", "p01") == key  # the key survives a restart
    assert oct((tmp_path / "patient-hash.key").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "cds.sqlite").stat().st_mode & 0o777) == "0o600"


def test_a_dismissal_and_the_interval_quiet_the_card_for_that_user_only_an_acceptance_for_everyone(tmp_path):
    clock = Clock()
    store = Store(tmp_path, Rule(show_again_after_days=7, after_override_days=30, after_accept_days=365), clock)
    p, q = store.patient_key("", "p1"), store.patient_key("", "p2")
    wang, li = "Practitioner/dr-wang", "Practitioner/dr-li"
    store.shown("c1", "svc", p, "eligible", "h", user=wang)
    assert store.may_show(p, "eligible", user=wang) == "shown 0 day(s) ago"
    assert store.may_show(p, "eligible", user=li) is None  # a second clinician the same day sees it
    store.feedback("svc", FeedbackItem("c1", "overridden", "2027-01-15T00:00:00Z", reason_code="not-now"))
    clock.now += 8 * DAY
    assert store.may_show(p, "eligible", user=wang) == "dismissed 8 day(s) ago"
    assert store.may_show(p, "eligible", user=li) is None
    store.shown("c2", "svc", q, "eligible", "h", user=li)
    store.feedback("svc", FeedbackItem("c2", "accepted", "2027-01-15T00:00:00Z", accepted=("s",)))
    assert store.may_show(q, "eligible", user=wang) == "accepted 0 day(s) ago"  # referred: news for no one


def test_a_state_file_of_an_earlier_release_gets_the_new_columns(tmp_path):
    import sqlite3

    clock = Clock()
    db = sqlite3.connect(tmp_path / "cds.sqlite")
    db.executescript("CREATE TABLE cards (uuid TEXT PRIMARY KEY, service TEXT NOT NULL, patient TEXT NOT NULL, "
                     "status TEXT NOT NULL, shown_at REAL NOT NULL, hook_instance TEXT);"
                     f"INSERT INTO cards VALUES ('old', 'svc', 'k', 'eligible', {clock.now - DAY}, 'h');")
    db.close()
    store = Store(tmp_path, Rule(), clock)
    assert store.may_show("k", "eligible") == "shown 1 day(s) ago"  # the old card still counts for the patient
    assert store.may_show("k", "eligible", user="Practitioner/x") == "shown 1 day(s) ago"  # for every user, as before
    store.shown("new", "svc", "k", "eligible", "h", user="Practitioner/x", patient_ref="Patient/p")
    assert store.may_show("k", "eligible", user="Practitioner/x") == "shown 0 day(s) ago"
    assert store.feedback("svc", FeedbackItem("old", "overridden", "2026-11-16T00:00:00Z"))
    assert [r["patient"] for r in store.feedback_rows()] == [None]


def test_explanation_pages_are_read_by_their_token_until_they_expire(tmp_path):
    clock = Clock()
    store = Store(tmp_path, Rule(), clock)
    store.keep_explanation("t" * 32, "c1", "<p>患者 explanation</p>", days=14)
    assert store.explanation("t" * 32) == "<p>患者 explanation</p>"
    assert store.explanation("u" * 32) is None
    clock.now += 15 * DAY
    assert store.explanation("t" * 32) is None


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


def test_every_serve_key_is_documented_for_the_integration_engineer():
    """docs/clinician.md, '[serve], key by key': every key the schema accepts, by name."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    schema = json.loads((root / "src" / "fhir3t" / "schemas" / "config-serve.schema.json").read_text(encoding="utf-8"))
    doc = (root / "docs" / "clinician.md").read_text(encoding="utf-8")
    table = doc.split("**`[serve]`, key by key**", 1)[1].split("\n\n", 2)[1]
    for key in schema["properties"]:
        assert f"`{key}`" in table or f"[[serve.{key}]]" in table, key
