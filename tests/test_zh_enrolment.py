"""The coordinator's workflow in Chinese (issues 22 and 23): the steps, the timeline, the refusals, the screening
and enrolment log and the coordinator's page and its forms say every word in zh-CN, codes and identifiers aside;
the JSON and CSV a program reads keep their English codes; the page's today is the site's."""
from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
import requests

from browser import browser_page  # noqa: F401  (fixture)
from conftest import SAMPLES
from fhir3t.cli import main
from fhir3t.pipeline import Definition
from fhir3t.service.app import create_app
from fhir3t.service.coordinator import Coordinator
from fhir3t.service.runner import InThread
from fhir3t.service.settings import CoordinatorSettings
from fhir3t.state import StateFile

CJK = re.compile(r"[\u4e00-\u9fff]")
MAP = str(SAMPLES / "conceptmaps" / "hospital-local.json")
#: Latin a Chinese line may hold: identifiers, codes, criterion ids, the CLI's action names, file names, D1
LATIN_OK = re.compile(r"MRN-\d+|Patient/\w+|ResearchSubject/[\w-]+|[EI]\d+-[a-z0-9-]+|3T-\d+|\bD1\b|\bli\.na\b|"
                      r"\b(withdraw|contact|consent|enrol|decline)\b|NCT\d+|MDA5|[\w./-]+\.sqlite|HIV|JAK|CT|DLCO")


def english_words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]{3,}", LATIN_OK.sub(" ", text))


def zh(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--no-config", "--lang", "zh-CN", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def state(tmp_path, capsys) -> Path:
    path = tmp_path / "3t.sqlite"
    code, _out, err = zh(capsys, "screen", str(SAMPLES / "screening"), "--concept-map", MAP, "--state", str(path),
                         "--format", "csv", "--out", str(tmp_path / "worklist.csv"), "--no-progress")
    assert code == 0, err
    assert f"fhir3t screen：已保存到状态文件 {path}（第 1 次运行）：25 条结果，写入 24 个 ResearchSubject" in err
    return path


def test_the_coordinators_day_in_chinese(state, capsys):
    s = ["--state", str(state), "--date", "2026-11-16", "--by", "li.na"]
    said = [zh(capsys, "subject", "MRN-100001", "contact", "--medium", "phone", *s),
            zh(capsys, "subject", "MRN-100022", "contact", "--reason", "recipient-unavailable", *s),
            zh(capsys, "subject", "MRN-100002", "decline", "--reason", "patient-declined", *s),
            zh(capsys, "subject", "MRN-100001", "consent", "--form", "1.0", *s),
            zh(capsys, "subject", "MRN-100001", "enrol", "--d1", "2026-11-20", *s)]
    assert [(code, out.strip()) for code, out, _ in said] == [
        (0, "MRN-100001：已记录联系尝试（已联系上）"),
        (0, "MRN-100022：已记录联系尝试（未联系上：无人接听）"),
        (0, "MRN-100002：未入组（患者拒绝）；状态：未入组"),
        (0, "MRN-100001：已记录知情同意（版本 1.0）；状态：已知情同意、待入组"),
        (0, "MRN-100001：已入组，受试者编号 3T-001，D1 2026-11-20；状态：在研")]
    code, out, _ = zh(capsys, "subject", "MRN-100001", "--show", "--state", str(state))
    assert code == 0 and out.splitlines() == [
        "MRN-100001（Patient/p01）：在研，受试者编号 3T-001，D1 2026-11-20",
        "  2026-11-16  筛选：符合条件",
        "  2026-11-16  已通过电话联系上  （记录人：li.na）",
        "  2026-11-16  已签署知情同意书（版本 1.0）  （记录人：li.na）",
        "  2026-11-16  入组，受试者编号 3T-001（在研），D1 2026-11-20  （记录人：li.na）",
        "下一步：withdraw"]
    # the timeline's JSON keeps the English text a program reads, the Chinese beside it
    code, out, _ = zh(capsys, "subject", "MRN-100001", "--show", "--format", "json", "--state", str(state))
    events = json.loads(out)["events"]
    assert events[0]["text"] == "screened: eligible" and events[0]["text_localized"] == "筛选：符合条件"
    assert json.loads(out)["status"] == "on-study"
    # refusals: one Chinese sentence, exit 8, nothing written
    code, out, err = zh(capsys, "subject", "MRN-100002", "consent", *s)
    assert code == 8 and err.strip() == "fhir3t subject：状态为未入组的受试者不能执行 consent"
    # a candidate's consent is recorded, its enrolment refused by the latest screening (unless --override)
    assert zh(capsys, "subject", "MRN-100003", "contact", "--medium", "phone", *s)[0] == 0
    assert zh(capsys, "subject", "MRN-100003", "consent", *s)[0] == 0
    code, out, err = zh(capsys, "subject", "MRN-100003", "enrol", "--d1", "2026-11-20", *s)
    assert code == 8 and err.startswith("fhir3t subject：该患者最近一次筛选结果为待确认，待定：E7-hbv")
    assert english_words(err.replace("--override REASON", "").replace("fhir3t subject", "")) == [], err


def test_the_screening_and_enrolment_log_in_chinese_keeps_its_codes_for_programs(state, capsys, tmp_path):
    s = ["--state", str(state), "--date", "2026-11-16", "--by", "li.na"]
    assert zh(capsys, "subject", "MRN-100001", "contact", "--medium", "phone", *s)[0] == 0
    assert zh(capsys, "subject", "MRN-100002", "decline", "--reason", "patient-declined", *s)[0] == 0
    code, out, _ = zh(capsys, "log", "--state", str(state))
    assert code == 0
    assert out.startswith("筛选与入组日志：NCT06438679（3T方案治疗抗MDA5阳性皮肌炎）")
    for word in ("患者", "筛选（首次 - 最近）", "不满足的标准", "知情同意", "入组（编号，D1）", "未入组/已退出",
                 "符合条件", "不符合条件", "待确认", "患者拒绝", "1次，最近一次", "流程", "已筛选：25",
                 "尚未联系：2", "已入组：0"):
        assert word in out, word
    assert english_words(out) == [], english_words(out)
    code, out, _ = zh(capsys, "log", "--state", str(state), "--format", "html", "--out", str(tmp_path / "log.html"))
    page = (tmp_path / "log.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in page and "<title>筛选与入组日志：" in page and "生成于 " in page
    code, out, _ = zh(capsys, "log", "--state", str(state), "--format", "json")
    log = json.loads(out)
    assert log["study"] == "NCT06438679 (3T in MDA5+ dermatomyositis)"  # JSON: as written, whatever the language
    row = next(r for r in log["rows"] if r["display_id"] == "MRN-100002")
    assert row["status"] == "not-registered" and row["not_enrolled_reason"] == "patient-declined"
    code, out, _ = zh(capsys, "log", "--state", str(state), "--format", "csv")
    assert out.lstrip("\ufeff").startswith("patient,")  # the CSV's columns are codes in every language


def test_help_of_the_workflow_commands_is_chinese(capsys):
    for command in ("subject", "log"):
        with pytest.raises(SystemExit) as done:
            main(["--no-config", "--lang", "zh-CN", command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert "选项：" in out and CJK.search(out.split("选项：", 1)[1]), command


@pytest.fixture
def page_site(state):
    """The coordinator's page over the state file, in zh-CN, a trusted proxy on loopback signing li.na in."""
    definition = Definition.load(None, [SAMPLES / "conceptmaps" / "hospital-local.json"])
    store = StateFile(state)
    settings = CoordinatorSettings(proxy_user_header="X-Remote-User", trusted_proxies=("127.0.0.1",), lang="zh-CN")
    coordinator = Coordinator(definition, store, settings, None, True, today=lambda: date(2026, 11, 16))
    with InThread(create_app(None, coordinator=coordinator)) as url:
        yield f"{url}/coordinator"
    store.close()


def test_the_coordinators_page_and_its_forms_speak_chinese(page_site):
    http = requests.Session()
    http.headers["X-Remote-User"] = "li.na"
    home = http.get(f"{page_site}/", timeout=30)
    assert home.status_code == 200 and '<html lang="zh-CN">' in home.text
    for word in ("筛选工作清单：NCT06438679（3T方案治疗抗MDA5阳性皮肌炎）", "全部已筛选患者", "最近一次筛选", "研究状态",
                 "下一步", "符合条件", "不符合条件", "待确认", "联系"):
        assert word in home.text, word
    patient = http.get(f"{page_site}/patients/p01", timeout=30)
    text = patient.text
    for word in ("时间线", "筛选：符合条件", "记录步骤", "记录联系尝试", "联系方式", "通过电话", "当面", "无人接听",
                 "已联系上", "记录未入组", "患者拒绝", "返回工作清单"):
        assert word in text, word
    csrf = re.search(r'name="csrf" value="([^"]+)"', text)[1]  # type: ignore[index]
    version = re.search(r'id="form-contact"[^>]*>.*?name="version" value="([^"]*)"', text, re.S)[1]  # type: ignore[index]
    done = http.post(f"{page_site}/patients/p01/contact", timeout=30,
                     data={"csrf": csrf, "version": version, "date": "2026-11-16", "medium": "phone", "reason": ""})
    assert done.status_code == 200 and "MRN-100001：已记录联系尝试（已联系上）" in done.text
    assert "已通过电话联系上" in done.text and "记录人：li.na" in done.text
    refused = http.post(f"{page_site}/patients/p01/contact", timeout=30,
                        data={"csrf": "not-the-token", "version": version, "date": "2026-11-16", "medium": "phone"})
    assert refused.status_code == 403
    assert "该表单并非来自本页面（CSRF 令牌缺失或已过期）：请刷新页面；未写入任何内容" in refused.text


def test_the_chinese_coordinators_page_in_chromium(page_site, browser_page, tmp_path):  # noqa: F811
    page = browser_page.page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{page_site}/")
    page.wait_for_load_state("load")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "全部已筛选患者" in page.inner_text("body")
    page.screenshot(path=str(tmp_path / "coordinator-zh.png"), full_page=True)
    page.goto(f"{page_site}/patients/p01")
    page.wait_for_load_state("load")
    assert "时间线" in page.inner_text("body")
    page.screenshot(path=str(tmp_path / "coordinator-patient-zh.png"), full_page=True)
    assert browser_page.console_errors == [] and browser_page.page_errors == []
    assert (tmp_path / "coordinator-zh.png").stat().st_size > 10_000
