"""--terminology URL: a FHIR terminology server widens what fhir3t can read, and its failures never
make a record count as absent. The server here is a fake on loopback (pytest-httpserver)."""
from __future__ import annotations

import json

import pytest
from werkzeug import Response

from conftest import AS_OF
from factory import SCT, bundle, cc, cond, patient
from fhir3t.api import screen as screen_files
from fhir3t.errors import Problems
from fhir3t.pipeline import Definition
from fhir3t.pipeline.terminology import terminology_summary
from fhir3t.transport.http import FhirClient
from fhir3t.transport.terminology import TerminologyServer

NSCLC = "254637007"  # non-small cell lung cancer, a child of 363346000 (malignant neoplasm)
LOCAL = "http://hospital.example.org/CodeSystem/dx"


def _screen(definition, *resources):
    problems = Problems()
    [r] = list(screen_files([], as_of=AS_OF, definition=definition, problems=problems,
                            documents=[("t.json", bundle(patient(), *resources))]))
    return r, problems


def _fake(httpserver, *, expand: bool = True, fail: bool = False):
    def expand_handler(request):
        if fail:
            return Response("down", status=503)
        url = request.args.get("url", "")
        if not expand:
            return Response(json.dumps({"resourceType": "OperationOutcome", "issue": []}), status=400)
        codes = [NSCLC] if url.endswith("isa/363346000") else []
        return Response(json.dumps({"resourceType": "ValueSet", "expansion": {
            "total": len(codes), "contains": [{"system": SCT, "code": c} for c in codes]}}),
            content_type="application/fhir+json")

    def subsumes_handler(request):
        outcome = "subsumes" if (request.args.get("codeA"), request.args.get("codeB")) == ("363346000", NSCLC) \
            else "not-subsumed"
        return Response(json.dumps({"resourceType": "Parameters", "parameter": [{"name": "outcome", "valueCode": outcome}]}),
                        content_type="application/fhir+json")

    def translate_handler(request):
        match = request.args.get("code") == "ZL-88" and request.args.get("targetsystem") == "http://hl7.org/fhir/sid/icd-10"
        params = [{"name": "result", "valueBoolean": match}]
        if match:
            params.append({"name": "match", "part": [
                {"name": "equivalence", "valueCode": "equivalent"},
                {"name": "concept", "valueCoding": {"system": "http://hl7.org/fhir/sid/icd-10", "code": "C34.9"}}]})
        return Response(json.dumps({"resourceType": "Parameters", "parameter": params}), content_type="application/fhir+json")

    httpserver.expect_request("/fhir/ValueSet/$expand").respond_with_handler(expand_handler)
    httpserver.expect_request("/fhir/CodeSystem/$subsumes").respond_with_handler(subsumes_handler)
    httpserver.expect_request("/fhir/ConceptMap/$translate").respond_with_handler(translate_handler)
    return TerminologyServer(FhirClient(httpserver.url_for("/fhir"), timeout=5, sleep=lambda s: None))


def test_without_a_server_a_snomed_child_is_only_a_suspect():
    r, _ = _screen(Definition.load(), cond(NSCLC, SCT, onsetDateTime="2025-03-01"))
    assert r.by_id("E6-malignancy").result == "not-met"  # no name in the text: 'another diagnosis'


@pytest.mark.parametrize("expand", [True, False])
def test_descendants_from_the_server_make_the_child_count(httpserver, expand):
    definition = Definition.load()
    server = _fake(httpserver, expand=expand)
    definition = definition.with_terminology_server(server, Problems())
    r, _ = _screen(definition, cond(NSCLC, SCT, onsetDateTime="2025-03-01"))
    assert r.by_id("E6-malignancy").result == "met" and r.status == "ineligible"


def test_a_local_code_translated_by_the_server_is_read(httpserver):
    definition = Definition.load()
    definition = definition.with_terminology_server(_fake(httpserver), Problems())
    c = cond("C34.9", onsetDateTime="2025-03-01")
    c["code"] = cc("ZL-88", LOCAL)
    r, _ = _screen(definition, c)
    assert r.by_id("E6-malignancy").result == "met"


def test_a_failing_server_changes_nothing_and_is_said(httpserver):
    definition = Definition.load()
    server = _fake(httpserver, fail=True)
    problems = Problems()
    definition = definition.with_terminology_server(server, problems)
    c = cond("C34.9", onsetDateTime="2025-03-01")
    c["code"] = cc("ZL-99", LOCAL)
    r, _ = _screen(definition, c)
    assert r.by_id("E6-malignancy").result == "unknown"  # an unread local code: never 'no malignancy'
    terminology_summary(server, problems)
    assert any("terminology server failed" in p.message for p in problems)
