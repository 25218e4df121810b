"""RestSource against a hostile server on 127.0.0.1: malformed JSON where objects belong, parameters
ignored (everyone's resources come back), odd ids, and one unusable answer among good ones. The
rule under test: no internal error, a located problem, and the other patients are still screened."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from fhir3t.dates import parse_day
from fhir3t.errors import Problems, UsageError
from fhir3t.pipeline import Run, screen_records
from fhir3t.sources.grouping import SharedIndex
from fhir3t.sources.rest import RestSource, study_subject_patients
from fhir3t.transport.http import FhirClient, RetryPolicy

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "screening"
ICD_CM = "http://hl7.org/fhir/sid/icd-10-cm"
AS_OF = parse_day("2026-11-16")


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    s = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def srv(server) -> Iterator[HTTPServer]:
    yield server
    server.clear()


def sample(name: str, pid: str | None = None) -> list[dict]:
    """The sample's resources, re-keyed to patient `pid` (its id, its resources' ids and references)."""
    text = (SAMPLES / name).read_text()
    b = json.loads(text)
    old = next(e["resource"]["id"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient")
    if pid:
        b = json.loads(text.replace(old, pid))
    return [e["resource"] for e in b["entry"]]


def cap(**patient) -> dict:
    return {"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
        {"type": "Patient", **patient}, {"type": "Condition", "searchParam": [{"name": "patient"}, {"name": "code"}]}]}]}


def bundle(resources: list, **kw) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources], **kw}


def source(srv: HTTPServer, definition, problems: Problems, **kw) -> tuple[RestSource, SharedIndex]:
    client = FhirClient(srv.url_for("/fhir"), parallel=1, sleep=lambda s: None, timeout=10,
                        retry=RetryPolicy(attempts=2, rng=lambda: 0.0), **{k: kw.pop(k) for k in list(kw) if k.startswith("max_")})
    shared = SharedIndex()
    return RestSource(client, definition.tx, sorted(definition.screener.types), problems, shared, **kw), shared


def screen(srv, definition, problems, **kw):
    src, shared = source(srv, definition, problems, **kw)
    run = Run.start(definition, as_of=AS_OF, problems=problems)
    return {r.patient: r.status for r in screen_records(definition, run, src, shared)}


@pytest.mark.parametrize("cs", [
    {"resourceType": "CapabilityStatement", "rest": 5},
    {"resourceType": "CapabilityStatement", "rest": ["x", {"resource": "Patient"}]},
    cap(operation="everything"),
    cap(operation=[5, None, {"name": 7}, {"name": ["everything"]}]),
    {"resourceType": "CapabilityStatement", "rest": [{"interaction": [{"code": ["batch"]}, 3], "operation": {"name": "x"}}]},
    cap(searchParam=[{"name": []}, {"name": {}}], searchRevInclude="yes"),
])
def test_a_malformed_capability_statement_still_picks_a_strategy(srv, definition, cs):
    srv.expect_request("/fhir/metadata").respond_with_json(cs)
    src, _ = source(srv, definition, Problems())
    assert src.choose_strategy() in ("everything", "batch", "revinclude", "search")


def test_one_unusable_answer_costs_one_patient_the_others_are_screened(srv, definition):
    srv.expect_request("/fhir/metadata").respond_with_json(cap(operation=[{"name": "everything"}]))
    answers = {
        "ok1": bundle(sample("01-eligible-classic.json", "ok1")),
        "badjson": b'{"resourceType": "Bundle", "entry": [',
        "strings": {"resourceType": "Bundle", "entry": ["x", 5, {"resource": "y"}, {"resource": {"resourceType": ["Patient"]}}]},
        "list": [1, 2, 3],
        "status500": None,
        "huge": {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Basic", "id": "b", "x": "y" * 300_000}}]},
        "searchstr": {"resourceType": "Bundle", "entry": [{"search": "match", "resource": r} for r in sample("01-eligible-classic.json", "searchstr")]},
        "ok2": bundle(sample("01-eligible-classic.json", "ok2")),
    }

    def everything(request: Request) -> Response:
        pid = request.path.split("/")[3]
        a = answers[pid]
        if a is None:
            return Response("boom", status=500)
        return Response(a if isinstance(a, bytes) else json.dumps(a), content_type="application/fhir+json")

    srv.expect_request(re.compile(r"/fhir/Patient/[^/]+/\$everything")).respond_with_handler(everything)
    problems = Problems()
    got = screen(srv, definition, problems, patients=list(answers), max_body=200_000)
    assert got == {"Patient/ok1": "eligible", "Patient/searchstr": "eligible", "Patient/ok2": "eligible"}
    text = "\n".join(str(p) for p in problems)
    for pid, why in [("badjson", "not valid JSON"), ("list", "instead of a Bundle"), ("status500", "500"),
                     ("huge", "larger than"), ("strings", "entry is not a list of objects")]:
        assert any(f"Patient/{pid}" in x and why in x for x in text.splitlines()), (pid, text)
    assert "internal error" not in text and problems.any_skipped


def test_a_server_ignoring_the_patient_parameter_gives_no_patient_another_ones_data(srv, definition):
    srv.expect_request("/fhir/metadata").respond_with_json(cap())
    mine = sample("01-eligible-classic.json", "p1")
    other = sample("01-eligible-classic.json", "p2")
    # the 'search' strategy: Patient/p1, then one search per type, which this server answers with everyone's
    srv.expect_request("/fhir/Patient/p1").respond_with_json(next(r for r in mine if r["resourceType"] == "Patient"))
    everyone = [r for r in mine + other if r["resourceType"] != "Patient"]
    for rtype in sorted({r["resourceType"] for r in everyone} | set(definition.screener.types)):
        srv.expect_request(f"/fhir/{rtype}").respond_with_json(bundle([r for r in everyone if r["resourceType"] == rtype]))
    problems = Problems()
    src, _ = source(srv, definition, problems, patients=["p1"], strategy="search")
    got = list(src)
    assert [r.key for r in got] == ["Patient/p1"]
    refs = {json.dumps(res).count("Patient/p2") for res, _ in got[0].resources}
    assert refs == {0}  # none of p2's resources went into p1's record
    assert any("resources of other patients" in str(p) for p in problems)


def test_a_server_ignoring_the_code_parameter_makes_no_one_a_candidate_by_another_condition(srv, definition):
    srv.expect_request("/fhir/metadata").respond_with_json(cap(operation=[{"name": "everything"}]))
    srv.expect_request("/fhir/Condition").respond_with_json(bundle([
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/dm"},
         "code": {"coding": [{"system": ICD_CM, "code": "M33.10"}]}},
        {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/flu"},
         "code": {"coding": [{"system": ICD_CM, "code": "J10.1"}]}},
        {"resourceType": "Condition", "id": "c3", "subject": {"reference": "Patient/nocode"}},
        {"resourceType": "Condition", "id": "c4", "subject": {"reference": "Patient/../metadata"},
         "code": {"coding": [{"system": ICD_CM, "code": "M33.10"}]}},
        {"resourceType": "Condition", "id": "c5", "subject": "Patient/str", "code": 5}]))
    problems = Problems()
    src, _ = source(srv, definition, problems)
    assert src.candidates() == ["dm"]
    assert any("not in the value set" in str(p) for p in problems)


@pytest.mark.parametrize("bad", ["../metadata", "p1?_format=xml", "a/b", "x" * 65, "", "p 1"])
def test_a_patient_option_that_is_not_a_fhir_id_is_a_usage_error(srv, definition, bad):
    srv.expect_request("/fhir/metadata").respond_with_json(cap())
    src, _ = source(srv, definition, Problems(), patients=[bad])
    with pytest.raises(UsageError):
        src.candidates()


@pytest.mark.parametrize("group", [
    [1, 2], {"resourceType": "Group", "member": "x"}, {"resourceType": "Group", "member": [5, {"entity": "Patient/a"}]},
    {"resourceType": "Group", "member": [{"entity": {"reference": "Patient/../../x"}}, {"entity": {"reference": "Patient/ok"}}]},
])
def test_odd_group_answers_are_problems_not_crashes(srv, definition, group):
    srv.expect_request("/fhir/Group/g1").respond_with_json(group)
    problems = Problems()
    src, _ = source(srv, definition, problems, group="g1")
    try:
        ids = src.candidates()
    except Exception as exc:  # a ResponseError (exit 5) is fine; a crash is not
        from fhir3t.transport.http import ResponseError

        assert isinstance(exc, ResponseError)
        return
    assert ids in ([], ["ok"]) and len(problems) >= 1


def test_study_subjects_count_only_when_their_study_resolves_to_ours(srv):
    ours, theirs = "http://clinicaltrials.gov", "NCT00000001"
    # the server ignores `identifier` and `status`: it answers with every study and every subject
    srv.expect_request("/fhir/ResearchStudy").respond_with_json(bundle([
        {"resourceType": "ResearchStudy", "id": "S1", "identifier": [{"system": ours, "value": "NCT06438679"}]},
        {"resourceType": "ResearchStudy", "id": "S2", "identifier": [{"system": ours, "value": theirs}]}]))
    srv.expect_request("/fhir/ResearchSubject").respond_with_json(bundle([
        {"resourceType": "ResearchSubject", "id": "a", "status": "on-study", "study": {"reference": "ResearchStudy/S1"},
         "individual": {"reference": "Patient/mine"}},
        {"resourceType": "ResearchSubject", "id": "b", "status": "on-study", "study": {"reference": "ResearchStudy/S2"},
         "individual": {"reference": "Patient/other-study"}},
        {"resourceType": "ResearchSubject", "id": "c", "status": "candidate", "study": {"reference": "ResearchStudy/S1"},
         "individual": {"reference": "Patient/not-enrolled"}},
        {"resourceType": "ResearchSubject", "id": "d", "status": "on-study", "study": "ResearchStudy/S1", "individual": 5}]))
    client = FhirClient(srv.url_for("/fhir"), parallel=1, timeout=10)
    got = study_subject_patients(client, ours, "NCT06438679", Problems(), ["on-study"])
    assert got == ["mine"]
