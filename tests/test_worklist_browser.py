"""The worklist page in a real headless Chromium: filter, sort, open a patient's criteria, print; offline,
no console errors, and markup in a record never runs."""
from __future__ import annotations

import json
import re

import pytest

from browser import browser_page  # noqa: F401  (fixture)
from conftest import SAMPLES
from factory import bundle, patient
from fhir3t.cli import main

CMAP = str(SAMPLES / "conceptmaps" / "hospital-local.json")


@pytest.fixture(scope="module")
def worklist(tmp_path_factory):
    out = tmp_path_factory.mktemp("worklist") / "worklist.html"
    assert main(["screen", str(SAMPLES / "screening"), "--as-of", "2026-11-16", "--concept-map", CMAP, "--no-progress",
                 "--html", str(out), "--format", "ndjson", "--out", str(out.with_suffix(".ndjson"))]) == 0
    return out


def visible_ids(page) -> list[str]:
    return page.eval_on_selector_all("#worklist > tbody > tr.row:not([hidden]) .did", "els => els.map(e => e.textContent)")


def test_filter_by_status_criterion_and_text(browser_page, worklist):  # noqa: F811
    page = browser_page.open(worklist)
    assert len(visible_ids(page)) == 25 and page.inner_text("#shown") == "25 of 25 patients shown"
    page.select_option("#f-status", "candidate")
    assert sorted(visible_ids(page)) == ["MRN-100003", "MRN-100004", "MRN-100005"]
    assert page.inner_text("#shown") == "3 of 25 patients shown"
    assert page.get_attribute(".counts button[data-status=candidate]", "aria-pressed") == "true"
    page.select_option("#f-status", "")
    page.select_option("#f-criterion", "E7-hbv")
    assert sorted(visible_ids(page)) == ["MRN-100003", "MRN-100011"]  # unknown for p03, met for p11
    page.select_option("#f-mode", "failing")
    assert visible_ids(page) == ["MRN-100011"]
    page.select_option("#f-mode", "unknown")
    assert visible_ids(page) == ["MRN-100003"]
    page.select_option("#f-criterion", "")
    page.click(".counts button[data-status=ineligible]")  # the count doubles as a filter
    assert len(visible_ids(page)) == 18 and page.input_value("#f-status") == "ineligible"
    page.click(".counts button[data-status=ineligible]")
    assert len(visible_ids(page)) == 25
    page.fill("#f-text", "100016")
    assert visible_ids(page) == ["MRN-100016"]
    page.fill("#f-text", "no such patient")
    assert visible_ids(page) == [] and page.is_visible("#empty")
    assert browser_page.console_errors == [] and browser_page.page_errors == [] and browser_page.remote_requests == []


def test_sort_by_column(browser_page, worklist):  # noqa: F811
    page = browser_page.open(worklist)
    default = visible_ids(page)
    statuses = page.eval_on_selector_all("#worklist > tbody > tr.row .status", "els => els.map(e => e.textContent)")
    assert statuses == sorted(statuses, key=["eligible", "candidate", "ineligible"].index)  # the day's work first
    page.click("th[data-sort=display] button")
    assert visible_ids(page) == sorted(default) and page.get_attribute("th[data-sort=display]", "aria-sort") == "ascending"
    page.click("th[data-sort=display] button")
    assert visible_ids(page) == sorted(default, reverse=True)
    assert page.get_attribute("th[data-sort=display]", "aria-sort") == "descending"
    page.click("th[data-sort=unknown] button")
    page.click("th[data-sort=unknown] button")  # most unknowns first
    assert visible_ids(page)[0] == "MRN-100003" and page.get_attribute("th[data-sort=display]", "aria-sort") == "none"
    # every detail row still follows its patient's row
    pairs = page.eval_on_selector_all("#worklist > tbody > tr", "els => els.map(e => e.className)")
    assert pairs == ["row", "detail"] * 25
    assert browser_page.console_errors == [] and browser_page.page_errors == []


def test_open_a_patients_criteria(browser_page, worklist, tmp_path):  # noqa: F811
    page = browser_page.open(worklist)
    row = page.locator("#worklist > tbody > tr.row", has_text="MRN-100008")
    detail_id = row.get_attribute("data-detail")
    assert page.is_hidden(f"#{detail_id}")
    row.locator(".toggle").click()
    assert page.is_visible(f"#{detail_id}") and row.locator(".toggle").get_attribute("aria-expanded") == "true"
    cells = page.eval_on_selector_all(f"#{detail_id} table.criteria tbody tr",
                                      "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))")
    assert len(cells) == 22 and cells[0][0].startswith("I1-age")
    dlco = next(c for c in cells if c[0].startswith("I4-dlco"))
    assert dlco[2].startswith("not met") and "fails" in dlco[2] and "85" in dlco[3] and "Observation/" in dlco[4]
    e6 = next(c for c in cells if c[0].startswith("E6-malignancy"))
    assert e6[2].startswith("unknown") and "record when it occurred" in e6[3]
    page.select_option("#f-status", "candidate")  # filtered out: its detail goes too
    assert page.is_hidden(f"#{detail_id}")
    page.select_option("#f-status", "")
    assert page.is_visible(f"#{detail_id}")
    row.locator(".toggle").click()
    assert page.is_hidden(f"#{detail_id}")
    page.screenshot(path=str(tmp_path / "worklist.png"), full_page=True)
    assert browser_page.console_errors == [] and browser_page.page_errors == []


def test_prints_on_landscape_a4_without_the_controls(browser_page, worklist, tmp_path):  # noqa: F811
    pypdf = pytest.importorskip("pypdf")
    page = browser_page.open(worklist)
    page.select_option("#f-status", "candidate")  # print what the filters show
    page.emulate_media(media="print")
    assert page.is_hidden(".controls") and page.is_hidden(".toggle >> nth=0")
    pdf = tmp_path / "worklist.pdf"
    page.pdf(path=str(pdf), prefer_css_page_size=True, print_background=True)
    reader = pypdf.PdfReader(str(pdf))
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx((841.9, 595.3), abs=1.5)  # A4 landscape
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in reader.pages))
    assert "As of 2026-11-16" in text and "MRN-100003" in text and "MRN-100011" not in text
    assert "Open / close all" not in text and "3 of 25 patients shown" not in text  # no controls on paper
    assert "Printed: 3 of 25 patients (status candidate)" in text  # but what the filter kept
    assert "eligible 4" in text and "ineligible 18" in text  # and all the counts


def test_markup_in_a_record_is_shown_never_run(browser_page, tmp_path):  # noqa: F811
    p = patient(pid="x1", identifier=[{"system": "urn:mrn", "value": "<img src=x onerror=alert(1)>"}],
                name=[{"text": "<script>alert(2)</script>"}])
    f = tmp_path / "x.json"
    f.write_text(json.dumps(bundle(p)))
    page_file = tmp_path / "x.html"
    assert main(["screen", str(f), "--as-of", "2026-11-16", "--no-progress", "--show-names", "--id-system", "urn:mrn",
                 "--html", str(page_file), "--format", "ndjson"]) == 0
    dialogs: list[str] = []
    browser_page.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page = browser_page.open(page_file)
    page.click(".toggle")
    assert dialogs == [] and browser_page.remote_requests == []
    assert visible_ids(page) == ["<img src=x onerror=alert(1)>"]
    assert "<script>alert(2)</script>" in page.inner_text("#worklist")
    assert page.eval_on_selector_all("#worklist img, #worklist script", "els => els.length") == 0


def test_the_worklist_in_zh_cn_filters_prints_and_screenshots(browser_page, tmp_path):  # noqa: F811
    """The coordinator's worklist in zh-CN (fhir3t --lang zh-CN screen samples/ --html ...): Chinese headings,
    status words, filters, the script's own words (shown / printed counts, open / hide), tests to order named by
    the hospital's own code; offline, no console errors; a screenshot of the page and of a patient opened."""
    out = tmp_path / "worklist-zh.html"
    assert main(["--lang", "zh-CN", "--timezone", "Asia/Shanghai", "screen", str(SAMPLES), "--no-progress",
                 "--html", str(out), "--format", "json", "--out", str(tmp_path / "r.json")]) == 0
    page = browser_page.open(out, width=1400)
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.inner_text("h1").startswith("筛选工作清单")
    assert page.inner_text("#shown") == "显示45名患者中的45名"
    heads = page.eval_on_selector_all("#worklist > thead th", "els => els.map(e => e.innerText.trim())")
    assert heads[:5] == ["患者（病历号）", "状态", "不满足", "待定：如何确认", "备注"]
    page.select_option("#f-status", "candidate")
    assert page.inner_text("#shown") == "显示45名患者中的6名"
    statuses = page.eval_on_selector_all("#worklist > tbody > tr.row:not([hidden]) .status", "els => els.map(e => e.textContent)")
    assert set(statuses) == {"待确认"}
    assert "打印：45名患者中的6名（状态：待确认）" == page.inner_text("#printed") or \
        page.evaluate("document.getElementById('printed').textContent") == "打印：45名患者中的6名（状态：待确认）"
    page.select_option("#f-status", "")
    page.select_option("#f-criterion", "E7-hbv")
    page.select_option("#f-mode", "unknown")
    assert "MRN-100003" in visible_ids(page) and "MRN-100011" not in visible_ids(page)  # p11's E7 is met, not unknown
    printed = page.evaluate("document.getElementById('printed').textContent")
    assert printed == "打印：45名患者中的10名（E7-hbv 待定）"
    page.select_option("#f-criterion", "")
    row = page.locator("#worklist > tbody > tr.row", has_text="MRN-100003")
    todo = row.locator("ul.todo").inner_text()
    assert "本院项目：" in todo and "“乙肝表面抗原”，代码 HBSAG" in todo and "筛选时开具" in todo
    row.locator(".toggle").click()
    assert row.locator(".toggle").inner_text() == "收起"
    detail = page.locator("#d-" + row.get_attribute("data-detail").split("-")[1]).inner_text()
    assert "入选标准" in detail and "满足" in detail and "乙型肝炎" in detail
    page.screenshot(path=str(tmp_path / "worklist-zh.png"), full_page=True)
    family = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Noto Sans CJK SC" in family
    # every visible word of the page's own is Chinese: what is left in Latin letters is codes, ids and data
    own = page.evaluate("""() => [...document.querySelectorAll('h1, dt, th, label, button, option, footer, #shown')]
        .map(e => e.innerText || e.textContent).join(' ')""")
    own = re.sub(r"\b[IE]\d+-[a-z0-9-]+", " ", own)  # criterion ids are codes
    leftover = [w for w in re.findall(r"\b[a-z]{4,}\b", own) if w not in ("fhir3t",)]
    assert leftover == []
    assert browser_page.console_errors == [] and browser_page.page_errors == [] and browser_page.remote_requests == []
