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


def test_a_file_of_mixed_types_gives_the_python_readers_results(pop, tmp_path, definition):
    """Keys are computed for the type a file starts with (a Bulk export writes one type per file): in a file
    of every type, interleaved, the lines of the other types get no key and are judged in Python."""
    files = sorted(pop.glob("*.ndjson"))
    columns = [f.read_bytes().splitlines() for f in files]
    first = next(i for i, f in enumerate(files) if f.name.startswith("Observation."))
    columns.insert(0, columns.pop(first))  # the file starts with an Observation
    mixed = [line for row in zip(*(iter(c) for c in columns), strict=False) for line in row]
    rest = [line for c in columns for line in c[min(map(len, columns)):]]
    (tmp_path / "export.ndjson").write_bytes(b"\n".join(mixed + rest) + b"\n")
    python, native = both(definition, [tmp_path])
    assert len(python[0]) >= 300 and native[0] == python[0]
    lines = _native_for(definition)
    keys = _keys(lines, tmp_path / "export.ndjson")
    assert {k.split("\x1f", 1)[0] for k in keys.values() if k} == {"Observation"}


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


LOINC, CAT = "http://loinc.org", "http://terminology.hl7.org/CodeSystem/observation-category"
VITAL = {"coding": [{"system": CAT, "code": "vital-signs"}]}
HEART_RATE = {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"}
HBSAG_NAME = {"coding": [{"system": "http://example.org/local-lab", "code": "X1", "display": "HBsAg"}]}


def _clone(bundle: dict, pid: str) -> list[dict]:
    """The sample patient's resources under another patient id, without its HBsAg test (a record naming
    HBsAg elsewhere is then what the criterion has to say about it)."""
    return [orjson.loads(orjson.dumps(e["resource"]).replace(b"p01", pid.encode())) for e in bundle["entry"]
            if e["resource"].get("id") != "p01-hbsag"]


def _heart_rate(pid: str, n: int, **extra: object) -> dict:
    return {"resourceType": "Observation", "id": f"{pid}-hr{n}", "status": "final", "category": [VITAL],
            "code": HEART_RATE, "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2026-10-01",
            "valueQuantity": {"value": 70 + n, "unit": "/min"}, **extra}


def _raw_line(res: dict, member: str, raw: bytes) -> bytes:
    """A line with one more member written as raw JSON text (a repeated name orjson cannot write)."""
    return orjson.dumps(res)[:-1] + b',"' + member.encode() + b'":' + raw + b"}"


#: lines alike in type and main code (a heart rate, which no rule reads), each naming a criterion's concept (or
#: not) in another element; a drop learnt from the plain heart rates must not reach any that a criterion wants
VARIANTS: dict[str, object] = {
    "category": {"category": [VITAL, HBSAG_NAME]},
    "value": {"valueCodeableConcept": {"text": "HBsAg positive"}},
    "interpretation": {"interpretation": [HBSAG_NAME]},
    "display-elsewhere": {"bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "1", "display": "HBsAg"}]}},
    "unknown-member": {"hospitalFinding": {"text": "HBsAg"}},
    "contained": {"contained": [{"resourceType": "Observation", "id": "c1", "code": {"text": "HBsAg"}}]},
    # a nested repeated name: orjson reads the last coding list (DuckDB writes both)
    "nested-dup-wanted": b'[{"coding":[{"system":"' + CAT.encode() + b'","code":"vital-signs"}],"coding":'
                         + orjson.dumps(HBSAG_NAME["coding"]) + b"}]",
    "nested-dup-plain": b'[{"coding":' + orjson.dumps(HBSAG_NAME["coding"]) + b',"coding":[{"system":"'
                        + CAT.encode() + b'","code":"vital-signs"}]}]',
    "plain": {},
}


def test_lines_alike_in_code_but_naming_a_concept_elsewhere_give_the_python_readers_results(tmp_path, definition):
    """The native key holds every element the keep/drop decision reads (relevance.key_elements): a heart rate
    dropped by its key never takes with it a heart rate whose category, value, interpretation or another
    element names a criterion's concept, one with a nested repeated member, an unknown member or contained
    resources. Each variant follows its twin naming nothing (the same line with 'Normal' for 'HBsAg': the
    same member names, dropped by Python) in the same file (where Python drops by the key it learnt) and in
    a later file (where DuckDB does)."""
    p01 = orjson.loads((ROOT / "samples" / "screening" / "01-eligible-classic.json").read_bytes())
    patients, obs, later = [], [], []
    for i in range(60):  # plain heart rates of other patients: their key is learnt as dropped
        patients.append({"resourceType": "Patient", "id": f"f{i}", "birthDate": "1970-01-01"})
        obs.append(orjson.dumps(_heart_rate(f"f{i}", i)))
    other: list[dict] = []

    def line(pid: str, variant: object, harmless: bool) -> bytes:
        hr = _heart_rate(pid, 0)
        raw = variant if isinstance(variant, bytes) else orjson.dumps({**hr, **variant})
        if isinstance(variant, bytes):
            del hr["category"]
            raw = _raw_line(hr, "category", variant)
        return raw.replace(b"HBsAg", b"Normal") if harmless else raw

    for name, variant in VARIANTS.items():
        for i in range(3):  # its twin naming nothing a criterion reads, on other patients, first
            patients.append({"resourceType": "Patient", "id": f"t-{name}-{i}", "birthDate": "1970-01-01"})
            obs.append(line(f"t-{name}-{i}", variant, True))
    for name, variant in VARIANTS.items():
        for where, out in (("a", obs), ("b", later)):
            pid = f"v-{name}-{where}"
            rows = _clone(p01, pid)
            patients += [r for r in rows if r["resourceType"] == "Patient"]
            other += [r for r in rows if r["resourceType"] != "Patient"]
            out.append(line(pid, variant, False))
    (tmp_path / "Patient.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in patients))
    (tmp_path / "Observation.0.ndjson").write_bytes(b"\n".join(obs) + b"\n")
    (tmp_path / "Observation.1.ndjson").write_bytes(b"\n".join(later) + b"\n")
    for rtype in sorted({r["resourceType"] for r in other}):
        (tmp_path / f"{rtype}.x.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in other
                                                               if r["resourceType"] == rtype))
    python, native = both(definition, [tmp_path])
    assert native[0] == python[0]
    by = {r["patient"]: r for r in python[0]}

    def summary(pid: str) -> bytes:  # the whole result (criteria, reasons, evidence), the patient's id aside
        return orjson.dumps(by[f"Patient/{pid}"]).replace(pid.encode(), b"X")

    plain = summary("v-plain-a")
    assert summary("v-plain-b") == plain == summary("v-nested-dup-plain-a")
    for name in ("category", "value", "interpretation", "display-elsewhere", "unknown-member", "contained",
                 "nested-dup-wanted"):
        for where in "ab":  # the Python reader reads each (it names the record): so must the native pass
            assert summary(f"v-{name}-{where}") != plain, name
    # and the native pass did drop the plain heart rates by their key, in DuckDB for the later file
    run = Run.start(definition, as_of=AS_OF, problems=Problems())
    src = GroupingSource([tmp_path], run.problems, run.filter, native=True)
    list(screen_records(definition, run, src, src.shared))
    lines = src._native
    assert lines is not None and lines.fallbacks == 0
    assert any(k.startswith("Observation\x1f") for k in lines.dropped)


def _native_for(definition: Definition):
    from fhir3t.r4defs import resource_types

    run = Run.start(definition, as_of=AS_OF, problems=Problems())
    lines = run.filter.native_lines(frozenset({"Medication"}), resource_types())
    assert lines is not None
    return lines


def _keys(lines, path: Path) -> dict[str, str]:
    """line text -> key, as the native pass computes them for a file."""
    sql = lines.queries(lines.head_type(path.read_bytes()[:512]))[0]
    return {text: key for _n, _c, _len, key, text in lines.con.execute(sql, [str(path)]).fetchall()}


def test_duckdb_writes_both_of_a_nested_repeated_member_so_the_key_tells_them_apart(tmp_path, definition):
    """What the faithfulness guard rests on (sources.native.NativeLines.faithful): DuckDB's json_extract
    writes every member of a nested object, repeated ones too, where orjson keeps the last. So a line with a
    nested repeated member never shares its key with the line orjson reads it as, and its own key is never
    learnt as dropped (orjson's writing of it differs from the key)."""
    hr = _heart_rate("x", 0)
    del hr["category"]
    dup = _raw_line(hr, "category", VARIANTS["nested-dup-wanted"])  # type: ignore[arg-type]
    read_as = orjson.dumps(orjson.loads(dup))  # orjson: the last coding list only
    top_dup = orjson.dumps(_heart_rate("x", 0))[:-1] + b',"code":' + orjson.dumps({"text": "HBsAg"}) + b"}"
    path = tmp_path / "Observation.ndjson"
    path.write_bytes(b"\n".join([dup, read_as, top_dup]) + b"\n")
    lines = _native_for(definition)
    keys = _keys(lines, path)
    k_dup, k_read, k_top = keys[dup.decode()], keys[read_as.decode()], keys[top_dup.decode()]
    assert k_dup != k_read and '"vital-signs"}],"coding":[' in k_dup  # both coding lists are in the key
    assert not lines.faithful(k_dup, orjson.loads(dup))
    assert lines.faithful(k_read, orjson.loads(read_as))
    # a repeated `code`: DuckDB counts one member more than orjson keeps
    assert int(k_top.split("\x1f")[1]) == len(orjson.loads(top_dup)) + 1 and not lines.faithful(k_top, orjson.loads(top_dup))
    for key, text in ((k_dup, dup), (k_top, top_dup)):
        lines.learn(key, False, orjson.loads(text))
        assert lines.verdicts[key] is None and key not in lines.dropped
    lines.learn(k_read, False, orjson.loads(read_as))
    assert k_read in lines.dropped


def test_learning_is_bounded_per_type_and_lines_of_unlearnt_keys_go_to_python(tmp_path, definition, monkeypatch):
    """A keyed element that differs on every line (a reference) makes a key per line: a type stops learning
    after MAX_KEYS_PER_TYPE keys, so what the native pass holds stays small at any N, and the results stay
    the Python reader's."""
    from fhir3t.sources import native

    monkeypatch.setattr(native, "MAX_KEYS_PER_TYPE", 5)
    p01 = orjson.loads((ROOT / "samples" / "screening" / "01-eligible-classic.json").read_bytes())
    rows = _clone(p01, "p01")
    hrs = [_heart_rate("p01", i, derivedFrom=[{"reference": f"Observation/o{i}"}]) for i in range(40)]
    hrs.append(_heart_rate("p01", 99, derivedFrom=[{"reference": "Observation/o1", "display": "HBsAg"}]))
    for rtype in {r["resourceType"] for r in rows}:
        mine = [r for r in rows if r["resourceType"] == rtype] + (hrs if rtype == "Observation" else [])
        (tmp_path / f"{rtype}.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in mine))
    python, native_ = both(definition, [tmp_path])
    assert native_[0] == python[0]
    run = Run.start(definition, as_of=AS_OF, problems=Problems())
    src = GroupingSource([tmp_path], run.problems, run.filter, native=True)
    list(screen_records(definition, run, src, src.shared))
    lines = src._native
    assert lines is not None
    assert sum(k.startswith("Observation\x1f") for k in lines.verdicts) == 5


NORMAL_NAME = {"coding": [{"system": "http://example.org/local-lab", "code": "X2", "display": "Normal"}]}


def _variation(draw) -> bytes:
    """A heart rate whose other elements are drawn from small pools, so that lines share keys: each element
    names HBsAg (a criterion's concept), names nothing a criterion reads, or is not there."""
    from hypothesis import strategies as st

    hr = _heart_rate("PID", 0)
    hr["category"] = draw(st.sampled_from([[VITAL], [VITAL, HBSAG_NAME], [VITAL, NORMAL_NAME]]))
    for element, pool in (("valueCodeableConcept", [{"text": "HBsAg positive"}, {"text": "Normal"}]),
                          ("interpretation", [[HBSAG_NAME], [NORMAL_NAME]]),
                          ("hospitalFinding", [{"text": "HBsAg"}, {"text": "Normal"}]),
                          ("contained", [[{"resourceType": "Observation", "id": "c", "code": {"text": "HBsAg"}}],
                                         [{"resourceType": "Observation", "id": "c", "code": {"text": "Normal"}}]])):
        choice = draw(st.sampled_from([None, *pool]))
        if choice is not None:
            hr[element] = choice
    if draw(st.booleans()):  # the category as a nested repeated member, in either order
        del hr["category"]
        return _raw_line(hr, "category", draw(st.sampled_from([VARIANTS["nested-dup-wanted"],
                                                               VARIANTS["nested-dup-plain"]])))  # type: ignore[arg-type]
    return orjson.dumps(hr)


def test_property_generated_variations_of_a_heart_rate_give_the_python_readers_results(tmp_path_factory, definition):
    """Hypothesis: lines alike in code, drawn from small pools of concept-bearing elements so that keys repeat
    within and across files, give exactly the Python reader's results through the native pass."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    p01 = orjson.loads((ROOT / "samples" / "screening" / "01-eligible-classic.json").read_bytes())

    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data) -> None:
        folder = tmp_path_factory.mktemp("variations")
        n = data.draw(st.integers(min_value=4, max_value=14))
        rows, files = [], ([], [])
        for i in range(n):
            pid = f"q{i}"
            rows += _clone(p01, pid)
            files[i * 2 // n].append(_variation(data.draw).replace(b"PID", pid.encode()))
        for rtype in sorted({r["resourceType"] for r in rows}):
            (folder / f"{rtype}.x.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows
                                                              if r["resourceType"] == rtype))
        for i, lines in enumerate(files):
            (folder / f"Observation.{i}.ndjson").write_bytes(b"".join(x + b"\n" for x in lines))
        python, native = both(definition, [folder])
        assert native[0] == python[0]

    check()


def test_a_repeated_version_id_never_shares_the_key_of_a_first_version(tmp_path, definition):
    """`"meta": {"versionId": "1", "versionId": "2"}`: DuckDB's path reads 1, orjson 2 (a later version, kept
    whatever it says: it supersedes the diagnosis that made the patient eligible). Such a line is marked in
    its key, so the drop learnt from first versions alike in everything else never reaches it."""
    p01 = orjson.loads((ROOT / "samples" / "screening" / "01-eligible-classic.json").read_bytes())
    rows = _clone(p01, "p01")
    htn = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10", "display": "Hypertension"}]}
    dm = next(r for r in rows if r["id"] == "p01-dm")
    recoded = {**{k: v for k, v in dm.items() if k not in ("meta", "resourceType")}, "code": htn}
    head = b'{"resourceType":"Condition","meta":'
    # first versions of the same diagnosis, recoded, of other patients: alike in every member but the patient
    fillers = [head + b'{"versionId":"1"},' + orjson.dumps(recoded)[1:].replace(b"p01", f"f{i}".encode())
               for i in range(30)]
    line = head + b'{"versionId":"1","versionId":"2"},' + orjson.dumps(recoded)[1:]
    assert orjson.loads(line)["meta"] == {"versionId": "2"}
    (tmp_path / "later").mkdir()
    for rtype in {r["resourceType"] for r in rows}:
        mine = [r for r in rows if r["resourceType"] == rtype]
        (tmp_path / f"{rtype}.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in mine))
    (tmp_path / "Condition.f.ndjson").write_bytes(b"".join(x + b"\n" for x in fillers))
    (tmp_path / "later" / "Condition.ndjson").write_bytes(b"".join(x + b"\n" for x in fillers) + line + b"\n")
    python, native = both(definition, [tmp_path])
    assert native[0] == python[0]
    p = next(r for r in python[0] if r["patient"] == "Patient/p01")
    assert {c["id"]: c["result"] for c in p["criteria"]}["I2-dm"] != "met"  # the later version superseded it


def test_over_its_memory_limit_the_native_pass_hands_files_to_python_and_writes_nothing_to_disk(
        pop, tmp_path, definition, monkeypatch):
    from fhir3t.sources import native

    monkeypatch.setattr(native, "MEMORY_MB", 4)  # below what reading any of these files needs
    # DuckDB's default spill folder is `.tmp` in the working directory; today's query allocates nothing DuckDB
    # would spill (the run passes with spilling on too), so this guards a later query that sorts or joins more
    monkeypatch.chdir(tmp_path)
    run = Run.start(definition, as_of=AS_OF, problems=Problems())
    src = GroupingSource([pop], run.problems, run.filter, native=True)
    results = [r.to_dict() for r in screen_records(definition, run, src, src.shared)]
    assert src._native is not None and src._native.fallbacks > 0
    python = [r.to_dict() for r in screen_files(definition, Run.start(definition, as_of=AS_OF, problems=Problems()),
                                                FileInputs((pop,), native="off"))]
    assert results == python
    assert list(tmp_path.iterdir()) == []


def test_without_duckdb_auto_reads_in_python_and_on_names_the_extra_to_install(pop, monkeypatch):
    import importlib.util

    import fhir3t.pipeline.base as base
    from fhir3t.errors import UsageError
    from fhir3t.pipeline.base import use_native

    monkeypatch.setattr(base, "NATIVE_AUTO_BYTES", 1)  # this export counts as big
    assert use_native("auto", [pop]) is True and use_native("off", [pop]) is False
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "duckdb" else real(name, *a))
    assert use_native("auto", [pop]) is False
    with pytest.raises(UsageError, match=r'pip install "fhir3t\[native\]"'):
        use_native("on", [pop])
