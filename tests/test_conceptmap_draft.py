"""The mapping workflow (issue 26): `fhir3t codes PATH --conceptmap-draft FILE` drafts a ConceptMap of the
unmapped local codes; a person reviews it; `--concept-map` takes it then, and refuses it before.

The hospital samples without their ConceptMap are the unmapped input; the hospital's own reviewed map
(samples/hospital/ConceptMap-zj2h-local.json) is what a reviewer arrived at. The draft is reviewed here
as a person would: the targets below are what each display names unambiguously."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from conftest import SAMPLES
from fhir3t.cli import main
from fhir3t.errors import ConfigError
from fhir3t.pipeline import Definition
from fhir3t.pipeline.conceptmap_draft import EXT_CONFIDENCE, EXT_COUNT
from fhir3t.pipeline.mapmatch import MIN_CONFIDENCE, candidates, targets, units
from fhir3t.terminology import ConceptMaps, Terminology

HOSPITAL = SAMPLES / "hospital"
REVIEWED = HOSPITAL / "ConceptMap-zj2h-local.json"
LIS, PACS, HIS, FORMULARY = (f"http://zj2h.example.org/fhir/CodeSystem/{s}" for s in ("lis-test", "pacs-exam", "his-diagnosis-gb", "formulary"))
LOINC, ICD10, RXNORM = "http://loinc.org", "http://hl7.org/fhir/sid/icd-10", "http://www.nlm.nih.gov/research/umls/rxnorm"

#: what each display names, unambiguously (the reviewer's reading)
UNAMBIGUOUS = {
    (LIS, "HBSAG"): (LOINC, "5196-1"),  # 乙肝表面抗原
    (LIS, "HBCAB"): (LOINC, "16933-4"),  # 乙肝核心抗体
    (LIS, "HCVAB"): (LOINC, "13955-0"),  # 丙肝抗体
    (LIS, "HIVAGAB"): (LOINC, "56888-1"),  # HIV抗原抗体联合检测
    (LIS, "MDA5"): (LOINC, "82424-3"),  # 抗MDA5抗体
    (LIS, "DLCOPP"): (LOINC, "98130-8"),  # 一氧化碳弥散量实测值/预计值%: DLCO % predicted, never DLCO measured
    (LIS, "HCG"): (LOINC, "2118-8"),  # 血清…: serum hCG (the sample map's 2106-3 is the urine code, same value set)
    (PACS, "CTCHEST"): (LOINC, "29252-4"),  # 胸部CT平扫: chest CT without contrast (the sample map: 24627-2, chest CT)
    (HIS, "M33.101"): (ICD10, "M33.1"),  # 皮肌炎
    (HIS, "M33.102"): (ICD10, "M33.1"),  # 无肌病性皮肌炎 (amyopathic DM: adult DM)
    (FORMULARY, "YP07110"): (RXNORM, "42316"),  # 他克莫司片: tacrolimus
}
#: named, but by a display that fits more than one code of the same value set (T-SPOT.TB: the panel or its result)
SAME_CONCEPT = {(LIS, "TSPOT")}


@pytest.fixture(scope="module")
def unmapped_input(tmp_path_factory) -> Path:
    """The hospital samples as exported, without the ConceptMap the hospital wrote for them."""
    out = tmp_path_factory.mktemp("hospital-unmapped")
    for part in ("ehr", "pharmacy", "outside-lab"):
        shutil.copytree(HOSPITAL / part, out / part)
    return out


@pytest.fixture(scope="module")
def drafted(unmapped_input, tmp_path_factory) -> tuple[dict, list[dict]]:
    folder = tmp_path_factory.mktemp("draft")
    codes = folder / "codes.json"
    assert main(["codes", str(unmapped_input), "--all", "--format", "json", "--out", str(codes),
                 "--conceptmap-draft", str(folder / "draft.json")]) == 0
    return json.loads((folder / "draft.json").read_text(encoding="utf-8")), json.loads(codes.read_text(encoding="utf-8"))


def elements(cm: dict) -> dict[tuple[str, str], tuple[str | None, dict]]:
    return {(g["source"], e["code"]): (g.get("target"), e) for g in cm["group"] for e in g["element"]}


def reviewed_targets() -> dict[tuple[str, str], tuple[str, str]]:
    cm = json.loads(REVIEWED.read_text(encoding="utf-8"))
    return {(g["source"], e["code"]): (g["target"], e["target"][0]["code"]) for g in cm["group"] for e in g["element"]}


def valuesets_of(code: tuple[str, str]) -> set[str]:
    tx = Terminology.load()
    return {vs.id for vs in tx.valuesets.values() if code in vs}


def test_the_draft_lists_every_unmapped_local_code_with_its_count(drafted):
    cm, rows = drafted
    assert cm["resourceType"] == "ConceptMap" and cm["status"] == "draft"
    local = {}
    for r in rows:
        if r["verdict"] == "unknown system":
            local[(r["system"], r["code"])] = local.get((r["system"], r["code"]), 0) + r["count"]
    found = elements(cm)
    assert set(found) == set(local) and len(found) == 43
    for key, (_target, el) in found.items():
        count = next(x["valueInteger"] for x in el["extension"] if x["url"] == EXT_COUNT)
        assert count == local[key], key
    assert found[(LIS, "HBSAG")][1]["display"] == "乙肝表面抗原" and local[(LIS, "HBSAG")] == 13


def test_a_reviewer_finds_the_right_target_where_the_display_names_it_and_no_wrong_concept(drafted):
    cm, _rows = drafted
    found = elements(cm)
    proposed = {k for k, (_t, el) in found.items() if el.get("target")}
    assert proposed == set(UNAMBIGUOUS) | SAME_CONCEPT  # nothing proposed for 乙肝表面抗体, 用力肺活量占预计值%, ALT, ...
    for key, expected in UNAMBIGUOUS.items():
        group_target, el = found[key]
        top = el["target"][0]
        assert (group_target, top["code"]) == expected, (key, group_target, top["code"])
        assert "equivalence" not in top  # left to the reviewer
        assert MIN_CONFIDENCE <= next(x["valueDecimal"] for x in top["extension"] if x["url"] == EXT_CONFIDENCE) <= 1
        assert el["display"] in top["comment"] and top["code"] in top["comment"]
    # every proposal is the concept the hospital's reviewers chose (the same value set as their target)
    reviewed = reviewed_targets()
    for key in proposed:
        group_target, el = found[key]
        theirs = valuesets_of(reviewed[key])
        assert theirs, key
        for t in el["target"]:
            assert valuesets_of((group_target, t["code"])) & theirs, (key, t["code"])
    # DLCO % predicted is never offered DLCO measured (or predicted), whatever the rank
    dlco = [t["code"] for t in found[(LIS, "DLCOPP")][1]["target"]]
    assert dlco == ["98130-8"] and "19911-7" not in dlco and "19910-9" not in dlco


def test_an_unreviewed_draft_is_refused_and_the_reviewed_one_screens_as_the_hospitals_map(drafted, unmapped_input, tmp_path, capsys):
    cm, _rows = drafted
    draft = tmp_path / "draft.json"
    draft.write_text(json.dumps(cm, ensure_ascii=False), encoding="utf-8")
    assert main(["screen", str(unmapped_input), "--as-of", "2026-11-16", "--concept-map", str(draft)]) == 4
    err = capsys.readouterr().err
    assert "without an equivalence" in err and "target[0]" in err and err.count("\n") == 1
    # the review: confirm the unambiguous targets and the same-concept one, delete the rest, add what the draft
    # could not propose from the hospital's own reading, set the status
    reviewed = copy.deepcopy(cm)
    theirs = reviewed_targets()
    for g in reviewed["group"]:
        for e in g["element"]:
            key = (g["source"], e["code"])
            if e.get("target"):
                e["target"] = [dict(e["target"][0], equivalence="equivalent")]
            elif key in theirs and theirs[key][0] == g.get("target"):
                e["target"] = [{"code": theirs[key][1], "equivalence": "equivalent"}]
    reviewed["status"] = "active"
    (tmp_path / "reviewed.json").write_text(json.dumps(reviewed, ensure_ascii=False), encoding="utf-8")
    ours = tmp_path / "ours.ndjson"
    assert main(["screen", str(unmapped_input), "--as-of", "2026-11-16", "--concept-map", str(tmp_path / "reviewed.json"),
                 "--format", "ndjson", "--out", str(ours), "--no-progress"]) == 0
    hospital = tmp_path / "hospital.ndjson"
    assert main(["screen", str(HOSPITAL), "--as-of", "2026-11-16", "--format", "ndjson", "--out", str(hospital),
                 "--no-progress"]) == 0

    def outcome(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        return {r["patient"]: (r["status"], {c["id"]: c["result"] for c in r["criteria"]}) for r in rows}

    got, want = outcome(ours), outcome(hospital)
    assert len(got) == 12 and got == want
    truth = {json.loads(x)["patient"]: json.loads(x)["status"] for x in (HOSPITAL / "truth.txt").read_text(encoding="utf-8").splitlines()}
    assert {p: s for p, (s, _c) in got.items()} == truth


@pytest.fixture(scope="module")
def pools():
    engine = Definition.load()
    others = list(engine.tx.valuesets.values())
    return lambda rtype: targets(engine.screener.plan.valuesets.get(rtype, ()), others)


@pytest.mark.parametrize(("rtype", "display", "expected"), [
    ("Observation", "DLCO % predicted", "98130-8"),  # not 19911-7 (DLCO measured), whose name 'DLCO' it holds
    ("Observation", "一氧化碳弥散量实测值/预计值%", "98130-8"),
    ("Observation", "一氧化碳弥散量实测值", "19911-7"),  # measured, when that is all it says
    ("Observation", "乙肝表面抗原", "5196-1"),
    ("Observation", "乙肝表面抗体", None),  # anti-HBs is not HBsAg: one character apart
    ("Observation", "丙肝抗原", None),  # HCV antigen is not the HCV antibody
    ("Condition", "幼年型皮肌炎", None),  # juvenile DM is excluded: half explained by 皮肌炎 is not enough
    ("Condition", "Juvenile dermatomyositis", None),
    ("Condition", "皮肌炎", "396230008"),  # a listed concept before an is-a root when the local code says nothing
    ("MedicationStatement", "他克莫司片", "42316"),  # the 3T set lists three drugs: the tacrolimus set names this one
    ("MedicationStatement", "奥美拉唑肠溶胶囊", None),
    ("Observation", "HIV抗原抗体联合检测", "56888-1"),  # 联合检测 names the act of testing
])
def test_candidates_from_a_display(pools, rtype, display, expected):
    found = candidates(display, "LOCAL", pools(rtype))
    assert (found[0].target.code if found else None) == expected
    if expected == "98130-8":
        assert all(c.target.code not in ("19911-7", "19910-9") for c in found)


def test_a_local_code_extending_the_target_ranks_it_first(pools):
    found = candidates("皮肌炎", "M33.101", pools("Condition"))
    assert found[0].extends and (found[0].target.system, found[0].target.code) == (ICD10, "M33.1")
    assert not candidates("皮肌炎", "DM01", pools("Condition"))[0].extends


def test_units_are_latin_words_chinese_characters_and_percent():
    assert [("一氧化碳 dlco 80% pred"[u.start:u.stop]) for u in units("一氧化碳 dlco 80% pred")] == \
        ["一", "氧", "化", "碳", "dlco", "80", "%", "pred"]


def test_a_concept_map_target_without_equivalence_is_refused_naming_where():
    tx = Terminology.load()
    maps = ConceptMaps(tx.systems)
    cm = {"resourceType": "ConceptMap", "group": [{"source": LIS, "target": LOINC, "element": [
        {"code": "A", "target": [{"code": "5196-1", "equivalence": "equivalent"}]},
        {"code": "B", "target": [{"code": "13955-0"}]}]}]}
    with pytest.raises(ConfigError, match=r"group\[0\]\.element\[1\]\.target\[0\]: a target without an equivalence"):
        maps.add(cm, "draft.json")
    cm["group"][0]["element"][1]["target"][0]["equivalence"] = "relatedto"  # reviewed, and not usable: no mapping
    maps = ConceptMaps(tx.systems)
    assert maps.add(cm, "draft.json") == 1 and maps.translate((LIS, "B")) == []


def test_the_codes_listing_names_dlco_percent_predicted_not_dlco_measured(tmp_path):
    out = tmp_path / "codes.json"
    assert main(["codes", str(SAMPLES / "screening" / "22-local-codes.json"), "--format", "json", "--out", str(out)]) == 0
    rows = {r["code"]: r for r in json.loads(out.read_text(encoding="utf-8"))}
    assert rows["DLCO-PP"]["named_like"] == ["dlco-percent-predicted"]
    assert rows["HBCAB"]["named_like"] == ["anti-hbc"] and rows["HBSAG"]["named_like"] == ["hbsag"]
