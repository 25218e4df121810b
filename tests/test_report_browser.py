"""The HTML safety report in a real headless Chromium (Debian's, via Playwright): renders offline, prints on A4 with
the confidentiality mark, report version, data cut-off and "page N of M" on every page, no table clipped, no plot
split from its legend; CONSORT arrows that add up to their boxes; a layout ready for zh-CN text (CJK fonts, a
pseudo-translated catalog). Checked with pypdf (page text) and a screenshot of every printed page (pypdfium2)."""
from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

import safety_corpus
from browser import browser_page  # noqa: F401  (fixture)
from conftest import SAMPLES
from factory import CM, bundle, patient
from fhir3t.cli import main
from safety_helpers import enrolled

AS_OF = ["--as-of", "2026-11-16"]
MARK = "CONFIDENTIAL — for the Data Monitoring Committee only"
MM = 72 / 25.4  # PDF points per millimetre
A4_CONTENT_PX = round(186 / 25.4 * 96)  # 210 mm - 2 x 12 mm margins, in CSS px
SCREENING = [  # a screening run that saw some of the enrolled sample subjects (and two others)
    {"patient": "Patient/s01", "status": "eligible", "criteria": []},
    {"patient": "Patient/s02", "status": "eligible", "criteria": []},
    {"patient": "Patient/s03", "status": "candidate", "criteria": [{"id": "I2-dm", "kind": "inclusion", "result": "unknown"}]},
    {"patient": "Patient/s04", "status": "ineligible", "criteria": [{"id": "E7-hbv", "kind": "exclusion", "result": "met"}]},
    {"patient": "Patient/x1", "status": "eligible", "criteria": []},
    {"patient": "Patient/x2", "status": "ineligible", "criteria": [{"id": "I1-age", "kind": "inclusion", "result": "not-met"}]},
]


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    run = out / "screening.json"
    run.write_text(json.dumps(SCREENING))
    html, js = out / "report.html", out / "report.json"
    assert main(["report", str(SAMPLES / "safety"), *AS_OF, "--since", "2026-08-16", "--report-version", "2",
                 "--screening", str(run), "--out", str(html), "--json", str(js)]) == 0
    return html, json.loads(js.read_text())


@pytest.fixture(scope="module")
def corpus_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    safety_corpus.write(out)
    html, js = out / "report.html", out / "report.json"
    assert main(["report", str(out / "data"), *AS_OF, "--report-version", "3", "--out", str(html), "--json", str(js)]) == 0
    return html, json.loads(js.read_text())


def print_pdf(page, path: Path):
    pypdf = pytest.importorskip("pypdf")
    page.pdf(path=str(path), format="A4", print_background=True)
    return pypdf.PdfReader(str(path))


def page_texts(reader) -> list[str]:
    """Each page's text, ligatures unfolded (the PDF writes "cut-oﬀ" with one glyph) and spaces collapsed."""
    return [re.sub(r"\s+", " ", unicodedata.normalize("NFKC", p.extract_text())) for p in reader.pages]


def screenshots(pdf: Path, out: Path) -> list:
    """Every printed page as an image (a numpy array, 1 px per point), saved as PNG beside the PDF."""
    pdfium = pytest.importorskip("pypdfium2")
    doc = pdfium.PdfDocument(str(pdf))
    images = []
    for i in range(len(doc)):
        bitmap = doc[i].render(scale=1)
        images.append(bitmap.to_numpy()[:, :, :3])
        try:
            bitmap.to_pil().save(out / f"page-{i + 1}.png")
        except ImportError:  # Pillow missing: the arrays are what is checked
            pass
    return images


def assert_page_furniture(images, texts, *, mark: str, version: str, cutoff: str, page_word: str = r"Page {i} of {n}(?!\d)"):
    """On every page: the confidentiality mark, version, cut-off and page i of n (a regex) in its text; ink in the
    top and bottom margins of its screenshot, none in the right margin beside the content."""
    n = len(texts)
    for i, (img, text) in enumerate(zip(images, texts), 1):
        h, w = img.shape[:2]
        top, bottom, side = int(15 * MM), int(14 * MM), int(12 * MM)
        ink = img.min(axis=2) < 160
        assert mark in text and version in text and cutoff in text, (i, text[:200])
        assert re.search(page_word.format(i=i, n=n), text), (i, text[-200:])
        assert ink[:top].any() and ink[h - bottom:].any(), f"page {i}: no mark in the top or bottom margin"
        # nothing printed in the right margin beside the content: no column runs off the page
        strip = ink[top + 4:h - bottom - 4, w - side + 6:w - 2]
        assert not strip.any(), f"page {i}: content in the right margin (a clipped table or figure)"


def assert_nothing_wider_than_a4(page):
    page.emulate_media(media="print")
    page.set_viewport_size({"width": A4_CONTENT_PX, "height": 1000})
    too_wide = page.evaluate("""(limit) => [...document.querySelectorAll('table, svg, figure, p, dl')]
        .filter(e => e.getBoundingClientRect().right > limit + 0.5 || e.scrollWidth > e.clientWidth + 1)
        .map(e => e.tagName + ' ' + (e.getAttribute('aria-label') || e.textContent.slice(0, 60)))""", A4_CONTENT_PX)
    assert too_wide == []
    assert page.evaluate("document.documentElement.scrollWidth") <= A4_CONTENT_PX


def test_report_renders_offline_without_errors(browser_page, sample_report):  # noqa: F811
    html, data = sample_report
    page = browser_page.open(html)
    assert browser_page.console_errors == [] and browser_page.page_errors == []
    assert browser_page.remote_requests == []  # everything inline: nothing fetched
    labels = page.eval_on_selector_all("svg[role=img]", "els => els.map(e => e.getAttribute('aria-label'))")
    assert "Kaplan-Meier survival from D1" in labels and any(lbl.startswith("Swimmer") for lbl in labels)
    swimmer = page.locator("svg.swimmer")
    assert swimmer.count() == 1 and swimmer.locator("g.legend").count() == 1  # the legend is inside the plot
    assert swimmer.locator("rect.bar").count() == data["survival"]["subjects"]
    markers = swimmer.locator("circle").count() - swimmer.locator("g.legend circle").count()
    assert markers == sum(len(r["ae_markers"]) for r in data["disposition"])
    text = page.inner_text("body")
    assert "0.857 (0.334 – 0.979)" in text and "47.3 – 99.7 %" in text  # KM day 182; 7/8 with its exact CI
    assert "54.1 – 100.0 %" not in text and "63.1 – 100.0 %" in text  # conservative line 8/8
    assert "requires or prolongs inpatient hospitalization" in text and "SeriousResults" not in text
    assert "causality pending" in text and "Death NOS" in text
    assert "3T-s02" in text and "Patient/s02" not in text  # subject numbers, not FHIR ids
    for heading in ("Baseline characteristics", "Exposure and dose changes", "Adverse events of special interest",
                    "Laboratory shift tables", "SAE and death narratives", "Accrual against the target",
                    "Cumulative and since the last report", "All AEs by MedDRA system organ class, then term"):
        assert heading in text, heading
    assert MARK in text and "report version 2" in text and "Data cut-off 2026-11-16" in text


def test_consort_arrows_add_up_to_their_boxes(browser_page, sample_report):  # noqa: F811
    html, data = sample_report
    page = browser_page.open(html)
    flow = data["screening_flow"]
    boxes = page.eval_on_selector_all("svg.flow g.flow-box", """els => Object.fromEntries(els.map(e => {
        const b = e.querySelector('rect').getBBox();
        return [e.dataset.box, {n: Number(e.dataset.count), x: b.x, y: b.y, w: b.width, h: b.height}]; }))""")
    arrows = page.eval_on_selector_all("svg.flow g.flow-arrow", """els => els.map(e => {
        const l = e.querySelector('line');
        return {from: e.dataset.from, to: e.dataset.to, n: Number(e.dataset.count),
                x1: +l.getAttribute('x1'), y1: +l.getAttribute('y1'), x2: +l.getAttribute('x2'), y2: +l.getAttribute('y2')}; })""")
    assert boxes["enrolled"]["n"] == flow["enrolled"] == 8
    into_enrolled = [a for a in arrows if a["to"] == "enrolled"]
    assert sum(a["n"] for a in into_enrolled) == boxes["enrolled"]["n"]  # eligible 2 + candidate 1 + ineligible 1 + outside 4
    assert {a["from"]: a["n"] for a in into_enrolled} == {"eligible": 2, "candidate": 1, "ineligible": 1,
                                                          "not_in_screening_run": 4}
    out_of_eligible = [a for a in arrows if a["from"] == "eligible"]
    assert sum(a["n"] for a in out_of_eligible) == boxes["eligible"]["n"] == flow["eligible"] == 3
    assert sum(a["n"] for a in arrows if a["from"] == "screened") == boxes["screened"]["n"] == 6

    def near(x, y, b, slack=4):
        return b["x"] - slack <= x <= b["x"] + b["w"] + slack and b["y"] - slack <= y <= b["y"] + b["h"] + slack

    for a in arrows:  # every arrow leaves its box and points at its target
        assert near(a["x1"], a["y1"], boxes[a["from"]]) and near(a["x2"], a["y2"], boxes[a["to"]]), a
    labels = page.eval_on_selector_all("svg.flow g.flow-arrow text.count", "els => els.map(e => e.textContent)")
    assert sorted(labels) == sorted(f"n = {a['n']}" for a in arrows)


def test_samples_print_on_a4_with_page_marks_and_no_clipped_column(browser_page, sample_report, tmp_path):  # noqa: F811
    html, data = sample_report
    page = browser_page.open(html)
    reader = print_pdf(page, tmp_path / "report.pdf")
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx((595.3, 841.9), abs=1.5)  # A4 in points
    texts = page_texts(reader)
    assert 6 <= len(texts) <= 20
    images = screenshots(tmp_path / "report.pdf", tmp_path)
    assert len(images) == len(texts)
    assert_page_furniture(images, texts, mark=MARK, version="report version 2", cutoff="Data cut-off 2026-11-16")
    # every disposition row (subject, D1 ... follow-up days) is printed whole on one page
    for row in data["disposition"]:
        assert any(row["subject"] in p and row["d1"] in p and row["status_day182"][:12] in p for p in texts), row
    # the KM plot's numbers-at-risk row sits on the same page as its axis label; the swimmer legend with its plot
    assert any("days since D1" in p and "at risk" in p for p in texts)
    legend = [p for p in texts if "AE onset by worst grade" in p]
    assert len(legend) == 1 and "study day (D1 = 0)" in legend[0] and all(r["subject"] in legend[0] for r in data["disposition"])
    assert_nothing_wider_than_a4(page)


def test_a_large_cohort_prints_its_swimmer_plot_in_parts_each_with_its_legend(browser_page, corpus_report, tmp_path):  # noqa: F811
    html, data = corpus_report
    page = browser_page.open(html)
    assert browser_page.console_errors == []
    parts = page.locator("svg.swimmer")
    assert parts.count() == 2 and page.locator("svg.swimmer g.legend").count() == 2  # 42 subjects, 34 a part
    reader = print_pdf(page, tmp_path / "corpus.pdf")
    texts = page_texts(reader)
    images = screenshots(tmp_path / "corpus.pdf", tmp_path)
    assert_page_furniture(images, texts, mark=MARK, version="report version 3", cutoff="Data cut-off 2026-11-16")
    subjects = [r["subject"] for r in data["disposition"]]
    for part, labels in enumerate((subjects[:34], subjects[34:]), 1):
        pages = [p for p in texts if "AE onset by worst grade" in p and all(s in p for s in labels)]
        assert pages, f"swimmer part {part} is split from its legend or its subjects"
    assert sum(p.count("AE onset by worst grade") for p in texts) == 2
    # SAE narratives are paragraphs never cut across pages
    for r in data["narratives"]:
        head = r["text"][:60]
        assert any(head in p for p in texts), head
    assert_nothing_wider_than_a4(page)


def test_the_report_in_zh_cn_renders_and_prints_on_a4(browser_page, corpus_report, tmp_path):  # noqa: F811
    """The whole report in zh-CN from the real catalog (fhir3t --lang zh-CN report): every heading, note, table
    head, figure label, narrative and term in Chinese, the page furniture on every printed page, nothing wider
    than A4, no console error; screenshots of every printed page are written beside the PDF."""
    html, _data = corpus_report
    target = tmp_path / "zh.html"
    assert main(["--lang", "zh-CN", "--timezone", "Asia/Shanghai", "report", str(html.parent / "data"), *AS_OF,
                 "--report-version", "3", "--out", str(target)]) == 0
    page = browser_page.open(target)
    assert browser_page.console_errors == [] and browser_page.page_errors == []
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    family = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Noto Sans CJK SC" in family and "Microsoft YaHei" in family
    body = page.inner_text("body")
    assert "{" not in body  # every template filled
    for words in ("安全性与终点报告", "摘要", "26周生存率", "与治疗相关不良事件的发生率", "严重不良事件", "各受试者的处置情况",
                  "丙氨酸氨基转移酶升高", "托法替布", "+08:00"):
        assert words in body, words
    headings = page.eval_on_selector_all("h1, h2, h3, th", "els => els.map(e => e.textContent)")
    english = [h for h in headings if re.search(r"\b[a-z]{4,}\b", re.sub(r"\(.*?\)|[A-Z]\w*", "", h))]
    assert english == []  # headings and table heads are Chinese (abbreviations such as CTCAE, KM, CI aside)
    page.screenshot(path=str(tmp_path / "report-zh.png"), full_page=True)
    reader = print_pdf(page, tmp_path / "zh.pdf")
    texts = [t.replace(" ", "") for t in page_texts(reader)]
    images = screenshots(tmp_path / "zh.pdf", tmp_path)
    assert_page_furniture(images, texts, mark="机密——仅供数据监查委员会使用", version="NCT06438679报告版本3",
                          # the PDF's text layer gives 页 as the radical ⻚ (the font's glyph), and NFKC folds ，
                          cutoff="数据截止日2026-11-16", page_word="第{i}[页⻚],共{n}[页⻚]")
    assert_nothing_wider_than_a4(page)


def test_chinese_terms_reach_the_page_with_a_cjk_font_fallback(browser_page, tmp_path):  # noqa: F811
    cond = {"resourceType": "Condition", "id": "c-zh", "code": {"coding": [{"system": CM, "code": "L40.0"}],
                                                                 "text": "银屑病"},
            "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2026-02-10",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]}}
    f = tmp_path / "zh.json"
    f.write_text(json.dumps(bundle(patient(), enrolled(), cond), ensure_ascii=False), encoding="utf-8")
    html = tmp_path / "zh.html"
    assert main(["report", str(f), "--as-of", "2026-06-30", "--out", str(html)]) == 0
    page = browser_page.open(html)
    assert "银屑病" in page.inner_text("body") and browser_page.console_errors == []  # not mapped: its own words
    family = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Noto Sans CJK SC" in family and "Microsoft YaHei" in family
    page.screenshot(path=str(tmp_path / "zh.png"), full_page=True)
