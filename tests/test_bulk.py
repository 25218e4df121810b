"""Bulk $export: kick-off, polling with Retry-After, downloads, resuming an interrupted export."""
from __future__ import annotations

import itertools
import json

import pytest
import requests
import responses

from fhir3t.errors import ServerError
from fhir3t.sources.bulk import STATE, BulkExporter
from fhir3t.transport.http import FhirClient, RetryPolicy

BASE = "http://fhir.test/fhir"
STATUS = f"{BASE}/bulk-status/job1"
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}


def manifest() -> dict:
    return {"transactionTime": "2026-11-16T00:00:00Z", "requiresAccessToken": False,
            "output": [{"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"},
                       {"type": "Condition", "url": f"{BASE}/files/Condition.ndjson"}],
            "error": [{"type": "OperationOutcome", "url": f"{BASE}/files/err.ndjson"}]}


def client(slept: list[float]) -> FhirClient:
    return FhirClient(BASE, parallel=1, sleep=slept.append, retry=RetryPolicy(attempts=2, rng=lambda: 0.0))


def files():
    responses.get(f"{BASE}/files/Patient.ndjson", body=json.dumps(PATIENT) + "\n")
    responses.get(f"{BASE}/files/err.ndjson", body='{"resourceType":"OperationOutcome","issue":[]}\n')


@responses.activate
def test_export_polls_with_retry_after_and_downloads(tmp_path):
    kick = responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, status=202, headers={"X-Progress": "50%", "Retry-After": "3"})
    responses.get(STATUS, json=manifest())
    files()
    responses.get(f"{BASE}/files/Condition.ndjson", body='{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"}}\n')
    slept: list[float] = []
    progress: list[str] = []
    res = BulkExporter(client(slept), tmp_path, types=["Patient,Condition"], since="2026-01-01",
                       on_progress=progress.append).run()
    assert kick.calls[0].request.headers["Prefer"] == "respond-async"
    assert "_since=2026-01-01T00%3A00%3A00Z" in kick.calls[0].request.url
    assert slept == [3.0] and progress == ["50%"]
    assert sorted(p.name for p in res.files) == ["Condition.000.ndjson", "Patient.000.ndjson"]
    assert (tmp_path / "errors" / "OperationOutcome.000.ndjson").exists()
    assert json.loads((tmp_path / "Patient.000.ndjson").read_text())["id"] == "p1"


@responses.activate
def test_interrupted_export_resumes_without_a_new_kickoff(tmp_path):
    kick = responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, json=manifest())
    files()
    responses.get(f"{BASE}/files/Condition.ndjson", body=requests.exceptions.ConnectionError("connection reset"))
    with pytest.raises(ServerError):
        BulkExporter(client([]), tmp_path).run()
    assert (tmp_path / STATE).exists() and (tmp_path / "Patient.000.ndjson").exists()
    responses.replace(responses.GET, f"{BASE}/files/Condition.ndjson", body='{"resourceType":"Condition","id":"c1"}\n')
    patient_calls = len([c for c in responses.calls if c.request.url.endswith("Patient.ndjson")])
    res = BulkExporter(client([]), tmp_path).run()
    assert res.resumed and len(kick.calls) == 1
    assert len([c for c in responses.calls if c.request.url.endswith("Patient.ndjson")]) == patient_calls  # not again
    assert (tmp_path / "Condition.000.ndjson").exists()


@responses.activate
def test_forgotten_job_is_started_again(tmp_path):
    (tmp_path / STATE).write_text(json.dumps({"request": {"server": BASE, "group": None, "types": [], "since": None},
                                              "status_url": f"{BASE}/bulk-status/old", "manifest": None, "done": []}))
    responses.get(f"{BASE}/bulk-status/old", status=404)
    kick = responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, json={**manifest(), "output": manifest()["output"][:1]})
    files()
    res = BulkExporter(client([]), tmp_path).run()
    assert len(kick.calls) == 1 and [p.name for p in res.files] == ["Patient.000.ndjson"]


@responses.activate
def test_failed_export_is_a_server_error_naming_the_status_url(tmp_path, caplog):
    responses.get(f"{BASE}/Group/g1/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, status=500, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "exception", "diagnostics": "disk full"}]})
    with pytest.raises(ServerError, match=r"failed on the server .http://fhir.test/fhir/bulk-status/job1: 500: error exception"):
        BulkExporter(client([]), tmp_path, group="g1").run()
    with caplog.at_level("DEBUG", logger="fhir3t"), pytest.raises(ServerError, match="disk full"):
        BulkExporter(client([]), tmp_path, group="g1").run()


# ---- hostile manifests and servers (issue 10) ------------------------------------------------------
def tok_client(slept: list[float] | None = None, **kw) -> FhirClient:
    from fhir3t.transport.auth import BearerToken

    return FhirClient(BASE, parallel=1, sleep=(slept if slept is not None else []).append, auth=BearerToken("s3cret"),
                      retry=RetryPolicy(attempts=2, rng=lambda: 0.0), **kw)


def done_manifest(output: list, **kw) -> None:
    responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, json={"transactionTime": "2026-11-16T00:00:00Z", "output": output, **kw})


@responses.activate
@pytest.mark.parametrize("bad", ["../../../x", "/tmp/abs", "Patient/../../y", "..", "patient", "Pa tient", "Pätient",
                                 "P", "A" * 65, "Patient\x00", ["Patient"], 5, None])
def test_a_manifest_type_never_becomes_a_path_outside_out_dir(tmp_path, bad):
    out = tmp_path / "out"
    done_manifest([{"type": bad, "url": f"{BASE}/files/x.ndjson"}, {"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"}],
                  requiresAccessToken=False)
    responses.get(f"{BASE}/files/x.ndjson", body="{}\n")
    files()
    with pytest.raises(ServerError, match=r"(?s)incomplete: 1 file.*is not a FHIR resource type") as exc:
        BulkExporter(client([]), out).run()
    assert exc.value.exit_code == 5
    assert not [c for c in responses.calls if c.request.url.endswith("x.ndjson")]  # not even downloaded
    assert sorted(p.name for p in out.iterdir()) == [STATE, "Patient.000.ndjson"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written next to OUT_DIR
    assert not json.loads((out / STATE).read_text()).get("complete")


@responses.activate
def test_files_needing_the_token_on_another_host_are_refused_and_the_token_is_never_sent(tmp_path):
    done_manifest([{"type": "Patient", "url": "https://cdn.test/f/Patient.ndjson"},
                   {"type": "Condition", "url": f"{BASE}/files/Condition.ndjson"}], requiresAccessToken=True)
    cdn = responses.get("https://cdn.test/f/Patient.ndjson", body=json.dumps(PATIENT) + "\n")
    responses.get(f"{BASE}/files/Condition.ndjson", body='{"resourceType":"Condition","id":"c1"}\n')
    with pytest.raises(ServerError) as exc:
        BulkExporter(tok_client(), tmp_path).run()
    msg = str(exc.value)
    assert "https://cdn.test" in msg and "--allow-origin https://cdn.test" in msg and "needs the access token" in msg
    assert cdn.call_count == 0
    same = [c for c in responses.calls if "Condition.ndjson" in c.request.url]
    assert same[0].request.headers["Authorization"] == "Bearer s3cret"  # its own origin: with the token
    # the user trusts the CDN: the same command resumes and fetches only what is missing
    res = BulkExporter(tok_client(allow_origins=["https://cdn.test"]), tmp_path).run()
    assert cdn.calls[0].request.headers["Authorization"] == "Bearer s3cret"
    assert sorted(p.name for p in res.files) == ["Condition.000.ndjson", "Patient.000.ndjson"]
    assert len([c for c in responses.calls if "Condition.ndjson" in c.request.url]) == 1


@responses.activate
def test_a_status_url_or_files_on_an_origin_not_named_are_not_followed_and_allowed_ones_get_no_token_unless_needed(tmp_path):
    third = "https://status.other.test/jobs/1"
    responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": third})
    status = responses.get(third, json={"output": [{"type": "Patient", "url": "https://cdn.test/f/p.ndjson"}],
                                        "requiresAccessToken": False})
    cdn = responses.get("https://cdn.test/f/p.ndjson", body=json.dumps(PATIENT) + "\n")
    with pytest.raises(ServerError) as exc:  # the status URL is on an origin the user did not name: one sentence
        BulkExporter(tok_client(), tmp_path).run()
    assert "https://status.other.test is not the server's origin" in str(exc.value)
    assert "--allow-origin https://status.other.test" in str(exc.value) and status.call_count == 0
    # the status host allowed, the file host not: that file is refused, never fetched
    with pytest.raises(ServerError, match=r"Patient file on https://cdn\.test: not the server's origin") as exc:
        BulkExporter(tok_client(allow_origins=["https://status.other.test"]), tmp_path / "b").run()
    assert cdn.call_count == 0 and "--allow-origin https://cdn.test" in str(exc.value)
    # both allowed: downloaded, and without the token, since the manifest says none is needed
    res = BulkExporter(tok_client(allow_origins=["https://status.other.test", "https://cdn.test"]), tmp_path / "c").run()
    assert [p.name for p in res.files] == ["Patient.000.ndjson"]
    assert "Authorization" not in cdn.calls[0].request.headers
    assert status.calls[-1].request.headers["Authorization"] == "Bearer s3cret"  # an allowed origin: as the user said


@responses.activate
def test_an_unreachable_status_url_on_another_host_is_named_not_the_base(tmp_path):
    third = "http://status.other.test/jobs/1"
    responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": third})
    responses.get(third, body=requests.exceptions.ConnectionError("Connection refused"))
    allowed = FhirClient(BASE, parallel=1, sleep=lambda s: None, retry=RetryPolicy(attempts=2, rng=lambda: 0.0),
                         allow_origins=["http://status.other.test"])  # followed only because the user named it
    with pytest.raises(ServerError) as exc:
        BulkExporter(allowed, tmp_path).run()
    assert "cannot reach http://status.other.test (GET /jobs/1)" in str(exc.value) and "fhir.test" not in str(exc.value)


@responses.activate
def test_polling_has_a_growing_floor_and_a_total_deadline(tmp_path):
    responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, status=202, headers={"Retry-After": "0", "X-Progress": "\x1b[31mbusy\x1b[0m"})
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    c = FhirClient(BASE, parallel=1, sleep=sleep, retry=RetryPolicy(attempts=2, rng=lambda: 0.0))
    progress: list[str] = []
    with pytest.raises(ServerError, match=r"still running after 600 s.*--max-wait"):
        BulkExporter(c, tmp_path, max_wait=600, clock=lambda: now[0], on_progress=progress.append).run()
    waits = slept[:-1]  # the last one only runs up to the deadline
    assert waits[0] >= 1.0 and all(b > a for a, b in itertools.pairwise(waits[:8]))  # never below 1 s, growing
    assert sum(slept) == pytest.approx(600)
    assert len(slept) < 30  # a server saying "Retry-After: 0" made 9,406 polls in 20 s
    assert progress[0] == "?[31mbusy?[0m"  # no escape sequence reaches the terminal
    assert json.loads((tmp_path / STATE).read_text())["status_url"] == STATUS  # rerun resumes


@responses.activate
@pytest.mark.parametrize("manifest", [
    {"output": ["Patient.ndjson", 5, None]},
    {"output": [{"type": "Patient", "url": 5}]},
    {"output": [{"type": "Patient", "url": "file:///etc/passwd"}]},
    {"output": [{"type": "Patient", "url": "ftp://x/y"}]},
    {"output": [{"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"}], "error": "x"},
    {"output": [{"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"}], "error": [{"url": f"{BASE}/files/err.ndjson", "type": {}}]},
])
def test_malformed_manifest_items_make_an_incomplete_export_not_a_crash(tmp_path, manifest):
    done_manifest(manifest["output"], **{k: v for k, v in manifest.items() if k != "output"})
    files()
    with pytest.raises(ServerError, match="incomplete"):
        BulkExporter(client([]), tmp_path).run()


@responses.activate
def test_referenced_medications_keep_only_what_was_asked_and_odd_lines_are_passed_over(tmp_path):
    done_manifest([{"type": "MedicationRequest", "url": f"{BASE}/files/mr.ndjson"}], requiresAccessToken=False)
    responses.get(f"{BASE}/files/mr.ndjson", body="\n".join([
        '{"resourceType":"MedicationRequest","id":"m1","medicationReference":{"reference":"Medication/tofa"}}',
        '{"resourceType":["MedicationRequest"],"id":{},"medicationReference":"Medication/x"}',
        '{"resourceType":"MedicationRequest","medicationReference":{"reference":"Medication/../../etc"}}',
        '[1,2]', 'not json', '{"resourceType":{"a":1},"study":{"reference":5}}']) + "\n")
    search = responses.get(f"{BASE}/Medication", json={"resourceType": "Bundle", "entry": [  # _id ignored: everything
        {"resource": {"resourceType": "Medication", "id": "tofa"}}, {"resource": {"resourceType": "Medication", "id": "other"}}]})
    res = BulkExporter(client([]), tmp_path).run()
    assert "_id=tofa" in search.calls[0].request.url
    lines = (tmp_path / "Medication.referenced.ndjson").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["tofa"]
    assert tmp_path / "Medication.referenced.ndjson" in res.files


def test_a_connection_cut_mid_file_leaves_no_part_file_and_the_rerun_resumes(tmp_path):
    from hostile_server import RawServer

    cut = {"on": True}
    body = (json.dumps(PATIENT) + "\n").encode()

    def script(send, head):
        path = head.split(b" ")[1]
        if path.startswith(b"/fhir/Patient/$export"):
            send(f"HTTP/1.1 202 Accepted\r\nContent-Location: {srv.url}/status\r\nContent-Length: 0\r\n\r\n".encode())
        elif path == b"/status":
            m = json.dumps({"output": [{"type": "Patient", "url": f"{srv.url}/p.ndjson"}], "requiresAccessToken": False})
            send(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(m)}\r\n\r\n{m}".encode())
        elif cut["on"]:
            send(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body) + 5000}\r\n\r\n".encode() + body)  # then hangs up
        else:
            send(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)

    srv = RawServer(script)
    try:
        c = FhirClient(srv.url + "/fhir", parallel=1, sleep=lambda s: None, retry=RetryPolicy(attempts=2, rng=lambda: 0.0), timeout=10)
        with pytest.raises(ServerError, match=f"download of GET {srv.url}/p.ndjson interrupted"):
            BulkExporter(c, tmp_path).run()
        assert sorted(p.name for p in tmp_path.iterdir()) == [STATE]  # no .part left behind
        cut["on"] = False
        res = BulkExporter(c, tmp_path).run()
        assert res.resumed and (tmp_path / "Patient.000.ndjson").read_bytes() == body
        assert len([r for r in srv.requests if r.startswith(b"GET /fhir/Patient/$export")]) == 1
    finally:
        srv.stop()


@responses.activate
def test_a_full_disk_is_a_clear_error_and_leaves_no_part_file(tmp_path, capsys):
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    from fhir3t.cli import main

    done_manifest([{"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"}], requiresAccessToken=False)
    files()
    (tmp_path / "Patient.000.ndjson.part").symlink_to("/dev/full")  # every write: ENOSPC
    code = main(["export", str(tmp_path), "--server", BASE, "--type", "Patient"])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "internal error" not in err
    assert not (tmp_path / "Patient.000.ndjson.part").exists() and not (tmp_path / "Patient.000.ndjson").exists()


@responses.activate
def test_a_file_larger_than_the_limit_is_reported_too_large(tmp_path):
    done_manifest([{"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"}], requiresAccessToken=False)
    responses.get(f"{BASE}/files/Patient.ndjson", body=b"x" * 5000)
    with pytest.raises(ServerError, match="larger than 4096 bytes"):
        BulkExporter(client([]), tmp_path, max_file_bytes=4096).run()
    assert not list(tmp_path.glob("*.part"))
