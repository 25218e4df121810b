"""The hospital-shaped corpus (tests/hospital.py) is itself correct: deterministic, valid FHIR R4,
its truth complete and safe, its edges on the right days, its 'irrelevant' codes truly irrelevant."""
from __future__ import annotations

import itertools
import json
import re
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

import hospital
from conftest import ROOT, SHARED
from fhir3t.validate import validate_resource

SCHEMA = SHARED / "data" / "hl7-examples" / "schema" / "fhir.schema.json"


@pytest.fixture(scope="module")
def charts() -> list[hospital.Chart]:
    return hospital.corpus(seed=0)


def test_same_seed_same_corpus_other_seed_other_baselines() -> None:
    a = [hospital.dumps(r) for c in hospital.corpus(seed=5) for _, r in c.items()]
    b = [hospital.dumps(r) for c in hospital.corpus(seed=5) for _, r in c.items()]
    c = [hospital.dumps(r) for c in hospital.corpus(seed=6) for _, r in c.items()]
    assert a == b
    assert a != c


def test_every_patient_has_a_truth_for_all_22_criteria_and_a_consistent_status(charts) -> None:
    assert len(charts) == len(hospital.SCENARIOS) > 300
    for c in charts:
        t = c.truth()
        assert list(t["criteria"]) == list(hospital.CRITERIA)
        assert t["status"] == hospital.status_of(t["criteria"])
        assert t["status"] in t["acceptable_status"]
        for crit, alts in t["acceptable"].items():
            assert t["criteria"][crit] in alts


def test_acceptable_answers_never_make_a_patient_eligible_who_is_not(charts) -> None:
    for c in charts:
        if c.status() != "eligible":
            assert "eligible" not in c.statuses(), c.scenario


def test_status_of_follows_the_spec() -> None:
    base = {c: ("met" if c.startswith("I") else "not-met") for c in hospital.CRITERIA}
    assert hospital.status_of(base) == "eligible"
    assert hospital.status_of({**base, "E7-hbv": "met"}) == "ineligible"
    assert hospital.status_of({**base, "I3-mda5": "not-met", "E7-hbv": "unknown"}) == "ineligible"
    assert hospital.status_of({**base, "E10-tb": "unknown"}) == "candidate"


def test_the_corpus_covers_every_outcome_and_the_issue_9_classes(charts) -> None:
    statuses = {c.status() for c in charts}
    assert statuses == {"eligible", "ineligible", "candidate"}
    shapes = {"component": 0, "hasMember": 0, "result": 0, "+08:00": 0, "Z\"": 0, "{%pred}": 0, "＋": 0, "阳性(": 0, "参考值": 0}
    for c in charts:
        text = "".join(hospital.dumps(r) for _, r in c.items())
        for k in shapes:
            shapes[k] += k in text
    assert all(n > 0 for n in shapes.values()), shapes
    systems = {s for c in charts for s, _ in c.items()}
    assert {"his", "lis", "pacs", "pharmacy", "tb", "tb-clinic", "outside-lab"} <= systems


@pytest.mark.parametrize("label,crit,lo", [
    ("mda5", "I3-mda5", lambda a: a - timedelta(days=28)),
    ("e2", "E2-recent-immunomodulator", lambda a: a - timedelta(days=14)),
    ("e12", "E12-vaccination", lambda a: a - timedelta(days=84)),
    ("e3", "E3-depleting-agent", lambda a: date(a.year, a.month - 6, a.day)),
])
def test_window_edges_fall_on_the_day_before_on_and_after(charts, label, crit, lo) -> None:
    by_name = {c.scenario: c for c in charts}
    start = lo(hospital.AS_OF)
    inside = by_name[f"edge-{label}-start-date"].expected[crit]
    outside = by_name[f"edge-{label}-start-1-date"].expected[crit]
    assert inside != outside
    for form, _ in hospital.FORMS:
        assert by_name[f"edge-{label}-start+1-{form}"].expected[crit] == inside
        assert by_name[f"edge-{label}-as_of-{form}"].expected[crit] == inside
        assert by_name[f"edge-{label}-start-{form}"].expected[crit] == inside
    # the record really is on that day, as written
    text = hospital.dumps([r for _, r in by_name[f"edge-{label}-start-1-cst-2355"].items()])
    assert f"{start - timedelta(days=1)}T23:55:00+08:00" in text
    # 23:55Z is the next day in Hangzhou: that reading may differ, and then unknown is accepted
    z = by_name[f"edge-{label}-start-1-utc-2355"]
    assert "unknown" in z.acceptable[crit]


def _strings(obj: object) -> set[str]:
    if isinstance(obj, dict):
        return {s for v in obj.values() for s in _strings(v)}
    if isinstance(obj, list):
        return {s for v in obj for s in _strings(v)}
    return {obj} if isinstance(obj, str) else set()


def _valueset_matchers() -> list[tuple[str, re.Pattern[str]]]:
    """(system, pattern) for every code the screening criteria's value sets list or filter (read from the JSON)."""
    named = _strings(json.loads((ROOT / "profiles" / "criteria" / "nct06438679.json").read_text()))
    out = []
    files = [f for f in sorted((ROOT / "profiles" / "valuesets").glob("*.json")) if f.stem in named]
    assert len(files) > 30
    for f in files:
        vs = json.loads(f.read_text())
        for inc in vs.get("compose", {}).get("include", []):
            system = inc.get("system", "")
            for c in inc.get("concept", []):
                out.append((system, re.compile(re.escape(c["code"]) + "$")))
            for flt in inc.get("filter", []):
                pat = re.escape(flt["value"]) + ".*" if flt["op"] == "is-a" else flt["value"]
                out.append((system, re.compile(pat + "$")))
    return out


def test_product_codes_and_background_codes_are_in_no_value_set() -> None:
    matchers = _valueset_matchers()

    def listed(system: str, code: str) -> bool:
        return any(s == system and p.match(code) for s, p in matchers)

    for d in hospital.DRUGS.values():
        for code, _ in (d.scd, d.sbd):
            assert not listed(hospital.RX, code), (d.name, code)
        if d.group != "other":
            assert listed(hospital.RX, d.ingredient), d.name  # the spec's ingredient code is in the data
    for code in hospital.HISDX_CODES:  # local codes count only through the ConceptMap
        assert not listed(hospital.HISDX, code)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import population
    for code, _ in population.CONDITIONS + population.PROCEDURES + population.ALLERGIES:
        assert not listed(hospital.SCT, code), code
    for code, _ in population.MEDS:
        assert not listed(hospital.RX, code), code
    for code, _ in population.VACCINES:
        assert not listed(hospital.CVX, code), code
    lab_codes = [t[0] for t in population.VITALS] + [c for p in population.LAB_PANELS for c in (p[0], *(t[0] for t in p[2]))]
    for code in lab_codes:
        assert not listed(hospital.LOINC, code), code


def _shape(obj: object) -> object:
    if isinstance(obj, dict):
        return tuple(sorted((k, _shape(v)) for k, v in obj.items()))
    if isinstance(obj, list):
        return ("[]", *sorted({_shape(v) for v in obj}, key=repr))
    return type(obj).__name__


def test_resources_are_valid_fhir_r4(charts) -> None:
    resources = [r for c in charts for _, r in c.items()] + [hospital.concept_map()]
    errors = {}
    for r in resources:
        bad = [str(i) for i in validate_resource(r) if i.is_error]
        if bad:
            errors[f"{r['resourceType']}/{r.get('id')}"] = bad[:3]
    assert not errors, dict(itertools.islice(errors.items(), 5))


@pytest.mark.skipif(not SCHEMA.is_file(), reason="../shared R4 JSON Schema not available")
def test_every_resource_shape_passes_the_official_r4_json_schema(charts) -> None:
    import jsonschema

    validator = jsonschema.Draft6Validator(json.loads(SCHEMA.read_text()))
    seen = {}
    for c in charts:
        for _, r in c.items():
            seen.setdefault(_shape(r), r)
    assert len(seen) > 50
    failures = [(r["resourceType"], e.message[:200]) for r in seen.values() for e in itertools.islice(validator.iter_errors(r), 1)]
    assert not failures, failures[:5]


def test_writers_put_each_system_in_its_own_folder_and_the_truth_beside(tmp_path: Path, charts) -> None:
    hospital.main([str(tmp_path), "--layout", "both"])
    truth = [json.loads(x) for x in (tmp_path / "truth.ndjson").read_text().splitlines()]
    assert [t["patient"] for t in truth] == [c.key for c in charts]
    nd = tmp_path / "ndjson"
    assert (nd / hospital.CONCEPT_MAP_FILE).is_file()
    assert {p.name for p in nd.iterdir() if p.is_dir()} == set(hospital.SYSTEMS)
    lines = [json.loads(x) for f in nd.rglob("*.ndjson") for x in f.read_text().splitlines()]
    assert len(lines) == sum(len(hospital.patient_items(c)) for c in charts) + len(list(hospital.shared_items(charts)))
    assert not any("truth" in f.name for f in nd.rglob("*"))
    # Bundles: only the EHR's holds the Patient (a second copy only where the scenario says so)
    ehr = json.loads((tmp_path / "bundles" / "ehr" / f"{charts[0].pid}.json").read_text())
    assert ehr["entry"][0]["resource"]["resourceType"] == "Patient"
    for f in (tmp_path / "bundles" / "pharmacy").glob("h*.json"):
        assert all(e["resource"]["resourceType"] != "Patient" for e in json.loads(f.read_text())["entry"])


def test_samples_hospital_are_what_the_generator_writes(tmp_path: Path) -> None:
    """samples/hospital/ is generated: the committed files equal a fresh run (no hand edits that drift)."""
    here = ROOT / "samples" / "hospital"
    sys.path.insert(0, str(here))
    import generate

    cs = generate.charts()
    hospital.write_bundles(cs, tmp_path)
    hospital.write_truth(cs, tmp_path / "truth.txt")
    fresh = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {k: (here / k).read_bytes() for k in fresh}
    assert committed == fresh
    assert (here / "README.md").read_text(encoding="utf-8") == generate.readme(cs)
    assert {c.status() for c in cs} == {"eligible", "ineligible", "candidate"}
