"""Emitted FHIR: valid, idempotent (stable ids), carrying the why of every criterion."""
from __future__ import annotations

import json

from conftest import SAMPLES
from fhir3t import screen
from fhir3t.canonical import EXT_CRITERION_RESULT, ID_RESEARCH_SUBJECT
from fhir3t.cli import main
from fhir3t.emit import screening_bundle
from fhir3t.messages import render
from fhir3t.validate import validate_resource

SCREENING = SAMPLES / "screening"
CMAP = [SAMPLES / "conceptmaps" / "hospital-local.json"]


def _results(definition_local):
    return list(screen([SCREENING], as_of="2026-11-16", concept_maps=CMAP))


def test_bundle_validates_clean_and_is_a_safe_transaction(definition_local):
    results = _results(definition_local)
    bundle, notes = screening_bundle(results, definition_local.criteria)
    assert bundle["type"] == "transaction"
    errors = [str(i) for i in validate_resource(bundle) if i.is_error]
    assert errors == []
    entries = bundle["entry"]
    study = entries[0]
    assert study["request"] == {"method": "POST", "url": "ResearchStudy",
                                "ifNoneExist": "identifier=http://clinicaltrials.gov|NCT06438679"}
    subjects = [e for e in entries if e["resource"]["resourceType"] == "ResearchSubject"]
    assert len(subjects) == 24  # p16 has no Patient id: noted, not emitted
    assert len(notes) == 1 and "urn:uuid:9c37c76c" in render(notes[0])  # a message, said in the reader's language
    for e in subjects:
        rid = e["resource"]["id"]
        assert e["request"] == {"method": "PUT", "url": f"ResearchSubject/{rid}"}
        assert e["resource"]["study"]["reference"] == study["fullUrl"]
        assert {"system": ID_RESEARCH_SUBJECT, "value": rid} in e["resource"]["identifier"]
    prov = entries[-1]
    assert prov["resource"]["resourceType"] == "Provenance"
    assert sorted(t["reference"] for t in prov["resource"]["target"]) == sorted(e["fullUrl"] for e in subjects)
    assert all(x["role"] == "source" for x in prov["resource"]["entity"])
    assert definition_local.criteria.digest in prov["resource"]["policy"][0]


def test_research_subject_carries_every_criterion_result(definition_local):
    results = {r.patient: r for r in _results(definition_local)}
    bundle, _ = screening_bundle(list(results.values()), definition_local.criteria)
    for e in bundle["entry"]:
        res = e["resource"]
        if res["resourceType"] != "ResearchSubject":
            continue
        r = results[res["individual"]["reference"]]
        assert res["status"] == r.status
        exts = [x for x in res["extension"] if x["url"] == EXT_CRITERION_RESULT]
        assert len(exts) == 22
        for ext, c in zip(exts, r.criteria):
            parts = {}
            for sub in ext["extension"]:
                parts.setdefault(sub["url"], []).append(next(v for k, v in sub.items() if k.startswith("value")))
            assert parts["id"] == [c.id] and parts["kind"] == [c.kind] and parts["result"] == [c.result]
            assert [v["reference"] for v in parts.get("evidence", [])] == list(c.evidence)
            assert parts["reason"] == [c.reason]


def test_re_emitting_gives_identical_identifiers(definition_local):
    a, _ = screening_bundle(_results(definition_local), definition_local.criteria)
    b, _ = screening_bundle(_results(definition_local), definition_local.criteria)

    def ids(bundle):
        return [(e["fullUrl"], e["request"], e["resource"].get("id"), e["resource"].get("identifier")) for e in bundle["entry"]]

    assert ids(a) == ids(b)
    # a different patient set keeps each patient's id
    c, _ = screening_bundle(_results(definition_local)[:3], definition_local.criteria)
    assert set(x[2] for x in ids(c)[1:-1]) <= set(x[2] for x in ids(a))


def test_enrollment_group_is_generated_from_the_criteria(definition_local):
    bundle, _ = screening_bundle(_results(definition_local)[:1], definition_local.criteria)
    study = bundle["entry"][0]["resource"]
    group = study["contained"][0]
    assert study["enrollment"] == [{"reference": "#enrollment"}]
    assert [c["code"]["text"] for c in group["characteristic"]] == [c.id for c in definition_local.criteria.criteria]
    assert [c["exclude"] for c in group["characteristic"]] == [c.kind == "exclusion" for c in definition_local.criteria.criteria]


def test_screen_emit_then_validate_cli(tmp_path, capsys):
    out = tmp_path / "out.json"
    rc = main(["screen", str(SCREENING), "--as-of", "2026-11-16", "--concept-map", str(CMAP[0]),
               "--emit", str(out), "--format", "ndjson", "--no-progress"])
    assert rc == 0
    capsys.readouterr()
    assert main(["validate", str(out), "--format", "json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["resourceType"] == "OperationOutcome"
    assert not [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
