"""The Spark runner gives the single-machine results (skipped unless pyspark is installed)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import fhir3t
from conftest import ROOT

pytest.importorskip("pyspark")
pytestmark = pytest.mark.spark

from fhir3t import spark as fspark  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
import population  # noqa: E402
from check_truth import compare  # noqa: E402

AS_OF = "2026-11-16"


@pytest.fixture(scope="module")
def session():
    s = fspark.session("local[2]", app="fhir3t-test")
    yield s
    s.stop()


def run_both(session, inputs: list[Path], out: Path, as_of: str) -> tuple[dict, dict]:
    job, _ = fspark.make_job([str(p) for p in inputs], fspark.date.fromisoformat(as_of), None, [])
    counts = fspark.run(session, [str(p) for p in inputs], str(out), job, fspark.read_types(job), partitions=3)
    on_spark = {r["patient"]: r for r in fspark.read_results(out)}
    assert counts["results"] == len(on_spark)
    single = {r.patient: r.to_dict() for r in fhir3t.screen(inputs, as_of=as_of)}
    return on_spark, single


def test_samples_ndjson_same_results_as_screen(session, tmp_path: Path) -> None:
    on_spark, single = run_both(session, [ROOT / "tests" / "data" / "ndjson"], tmp_path / "out", "2026-06-15")
    assert len(single) == 3
    assert on_spark == single


def test_results_naming_no_patient_and_odd_shapes_as_on_one_machine(session, tmp_path: Path) -> None:
    """A lab system's results without subject, adopted by a report in another file; a report whose
    `result` is a string; an Appointment whose participant is the patient."""
    data = tmp_path / "in"
    shutil.copytree(ROOT / "tests" / "data" / "ndjson", data)
    lab = [{"resourceType": "Observation", "id": "lab-hbsag", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "5196-1"}]},
            "effectiveDateTime": "2026-06-10", "valueCodeableConcept": {"text": "阳性"}},
           {"resourceType": "Observation", "id": "lab-unclaimed", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "13955-0"}]},
            "effectiveDateTime": "2026-06-10", "valueCodeableConcept": {"text": "阴性"}}]
    (data / "lab.ndjson").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lab), encoding="utf-8")
    reports = [{"resourceType": "DiagnosticReport", "id": "dr1", "status": "final", "subject": {"reference": "Patient/p01"},
                "code": {"text": "乙肝五项"}, "effectiveDateTime": "2026-06-10",
                "result": [{"reference": "http://lis.example/fhir/Observation/lab-hbsag"}]},
               {"resourceType": "DiagnosticReport", "id": "dr2", "status": "final", "subject": {"reference": "Patient/p02"},
                "code": {"text": "HBV"}, "effectiveDateTime": "2026-06-10", "result": "Observation/lab-hbsag"}]
    (data / "DiagnosticReport.ndjson").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reports),
                                                  encoding="utf-8")
    appointments = [{"resourceType": "Appointment", "id": "a1", "status": "booked",
                     "participant": [{"actor": {"reference": "Practitioner/d1"}, "status": "accepted"},
                                     {"actor": {"reference": "Patient/p03"}, "status": "accepted"}]},
                    {"resourceType": "Appointment", "id": "a2", "status": "booked",
                     "participant": [{"actor": {"reference": "Practitioner/d1"}, "status": "accepted"}]}]
    (data / "Appointment.ndjson").write_text("".join(json.dumps(r) + "\n" for r in appointments), encoding="utf-8")
    on_spark, single = run_both(session, [data], tmp_path / "out", "2026-06-15")
    assert on_spark == single
    assert any("Observation/lab-hbsag" in c["evidence"] for c in single["Patient/p01"]["criteria"])
    # the patient key expression on its own, over participants with and without a Patient (ANSI mode)
    from pyspark.sql import functions as F

    lines = session.read.text(str(data / "Appointment.ndjson"))
    parsed = lines.select(F.from_json(lines.value, fspark.line_schema()).alias("p"))
    keys = sorted(str(r[0]) for r in parsed.select(fspark.patient_key(F, parsed.p)).collect())
    assert keys == ["None", "Patient/p03"]


def _as_bulk_export(bundles: list[Path], out: Path) -> dict[str, str]:
    """The sample Bundles as a server's Bulk export would give them: type-split NDJSON, every resource with an
    id and `urn:uuid:` references rewritten to `Type/id`. Returns {Bundle-side patient key: export key}."""
    by_type: dict[str, list[str]] = {}
    renamed: dict[str, str] = {}
    for path in bundles:
        bundle = json.loads(path.read_text(encoding="utf-8"))
        entries = [e for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]
        local = {}
        for e in entries:
            res, full = e["resource"], e.get("fullUrl") or ""
            if full.startswith("urn:uuid:"):
                res.setdefault("id", full.removeprefix("urn:uuid:"))
                local[full] = f"{res['resourceType']}/{res['id']}"
        for e in entries:
            text = json.dumps(e["resource"], ensure_ascii=False)
            for full, ref in local.items():
                text = text.replace(f'"{full}"', f'"{ref}"')
            by_type.setdefault(e["resource"]["resourceType"], []).append(text)
        renamed.update({full: ref for full, ref in local.items() if ref.startswith("Patient/")})
    out.mkdir(parents=True)
    for rtype, lines in by_type.items():
        (out / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return renamed


def test_bundled_samples_as_a_bulk_export_same_results_on_spark(session, tmp_path: Path) -> None:
    bundles = sorted((ROOT / "samples" / "screening").glob("*.json")) + sorted((ROOT / "samples" / "hospital").glob("*/*.json"))
    maps = [ROOT / "samples" / "conceptmaps" / "hospital-local.json", ROOT / "samples" / "hospital" / "ConceptMap-zj2h-local.json"]
    renamed = _as_bulk_export(bundles, tmp_path / "export")
    job, _ = fspark.make_job([str(tmp_path / "export")], fspark.date.fromisoformat(AS_OF), None, [str(m) for m in maps])
    fspark.run(session, [str(tmp_path / "export")], str(tmp_path / "out"), job, fspark.read_types(job), partitions=3)
    on_spark = {r["patient"]: r for r in fspark.read_results(tmp_path / "out")}
    single = {r.patient: r.to_dict() for r in fhir3t.screen([tmp_path / "export"], as_of=AS_OF, concept_maps=maps)}
    assert on_spark == single
    from_bundles = {renamed.get(r.patient, r.patient): r.status for r in fhir3t.screen(bundles, as_of=AS_OF, concept_maps=maps)}
    assert {k: r["status"] for k, r in on_spark.items()} == from_bundles
    assert len(from_bundles) >= 30 and {"eligible", "ineligible", "candidate"} <= set(from_bundles.values())


def test_generated_population_same_results_as_screen_and_truth(session, tmp_path: Path) -> None:
    population.generate(2000, tmp_path / "pop", seed=5, chunk=500, lines_per_file=40_000, hospital_fraction=0.1)
    on_spark, single = run_both(session, [tmp_path / "pop" / "fhir"], tmp_path / "out", AS_OF)
    assert len(single) == 2000
    assert {r["status"] for r in single.values()} == {"eligible", "ineligible", "candidate"}
    assert on_spark == single
    truth = [json.loads(line) for line in (tmp_path / "pop" / "truth.ndjson").read_text(encoding="utf-8").splitlines()]
    verdict = compare(sorted(on_spark.values(), key=lambda r: r["patient"]), truth)
    assert not verdict["missing"] and not verdict["duplicated"] and not verdict["not_in_truth"]
    assert verdict["false_eligible"] == [] and verdict["wrong"] == [], verdict["wrong"][:3]


def test_results_are_written_sorted_by_patient_and_problems_named(session, tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    src = (ROOT / "tests" / "data" / "ndjson" / "Observation.ndjson").read_text(encoding="utf-8")
    (data / "Observation.ndjson").write_text(src + '{"resourceType": "Observation", "status": \n', encoding="utf-8")
    for name in ("Patient.ndjson", "Condition.ndjson"):
        (data / name).write_text((ROOT / "tests" / "data" / "ndjson" / name).read_text(encoding="utf-8"), encoding="utf-8")
    job, _ = fspark.make_job([str(data)], fspark.date.fromisoformat("2026-06-15"), None, [])
    fspark.run(session, [str(data)], str(tmp_path / "out"), job, fspark.read_types(job), partitions=2)
    patients = [r["patient"] for r in fspark.read_results(tmp_path / "out")]
    assert patients == sorted(patients) and len(patients) == 3
    problems = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "out" / "problems").glob("part-*"))
    assert "not valid JSON" in problems and "Observation.ndjson" in problems


def test_lines_of_no_known_type_and_lines_naming_a_patient_by_identifier_keep_the_promise_on_spark(session, tmp_path):
    """Issue 20 on Spark: a misspelt resourceType naming p01, a line without resourceType naming p02, and a
    rituximab administration naming p06 by MRN only (a logical reference) are what one machine makes of them:
    none of the three stays eligible, and every result is the single-machine one."""
    bundles = sorted((ROOT / "samples" / "screening").glob("*.json"))
    maps = [ROOT / "samples" / "conceptmaps" / "hospital-local.json"]
    export = tmp_path / "export"
    _as_bulk_export(bundles, export)
    rituximab = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "121191"}]}
    garbled = [
        {"resourceType": "MedicationStatment", "id": "g1", "status": "active", "subject": {"reference": "Patient/p01"},
         "medicationCodeableConcept": rituximab, "effectiveDateTime": "2026-10-01"},
        {"id": "g2", "status": "completed", "subject": {"reference": "Patient/p02"},
         "medicationCodeableConcept": rituximab, "effectiveDateTime": "2026-10-01"},
        {"resourceType": "MedicationAdministration", "id": "g3", "status": "completed",
         "subject": {"identifier": {"system": "http://hospital.example.org/mrn", "value": "MRN-100006"}},
         "medicationCodeableConcept": rituximab, "effectiveDateTime": "2026-10-01"},
    ]
    (export / "Garbled.ndjson").write_text("\n".join(json.dumps(g) for g in garbled) + "\n", encoding="utf-8")
    job, _ = fspark.make_job([str(export)], fspark.date.fromisoformat(AS_OF), None, [str(m) for m in maps])
    fspark.run(session, [str(export)], str(tmp_path / "out"), job, fspark.read_types(job), partitions=3)
    on_spark = {r["patient"]: r for r in fspark.read_results(tmp_path / "out")}
    single = {r.patient: r.to_dict() for r in fhir3t.screen([export], as_of=AS_OF, concept_maps=maps)}
    garbled_patients = ("Patient/p01", "Patient/p02", "Patient/p06")
    assert {k: v for k, v in on_spark.items() if k not in garbled_patients} == \
        {k: v for k, v in single.items() if k not in garbled_patients}
    for p in garbled_patients:  # the same verdict on every criterion (Spark names a line by its file, not file:line)
        assert [(c["id"], c["result"]) for c in on_spark[p]["criteria"]] == \
            [(c["id"], c["result"]) for c in single[p]["criteria"]], p
    assert {p: on_spark[p]["status"] for p in garbled_patients} == \
        {"Patient/p01": "candidate", "Patient/p02": "candidate", "Patient/p06": "ineligible"}


def test_lines_one_machine_reads_leniently_or_as_unread_keep_the_promise_on_spark(session, tmp_path):
    """The line shapes the file readers keep (stop 33) on Spark too: a cut-off HIV diagnosis naming an eligible
    patient, one written with a trailing comma, a Bundle written as one line holding a third eligible patient's HIV
    diagnosis, a Patient that links to another record of the same person, and a cut-off diagnosis naming nobody
    (anyone's). None of the three eligible patients stays eligible, and every criterion gets the single-machine
    verdict (a line is named by its file on Spark, by file:line on one machine), but for the Bundle line's patient:
    Spark does not read a Bundle line, it only keeps what it could decide unknown."""
    bundles = sorted((ROOT / "samples" / "screening").glob("*.json"))
    maps = [ROOT / "samples" / "conceptmaps" / "hospital-local.json"]
    export = tmp_path / "export"
    _as_bulk_export(bundles, export)
    before = {r.patient: r.status for r in fhir3t.screen([export], as_of=AS_OF, concept_maps=maps)}
    eligible = sorted(p for p, s in before.items() if s == "eligible")[:3]
    assert len(eligible) == 3
    hiv = {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]}

    def condition(cid: str, patient: str) -> str:
        return json.dumps({"resourceType": "Condition", "id": cid, "subject": {"reference": patient}, "code": hiv,
                           "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                          "code": "active"}]}, "onsetDateTime": "2026-01-05"})

    cut = condition("odd-cut", eligible[0])[:120]
    comma = condition("odd-comma", eligible[1])[:-1] + ', }'
    bundle = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": "https://ehr.example.org/fhir/Condition/odd-b", "resource": json.loads(condition("odd-b", eligible[2]))}]})
    (export / "Odd.ndjson").write_text("\n".join([cut, comma, bundle]) + "\n", encoding="utf-8")
    patients = (export / "Patient.ndjson").read_text(encoding="utf-8").splitlines()
    linked = next(i for i, line in enumerate(patients) if json.loads(line)["id"] == "p10")
    p10 = json.loads(patients[linked])
    p10["link"] = [{"other": {"reference": "Patient/p10-old"}, "type": "replaces"}]
    patients[linked] = json.dumps(p10)
    (export / "Patient.ndjson").write_text("\n".join(patients) + "\n", encoding="utf-8")
    job, _ = fspark.make_job([str(export)], fspark.date.fromisoformat(AS_OF), None, [str(m) for m in maps])
    fspark.run(session, [str(export)], str(tmp_path / "out"), job, fspark.read_types(job), partitions=3)
    on_spark = {r["patient"]: r for r in fspark.read_results(tmp_path / "out")}
    single = {r.patient: r.to_dict() for r in fhir3t.screen([export], as_of=AS_OF, concept_maps=maps)}
    assert sorted(on_spark) == sorted(single)
    assert not [p for p in eligible if single[p]["status"] == "eligible" or on_spark[p]["status"] == "eligible"]
    assert [c["result"] for c in single[eligible[2]]["criteria"] if c["id"] == "E9-hiv"] == ["met"]  # read on one machine
    for p in single:
        if p == eligible[2]:  # a Bundle line is read on one machine; on Spark it only keeps its patient's criteria unknown
            assert [c["result"] for c in on_spark[p]["criteria"] if c["id"] == "E9-hiv"] == ["unknown"]
            continue
        assert [(c["id"], c["result"]) for c in on_spark[p]["criteria"]] == \
            [(c["id"], c["result"]) for c in single[p]["criteria"]], p
        assert on_spark[p]["status"] == single[p]["status"], p
    # and a cut-off diagnosis naming nobody: anyone's, on one machine and on Spark
    (export / "Odd.ndjson").write_text(condition("odd-nobody", "x").replace('"subject": {"reference": "x"}, ', "")[:90]
                                       + "\n", encoding="utf-8")
    fspark.run(session, [str(export)], str(tmp_path / "out2"), job, fspark.read_types(job), partitions=3)
    on_spark = {r["patient"]: r for r in fspark.read_results(tmp_path / "out2")}
    single = {r.patient: r.to_dict() for r in fhir3t.screen([export], as_of=AS_OF, concept_maps=maps)}
    assert not [p for p, r in single.items() if r["status"] == "eligible"]
    assert {p: [(c["id"], c["result"]) for c in r["criteria"]] for p, r in on_spark.items()} == \
        {p: [(c["id"], c["result"]) for c in r["criteria"]] for p, r in single.items()}
