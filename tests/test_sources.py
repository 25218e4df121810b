"""Readers: Bundle types, reference styles, NDJSON (plain and gz), parity, and bad input."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES
from factory import CM, cc, cond, obs, patient
from fhir3t import screen
from fhir3t.errors import InputError, Problems
from fhir3t.fhirutil import normalize_reference
from fhir3t.pipeline import Run
from fhir3t.records.build import RecordBuilder
from fhir3t.sources.grouping import GroupingSource, SharedIndex, group_documents

NDJSON = ROOT / "tests" / "data" / "ndjson"
SCREENING = SAMPLES / "screening"
AS_OF = "2026-11-16"
CMAP = [SAMPLES / "conceptmaps" / "hospital-local.json"]


def _summary(results):
    return {r.patient: (r.status, tuple((c.id, c.result, c.evidence) for c in r.criteria)) for r in results}


def test_bundle_and_ndjson_give_identical_results():
    files = [SCREENING / f for f in ("01-eligible-classic.json", "02-eligible-consent-resource.json", "22-local-codes.json")]
    from_bundles = _summary(screen(files, as_of=AS_OF, concept_maps=CMAP))
    from_ndjson = _summary(screen([NDJSON], as_of=AS_OF, concept_maps=CMAP))
    assert set(from_bundles) == {"Patient/p01", "Patient/p02", "Patient/p22"}
    assert from_ndjson == from_bundles


def test_gzipped_ndjson_reads_the_same(tmp_path):
    for f in NDJSON.glob("*.ndjson"):
        with gzip.open(tmp_path / f"{f.name}.gz", "wb") as out:
            out.write(f.read_bytes())
    assert _summary(screen([tmp_path], as_of=AS_OF, concept_maps=CMAP)) == _summary(screen([NDJSON], as_of=AS_OF, concept_maps=CMAP))


@pytest.mark.parametrize("ref,expected", [
    ("Patient/p1", "Patient/p1"),
    ("http://ehr.example.org/fhir/Patient/p1", "Patient/p1"),
    ("https://ehr.example.org/fhir/Patient/p1/_history/3", "Patient/p1"),
    ("urn:uuid:1234", "Patient/x"),
    ("urn:uuid:unknown", None),
])
def test_reference_styles(ref, expected):
    assert normalize_reference(ref, {"urn:uuid:1234": "Patient/x"}) == expected


def test_subject_patient_and_individual_all_attach_to_the_patient():
    p = patient()
    allergy = {"resourceType": "AllergyIntolerance", "id": "a", "patient": {"reference": "http://x.org/fhir/Patient/p1"},
               "code": cc("10432", "http://www.nlm.nih.gov/research/umls/rxnorm")}
    rs = {"resourceType": "ResearchSubject", "id": "rs", "status": "on-study", "study": {"reference": "ResearchStudy/z"},
          "individual": {"reference": "Patient/p1"}}
    o = obs("82424-3", "2026-11-01", valueString="++")
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": "http://x.org/fhir/Patient/p1", "resource": p, "search": {"mode": "match"}},
        {"resource": allergy, "search": {"mode": "include"}},
        {"resource": rs}, {"resource": o},
        {"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}},
    ]}
    problems = Problems()
    complete = group_documents([("b.json", bundle)], problems, SharedIndex())
    assert [r.key for r in complete] == ["Patient/p1"] and not problems.items
    assert {res["resourceType"] for res, _ in complete[0].resources} == {"Patient", "AllergyIntolerance", "ResearchSubject", "Observation"}


def test_transaction_bundle_with_urn_uuid_references(tmp_path):
    p = patient()
    del p["id"]
    c = cond("M33.10", CM)
    c.pop("id")
    c["subject"] = {"reference": "urn:uuid:aaa"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:aaa", "resource": p, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:bbb", "resource": c, "request": {"method": "POST", "url": "Condition"}},
    ]}
    (tmp_path / "t.json").write_text(json.dumps(bundle))
    [r] = list(screen([tmp_path], as_of=AS_OF))
    assert r.patient == "urn:uuid:aaa"
    assert r.by_id("I2-dm").result == "met" and r.by_id("I2-dm").evidence == ("urn:uuid:bbb",)


def test_multi_patient_bundle_and_folder_of_single_resources(tmp_path):
    a, b = patient(pid="a", birth="1990-01-01"), patient(pid="b", birth="2015-01-01")
    (tmp_path / "two.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                                  "entry": [{"resource": a}, {"resource": b}]}))
    results = {r.patient: r for r in screen([tmp_path / "two.json"], as_of=AS_OF)}
    assert results["Patient/a"].by_id("I1-age").result == "met"
    assert results["Patient/b"].by_id("I1-age").result == "not-met"
    # single resources, one per file, in a folder
    single = tmp_path / "single"
    single.mkdir()
    (single / "patient.json").write_text(json.dumps(patient(pid="c")))
    (single / "cond.json").write_text(json.dumps(cond("M33.1", "http://hl7.org/fhir/sid/icd-10", pid="c")))
    problems = Problems()
    [r] = list(screen([single], as_of=AS_OF, problems=problems))
    assert r.patient == "Patient/c" and r.by_id("I2-dm").result == "met"


def test_patient_and_resources_split_across_type_bundles(tmp_path):
    """One Bundle of Patients and one of Conditions (a type-split export) still join up."""
    pts = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient(pid="x1")}, {"resource": patient(pid="x2")}]}
    conds = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": cond("M33.1", CM, pid="x1")}]}
    (tmp_path / "a-patients.json").write_text(json.dumps(pts))
    (tmp_path / "b-conditions.json").write_text(json.dumps(conds))
    problems = Problems()
    results = {r.patient: r for r in screen([tmp_path], as_of=AS_OF, problems=problems)}
    assert results["Patient/x1"].by_id("I2-dm").result == "met"
    assert results["Patient/x2"].by_id("I2-dm").result == "not-met"
    assert not problems.items


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(screen([tmp_path / "nope"], as_of=AS_OF))


BAD_INPUTS = {
    "malformed.json": (b'{"resourceType": "Bundle", "entry": [', "not valid JSON"),
    "not-fhir.json": (b'{"hello": "world"}', "no resourceType"),
    "array.json": (b'[1, 2]', "no resourceType"),
    "no-type-entry.json": (json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"id": "x"}}, {"resource": patient(pid="ok1")}]}).encode(), "entry[0]: resource without resourceType"),
    "no-patient-ref.json": (json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": patient(pid="ok2")}, {"resource": {"resourceType": "Observation", "id": "o", "status": "final",
                                                        "code": cc("82424-3", "http://loinc.org")}}]}).encode(),
                            "entry[1]: Observation has no usable patient reference"),
    "bad-date.json": (json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": patient(pid="ok3")}, {"resource": obs("82424-3", "2026-13-45", pid="ok3", valueString="++")}]}).encode(),
                      "entry[1]: Observation.effectiveDateTime is not a FHIR date"),
    "unknown-system.json": (json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": patient(pid="ok4")}, {"resource": obs("X1", "2026-11-01", system="http://lab.local/codes", pid="ok4")}]}).encode(),
                            "code system http://lab.local/codes is unknown"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_reported_with_its_location_and_the_rest_still_screened(tmp_path, name):
    content, message = BAD_INPUTS[name]
    (tmp_path / name).write_bytes(content)
    shutil.copy(SCREENING / "01-eligible-classic.json", tmp_path / "good.json")
    problems = Problems()
    results = list(screen([tmp_path], as_of=AS_OF, problems=problems))
    assert "Patient/p01" in {r.patient for r in results}
    assert problems.any_skipped
    assert any(name in p.where and message in str(p) for p in problems), [str(p) for p in problems]


def test_bad_ndjson_line_names_the_line(tmp_path):
    lines = [json.dumps(patient(pid="n1")), "{not json", json.dumps({"resourceType": "Observation", "id": "o",
                                                                    "status": "final", "code": cc("82424-3", "http://loinc.org")}),
             json.dumps({"no": "type"})]
    (tmp_path / "Mixed.ndjson").write_text("\n".join(lines) + "\n")
    problems = Problems()
    [r] = list(screen([tmp_path], as_of=AS_OF, problems=problems))
    assert r.patient == "Patient/n1"
    where = {p.where for p in problems}
    assert any(w.endswith("Mixed.ndjson:2") for w in where)
    assert any(w.endswith("Mixed.ndjson:3") for w in where)
    assert any(w.endswith("Mixed.ndjson:4") for w in where)


def test_truncated_gzip_is_reported_not_raised(tmp_path):
    data = gzip.compress((json.dumps(patient(pid="g1")) + "\n").encode() * 50)
    (tmp_path / "Patient.ndjson.gz").write_bytes(data[: len(data) // 2])
    problems = Problems()
    list(screen([tmp_path], as_of=AS_OF, problems=problems))
    assert any("cannot read the file past this line" in p.message for p in problems)


def test_irrelevant_resources_are_not_kept(definition):
    """Keep only what criteria read: a blood-pressure Observation never reaches the record."""
    bp = obs("85354-9", "2026-11-01", valueString="120/80")
    mda5 = obs("82424-3", "2026-11-01", valueString="++")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient()}, {"resource": bp}, {"resource": mda5}]}
    [raw] = group_documents([("b", bundle)], Problems(), SharedIndex())
    run = Run.start(definition)
    record = RecordBuilder(run.filter, run.problems).build(raw)
    assert [r.ref for r in record.of("Observation")] == [f"Observation/{mda5['id']}"]


def test_every_file_is_read_before_any_patient_is_handed_over(tmp_path):
    """A patient's resources may sit in any file (a second system's export): all files come first."""
    for i in range(3):
        (tmp_path / f"{i}.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": patient(pid=f"s{i}")}, {"resource": cond("M33.1", CM, pid=f"s{i}")}]}))
    seen: list[Path] = []
    source = GroupingSource([tmp_path], Problems(), on_file=seen.append)
    first = next(iter(source))
    assert first.key == "Patient/s0" and len(seen) == 3


def test_parallel_screening_gives_the_same_results(tmp_path):
    """--jobs 2: same results, including records that join across files (done in the main process)."""
    for f in SCREENING.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    pts = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient(pid="x1")}]}
    conds = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": cond("M33.1", CM, pid="x1")}]}
    (tmp_path / "zz-a.json").write_text(json.dumps(pts))
    (tmp_path / "zz-b.json").write_text(json.dumps(conds))
    (tmp_path / "zz-bad.json").write_text("{")
    p1, p2 = Problems(), Problems()
    one = _summary(screen([tmp_path], as_of=AS_OF, concept_maps=CMAP, problems=p1))
    two = _summary(screen([tmp_path], as_of=AS_OF, concept_maps=CMAP, problems=p2, jobs=2))
    assert one == two and len(one) == 26
    assert one["Patient/x1"][1][1][1] == "met"  # I2 from the other file
    assert sorted(map(str, p1)) == sorted(map(str, p2)) and any("zz-bad.json" in str(p) for p in p2)


def test_a_patient_that_cannot_be_screened_is_reported_and_the_run_goes_on(tmp_path, monkeypatch):
    from fhir3t.criteria import Screener

    real = Screener.screen

    def flaky(self, record, as_of, d1=None, **kw):
        if record.key == "Patient/p03":
            raise TypeError("unexpected structure")
        return real(self, record, as_of, d1, **kw)

    monkeypatch.setattr(Screener, "screen", flaky)
    problems = Problems()
    results = list(screen([SCREENING], as_of=AS_OF, problems=problems))
    assert len(results) == 24 and "Patient/p03" not in {r.patient for r in results}
    assert any("Patient/p03: not screened" in p.message for p in problems) and problems.any_skipped


def test_real_bulk_export_sample_screens_cleanly():
    """The SMART sample Bulk export (Synthea, 13 patients) from ../shared, when it is there."""
    from conftest import SHARED

    bulk = SHARED / "data" / "bulk" / "smart-sample-bulk-10-patients"
    if not bulk.is_dir():
        pytest.skip("../shared/data/bulk not available")
    problems = Problems()
    results = list(screen([bulk], as_of=AS_OF, problems=problems))
    assert len(results) == 13 and not problems.any_skipped, [str(p) for p in problems][:5]
    # nobody there has dermatomyositis: every one is ineligible on I2, with a readable reason
    assert {r.status for r in results} == {"ineligible"}
    assert all(r.by_id("I2-dm").result == "not-met" and r.by_id("I2-dm").reason for r in results)


def test_concept_maps_are_found_among_inputs_whatever_their_key_order(tmp_path):
    from fhir3t.sources.files import discover_concept_maps

    cmap = json.loads((SAMPLES / "conceptmaps" / "hospital-local.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps(cmap))
    late = {k: v for k, v in cmap.items() if k != "resourceType"} | {"resourceType": "ConceptMap"}
    (tmp_path / "b.json").write_text(json.dumps(late))
    (tmp_path / "c.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                                 "entry": [{"resource": cmap}]}))
    found = discover_concept_maps(sorted(tmp_path.glob("*.json")))
    assert [p.name for p in found] == ["a.json", "b.json"]


def test_a_patient_read_by_two_processes_is_screened_once_whole(tmp_path):
    """--jobs 2 with two files: each process reads one; the patient's Patient and Condition meet again."""
    pts = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient(pid="x1")}]}
    conds = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": cond("M33.1", CM, pid="x1")}]}
    (tmp_path / "a.json").write_text(json.dumps(pts))
    (tmp_path / "b.json").write_text(json.dumps(conds))
    problems = Problems()
    [r] = list(screen([tmp_path], as_of=AS_OF, problems=problems, jobs=2))
    assert r.patient == "Patient/x1" and r.by_id("I2-dm").result == "met" and r.by_id("I1-age").result == "met"
    assert not problems.items


def test_an_unfinished_export_folder_is_said_to_be_partial(tmp_path):
    (tmp_path / "Patient.ndjson").write_text(json.dumps(patient(pid="e1")) + "\n")
    (tmp_path / ".fhir3t-export.state").write_text(json.dumps({"status_url": "x", "complete": False}))
    problems = Problems()
    [r] = list(screen([tmp_path], as_of=AS_OF, problems=problems))
    assert r.patient == "Patient/e1" and problems.any_skipped
    assert any("did not complete" in p.message and p.where == str(tmp_path) for p in problems)
    (tmp_path / ".fhir3t-export.state").write_text(json.dumps({"complete": True}))
    problems = Problems()
    list(screen([tmp_path], as_of=AS_OF, problems=problems))
    assert not any("did not complete" in p.message for p in problems)


@pytest.mark.parametrize("batch", [7, 64, 1 << 20])
def test_ndjson_lines_are_numbered_and_capped_the_same_whatever_the_read_size(tmp_path, monkeypatch, batch):
    """Lines read in batches: numbering, blank and CRLF lines, an over-long line inside a batch or
    across several, and a last line cut off mid-way, whatever the batch boundaries."""
    from fhir3t.sources import files
    from fhir3t.sources.files import Limits, ndjson_batches

    monkeypatch.setattr(files, "_BATCH", batch)
    long = json.dumps(patient(pid="x" * 400))
    rows = [json.dumps(patient(pid="a1")), "", json.dumps(patient(pid="a2")) + "\r", long, "  ",
            json.dumps(patient(pid="a3")), long, json.dumps(patient(pid="a4")), '{"resourceType": "Pat']
    path = tmp_path / "Patient.ndjson"
    path.write_text("\n".join(rows))
    problems = Problems()
    got = [(n, line, last and n == first + len(lines) - 1)
           for first, lines, last in ndjson_batches(path, problems, Limits(max_line_bytes=300))
           for n, line in enumerate(lines, first) if line.strip()]
    assert [n for n, _, _ in got] == [1, 3, 6, 8, 9]
    assert got[-1][2] and not any(t for _, _, t in got[:-1])
    assert sorted(p.where.rsplit(":", 1)[1] for p in problems if "over the limit" in p.message) == ["4", "7"]

    problems = Problems()
    sources = GroupingSource([tmp_path], problems, limits=Limits(max_line_bytes=300))
    sources.collect()
    assert sorted(r.key for r in sources.records()) == ["Patient/a1", "Patient/a2", "Patient/a3", "Patient/a4"]
    [cut] = [p for p in problems if "truncated" in p.message]
    assert cut.where.endswith("Patient.ndjson:9")
    assert not [p for p in problems if p.where.endswith((":2", ":5"))]  # blank lines are no problem


def test_auto_store_starts_on_disk_for_a_big_input_with_the_same_results(tmp_path, monkeypatch):
    from fhir3t.sources import grouping
    from fhir3t.sources.store import DiskStore, MemoryStore

    shutil.copytree(NDJSON, tmp_path / "in")
    small = GroupingSource([tmp_path / "in"], Problems())
    assert isinstance(small.collect(), MemoryStore)
    small.close()
    monkeypatch.setattr(grouping, "AUTO_DISK_BYTES", 1)
    big = GroupingSource([tmp_path / "in"], Problems())
    assert isinstance(big.collect(), DiskStore) and big.stats.spilled
    big.close()
    on_disk = _summary(screen([tmp_path / "in"], as_of=AS_OF, concept_maps=CMAP))
    monkeypatch.setattr(grouping, "AUTO_DISK_BYTES", 1 << 40)
    assert on_disk == _summary(screen([tmp_path / "in"], as_of=AS_OF, concept_maps=CMAP, store="memory"))


def test_disk_store_gives_back_every_patient_whole_as_memory_holds_it(tmp_path: Path) -> None:
    from fhir3t.sources.base import Unread
    from fhir3t.sources.store import DiskStore, MemoryStore

    disk, mem = DiskStore(tmp_path, partitions=4, buffer_bytes=64), MemoryStore()
    keys = ["Patient/p2", 'urn:uuid:odd"key\\with escapes', "Patient/p1", "Patient/é-中"]
    for i in range(40):
        for store in (disk, mem):
            key = keys[i % len(keys)]
            store.add(key, {"resourceType": "Observation", "id": f"o{i}", "note": [{"text": "阳性 \"+\""}]}, f"f.ndjson:{i}", "f")
            if i % 7 == 0:
                store.alias(key, f"urn:uuid:{i}", f"Observation/o{i}")
            if i % 11 == 0:
                store.unread(key, Unread("Condition", f"b.json#entry[{i}]", "garbled", None), "b.json")
    got = {k: (g.resources, g.aliases, g.unread, g.source) for k, g in disk.groups()}
    want = {k: (g.resources, g.aliases, g.unread, g.source) for k, g in mem.groups()}
    assert got == want and set(got) == set(keys)
    disk.close()
    assert not disk.dir.exists()


def _export_with(tmp_path: Path, extra: dict[str, list[dict]]) -> Path:
    """The eligible sample written as a Bulk export (one NDJSON file per type), with extra lines per file."""
    bundle = json.loads((SCREENING / "01-eligible-classic.json").read_text())
    by_type: dict[str, list[dict]] = {}
    for e in bundle["entry"]:
        by_type.setdefault(e["resource"]["resourceType"], []).append(e["resource"])
    for name, lines in extra.items():
        by_type.setdefault(name, []).extend(lines)
    for name, lines in by_type.items():
        (tmp_path / f"{name}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return tmp_path


HIV = cond("B20", CM, pid="p01")


@pytest.mark.parametrize("native", ["off", "on"])
@pytest.mark.parametrize("btype", ["collection", "searchset", "transaction"])
def test_a_bundle_written_as_an_ndjson_line_is_read(tmp_path, native, btype):
    if native == "on":
        pytest.importorskip("duckdb")
    line = {"resourceType": "Bundle", "type": btype, "entry": [{"fullUrl": f"urn:uuid:{HIV['id']}", "resource": HIV}]}
    folder = _export_with(tmp_path, {"Condition": [line]})
    [r] = list(screen([folder], as_of=AS_OF, native=native))
    assert r.by_id("E9-hiv").result == "met" and r.status == "ineligible"


@pytest.mark.parametrize("native", ["off", "on"])
def test_a_delete_of_a_bulk_deleted_file_keeps_a_copy_of_unknown_order_unknown(tmp_path, native):
    if native == "on":
        pytest.importorskip("duckdb")
    dm = {"resourceType": "Bundle", "type": "transaction",
          "entry": [{"request": {"method": "DELETE", "url": "Condition/p01-dm"}}]}
    folder = _export_with(tmp_path, {"deleted": [dm]})
    [r] = list(screen([folder], as_of=AS_OF, native=native))
    i2 = r.by_id("I2-dm")
    assert i2.result == "unknown" and "Condition/p01-dm" in i2.evidence and r.status != "eligible"
    # a deletion older than the copy read (both versioned) removes nothing
    dm["entry"][0]["response"] = {"etag": 'W/"1"'}
    bundle = json.loads((SCREENING / "01-eligible-classic.json").read_text())
    for e in bundle["entry"]:
        e["resource"].setdefault("meta", {})["versionId"] = "2"
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    for f in tmp_path.glob("*.ndjson"):
        if f.name != "deleted.ndjson":
            f.unlink()
    (tmp_path / "deleted.ndjson").write_text(json.dumps(dm) + "\n")
    [r] = list(screen([folder], as_of=AS_OF, native=native))
    assert r.by_id("I2-dm").result == "met" and r.status == "eligible"


def _hiv_line(**patch) -> bytes:
    return json.dumps({**HIV, **patch}).encode()


def _write_lines(folder: Path, name: str, extra: bytes) -> None:
    with (folder / name).open("ab") as fh:
        fh.write(extra + b"\n")


@pytest.mark.parametrize("native", ["off", "on"])
def test_a_line_with_bytes_that_are_not_utf8_is_read_with_them_replaced(tmp_path, native):
    if native == "on":
        pytest.importorskip("duckdb")
    folder = _export_with(tmp_path, {})
    _write_lines(folder, "Condition.ndjson", _hiv_line(note=[{"text": "XX"}]).replace(b"XX", b"caf\xe9 au lait"))
    problems = Problems()
    [r] = list(screen([folder], as_of=AS_OF, native=native, problems=problems))
    assert r.by_id("E9-hiv").result == "met"  # a Latin-1 note does not hide the diagnosis
    assert any("not UTF-8" in str(p) for p in problems)
    # a bad byte inside the code: no code fhir3t knows, so the record keeps its rules unknown
    (tmp_path / "code").mkdir()
    folder = _export_with(tmp_path / "code", {})
    _write_lines(folder, "Condition.ndjson", _hiv_line().replace(b'"B20"', b'"B2\xb00"'))
    [r] = list(screen([folder], as_of=AS_OF, native=native))
    assert r.by_id("E9-hiv").result == "unknown" and r.status != "eligible"


def test_a_bundle_file_with_bytes_that_are_not_utf8_is_read(tmp_path):
    bundle = json.loads((SCREENING / "01-eligible-classic.json").read_text())
    bundle["entry"].append({"resource": {**HIV, "note": [{"text": "XX"}]}})
    (tmp_path / "b.json").write_bytes(json.dumps(bundle).encode().replace(b"XX", b"\xff\xfe odd"))
    [r] = list(screen([tmp_path], as_of=AS_OF))
    assert r.by_id("E9-hiv").result == "met"


@pytest.mark.parametrize("native", ["off", "on"])
def test_a_line_that_is_not_json_keeps_the_patient_it_names_unknown(tmp_path, native):
    if native == "on":
        pytest.importorskip("duckdb")
    folder = _export_with(tmp_path, {})
    line = _hiv_line()
    _write_lines(folder, "Condition.ndjson", line[: line.index(b'"subject"') + 45] + b'", "onset')  # cut mid-record
    problems = Problems()
    [r] = list(screen([folder], as_of=AS_OF, native=native, problems=problems))
    e9 = r.by_id("E9-hiv")
    assert e9.result == "unknown" and any(ev.endswith("Condition.ndjson:2") for ev in e9.evidence)
    assert r.status == "candidate" and problems.any_skipped


@pytest.mark.parametrize("native", ["off", "on"])
def test_a_line_that_is_not_json_and_names_nobody_may_be_anyones(tmp_path, native):
    if native == "on":
        pytest.importorskip("duckdb")
    folder = _export_with(tmp_path, {})
    _write_lines(folder, "Condition.ndjson", _hiv_line()[:70])  # the type, but not whose
    [r] = list(screen([folder], as_of=AS_OF, native=native))
    assert r.by_id("E9-hiv").result == "unknown" and r.status == "candidate"
    # a line of a type no rule reads says nothing to any criterion
    folder = tmp_path / "enc"
    folder.mkdir()
    _export_with(folder, {})
    _write_lines(folder, "Encounter.ndjson", b'{"resourceType": "Encounter", "id": "e9", "status": "fini')
    [r] = list(screen([folder], as_of=AS_OF, native=native))
    assert r.status == "eligible"


@pytest.mark.parametrize("native", ["off", "on"])
def test_a_line_with_a_comma_before_a_closing_bracket_is_read_as_duckdb_reads_it(tmp_path, native):
    if native == "on":
        pytest.importorskip("duckdb")
    folder = _export_with(tmp_path, {})
    _write_lines(folder, "Condition.ndjson", _hiv_line()[:-1] + b", }")
    [r] = list(screen([folder], as_of=AS_OF, native=native))
    assert r.by_id("E9-hiv").result == "met"


def test_copies_of_a_patient_that_disagree_on_a_read_element_keep_it_unknown(tmp_path):
    folder = _export_with(tmp_path, {})
    p01 = json.loads((folder / "Patient.ndjson").read_text())
    for other in ("Patient.0.ndjson", "Patient.z.ndjson"):  # another export's copy, read before or after
        (folder / other).write_text(json.dumps({**p01, "birthDate": "2010-04-12"}) + "\n")
        [r] = list(screen([folder], as_of=AS_OF))
        i1 = r.by_id("I1-age")
        assert i1.result == "unknown" and "copies" in i1.reason and r.status == "candidate", other
        (folder / other).unlink()
    # ordered by meta.versionId: the newest copy decides
    (folder / "Patient.ndjson").write_text(json.dumps({**p01, "meta": {"versionId": "3"}}) + "\n")
    (folder / "Patient.2.ndjson").write_text(json.dumps({**p01, "birthDate": "2010-04-12", "meta": {"versionId": "2"}}) + "\n")
    [r] = list(screen([folder], as_of=AS_OF))
    assert r.by_id("I1-age").result == "met" and r.status == "eligible"
    (folder / "Patient.2.ndjson").write_text(json.dumps({**p01, "birthDate": "2010-04-12", "meta": {"versionId": "4"}}) + "\n")
    [r] = list(screen([folder], as_of=AS_OF))
    assert r.by_id("I1-age").result == "not-met"


def test_copies_of_a_patient_that_disagree_on_its_sex_keep_the_sex_rule_unknown(tmp_path):
    folder = _export_with(tmp_path, {})
    (folder / "Observation.ndjson").write_text("".join(
        line + "\n" for line in (folder / "Observation.ndjson").read_text().splitlines() if '"p01-hcg"' not in line))
    p01 = json.loads((folder / "Patient.ndjson").read_text())
    (folder / "Patient.ndjson").write_text(json.dumps({**p01, "gender": "male"}) + "\n")
    [r] = list(screen([folder], as_of=AS_OF))
    assert r.by_id("E13-pregnancy").result == "not-met"  # one copy: a man, without an hCG
    for other in ("Patient.0.ndjson", "Patient.z.ndjson"):  # another copy says female, read before or after
        (folder / other).write_text(json.dumps(p01) + "\n")
        [r] = list(screen([folder], as_of=AS_OF))
        assert r.by_id("E13-pregnancy").result == "unknown" and r.status == "candidate", other
        (folder / other).unlink()
