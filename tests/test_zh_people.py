"""What the clinician, the engineer and the safety reader see in zh-CN (issue 23): the CDS card over real HTTP (the
call's Accept-Language, else the site's language; English for an English call), an order's card, check-server
against a FHIR server on loopback, and the safety listing with the CTCAE terms and drugs by their Chinese names.
Codes, references and machine fields stay as they are."""
from __future__ import annotations

import json
import re

import pytest
import requests

from cds_helpers import CONCEPT_MAP, SAMPLES_AS_OF, SERVICE, full_prefetch, hook_request, running, sample_resources
from conftest import SAMPLES
from fake_fhir import loopback_server, populated
from fhir3t.cli import main
from fhir3t.pipeline import Definition
from fhir3t.service.settings import ServeSettings

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
#: Latin words that may stand in Chinese text: codes, systems, test abbreviations, criterion ids, the trial's names
LATIN_OK = re.compile(r"(?<![A-Za-z0-9])(LOINC|SNOMED|CT|ICD|WHO|RxNorm|ATC|NCT\d+|HBsAg|HBc|HBV|DNA|HCV|RNA|HIV|IGRA|"
                      r"TST|hCG|DLCO|MDA5|JAK|fhir3t|nct06438679-eligibility|[EI]\d+-[a-z0-9-]+|[A-Z0-9-]{4,}|D1|"
                      r"\d[A-Za-z0-9.-]*)(?![A-Za-z0-9])")


def english_words(text: str) -> list[str]:
    """Latin words of three letters or more outside codes, allowed names and quoted text (a hospital's own test
    name is quoted as its ConceptMap writes it)."""
    return re.findall(r"[A-Za-z][A-Za-z'-]{2,}", LATIN_OK.sub(" ", re.sub(r"“[^”]*”", " ", text)))


@pytest.fixture(scope="module")
def definition() -> Definition:
    return Definition.load(concept_maps=[CONCEPT_MAP])


def _card(url: str, cds, sample: str, headers: dict | None = None, hook: str = SERVICE) -> dict:
    res = sample_resources(sample)
    pid = next(x["id"] for x in res if x["resourceType"] == "Patient")
    r = requests.post(f"{url}/cds-services/{hook}", json=hook_request(pid, full_prefetch(cds, res)),
                      headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    return card


def test_a_card_is_chinese_when_the_ehr_asks_for_it_and_english_otherwise(definition, tmp_path):
    with running(ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, show_again_after_days=0), definition) as (url, cds):
        zh = _card(url, cds, "03-candidate-missing-tests", ZH)
        en = _card(url, cds, "03-candidate-missing-tests", {"Accept-Language": "en-US"})
        page = requests.get(zh["links"][0]["url"], timeout=10).text  # the explanation page, in the card's language
    assert zh["summary"] == "可能符合 NCT06438679（3T方案治疗抗MDA5阳性皮肌炎）：4条标准需要补充数据"
    assert en["summary"] == "Possible candidate for NCT06438679 (3T in MDA5+ dermatomyositis): 4 criteria need data"
    detail = zh["detail"]
    assert detail.startswith("截至 2026-11-16，22 条标准中 18 条符合。其余待定：")
    # tests by the names the value sets give them in Chinese (the card names tests, never codes)
    assert "- **乙型肝炎**：开具乙肝表面抗原（HBsAg）、乙肝核心抗体（抗-HBc）和乙肝病毒DNA（HBV DNA）" in detail
    assert english_words(zh["summary"] + detail) == []
    assert {o["code"] for o in zh["overrideReasons"]} == {o["code"] for o in en["overrideReasons"]}  # codes stay
    assert all(english_words(o["display"]) == [] and re.search(r"[\u4e00-\u9fff]", o["display"]) for o in zh["overrideReasons"])
    tests, refer = zh["suggestions"]
    # the drafted orders: the hospital's own code first (the ConceptMap read backwards), the Chinese name as text
    hbsag = tests["actions"][0]["resource"]
    assert [c["code"] for c in hbsag["code"]["coding"]] == ["HBSAG", "5196-1"] and hbsag["code"]["text"] == "乙肝表面抗原（HBsAg）"
    assert tests["actions"][0]["description"] == "起草乙肝表面抗原（HBsAg）检查医嘱"
    referral = refer["actions"][0]["resource"]
    assert refer["label"] == "转介给NCT06438679研究团队"
    assert referral["note"][0]["text"].startswith("3T方案（托法替布＋他克莫司＋沙利度胺）治疗抗MDA5抗体阳性皮肌炎。")
    assert zh["source"]["label"].endswith("浙江大学医学院附属第二医院（中国杭州）")
    assert zh["source"]["topic"]["code"] == en["source"]["topic"]["code"] == "trial-recruitment"
    assert "Second Affiliated Hospital" in en["source"]["label"] and "- **Hepatitis B**: order HBsAg" in en["detail"]
    assert '<html lang="zh-CN">' in page and "乙肝表面抗原（HBsAg）" in page and "本院项目" in page
    assert english_words(re.sub(r"<[^>]+>", " ", page.split("<body>", 1)[1])) == []


def test_without_accept_language_the_card_speaks_the_sites_language(definition, tmp_path):
    settings = ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, lang="zh-CN")
    with running(settings, definition) as (url, cds):
        card = _card(url, cds, "01-eligible-classic")
        assert _card(url, cds, "06-eligible-searchset-age18", {"Accept-Language": "en"})["summary"].startswith("Eligible")
    assert card["summary"].startswith("符合 NCT06438679") and "全部 22 条标准均符合" in card["detail"]
    assert english_words(card["detail"]) == []


def test_an_order_card_in_chinese_names_the_drug_and_the_criterion_it_would_break(definition, tmp_path):
    from test_service_http import ORDER_SERVICE, order_select

    with running(ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF), definition) as (url, cds):
        pre = full_prefetch(cds, sample_resources("01-eligible-classic"))
        r = requests.post(f"{url}/cds-services/{ORDER_SERVICE}", json=order_select("p01", "2047232", "baricitinib", pre),
                          headers=ZH, timeout=30)
    (card,) = r.json()["cards"]
    assert card["summary"].startswith("开始使用巴瑞替尼将使患者被排除出 NCT06438679")  # the drug by its Chinese name
    assert card["detail"].startswith("**近期使用来那度胺、环孢素或其他JAK抑制剂**：今日开始使用巴瑞替尼即符合此排除标准。")
    assert [s["label"] for s in card["suggestions"]] == ["删除巴瑞替尼草稿医嘱", "转介给NCT06438679研究团队"]
    assert english_words(card["summary"] + card["detail"]) == []


def test_check_server_speaks_chinese_and_its_json_stays_english(capsys):
    with loopback_server() as server:
        fake = populated(server)
        fake.everything_drops.add("Consent")
        assert main(["--no-config", "--lang", "zh-CN", "check-server", fake.url, "--no-export"]) == 1
        out = capsys.readouterr().out.splitlines()
        assert main(["--no-config", "--lang", "zh-CN", "check-server", fake.url, "--no-export", "--format", "json"]) == 1
        doc = json.loads(capsys.readouterr().out)
    statuses = {line.split(" ", 1)[0] for line in out[1:-1] if not line.startswith(" ")}
    assert statuses <= {"正常", "警告", "失败"} and {"正常", "失败"} <= statuses
    assert any(line.startswith("失败     记录：Consent：Patient/$everything 遗漏了 Consent") for line in out)
    assert any("皮肌炎" in line for line in out)  # the candidates' value set by its Chinese title
    assert re.fullmatch(r"\d+项正常，\d+项警告，1项失败（共向服务器发出\d+次请求）", out[-1])
    assert all(len(line.encode("gbk")) <= 80 for line in out[1:-1])  # display cells: a Chinese character is two
    consent = next(c for c in doc["checks"] if c["id"] == "record-coverage" and c["status"] == "fail")
    assert consent["status"] == "fail" and consent["message"].startswith("Patient/$everything leaves out Consent")


def test_the_safety_listing_names_terms_and_drugs_in_chinese(capsys):
    assert main(["--no-config", "--lang", "zh-CN", "safety", str(SAMPLES / "safety"), "--as-of", "2026-11-16"]) == 0
    out = capsys.readouterr().out
    for word in ("受试者", "不良事件（CTCAE v5.0）", "丙氨酸氨基转移酶升高", "带状疱疹", "死亡（未特指）", "托法替布 P",
                 "导致死亡", "特别关注不良事件", "待评估因果关系"):
        assert word in out, word
    for english in ("Alanine", "Shingles", "tofacitinib", "resolved", "AESI"):
        assert english not in out, english
    assert re.search(r"在研受试者8名；不良事件15例，其中与治疗相关13例", out)


def _hospital_resources(pid: str) -> list[dict]:
    """One hospital sample patient's resources from every system's Bundle (EHR, pharmacy, outside lab)."""
    out = []
    for f in sorted((SAMPLES / "hospital").rglob("*.json")):
        doc = json.loads(f.read_text(encoding="utf-8"))
        if doc.get("resourceType") != "Bundle":
            continue
        for e in doc.get("entry", []):
            r = e.get("resource")
            if isinstance(r, dict) and ((r["resourceType"] == "Patient" and r.get("id") == pid)
                                        or f'Patient/{pid}"' in json.dumps(r)):  # relative or absolute
                out.append(r)
    return out


def test_the_chinese_clinician_page_shows_the_card_the_service_gives(tmp_path):
    """docs/zh/clinician.md: hospital sample hs12's card in zh-CN, with the [site] and links of the page."""
    from cds_helpers import ROOT, as_prefetch
    from fhir3t.service.settings import Link

    page = (ROOT / "docs" / "zh" / "clinician.md").read_text(encoding="utf-8")
    documented = json.loads(page.split("```json\n", 1)[1].split("\n```", 1)[0])
    hospital = Definition.load(concept_maps=[SAMPLES / "hospital" / "ConceptMap-zj2h-local.json"])
    settings = ServeSettings(state_dir=tmp_path, as_of=SAMPLES_AS_OF, study_team="3T研究组（风湿免疫科）", lang="zh-CN",
                             public_url="https://cds.hospital.example",
                             links=(Link("筛选工作清单", "https://intranet.hospital.example/fhir3t/worklist.html"),))
    with running(settings, hospital) as (url, cds):
        pre = as_prefetch(_hospital_resources("hs12"), cds.services[SERVICE].prefetch, "hs12")
        answer = requests.post(f"{url}/cds-services/{SERVICE}", json=hook_request("hs12", pre), timeout=30).json()
        token = answer["cards"][0]["links"][0]["url"].rsplit("/", 1)[1]
        explanation = requests.get(f"{url}/fhir3t/explain/{token}", timeout=10).text
    for d in (documented, answer):  # what differs by call: the uuids and the explanation page's token
        d["cards"][0].pop("uuid")
        for s in d["cards"][0]["suggestions"]:
            s.pop("uuid")
        link = d["cards"][0]["links"][0]
        assert re.fullmatch(r"https://cds\.hospital\.example/fhir3t/explain/[\w-]{20,}", link["url"]), link
        link["url"] = "<token>"
    assert answer == documented
    card = answer["cards"][0]
    assert f"> {card['summary']}" in page  # the quoted summary and detail are the service's
    assert "\n".join("> " + line if line else ">" for line in card["detail"].split("\n")) in page
    detail = answer["cards"][0]["detail"]
    # the full explanation names the hospital's own test, in its words, and its code
    assert "本院项目：“T-SPOT.TB (结核感染T细胞斑点试验)”，代码 TSPOT" in explanation
    assert english_words(detail) == []
