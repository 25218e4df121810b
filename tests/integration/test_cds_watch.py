"""Event-driven screening against a real FHIR server (a sekmet of its own: these tests write to it):
polling `_lastUpdated` with resumable state, the no-regression rule, R4 Subscriptions end to end (sekmet
delivers rest-hook notifications), notifications from a local sender, an on-study patient in the CDS service."""
from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests

from cds_helpers import SERVICE, hook_request, running, sample_resources
from fhir3t.cli import main
from fhir3t.emit.screening import subject_id
from fhir3t.pipeline import Definition
from fhir3t.service.app import create_app
from fhir3t.service.runner import InThread, WatchThread
from fhir3t.service.settings import ServeSettings
from fhir3t.service.watch import NOTIFY_PATH, Watcher, WatchState
from fhir3t.transport.http import FhirClient
from integration.conftest import AS_OF, CONCEPT_MAP, Server

AS_OF_DAY = date.fromisoformat(AS_OF)
FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    srv = Server(tmp_path_factory.mktemp("sekmet-watch"))
    try:
        yield srv.base
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def definition() -> Definition:
    return Definition.load(concept_maps=[CONCEPT_MAP])


def put_all(base: str, resources: list[dict]) -> None:
    tx = {"resourceType": "Bundle", "type": "transaction",
          "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
    r = requests.post(base, json=tx, headers=FHIR, timeout=60)
    assert r.status_code == 200, r.text[:500]


def renamed(sample: str, pid: str) -> list[dict]:
    """A sample patient under new ids (each test gets patients of its own on the shared watch server): the
    Patient becomes `pid`, every other resource `pid-<id>`, and references follow."""
    resources = sample_resources(sample)
    new: dict[str, str] = {}
    for r in resources:
        if isinstance(r.get("id"), str):
            rid = pid if r["resourceType"] == "Patient" else f"{pid}-{r['id']}"[:64]
            new[f"{r['resourceType']}/{r['id']}"] = f"{r['resourceType']}/{rid}"

    def ref(value: str) -> str:
        for old, repl in new.items():
            if value == old or value.endswith("/" + old):
                return value[: len(value) - len(old)] + repl
        return value

    def walk(obj):
        if isinstance(obj, dict):
            return {k: ref(v) if k == "reference" and isinstance(v, str) else walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(x) for x in obj]
        return obj

    out = []
    for r in resources:
        copy_ = walk(r)
        if isinstance(r.get("id"), str):
            copy_["id"] = new[f"{r['resourceType']}/{r['id']}"].split("/", 1)[1]
        out.append(copy_)
    return out


def subject_status(base: str, definition: Definition, pid: str) -> str | None:
    r = requests.get(f"{base}/ResearchSubject/{subject_id(definition.criteria, f'Patient/{pid}')}", headers=FHIR, timeout=30)
    return r.json()["status"] if r.status_code == 200 else None


def watch_once(base: str, state: Path, *extra: str) -> int:
    return main(["watch", "--server", base, "--once", "--state", str(state), "--as-of", AS_OF,
                 "--concept-map", str(CONCEPT_MAP), *extra])


def test_polling_screens_new_data_pushes_candidates_and_resumes(base, definition, tmp_path, capsys):
    put_all(base, renamed("01-eligible-classic", "w-p01") + renamed("03-candidate-missing-tests", "w-p03")
            + renamed("07-ineligible-mda5-low-grade", "w-p07"))
    state = tmp_path / "watch.json"
    assert watch_once(base, state, "--since", "2020-01-01") == 0
    err = capsys.readouterr().err
    assert "3 patient(s)" in err and "pushed 2 ResearchSubject(s)" in err
    assert subject_status(base, definition, "w-p01") == "eligible"
    assert subject_status(base, definition, "w-p03") == "candidate"
    assert subject_status(base, definition, "w-p07") is None  # ineligible, and no subject to update: nothing pushed
    saved = json.loads(state.read_text())
    assert saved["server"] == base and saved["mark"]
    # nothing new: the next round screens nobody (the ResearchSubjects it pushed are not data the criteria read
    # about a change: their patients are screened again at most, never pushed twice to a different answer)
    assert watch_once(base, state) == 0
    assert "pushed 0 ResearchSubject(s)" in capsys.readouterr().err
    # a strong anti-MDA5 result for w-p07 arrives: only w-p07 is screened, and is now a candidate
    mda5 = next(r for r in renamed("01-eligible-classic", "w-p07") if r["resourceType"] == "Observation"
                and "MDA5" in json.dumps(r).upper())
    mda5 = {**mda5, "id": "w-p07-new-mda5", "effectiveDateTime": "2026-11-10"}
    put_all(base, [mda5])
    assert watch_once(base, state) == 0
    err = capsys.readouterr().err
    assert "of 1 patient(s)" in err
    assert subject_status(base, definition, "w-p07") == "candidate"


def test_an_on_study_subject_is_never_overwritten(base, definition, tmp_path, capsys):
    put_all(base, renamed("01-eligible-classic", "w-enrolled"))
    state = tmp_path / "watch.json"
    assert watch_once(base, state, "--since", "2020-01-01") == 0
    capsys.readouterr()
    rid = subject_id(definition.criteria, "Patient/w-enrolled")
    rs = requests.get(f"{base}/ResearchSubject/{rid}", headers=FHIR, timeout=30).json()
    rs["status"] = "on-study"
    assert requests.put(f"{base}/ResearchSubject/{rid}", json=rs, headers=FHIR, timeout=30).status_code in (200, 201)
    hbsag = {"resourceType": "Observation", "id": "w-enrolled-hbsag-2", "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": "5196-1"}]},
             "subject": {"reference": "Patient/w-enrolled"}, "effectiveDateTime": "2026-11-12",
             "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "10828004"}]}}
    put_all(base, [hbsag])
    assert watch_once(base, state) == 0
    assert "1 kept by the no-regression rule" in capsys.readouterr().err
    assert subject_status(base, definition, "w-enrolled") == "on-study"


def test_the_cds_service_gives_no_card_for_a_patient_on_study_on_the_server(base, definition, tmp_path):
    res = renamed("06-eligible-searchset-age18", "w-onstudy")
    put_all(base, res + [{"resourceType": "ResearchSubject", "id": "w-onstudy-rs", "status": "on-study",
                          "study": {"identifier": definition.study.identifier}, "individual": {"reference": "Patient/w-onstudy"}}])
    settings = ServeSettings(state_dir=tmp_path, as_of=AS_OF_DAY, fhir_servers=(base,), budget_ms=5000)
    with running(settings, definition) as (url, _cds):
        r = requests.post(f"{url}/cds-services/{SERVICE}", json=hook_request("w-onstudy", fhirServer=base), timeout=30)
        assert r.status_code == 200 and r.json() == {"cards": []}
        put_all(base, renamed("06-eligible-searchset-age18", "w-free"))
        r = requests.post(f"{url}/cds-services/{SERVICE}", json=hook_request("w-free", fhirServer=base), timeout=30)
        assert [c["summary"].split(" for ")[0] for c in r.json()["cards"]] == ["Eligible"]


def wait_for(check, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


def test_subscriptions_end_to_end_a_new_observation_brings_the_research_subject(base, definition, tmp_path):
    """sekmet offers R4 Subscriptions: the watcher subscribes to the inclusion criteria's codes, a new
    anti-MDA5 result is posted, sekmet notifies, the watcher screens and the ResearchSubject appears."""
    resources = renamed("04-candidate-mda5-ungraded", "w-sub")
    mda5 = next(r for r in resources if r["resourceType"] == "Observation" and "MDA5" in json.dumps(r).upper())
    put_all(base, [r for r in resources if r is not mda5])
    client = FhirClient(base)
    watcher = Watcher(client, Definition.load(concept_maps=[CONCEPT_MAP]), WatchState(tmp_path / "state.json", base),
                      start=time.time() + 2, overlap=0.5, today=lambda: AS_OF_DAY)
    assert watcher.supports_subscriptions()
    token = "notify-token-for-the-test"
    holder: dict = {}
    app = create_app(None, watcher=watcher, notify_token=token, on_startup=[lambda: holder["thread"].start()],
                     on_shutdown=[lambda: holder["thread"].shutdown()])
    receiver = InThread(app)
    holder["thread"] = WatchThread(watcher, 3600.0, receiver.url + NOTIFY_PATH, token)
    with receiver:
        assert wait_for(lambda: watcher.rounds == 1, 10)  # subscribed, then the initial poll: nothing new yet
        assert watcher.subscriptions, "the server made no Subscription active"
        subs = [client.get(f"Subscription/{sid}") for sid in watcher.subscriptions]
        assert all(s["status"] == "active" for s in subs)
        assert any(s["criteria"].startswith("Observation?code=") and "82424-3" in s["criteria"] for s in subs)
        assert subject_status(base, definition, "w-sub") is None
        time.sleep(2.5)  # past the watcher's start mark, so only the notification can bring the patient
        put_all(base, [copy.deepcopy(mda5)])
        assert wait_for(lambda: subject_status(base, definition, "w-sub")) == "candidate"
        assert watcher.rounds == 1  # no poll did it: the notification did
    # shut down: the Subscriptions are removed from the server
    assert all(requests.get(f"{base}/Subscription/{sid}", headers=FHIR, timeout=30).status_code in (404, 410)
               for sid in [s["id"] for s in subs])


def test_notifications_from_a_local_sender(base, definition, tmp_path):
    """What rest-hook senders post: the resource, a PUT to {endpoint}/Type/id, an id-only backport Bundle,
    or nothing at all (then a poll); without the token: 401."""
    put_all(base, renamed("05-candidate-partial-birthdate", "w-note"))
    watcher = Watcher(FhirClient(base), definition, WatchState(tmp_path / "s.json", base), today=lambda: AS_OF_DAY)
    app = create_app(None, watcher=watcher, notify_token="tkn")
    with InThread(app) as url:
        hook = url + NOTIFY_PATH
        ok = {"Authorization": "Bearer tkn", **FHIR}
        obs = {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/w-note"}}
        assert requests.post(hook, json=obs, headers={"Authorization": "Bearer nope", **FHIR}, timeout=10).status_code == 401
        assert requests.post(hook, json=obs, timeout=10).status_code == 401
        assert requests.post(hook, json=obs, headers=ok, timeout=10).status_code == 200
        assert requests.put(f"{hook}/Observation/o1", json=obs, headers=ok, timeout=10).status_code == 200
        backport = {"resourceType": "Bundle", "type": "history", "entry": [{"resource": {
            "resourceType": "Parameters", "parameter": [{"name": "notification-event", "part": [
                {"name": "focus", "valueReference": {"reference": f"{base}/Patient/w-note"}}]}]}}]}
        assert requests.post(hook, json=backport, headers=ok, timeout=10).status_code == 200
        assert requests.post(hook, data=b"", headers=ok, timeout=10).status_code == 200
        assert requests.post(hook, data=b"x" * 10, headers={"Authorization": "Bearer tkn"}, timeout=10).status_code == 200
    queued = []
    while not watcher.queue.empty():
        queued.append(watcher.queue.get_nowait())
    assert queued == [("patient", "w-note"), ("patient", "w-note"), ("focus", "Patient/w-note"), ("poll", ""), ("poll", "")]
    ids, poll, _n = watcher._drain(queued[0])
    assert ids == {"w-note"} and not poll
    for item in queued[1:]:
        watcher.queue.put(item)
    ids, poll, n = watcher._drain(watcher.queue.get())
    assert ids == {"w-note"} and poll and n == 4
    rnd = watcher.screen_and_push(ids)
    assert rnd.statuses == {"candidate": 1} and rnd.pushed == 1
    assert subject_status(base, definition, "w-note") == "candidate"


def test_a_watch_state_of_another_server_is_refused(base, tmp_path, capsys):
    state = tmp_path / "w.json"
    state.write_text(json.dumps({"server": "https://other.example/fhir", "mark": None, "seen": {}}))
    assert watch_once(base, state) == 4
    assert "for another server" in capsys.readouterr().err


def _phi(resources: list[dict]) -> set[str]:
    """The strings of a sample's Patient a log must never show: id, names, identifier values, birth date, telecom."""
    out: set[str] = set()
    for r in resources:
        if r["resourceType"] != "Patient":
            continue
        out.add(r["id"])
        for n in r.get("name", []):
            out.update(x for x in [n.get("family"), n.get("text"), *n.get("given", [])] if x)
        out.update(i["value"] for i in r.get("identifier", []) if i.get("value"))
        out.update(t["value"] for t in r.get("telecom", []) if t.get("value"))
        if r.get("birthDate"):
            out.add(r["birthDate"])
    return out


def test_status_changes_are_logged_by_pseudonym_and_newly_eligible_patients_reach_the_webhook(base, definition, tmp_path, capsys):
    from pytest_httpserver import HTTPServer

    eligible, candidate = renamed("01-eligible-classic", "w-n01"), renamed("03-candidate-missing-tests", "w-n03")
    put_all(base, eligible + candidate)
    hook = HTTPServer(host="127.0.0.1", port=0)
    hook.expect_request("/hooks/3t", method="POST").respond_with_json({"ok": True})
    hook.start()
    try:
        state = tmp_path / "watch.json"
        assert watch_once(base, state, "--since", "2020-01-01", "--log-format", "json", "--notify", hook.url_for("/hooks/3t")) == 0
        records = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
        rs01 = f"ResearchSubject/{subject_id(definition.criteria, 'Patient/w-n01')}"
        rs03 = f"ResearchSubject/{subject_id(definition.criteria, 'Patient/w-n03')}"
        changes = {r["subject"]: r for r in records if r.get("event") == "watch-status-change"}
        assert changes[rs01]["status"] == "eligible" and changes[rs01]["previous"] is None
        assert changes[rs03]["status"] == "candidate" and changes[rs03]["level"] == "info"
        # the webhook heard of the newly eligible patient only, by pseudonym
        bodies = [json.loads(req.get_data()) for req, _resp in hook.log]
        mine = [b for b in bodies if b["subject"] in (rs01, rs03)]
        assert mine == [{"event": "newly-eligible", "study": definition.study.value, "subject": rs01, "status": "eligible",
                         "previous": None, "server": base, "time": mine[0]["time"]}]
        assert any(r.get("event") == "notify-sent" and r["subject"] == rs01 for r in records)
        # no PHI at INFO (nor anywhere in the log): names, identifiers, birth dates, the patients' FHIR ids
        text = "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "".join(json.dumps(b) for b in bodies)
        for phi in _phi(eligible) | _phi(candidate):
            assert phi not in text, phi
        # nothing changed: no new event, no second notification
        hook.clear_log()
        assert watch_once(base, state, "--log-format", "json", "--notify", hook.url_for("/hooks/3t")) == 0
        assert not [r for r in map(json.loads, capsys.readouterr().err.splitlines()) if r.get("event") == "watch-status-change"]
        # an HBsAg-positive result makes w-n01 ineligible: one change event, no notification
        hbsag = {"resourceType": "Observation", "id": "w-n01-hbsag-pos", "status": "final",
                 "code": {"coding": [{"system": "http://loinc.org", "code": "5196-1"}]},
                 "subject": {"reference": "Patient/w-n01"}, "effectiveDateTime": "2026-11-12",
                 "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "10828004"}]}}
        put_all(base, [hbsag])
        assert watch_once(base, state, "--log-format", "json", "--notify", hook.url_for("/hooks/3t")) == 0
        later = [r for r in map(json.loads, capsys.readouterr().err.splitlines()) if r.get("event") == "watch-status-change"]
        assert [(r["subject"], r["previous"], r["status"]) for r in later] == [(rs01, "eligible", "ineligible")]
        assert not hook.log
    finally:
        hook.clear()
        if hook.is_running():
            hook.stop()


def test_the_notify_command_gets_the_event_on_stdin_and_a_failing_hook_is_a_warning(base, definition, tmp_path, capsys):
    put_all(base, renamed("06-eligible-searchset-age18", "w-n02"))  # (02's own ResearchStudy would be a second study)
    got = tmp_path / "got.json"
    script = tmp_path / "tell.py"
    script.write_text("import os, sys\nopen(sys.argv[1], 'a').write(sys.stdin.read() + '|' + os.environ['FHIR3T_SUBJECT'] + '\\n')\n")
    state = tmp_path / "w.json"
    command = f"{sys.executable} {script} {got}"
    assert watch_once(base, state, "--since", "2020-01-01", "--log-format", "json", "--notify", command) == 0
    capsys.readouterr()
    rs02 = f"ResearchSubject/{subject_id(definition.criteria, 'Patient/w-n02')}"
    lines = [ln for ln in got.read_text().splitlines() if rs02 in ln]
    assert len(lines) == 1
    payload, env_subject = lines[0].rsplit("|", 1)
    assert json.loads(payload)["subject"] == rs02 == env_subject
    # a webhook that is down: the watch goes on, the failure is a warning naming the subject only
    put_all(base, renamed("01-eligible-classic", "w-n06"))
    closed = f"http://127.0.0.1:{_closed_port()}/hook"
    assert watch_once(base, state, "--log-format", "json", "--notify", closed) == 0
    records = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    failed = [r for r in records if r.get("event") == "notify-failed"]
    rs06 = f"ResearchSubject/{subject_id(definition.criteria, 'Patient/w-n06')}"
    assert [r["subject"] for r in failed] == [rs06] and failed[0]["level"] == "warning"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
