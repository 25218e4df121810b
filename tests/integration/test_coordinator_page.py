"""The coordinator's page in real headless Chromium against a real FHIR server (sekmet) and a real OpenID Connect
provider (oidc-provider from npm) as the EHR's authorization server: unsigned it is read-only (no forms, a POST
refused), signed in through SMART App Launch (standalone, and launched from the EHR) the coordinator contacts,
consents and enrols a patient end to end, a step the state machine forbids and a stale page are refused with one
sentence and nothing written; a trusted reverse proxy's user header counts only from the proxy's address; every
form is CSRF-protected."""
from __future__ import annotations

from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from browser import browser_page  # noqa: F401  (fixture)
from fhir3t.canonical import ID_SUBJECT_NUMBER
from fhir3t.cli import main
from fhir3t.pipeline import Definition
from fhir3t.pipeline.enrolment import server_screener
from fhir3t.service.app import create_app
from fhir3t.service.coordinator import Coordinator
from fhir3t.service.runner import InThread
from fhir3t.service.settings import CoordinatorSettings
from fhir3t.state import ServerState
from fhir3t.transport.http import FhirClient
from integration.conftest import AS_OF, CONCEPT_MAP, Server, load_samples
from oidc_provider import OidcProvider, free_port

CLIENT = "fhir3t-coordinator"
TODAY = date(2026, 11, 16)


@pytest.fixture(scope="module")
def fhir(tmp_path_factory):
    import os

    if os.environ.get("FHIR3T_TEST_SERVER"):
        pytest.skip("these tests change team statuses: they run on their own sekmet instance")
    srv = Server(tmp_path_factory.mktemp("sekmet-page"))
    try:
        load_samples(srv.base)
        assert main(["screen", "--server", srv.base, "--push", srv.base, "--as-of", AS_OF, "--concept-map",
                     str(CONCEPT_MAP), "--no-progress", "--format", "csv", "--out", "/dev/null"]) == 0
        yield srv.base
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def definition():
    return Definition.load(None, [CONCEPT_MAP])


def page_app(definition, fhir: str, port: int, settings: CoordinatorSettings, *, loopback: bool = True):
    store = ServerState(FhirClient(fhir), (definition.study.system, definition.study.value))
    coordinator = Coordinator(definition, store, settings, f"http://127.0.0.1:{port}", loopback,
                              server_screener(definition, store.client), today=lambda: TODAY)
    return create_app(None, coordinator=coordinator), store


@pytest.fixture(scope="module")
def site(definition, fhir, tmp_path_factory):
    """The page (signing in at a real OpenID Connect provider), and that provider."""
    port = free_port()
    with OidcProvider(CLIENT, [f"http://127.0.0.1:{port}/coordinator/callback"],
                      tmp_path_factory.mktemp("oidc") / "provider.log") as issuer:
        settings = CoordinatorSettings(client_id=CLIENT, authorization_server=issuer, fhir_server=fhir)
        app, store = page_app(definition, fhir, port, settings)
        with InThread(app, port=port) as url:
            yield {"url": f"{url}/coordinator", "issuer": issuer, "fhir": fhir}
        store.close()


def subject_of(fhir: str, patient: str) -> dict:
    found = requests.get(f"{fhir}/ResearchSubject", params={"individual": f"Patient/{patient}"}, timeout=30).json()
    subjects = [e["resource"] for e in found.get("entry", [])]
    assert len(subjects) == 1
    return subjects[0]


def counts(fhir: str) -> dict[str, int]:
    return {t: int(requests.get(f"{fhir}/{t}", params={"_summary": "count"}, timeout=30).json()["total"])
            for t in ("ResearchSubject", "Communication", "Consent", "Provenance")}


def sign_in(page, login: str) -> None:
    """Through the provider's own sign-in and consent pages, as a person would."""
    page.click("#sign-in")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
    if page.query_selector("button[type=submit]") and "/coordinator" not in page.url:  # the consent prompt
        page.click("button[type=submit]")
    page.wait_for_url("**/coordinator/")


def test_unsigned_the_page_is_read_only(browser_page, site):  # noqa: F811
    before = counts(site["fhir"])
    page = browser_page.page
    page.goto(f"{site['url']}/")
    assert page.is_visible("#read-only") and page.is_visible("#sign-in")
    assert page.eval_on_selector_all("form", "els => els.length") == 0
    assert "MRN-100001" in page.inner_text("#worklist") and page.is_visible("#changed")
    page.click("#worklist a.patient >> text=MRN-100001")
    assert page.inner_text("#patient").startswith("MRN-100001")
    assert page.eval_on_selector_all("form", "els => els.length") == 0 and page.is_visible("#read-only")
    # a step posted without signing in is refused, and writes nothing
    r = requests.post(f"{site['url']}/patients/p01/contact", data={"csrf": "x", "date": AS_OF}, timeout=30)
    assert r.status_code == 403 and "sign in to record a step: nothing was written" in r.text
    assert counts(site["fhir"]) == before
    assert browser_page.page_errors == []


def test_signed_in_the_coordinator_contacts_consents_and_enrols(browser_page, site, caplog):  # noqa: F811
    import logging

    caplog.set_level(logging.INFO, logger="fhir3t")
    page = browser_page.page
    page.goto(f"{site['url']}/")
    sign_in(page, "li.na")
    assert page.inner_text("#user") == "Signed in as li.na" and page.inner_text("#flash") == "signed in"
    page.click("#worklist a.patient >> text=MRN-100022")
    assert page.inner_text("#status") == "eligible"
    assert sorted(page.eval_on_selector_all("form.step", "els => els.map(e => e.id)")) == \
        ["form-consent", "form-contact", "form-decline"]  # exactly what the state machine allows
    page.select_option("#form-contact select[name=medium]", "phone")
    page.fill("#form-contact input[name=note]", "prefers afternoons")
    page.click("#form-contact button[type=submit]")
    assert page.inner_text("#flash") == "MRN-100022: contact attempt recorded (reached)"
    page.fill("#form-consent input[name=form]", "1.0")
    page.click("#form-consent button[type=submit]")
    assert page.inner_text("#flash") == "MRN-100022: consent recorded (form 1.0); status pending-on-study"
    assert page.inner_text("#status") == "pending-on-study"
    page.fill("#form-enrol input[name=d1]", "2026-11-20")
    page.click("#form-enrol button[type=submit]")
    assert page.inner_text("#flash") == "MRN-100022: enrolled as 3T-001, D1 2026-11-20; status on-study"
    timeline = page.inner_text("#timeline")
    assert "contacted by phone: prefers afternoons (by li.na)" in timeline
    assert "enrolled as 3T-001 (on-study), D1 2026-11-20 (by li.na)" in timeline
    rs = subject_of(site["fhir"], "p22")
    assert rs["status"] == "on-study" and rs["period"] == {"start": "2026-11-20"}
    assert {"system": ID_SUBJECT_NUMBER, "value": "3T-001"} in rs["identifier"]
    provs = requests.get(f"{site['fhir']}/Provenance", params={"target": f"ResearchSubject/{rs['id']}"}, timeout=30).json()
    authors = {p["resource"]["agent"][0]["who"].get("reference") for p in provs["entry"]
               if p["resource"].get("activity", {}).get("coding")}
    assert authors == {"Practitioner/li.na"}  # the SMART user (fhirUser) is who the Provenance names
    assert browser_page.page_errors == []
    # the service's log: routes, events and outcomes; no patient, no note, no user name, no path
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    events = {getattr(r, "fields", {}).get("event") for r in caplog.records}
    assert {"coordinator-page", "coordinator-step", "coordinator-signin", "enrolment-step"} <= events
    for secret in ("MRN-100022", "p22", "afternoons", "li.na", "Practitioner/"):
        assert secret not in logged, secret


def test_a_forbidden_step_and_a_stale_page_are_refused_and_write_nothing(browser_page, site):  # noqa: F811
    page = browser_page.page
    page.goto(f"{site['url']}/")
    sign_in(page, "wang.fang")
    # a step the state machine forbids (the page offers none for an ineligible patient; a form made by hand)
    page.goto(f"{site['url']}/patients/p07")
    assert page.inner_text("#status") == "ineligible"
    csrf = page.get_attribute("#form-contact input[name=csrf]", "value")
    before = counts(site["fhir"])
    page.evaluate("""([url, csrf]) => { const f = document.createElement('form'); f.method = 'post'; f.action = url;
        for (const [k, v] of [['csrf', csrf], ['date', '2026-11-16'], ['d1', '2026-11-20']]) {
          const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
        document.body.appendChild(f); f.submit(); }""", [f"{site['url']}/patients/p07/enrol", csrf])
    page.wait_for_selector("#flash")
    assert page.inner_text("#flash") == "cannot enrol a subject who is ineligible"
    assert "refused" in (page.get_attribute("#flash", "class") or "")
    assert counts(site["fhir"]) == before
    # a stale page: another coordinator declines the patient after this page was opened
    page.goto(f"{site['url']}/patients/p06")
    assert page.inner_text("#status") == "eligible"
    assert main(["subject", "p06", "decline", "--reason", "patient-declined", "--server", site["fhir"], "--by",
                 "someone.else"]) == 0
    mid = counts(site["fhir"])
    page.fill("#form-consent input[name=form]", "1.0")
    page.click("#form-consent button[type=submit]")
    assert page.inner_text("#flash").startswith("ResearchSubject/") and \
        "was changed by someone else since it was read" in page.inner_text("#flash")
    assert counts(site["fhir"]) == mid and subject_of(site["fhir"], "p06")["status"] == "not-registered"
    assert page.inner_text("#status") == "not-registered"  # the page shows what is there now


def test_every_form_is_csrf_protected(browser_page, site):  # noqa: F811
    page = browser_page.page
    page.goto(f"{site['url']}/")
    sign_in(page, "li.na")
    page.goto(f"{site['url']}/patients/p04")
    csrf = page.get_attribute("#form-contact input[name=csrf]", "value")
    before = counts(site["fhir"])
    url = f"{site['url']}/patients/p04/contact"
    # the browser's own session cookie, but no token, another session's token, or another site's page
    for form, headers in (({"date": AS_OF}, {}), ({"date": AS_OF, "csrf": "not-this-sessions"}, {}),
                          ({"date": AS_OF, "csrf": csrf}, {"Origin": "https://evil.example"})):
        r = page.request.post(url, form=form, headers=headers, max_redirects=0)
        assert r.status == 403, (form, headers)
        assert "nothing was written" in r.text()
    assert counts(site["fhir"]) == before
    r = page.request.post(url, form={"date": AS_OF, "csrf": csrf, "medium": "phone"}, max_redirects=0)
    assert r.status == 303 and counts(site["fhir"])["Communication"] == before["Communication"] + 1


def test_a_reverse_proxys_user_header_counts_only_from_the_proxy(definition, fhir):
    settings = {"proxy_user_header": "X-Remote-User", "proxy_name_header": "X-Remote-Name"}
    for trusted, signed_in in ((("127.0.0.1",), True), (("10.9.9.9/32",), False)):
        port = free_port()
        app, store = page_app(definition, fhir, port, CoordinatorSettings(trusted_proxies=trusted, **settings),
                              loopback=False)
        try:
            with InThread(app, port=port) as url:
                headers = {"X-Remote-User": "chen.jie", "X-Remote-Name": "Chen Jie"}
                r = requests.get(f"{url}/coordinator/patients/p05", headers=headers, timeout=30)
                if signed_in:
                    assert "Signed in as Chen Jie" in r.text and 'id="form-contact"' in r.text
                    s = requests.Session()
                    page = s.get(f"{url}/coordinator/patients/p05", headers=headers, timeout=30).text
                    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
                    r = s.post(f"{url}/coordinator/patients/p05/contact", headers=headers, allow_redirects=False,
                               data={"csrf": csrf, "date": AS_OF, "reason": "recipient-unavailable"}, timeout=30)
                    assert r.status_code == 303
                    comm = requests.get(f"{fhir}/Communication", params={"subject": "Patient/p05"}, timeout=30).json()
                    assert [e["resource"]["status"] for e in comm["entry"]] == ["not-done"]
                else:  # the header from anywhere but the proxy is anyone's: not signed in, and off loopback no data
                    assert "Signed in" not in r.text and "form-contact" not in r.text and "MRN-" not in r.text
                    r = requests.get(f"{url}/coordinator/", headers=headers, timeout=30)
                    assert "sign in to see the worklist" in r.text and "MRN-" not in r.text
        finally:
            store.close()


def test_the_ehr_launch_signs_in_and_only_from_the_configured_server(browser_page, site):  # noqa: F811
    r = requests.get(f"{site['url']}/launch", params={"iss": "https://evil.example/fhir", "launch": "x"},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 400 and "launched only from the FHIR server it is configured for" in r.text
    r = requests.get(f"{site['url']}/launch", params={"iss": site["fhir"], "launch": "ctx-123"}, allow_redirects=False,
                     timeout=30)
    assert r.status_code == 303
    auth = urlsplit(r.headers["location"])
    q = {k: v[0] for k, v in parse_qs(auth.query).items()}
    assert f"{auth.scheme}://{auth.netloc}" == site["issuer"]
    assert q["launch"] == "ctx-123" and q["aud"] == site["fhir"] and q["scope"].startswith("launch openid")
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43 and q["client_id"] == CLIENT
    page = browser_page.page
    page.goto(f"{site['url'].replace('/coordinator', '')}/coordinator/launch?iss={site['fhir']}&launch=ctx-456")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", "zhao.lei")
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
    if "/coordinator" not in page.url:
        page.click("button[type=submit]")
    page.wait_for_url("**/coordinator/")
    assert page.inner_text("#user") == "Signed in as zhao.lei"


def test_a_callback_that_was_not_started_here_is_refused(site):
    r = requests.get(f"{site['url']}/callback", params={"code": "x", "state": "forged"}, timeout=30)
    assert r.status_code == 401 and "this sign-in was not started here" in r.text
