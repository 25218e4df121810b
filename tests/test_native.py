"""The native first pass (sources/native.py, extra `native`: DuckDB) keeps at least what the Python reader
keeps: on generated and hospital-shaped exports, and on files shaped to trip a second JSON reader (blank
lines, CRLF, a BOM, a truncated last line, a repeated member, what DuckDB accepts and orjson refuses),
every result is the Python reader's, while it really drops lines in DuckDB.

Known gaps, left open (issue 28): a line orjson refuses but DuckDB accepts (a trailing comma) whose key
was dropped gets no "not valid JSON" problem; on hospital-shaped exports, a fresh process's native run
missed 2 of 5 "code system ... is unknown to fhir3t" notes (results equal), a difference that depends on
the verdict caches the Definition keeps across runs, so notes are not compared on the generated export."""
from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

from conftest import ROOT
from fhir3t.errors import Problems
from fhir3t.pipeline import Definition, Run
from fhir3t.pipeline.base import FileInputs, screen_records
from fhir3t.pipeline.screening import screen_files
from fhir3t.sources.grouping import GroupingSource

pytest.importorskip("duckdb")
sys.path.insert(0, str(ROOT / "benchmarks"))
import population

AS_OF = "2026-11-16"


@pytest.fixture(scope="module")
def pop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pop")
    population.generate(300, out, seed=11, jobs=1, chunk=150, lines_per_file=4000, dm_fraction=0.3,
                        hospital_fraction=0.2)
    return out / "fhir"


def both(definition: Definition, paths: list[Path]) -> tuple[list, list]:
    got = []
    for native in ("off", "on"):
        problems = Problems()
        run = Run.start(definition, as_of=AS_OF, problems=problems)
        results = [r.to_dict() for r in screen_files(definition, run, FileInputs(tuple(paths), native=native))]
        got.append((results, [str(p) for p in problems]))
    return got[0], got[1]


def test_the_native_pass_gives_the_python_readers_results_and_drops_in_duckdb(pop, definition):
    python, native = both(definition, [pop])
    assert len(python[0]) >= 300 and native[0] == python[0]
    # it did the work natively: keys learnt as dropped, no file handed back to Python
    run = Run.start(definition, as_of=AS_OF, problems=Problems())
    src = GroupingSource([pop], run.problems, run.filter, native=True)
    assert len(list(screen_records(definition, run, src, src.shared))) == len(python[0])
    lines = src._native
    assert lines is not None and lines.fallbacks == 0 and len(lines.dropped) >= 5


def test_files_shaped_to_trip_a_second_reader_give_the_same_results_and_problems(pop, tmp_path, definition):
    obs = sorted(pop.glob("Observation.*.ndjson"))[0].read_bytes().splitlines()
    pats = sorted(pop.glob("Patient.*.ndjson"))[0].read_bytes().splitlines()
    wanted = {orjson.loads(x)["subject"]["reference"].rsplit("/", 1)[1] for x in obs[:300]}
    patients = [p for p in pats if orjson.loads(p)["id"] in wanted]
    dup = orjson.loads(obs[0])  # a repeated "code": DuckDB reads the first, orjson the last
    dup_line = orjson.dumps(dup)[:-1] + b',"code":' + orjson.dumps({"text": "repeated"}) + b"}"
    cases = {
        "blank-lines": b"\n".join(obs[:100]) + b"\n\n\n" + b"\n".join(obs[100:300]) + b"\n",
        "crlf": b"\r\n".join(obs[:300]) + b"\r\n",
        "bom": b"\xef\xbb\xbf" + b"\n".join(obs[:300]) + b"\n",
        "truncated-last": b"\n".join(obs[:300]) + b"\n" + obs[300][: len(obs[300]) // 2],
        "repeated-member": b"\n".join([*obs[:150], dup_line, *obs[150:300]]) + b"\n",
        "trailing-comma": b"\n".join([*obs[:150], obs[150][:-1] + b",}", *obs[151:300]]) + b"\n",
        "padded": b"\n".join(b"  " + x + b" " for x in obs[:300]) + b"\n",
    }
    for name, data in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "Patient.ndjson").write_bytes(b"\n".join(patients) + b"\n")
        (folder / "Observation.ndjson").write_bytes(data)
        python, native = both(definition, [folder])
        assert python[0], name
        assert native[0] == python[0], name
        if name != "trailing-comma":  # the documented difference: that line's problem is not said
            assert native[1] == python[1], name


def test_the_native_key_never_drops_what_a_drop_verdict_did_not_see(tmp_path, definition):
    """Issue 20 beside issue 28: a drop learnt from one line applies to every line of its key (type, main code,
    member names), so it is learnt only where nothing else in the line could matter: not from an allergy coded
    'Drug allergy' (a later one may name thalidomide in reaction.substance), not from a later version (kept
    whatever it says: it may supersede a copy that counts; meta.versionId is in the key)."""
    p01 = orjson.loads((ROOT / "samples" / "screening" / "01-eligible-classic.json").read_bytes())
    by_type: dict[str, list[dict]] = {}
    for e in p01["entry"]:
        by_type.setdefault(e["resource"]["resourceType"], []).append(e["resource"])
    sct, rx = "http://snomed.info/sct", "http://www.nlm.nih.gov/research/umls/rxnorm"
    drug_allergy = {"coding": [{"system": sct, "code": "416098002", "display": "Drug allergy"}]}
    htn = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10", "display": "Hypertension"}]}
    fillers, conds = [], []
    for i in range(40):  # other patients' allergies and later-version diagnoses no criterion reads
        by_type["Patient"].append({"resourceType": "Patient", "id": f"f{i}", "birthDate": "1970-01-01"})
        fillers.append({"resourceType": "AllergyIntolerance", "id": f"f{i}-a", "patient": {"reference": f"Patient/f{i}"},
                        "code": drug_allergy, "reaction": [{"substance": {"text": "peanut"}}]})
        conds.append({"resourceType": "Condition", "id": f"f{i}-c", "subject": {"reference": f"Patient/f{i}"},
                      "meta": {"versionId": "2"}, "code": htn})
    allergy = {"resourceType": "AllergyIntolerance", "id": "p01-a", "patient": {"reference": "Patient/p01"},
               "code": drug_allergy, "reaction": [{"substance": {"coding": [{"system": rx, "code": "10432"}]}}]}
    dm = next(r for r in by_type["Condition"] if r["id"] == "p01-dm")
    dm_v2 = {**dm, "meta": {"versionId": "2"}, "code": htn}  # the diagnosis recoded: no longer dermatomyositis
    dm["meta"] = {"versionId": "1"}
    by_type["AllergyIntolerance"] = [*fillers, allergy]
    by_type["Condition"] = [*by_type["Condition"], *conds]
    for rtype, rows in by_type.items():
        (tmp_path / f"{rtype}.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "Condition.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [*conds, dm_v2]))
    python, native = both(definition, [tmp_path])
    assert native[0] == python[0]
    p = next(r for r in native[0] if r["patient"] == "Patient/p01")
    crit = {c["id"]: c["result"] for c in p["criteria"]}
    assert crit["E11-hypersensitivity"] == "unknown" and crit["I2-dm"] == "not-met" and p["status"] == "ineligible"
