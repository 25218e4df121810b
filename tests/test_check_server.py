"""The server checks against fake servers (fake_fhir.py on pytest-httpserver) that lack features or lie:
every lie is reported on its own line with the status the README gives it, the write test never
touches what it did not make, and the read-only checks write nothing."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from fake_fhir import FakeFhir, loopback_server, populated
from fhir3t.errors import EXIT_AUTH, EXIT_FINDINGS, EXIT_OK, EXIT_SERVER
from fhir3t.pipeline.servercheck import FAIL, OK, WARNING, ServerReport, check_server, precheck
from fhir3t.transport.auth import BearerToken
from fhir3t.transport.http import FhirClient, RetryPolicy


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    with loopback_server() as s:
        yield s


@pytest.fixture(scope="module")
def other_host() -> Iterator[HTTPServer]:
    """Another origin (another port on loopback), for export status URLs that point away."""
    with loopback_server() as s:
        yield s


@pytest.fixture
def fake(server, other_host) -> Iterator[FakeFhir]:
    server.clear()
    other_host.clear()
    yield populated(server)
    server.clear()
    other_host.clear()


def client(url: str, **kw) -> FhirClient:
    return FhirClient(url, parallel=1, sleep=lambda s: None, timeout=10, retry=RetryPolicy(attempts=2, rng=lambda: 0.0), **kw)


def run(fake: FakeFhir, definition, **kw) -> ServerReport:
    c = client(fake.url, **{k: kw.pop(k) for k in ("auth", "max_requests", "allow_origins") if k in kw})
    return check_server(c, definition, **kw)


def lines(report: ServerReport, check_id: str) -> list:
    return [c for c in report.checks if c.id == check_id]


def line(report: ServerReport, check_id: str):
    got = lines(report, check_id)
    assert len(got) == 1, (check_id, [c.to_dict() for c in report.checks])
    return got[0]


def writes(fake: FakeFhir) -> list[tuple[str, str]]:
    """Requests that could change data: POST / PUT / DELETE other than cancelling an export job."""
    return [(m, p) for m, p in fake.log if m in ("POST", "PUT", "PATCH", "DELETE") and "export-status" not in p]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- an honest server --------------------------------------------------------------------------
def test_an_honest_server_passes_and_the_read_only_checks_write_nothing(fake, definition):
    before = {t: dict(v) for t, v in fake.store.items()}
    report = run(fake, definition)
    assert [c.to_dict() for c in report.checks if c.status == FAIL] == []
    assert report.exit_code == EXIT_OK
    assert writes(fake) == [] and fake.store == before
    assert line(report, "strategy").details["strategy"] == "everything"
    e2e = line(report, "end-to-end")
    assert e2e.status == OK and "Patient/p1" in e2e.message and "22 criteria evaluated" in e2e.message
    cov = next(c for c in lines(report, "record-coverage") if c.status == OK)
    assert {"Consent", "ImmunizationRecommendation", "QuestionnaireResponse", "ResearchSubject"} <= set(cov.details["checked"])
    assert line(report, "search-candidates").details["candidates"] == 2  # p3 has no dermatomyositis
    assert report.requests == len(fake.log)


def test_the_write_test_creates_finds_and_deletes_only_its_own_study(fake, definition):
    report = run(fake, definition, write_test=True)
    assert line(report, "transaction").status == OK and "tried" in line(report, "transaction").message
    assert line(report, "conditional-create").status == OK
    assert line(report, "write-test").status == OK
    assert sorted(fake.store["ResearchStudy"]) == ["rs-ours"]  # the test study is gone, the real one kept
    created = [b for b in fake.bodies if b.get("type") == "transaction"]
    assert len(created) == 2 and all(e["request"].get("ifNoneExist") for b in created for e in b["entry"])
    assert all(e["resource"]["identifier"][0]["system"] == "urn:fhir3t:check-server" for b in created for e in b["entry"])


# ---- servers that lie or lack features ---------------------------------------------------------
@pytest.mark.parametrize(("dropped", "says"), [
    ("Consent", "I8-consent would stay unknown for everyone"),
    ("ImmunizationRecommendation", "E12-vaccination would take it as none recorded, so a patient could come out eligible"),
    ("ResearchSubject", "E4-investigational"),
])
def test_a_type_left_out_of_everything_fails_naming_the_resource_and_the_criteria(fake, definition, dropped, says):
    fake.everything_drops.add(dropped)
    report = run(fake, definition, export=False)
    failed = [c for c in report.checks if c.status == FAIL]
    assert [c.title for c in failed] == [f"record: {dropped}"]
    assert "leaves out" in failed[0].message and says in failed[0].message
    assert failed[0].details["resource"].startswith(f"{dropped}/")
    assert report.exit_code == EXIT_FINDINGS


def test_a_type_only_other_patients_have_is_checked_on_one_of_them(fake, definition):
    fake.store["Consent"] = {"consent-p2": fake.store["Consent"]["consent-p2"]}
    fake.everything_drops.add("Consent")
    report = run(fake, definition, export=False)
    assert "Consent/consent-p2 of Patient/p2" in next(c for c in report.checks if c.status == FAIL).message


def test_a_shared_resource_missing_from_everything_is_a_warning(fake, definition):
    fake.everything_drops.add("Medication")
    report = run(fake, definition, export=False)
    ref = line(report, "record-references")
    assert ref.status == WARNING and "Medication/med-1" in ref.message


@pytest.mark.parametrize(("rtype", "param", "check_id", "status"), [
    ("Condition", "code", "search-candidates", FAIL),
    ("ResearchStudy", "identifier", "search-study-identifier", FAIL),
    ("ResearchSubject", "individual", "search-subject-individual", FAIL),
    ("ResearchSubject", "_id", "search-subject-id", FAIL),
    ("Medication", "_id", "search-medication-id", FAIL),
    ("ResearchSubject", "patient", "search-subject-patient", WARNING),
    ("ResearchSubject", "study", "search-subject-study", WARNING),
])
def test_an_ignored_search_parameter_is_caught_with_a_value_that_matches_nothing(fake, definition, rtype, param, check_id, status):
    fake.ignore.add((rtype, param))
    report = run(fake, definition, export=False)
    got = line(report, check_id)
    assert got.status == status and got.message.startswith("ignored: ")
    others = [c for c in report.checks if c.status == FAIL and c.id != check_id]
    assert others == []


def test_a_rejected_parameter_fails_with_its_status(fake, definition):
    fake.reject.add(("ResearchStudy", "identifier"))
    got = line(run(fake, definition, export=False), "search-study-identifier")
    assert got.status == FAIL and got.message.startswith("rejected (400)")


def test_a_parameter_on_a_type_the_server_has_none_of_cannot_be_told_and_says_so(fake, definition):
    fake.store.pop("ResearchSubject")
    fake.ignore.add(("ResearchSubject", "individual"))  # ignored, but with nothing to return it cannot show
    got = line(run(fake, definition, export=False), "search-subject-individual")
    assert got.status == WARNING and got.message.startswith("cannot tell")


def test_a_code_search_that_matches_loosely_fails(fake, definition):
    fake.code_ignores_system = True
    fake.add({"resourceType": "Condition", "id": "cond-other", "subject": {"reference": "Patient/p3"},
              "code": {"coding": [{"system": "http://example.org/local", "code": "396230008"}]}})
    got = line(run(fake, definition, export=False), "search-candidates")
    assert got.status == FAIL and got.message.startswith("matches loosely: 1 Condition")


def test_no_transaction_is_a_warning_and_the_write_test_goes_through_a_batch(fake, definition):
    fake.transaction = False
    assert line(run(fake, definition, export=False), "transaction").status == WARNING
    report = run(fake, definition, export=False, write_test=True)
    assert line(report, "transaction").status == WARNING and "a batch was applied" in line(report, "transaction").message
    assert {b.get("type") for b in fake.bodies} == {"batch"}
    assert sorted(fake.store["ResearchStudy"]) == ["rs-ours"]


def test_neither_transaction_nor_batch_fails(fake, definition):
    fake.transaction = fake.batch = False
    assert line(run(fake, definition, export=False), "transaction").status == FAIL


def test_a_conditional_create_that_adds_a_second_study_fails_and_both_are_deleted(fake, definition):
    fake.conditional_create = False
    report = run(fake, definition, export=False, write_test=True)
    cc = line(report, "conditional-create")
    assert cc.status == FAIL and "created another ResearchStudy (2 with the same identifier)" in cc.message
    assert line(report, "write-test").status == OK and len(line(report, "write-test").details["made"]) == 2
    assert sorted(fake.store["ResearchStudy"]) == ["rs-ours"]


def test_a_conditional_create_answered_with_another_study_never_deletes_that_study(fake, definition):
    # the server's ifNoneExist ignores `identifier`: "the" match is the trial's own ResearchStudy
    fake.ignore.add(("ResearchStudy", "identifier"))
    report = run(fake, definition, export=False, write_test=True)
    cc = line(report, "conditional-create")
    assert cc.status == FAIL and "ResearchStudy/rs-ours, which is another study" in cc.message
    assert "rs-ours" in fake.store["ResearchStudy"]
    assert ("DELETE", "/fhir/ResearchStudy/rs-ours") not in fake.log


def test_a_server_that_refuses_delete_leaves_a_warning_naming_the_leftover(fake, definition):
    fake.delete_allowed = False
    report = run(fake, definition, export=False, write_test=True)
    left = line(report, "write-test")
    assert left.status == WARNING and "delete it by hand" in left.message and "urn:fhir3t:check-server|check-" in left.message
    assert report.exit_code == EXIT_OK  # a leftover test study is the user's to remove, not a server failure


def test_undeclared_types_are_tried_searchable_is_a_warning_refused_is_a_fail(fake, definition):
    fake.undeclared.add("ImmunizationRecommendation")
    got = line(run(fake, definition, export=False), "resource-types")
    assert got.status == WARNING and "answers searches" in got.message
    fake.reject.add(("ImmunizationRecommendation", "_count"))
    got = line(run(fake, definition, export=False), "resource-types")
    assert got.status == FAIL and "ImmunizationRecommendation (400: E12-vaccination" in got.message


@pytest.mark.parametrize(("version", "status"), [("4.0.1", OK), ("4.3.0", WARNING), ("3.0.2", FAIL), ("5.0.0", FAIL), ("", WARNING)])
def test_the_fhir_version_line(fake, definition, version, status):
    fake.fhir_version = version
    assert line(run(fake, definition, export=False), "fhir-version").status == status


def test_a_server_without_everything_or_batch_is_searched_per_type_and_says_it_is_slow(fake, definition):
    fake.everything = fake.batch = fake.transaction = False
    report = run(fake, definition, export=False)
    assert line(report, "strategy").status == WARNING and line(report, "strategy").details["strategy"] == "search"
    assert line(report, "end-to-end").status == OK


def test_the_patient_asked_for_is_tried_and_one_not_on_the_server_fails(fake, definition):
    report = run(fake, definition, export=False, patient="p2")
    assert "Patient/p2 (as asked)" in line(report, "end-to-end").message
    report = run(fake, definition, export=False, patient="nobody")
    assert line(report, "end-to-end").status == FAIL


def test_a_batch_pull_from_a_server_ignoring_patient_warns_on_the_end_to_end_line(fake, definition):
    fake.everything = False
    fake.ignore.add(("Observation", "patient"))
    report = run(fake, definition, export=False)
    assert line(report, "strategy").details["strategy"] == "batch"
    e2e = line(report, "end-to-end")
    assert e2e.status == WARNING and "resources of other patients" in e2e.message


def test_a_type_the_credentials_may_not_search_fails_those_checks_and_the_others_run(fake, definition):
    fake.forbidden.add("ResearchSubject")
    report = run(fake, definition, export=False)
    assert report.error is None and report.exit_code == EXIT_FINDINGS
    assert line(report, "search-subject-individual").status == FAIL
    assert line(report, "search-subject-individual").message.startswith("refused: GET ")
    assert "ResearchSubject (credentials refused)" in next(c for c in lines(report, "record-coverage")
                                                       if c.status == WARNING).message
    assert line(report, "search-medication-id").status == OK


def test_credentials_refused_on_the_first_search_end_the_run_as_an_auth_error(fake, definition):
    fake.forbidden.add("Condition")
    report = run(fake, definition)
    assert report.exit_code == EXIT_AUTH and "403" in report.to_dict()["error"]  # the error's English
    assert [c.id for c in report.checks] == ["fhir-version", "strategy", "resource-types"]


# ---- Bulk export -------------------------------------------------------------------------------
def test_export_is_kicked_off_polled_once_and_cancelled_never_downloaded(fake, definition, other_host):
    calls = []

    def status(request: Request) -> Response:
        calls.append((request.method, request.path))
        if request.method == "DELETE":
            return Response(status=202)
        return Response('{"transactionTime": "2026-01-01T00:00:00Z", "request": "x", "requiresAccessToken": false, '
                        f'"output": [{{"type": "Patient", "url": "{other_host.url_for("/file.ndjson")}"}}]}}',
                        status=200, content_type="application/json")
    other_host.expect_request("/status/9").respond_with_handler(status)
    fake.status_url = other_host.url_for("/status/9")
    report = run(fake, definition, allow_origins=[f"http://127.0.0.1:{other_host.port}"])  # followed: the user named it
    got = line(report, "export-status")
    assert got.status == OK and "done (200)" in got.message and "cancelled" in got.message
    assert f"on http://127.0.0.1:{other_host.port}, not http://127.0.0.1:{fake.server.port}" in got.message
    assert calls == [("GET", "/status/9"), ("DELETE", "/status/9")]  # the output file is never fetched
    kick = [p for m, p in fake.log if "$export" in p]
    assert len(kick) == 1 and "_type=Patient" in kick[0] and "_since=" in kick[0]


def test_an_export_status_url_on_an_origin_not_named_is_a_warning_and_nothing_is_sent_there(fake, definition, other_host):
    seen = []

    def status(request: Request) -> Response:
        seen.append(request.headers.get("Authorization"))
        return Response(status=401) if request.headers.get("Authorization") is None and wants[0] else Response(status=202)
    wants = [False]
    other_host.expect_request("/status/9").respond_with_handler(status)
    fake.status_url = other_host.url_for("/status/9")
    report = run(fake, definition, auth=BearerToken("secret-token"))
    got = line(report, "export-status")
    assert got.status == WARNING and f"--allow-origin http://127.0.0.1:{other_host.port}" in got.message
    assert "would not follow" in got.message and seen == []  # not a request, not a token
    # named by the user: followed, with the token; a refusal there is a fail naming it
    wants[0] = True
    got = line(run(fake, definition, auth=BearerToken("bad-token"), allow_origins=[f"http://127.0.0.1:{other_host.port}"]),
               "export-status")
    assert got.status == OK and seen == ["Bearer bad-token", "Bearer bad-token"]  # GET and DELETE


def test_an_unreachable_export_status_url_fails_naming_its_host_and_path(fake, definition):
    port = closed_port()
    fake.status_url = f"http://127.0.0.1:{port}/bulk/status/1?job=secret"
    got = line(run(fake, definition, allow_origins=[f"http://127.0.0.1:{port}"]), "export-status")
    assert got.status == FAIL and "cannot be reached" in got.message
    assert f"127.0.0.1:{port}" in got.message and "/bulk/status/1" in got.message and "secret" not in got.message
    assert got.details["reachable"] is False


def test_no_export_declared_is_a_warning_and_nothing_is_kicked_off(fake, definition):
    fake.export = False
    report = run(fake, definition)
    assert line(report, "export").status == WARNING
    assert not any("$export" in p for _, p in fake.log)


# ---- run-level errors --------------------------------------------------------------------------
def test_a_spent_request_budget_stops_the_run_keeping_what_was_checked(fake, definition):
    report = run(fake, definition, max_requests=6)
    assert report.exit_code == EXIT_SERVER and "request budget" in report.to_dict()["error"]  # the error's English
    assert line(report, "fhir-version").status == OK
    assert report.to_dict()["exit_code"] == EXIT_SERVER


def test_metadata_that_is_not_fhir_and_refused_credentials_are_server_and_auth_errors(server, definition):
    server.clear()
    server.expect_request("/fhir/metadata").respond_with_json({"hello": "world"})
    report = check_server(client(server.url_for("/fhir")), definition)
    assert report.exit_code == EXIT_SERVER and report.checks == []
    server.clear()
    server.expect_request("/fhir/metadata").respond_with_data("", status=401)
    assert check_server(client(server.url_for("/fhir")), definition).exit_code == EXIT_AUTH
    server.clear()


# ---- the quiet pre-check -----------------------------------------------------------------------
def test_the_precheck_reads_the_capability_statement_and_sends_one_search_at_most(fake, definition):
    c = client(fake.url)
    assert precheck(c, definition) == []
    assert c.stats.requests == 2 and "code=urn:fhir3t:check-server:nothing" in fake.log[1][1]
    c = client(fake.url)
    precheck(c, definition, candidates=False, push=True)
    assert c.stats.requests == 1


def test_the_precheck_returns_only_what_will_be_missing(fake, definition):
    fake.undeclared.add("ImmunizationRecommendation")
    fake.ignore.add(("Condition", "code"))
    fake.transaction = False
    got = precheck(client(fake.url), definition, push=True)
    assert [(c.id, c.status) for c in got] == [("resource-types", WARNING), ("search-candidates", FAIL),
                                               ("transaction", WARNING)]
    assert all("Patient/" not in c.message for c in got)  # stderr lines: no patient ids
