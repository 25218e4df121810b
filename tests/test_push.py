"""Pushing Bundles: per-entry outcomes, batch fallback, safe retries, the no-regression rule."""
from __future__ import annotations

import json

import responses

from fhir3t.cli import main
from fhir3t.sinks import FhirServerSink
from fhir3t.transport.http import FhirClient, RetryPolicy

BASE = "http://fhir.test/fhir"
STUDY_URN = "urn:uuid:study-1"


def cap(*interactions: str) -> dict:
    return {"resourceType": "CapabilityStatement",
            "rest": [{"mode": "server", "interaction": [{"code": i} for i in interactions]}]}


def bundle(*statuses: str) -> dict:
    entries = [{"fullUrl": STUDY_URN,
                "resource": {"resourceType": "ResearchStudy", "id": "study-1", "status": "active",
                             "identifier": [{"system": "http://clinicaltrials.gov", "value": "NCT06438679"}]},
                "request": {"method": "POST", "url": "ResearchStudy",
                            "ifNoneExist": "identifier=http://clinicaltrials.gov|NCT06438679"}}]
    for i, st in enumerate(statuses):
        entries.append({"fullUrl": f"urn:uuid:rs-{i}",
                        "resource": {"resourceType": "ResearchSubject", "id": f"rs-{i}", "status": st,
                                     "study": {"reference": STUDY_URN}, "individual": {"reference": f"Patient/p{i}"}},
                        "request": {"method": "PUT", "url": f"ResearchSubject/rs-{i}"}})
    entries.append({"fullUrl": "urn:uuid:prov", "resource": {
        "resourceType": "Provenance", "id": "prov", "recorded": "2026-11-16T00:00:00Z",
        "target": [{"reference": f"urn:uuid:rs-{i}"} for i in range(len(statuses))], "agent": [{"who": {"display": "x"}}]},
        "request": {"method": "PUT", "url": "Provenance/prov"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def empty_searches(subjects: list[dict] | None = None):
    responses.get(f"{BASE}/ResearchSubject", json={"resourceType": "Bundle", "entry": [
        {"resource": s} for s in subjects or []]})
    responses.get(f"{BASE}/ResearchStudy", json={"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "ResearchStudy", "id": "server-study"}}]})


def sink() -> FhirServerSink:
    return FhirServerSink(FhirClient(BASE, sleep=lambda s: None, retry=RetryPolicy(rng=lambda: 0.0), parallel=1))


@responses.activate
def test_transaction_outcomes_per_entry():
    responses.get(f"{BASE}/metadata", json=cap("transaction", "batch"))
    empty_searches()
    responses.post(BASE, json={"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": "200 OK", "location": "ResearchStudy/server-study/_history/1"}},
        {"response": {"status": "201 Created", "location": "ResearchSubject/rs-0/_history/1"}},
        {"response": {"status": "201 Created", "location": "Provenance/prov/_history/1"}}]})
    report = sink().push(bundle("eligible"))
    assert report.mode == "transaction" and report.ok
    assert [(o.index, o.state, o.status) for o in report.outcomes] == [
        (0, "ok", "200 OK"), (1, "ok", "201 Created"), (2, "ok", "201 Created")]


@responses.activate
def test_transaction_that_fails_halfway_reports_every_entry_not_applied(caplog):
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    empty_searches()
    responses.post(BASE, status=422, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": "Entry 2 (PUT ResearchSubject/rs-1): invalid status"}]})
    report = sink().push(bundle("eligible", "candidate"))
    assert [o.state for o in report.outcomes] == ["failed"] * 4
    assert all("error processing" in o.message and "rolled back" in o.message for o in report.outcomes)
    assert not any("Entry 2" in o.message for o in report.outcomes)  # server diagnostics only with -vv
    with caplog.at_level("DEBUG", logger="fhir3t"):
        report = sink().push(bundle("eligible", "candidate"))
    assert all("Entry 2" in o.message for o in report.outcomes)


@responses.activate
def test_batch_fallback_creates_study_first_rewrites_refs_and_retries_503_entries():
    responses.get(f"{BASE}/metadata", json=cap("batch"))
    empty_searches()
    responses.post(f"{BASE}/ResearchStudy", status=201, json={"resourceType": "ResearchStudy", "id": "S9"},
                   headers={"Location": f"{BASE}/ResearchStudy/S9/_history/1"})
    responses.post(BASE, json={"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "201 Created"}},
        {"response": {"status": "503 Service Unavailable"}},
        {"response": {"status": "400 Bad Request", "outcome": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "bad target"}]}}}]})
    responses.post(BASE, json={"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "201 Created"}}]})
    report = sink().push(bundle("eligible", "candidate"))
    assert report.mode == "batch"
    by_index = {o.index: o for o in report.outcomes}
    assert by_index[0].state == "ok"                 # the study, sent alone with If-None-Exist
    assert by_index[1].state == "ok"
    assert by_index[2].state == "ok"                 # 503 in round 1, resent alone in round 2
    assert by_index[3].state == "failed" and "error invalid" in by_index[3].message
    first_batch = json.loads(responses.calls[-2].request.body)
    assert first_batch["type"] == "batch"
    assert first_batch["entry"][0]["resource"]["study"]["reference"] == "ResearchStudy/S9"
    assert first_batch["entry"][2]["resource"]["target"][0]["reference"] == "ResearchSubject/rs-0"
    assert json.loads(responses.calls[-1].request.body)["entry"][0]["request"]["url"] == "ResearchSubject/rs-1"
    assert responses.calls[-3].request.headers["If-None-Exist"].startswith("identifier=")
    assert len(report.failed) == 1


@responses.activate
def test_no_regression_keeps_an_on_study_subject_and_says_so():
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    empty_searches([{"resourceType": "ResearchSubject", "id": "rs-0", "status": "on-study",
                     "study": {"reference": "ResearchStudy/server-study"}, "individual": {"reference": "Patient/p0"}}])
    responses.post(BASE, json={"resourceType": "Bundle", "entry": [
        {"response": {"status": "200 OK"}}, {"response": {"status": "200 OK"}}, {"response": {"status": "200 OK"}}]})
    report = sink().push(bundle("eligible", "ineligible"))
    sent = json.loads(responses.calls[-1].request.body)
    urls = [e["request"]["url"] for e in sent["entry"]]
    assert "ResearchSubject/rs-0" not in urls and "ResearchSubject/rs-1" in urls
    prov = sent["entry"][-1]["resource"]
    assert [t["reference"] for t in prov["target"]] == ["urn:uuid:rs-1"]
    skipped = [o for o in report.outcomes if o.state == "skipped"]
    assert len(skipped) == 1 and "on-study" in skipped[0].message and report.ok


@responses.activate
def test_dry_run_sends_nothing(tmp_path, capsys):
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    empty_searches()
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle("eligible")))
    assert main(["push", str(f), "--server", BASE, "--dry-run"]) == 0
    assert not [c for c in responses.calls if c.request.method in ("POST", "PUT")]
    assert "dry-run" in capsys.readouterr().err


@responses.activate
def test_cli_exit_7_and_each_failed_entry_named(tmp_path, capsys):
    responses.get(f"{BASE}/metadata", json=cap("batch"))
    empty_searches()
    responses.post(f"{BASE}/ResearchStudy", status=200, json={"resourceType": "ResearchStudy", "id": "S9"})
    responses.post(BASE, json={"resourceType": "Bundle", "entry": [
        {"response": {"status": "201 Created"}}, {"response": {"status": "409 Conflict"}}]})
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle("eligible")))
    assert main(["push", str(f), "--server", BASE]) == 7
    err = capsys.readouterr().err
    assert "entry 2 PUT Provenance/prov: failed 409 Conflict" in err


def test_cli_refused_connection_exit_5_no_traceback(tmp_path, capsys):
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle("eligible")))
    assert main(["push", str(f), "--server", "http://127.0.0.1:9/fhir", "--timeout", "2"]) == 5
    err = capsys.readouterr().err
    assert "cannot reach" in err and "Traceback" not in err


def test_cli_bad_url_and_bad_bundle(tmp_path, capsys):
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"resourceType": "Bundle", "type": "collection"}))
    assert main(["push", str(f), "--server", "http://x/fhir"]) == 2
    g = tmp_path / "g.json"
    g.write_text(json.dumps(bundle("eligible")))
    assert main(["push", str(g), "--server", "not-a-url"]) == 2


# ---- hostile push input and server answers (issue 10, issue 13 items 7 and 8) -----------------------
import pytest  # noqa: E402


@pytest.mark.parametrize("entry", ["x", 5, {"a": 1}, None])
@pytest.mark.parametrize("dry", [[], ["--dry-run"]])
def test_a_bundle_whose_entry_is_not_a_list_is_a_usage_error_also_in_a_dry_run(tmp_path, capsys, entry, dry):
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entry}))
    code = main(["push", str(f), "--server", BASE, *dry])
    err = capsys.readouterr().err
    assert code == 2 and "Bundle.entry is" in err and "internal error" not in err


@pytest.mark.parametrize("bad", [
    {"request": "PUT Patient/1"}, {"request": {"method": 5, "url": "x"}}, {"request": {"method": "PUT", "url": ["x"]}},
    {"request": {"method": "BREW", "url": "x"}}, {"fullUrl": ["u"], "request": {"method": "DELETE", "url": "x"}},
    {"resource": "x", "request": {"method": "PUT", "url": "x"}}, {"request": {"method": "POST", "url": "x"}},
    {"resource": {"resourceType": ["X"]}, "request": {"method": "PUT", "url": "x"}},
    {"resource": {"resourceType": "ResearchStudy"}, "request": {"method": "POST", "url": "x", "ifNoneExist": 5}},
])
def test_entries_that_cannot_be_pushed_are_named(tmp_path, capsys, bad):
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"resourceType": "Bundle", "type": "batch", "entry": [bad]}))
    assert main(["push", str(f), "--server", BASE, "--dry-run"]) == 2
    assert "entry 0" in capsys.readouterr().err


@responses.activate
@pytest.mark.parametrize("answer", [
    {"resourceType": "Bundle", "entry": ["200 OK", "201 Created", 5]},
    {"resourceType": "Bundle", "entry": [{"response": "200 OK"}, {"response": {"status": 201}}, {"response": {"status": ["x"]}}]},
    {"resourceType": "Bundle", "entry": "none"},
    [1, 2, 3],
    {"resourceType": "OperationOutcome"},
])
def test_a_transaction_response_with_odd_entries_still_reports_every_entry(answer, capsys):
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    empty_searches()
    responses.post(BASE, json=answer)
    report = sink().push(bundle("eligible", "candidate"))
    assert [o.index for o in report.outcomes] == [0, 1, 2, 3]
    assert all(o.state == "unknown" for o in report.outcomes) and not report.ok


@responses.activate
def test_location_and_status_text_from_the_server_are_not_echoed_raw():
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    empty_searches()
    responses.post(BASE, json={"resourceType": "Bundle", "entry": [
        {"response": {"status": "201 Created by Zhang San\x1b[2J", "location": "ResearchStudy/s\x1b]8;;http://x\x07"}},
        {"response": {"status": "409 Conflict: patient Zhang San born 1980", "outcome": {
            "resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "conflict", "diagnostics": "Zhang San"}]}}},
        {"response": {"status": "200"}}]})
    report = sink().push(bundle("eligible"))
    lines = " ".join(o.line() for o in report.outcomes)
    assert "Zhang" not in lines and "\x1b" not in lines and "1980" not in lines
    assert "201 Created" in lines and "409 Conflict" in lines and "error conflict" in lines


def study(sid: str, value: str = "NCT06438679") -> dict:
    return {"resourceType": "ResearchStudy", "id": sid, "identifier": [{"system": "http://clinicaltrials.gov", "value": value}]}


def subject(rid: str, status: str, study_ref: str, patient: str = "Patient/p0") -> dict:
    return {"resourceType": "ResearchSubject", "id": rid, "status": status, "study": {"reference": study_ref},
            "individual": {"reference": patient}}


@responses.activate
@pytest.mark.parametrize("status", ["on-study", "follow-up", "withdrawn", "On-Study", "active", None])
def test_no_second_subject_for_an_enrolled_patient_when_the_identifier_search_comes_back_empty(status):
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    responses.get(f"{BASE}/ResearchStudy", json={"resourceType": "Bundle", "entry": []})  # search finds nothing
    responses.get(f"{BASE}/ResearchStudy/S9", json=study("S9"))                            # but the study is there
    cur = subject("hosp-1", status, "ResearchStudy/S9")
    responses.get(f"{BASE}/ResearchSubject", json={"resourceType": "Bundle", "entry": [{"resource": cur}]})
    tx = responses.post(BASE, json={"resourceType": "Bundle", "entry": [{"response": {"status": "200 OK"}}]})
    report = sink().push(bundle("eligible"))
    sent = json.loads(tx.calls[0].request.body) if tx.calls else {"entry": []}
    assert not [e for e in sent["entry"] if e["resource"]["resourceType"] == "ResearchSubject"]
    assert [o.state for o in report.outcomes if o.index == 1] == ["skipped"]
    assert "hosp-1" in " ".join(report.notes)


@responses.activate
def test_an_unresolvable_study_of_an_enrolled_subject_blocks_the_screening_entry():
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    responses.get(f"{BASE}/ResearchStudy", json={"resourceType": "Bundle", "entry": []})
    responses.get(f"{BASE}/ResearchStudy/gone", status=404)
    responses.get(f"{BASE}/ResearchSubject", json={"resourceType": "Bundle", "entry": [
        {"resource": subject("hosp-1", "on-study", "ResearchStudy/gone")},
        {"resource": subject("hosp-2", "on-study", "urn:uuid:elsewhere")}]})
    responses.post(BASE, json={"resourceType": "Bundle", "entry": [{"response": {"status": "200 OK"}}] * 2})
    report = sink().push(bundle("eligible"))
    skipped = [o for o in report.outcomes if o.state == "skipped"]
    assert skipped and skipped[0].index == 1 and "cannot be resolved" in skipped[0].message


@responses.activate
def test_another_studys_subject_does_not_block_ours_even_when_the_server_ignores_search_parameters():
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    # identifier= and individual= ignored: every study, every patient's subject
    responses.get(f"{BASE}/ResearchStudy", json={"resourceType": "Bundle", "entry": [
        {"resource": study("S9")}, {"resource": study("OTHER", "NCT00000001")}]})
    responses.get(f"{BASE}/ResearchStudy/OTHER", json=study("OTHER", "NCT00000001"))
    responses.get(f"{BASE}/ResearchSubject", json={"resourceType": "Bundle", "entry": [
        {"resource": subject("x-1", "on-study", "ResearchStudy/OTHER")},              # p0, another study
        {"resource": subject("x-2", "on-study", "ResearchStudy/S9", "Patient/p77")}]})  # ours, another patient
    tx = responses.post(BASE, json={"resourceType": "Bundle", "entry": [{"response": {"status": "201 Created"}}] * 3})
    report = sink().push(bundle("eligible"))
    assert report.ok and not [o for o in report.outcomes if o.state == "skipped"]
    sent = json.loads(tx.calls[0].request.body)
    assert [e["request"]["url"] for e in sent["entry"]][1] == "ResearchSubject/rs-0"


@responses.activate
def test_identical_failures_make_one_line_and_minus_v_lists_each(tmp_path, capsys, caplog):
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    empty_searches()
    n = 12
    responses.post(BASE, json={"resourceType": "Bundle", "entry": [{"response": {"status": "200 OK"}}] + [
        {"response": {"status": "422 Unprocessable Entity", "outcome": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "invalid", "expression": ["ResearchSubject.status"]}]}}}] * n
        + [{"response": {"status": "200 OK"}}]})
    f = tmp_path / "b.json"
    f.write_text(json.dumps(bundle(*["eligible"] * n)))
    assert main(["push", str(f), "--server", BASE]) == 7
    err = capsys.readouterr().err.splitlines()
    fails = [x for x in err if "422" in x]
    assert len(fails) == 1 and f"{n} entries failed 422 Unprocessable Entity: error invalid at ResearchSubject.status" in fails[0]
    assert "entries 1 (PUT ResearchSubject/rs-0), 2 (PUT ResearchSubject/rs-1), 3 (PUT ResearchSubject/rs-2) and 9 more" in fails[0]
    caplog.set_level("INFO", logger="fhir3t")  # what -v sets (main's basicConfig is a no-op under pytest)
    assert main(["-v", "push", str(f), "--server", BASE]) == 7
    assert len([x for x in capsys.readouterr().err.splitlines() if "failed 422" in x]) == n


def test_a_fifo_as_the_bundle_is_refused_not_waited_on(tmp_path, capsys):
    import os

    fifo = tmp_path / "b.json"
    os.mkfifo(fifo)
    assert main(["push", str(fifo), "--server", BASE, "--dry-run"]) == 4
    assert "not a regular file" in capsys.readouterr().err


@responses.activate
def test_a_subject_stored_with_an_absolute_patient_url_is_found_on_a_server_that_does_not_normalise():
    """The search asks for the patient by its relative and its absolute reference: a server that stores
    `individual` as written finds the hospital's subject only under the absolute URL."""
    responses.get(f"{BASE}/metadata", json=cap("transaction"))
    responses.get(f"{BASE}/ResearchStudy", json={"resourceType": "Bundle", "entry": [{"resource": study("S9")}]})
    hosp = subject("hosp-abs", "candidate", "ResearchStudy/S9", f"{BASE}/Patient/p0")

    def search(request):
        from urllib.parse import parse_qs, urlsplit
        asked = parse_qs(urlsplit(request.url).query).get("individual", [""])[0].split(",")
        hit = [hosp] if f"{BASE}/Patient/p0" in asked else []  # matches the stored string only
        return 200, {}, json.dumps({"resourceType": "Bundle", "entry": [{"resource": r} for r in hit]})

    responses.add_callback(responses.GET, f"{BASE}/ResearchSubject", callback=search)
    tx = responses.post(BASE, json={"resourceType": "Bundle", "entry": [{"response": {"status": "200 OK"}}] * 3})
    report = sink().push(bundle("ineligible"))
    sent = json.loads(tx.calls[0].request.body)
    urls = [e["request"]["url"] for e in sent["entry"]]
    assert "ResearchSubject/hosp-abs" in urls and "ResearchSubject/rs-0" not in urls  # updated in place
    assert report.ok
