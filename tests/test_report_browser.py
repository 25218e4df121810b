"""The HTML report in a real headless Chromium: renders offline, no console errors, prints on A4 without
cutting rows, Chinese text reaches the page with a CJK font fallback."""
from __future__ import annotations

import json
import re

import pytest

from browser import browser_page  # noqa: F401  (fixture)
from conftest import SAMPLES
from factory import CM, bundle, patient
from fhir3t.cli import main
from safety_helpers import enrolled

AS_OF = ["--as-of", "2026-11-16"]


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    html, js = out / "report.html", out / "report.json"
    assert main(["report", str(SAMPLES / "safety"), *AS_OF, "--out", str(html), "--json", str(js)]) == 0
    return html, json.loads(js.read_text())


def test_report_renders_offline_without_errors(browser_page, sample_report):  # noqa: F811
    html, data = sample_report
    page = browser_page.open(html)
    assert browser_page.console_errors == [] and browser_page.page_errors == []
    assert browser_page.remote_requests == []  # everything inline: nothing fetched
    svgs = page.eval_on_selector_all("svg[role=img]", "els => els.map(e => [e.getAttribute('aria-label'), "
                                                       "e.getBoundingClientRect().width, e.getBoundingClientRect().height])")
    labels = [s[0] for s in svgs]
    assert "Kaplan-Meier survival from D1" in labels and any(lbl.startswith("Swimmer") for lbl in labels)
    assert all(w > 100 and h > 100 for _, w, h in svgs)
    # one swimmer bar per subject, one marker per non-death AE
    swimmer = page.locator("svg[aria-label^=Swimmer]")
    assert swimmer.locator("rect").count() == data["survival"]["subjects"]
    assert swimmer.locator("circle").count() == sum(len(r["ae_markers"]) for r in data["disposition"])
    text = page.inner_text("body")
    assert "0.800 (0.204 – 0.969)" in text and "35.9 – 99.6 %" in text  # KM day 182 and 5/6 with its exact CI
    assert "Serious adverse events" in text and "requires or prolongs inpatient hospitalization" in text
    assert "3T-s02" in text and "Patient/s02" not in text  # subject numbers, not FHIR ids


def test_report_prints_on_a4_without_cutting_table_rows(browser_page, sample_report, tmp_path):  # noqa: F811
    pypdf = pytest.importorskip("pypdf")
    html, data = sample_report
    page = browser_page.open(html)
    pdf = tmp_path / "report.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    reader = pypdf.PdfReader(str(pdf))
    assert 2 <= len(reader.pages) <= 6  # the samples: a few A4 pages (3 with the fonts here), not one long strip
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx((595.3, 841.9), abs=1.5)  # A4 in points
    pages = [re.sub(r"\s+", " ", p.extract_text()) for p in reader.pages]
    # every disposition row (subject, D1 ... follow-up days) is printed whole on one page
    for row in data["disposition"]:
        assert any(row["subject"] in p and row["d1"] in p and row["status_day182"][:12] in p for p in pages), row
    # the KM plot's numbers-at-risk row sits on the same page as its axis label
    assert any("days since D1" in p and "at risk" in p for p in pages)


def test_chinese_terms_reach_the_page_with_a_cjk_font_fallback(browser_page, tmp_path):  # noqa: F811
    cond = {"resourceType": "Condition", "id": "c-zh", "code": {"coding": [{"system": CM, "code": "B02.9"}],
                                                                 "text": "带状疱疹"},
            "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2026-02-10",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]}}
    f = tmp_path / "zh.json"
    f.write_text(json.dumps(bundle(patient(), enrolled(), cond), ensure_ascii=False), encoding="utf-8")
    html = tmp_path / "zh.html"
    assert main(["report", str(f), "--as-of", "2026-06-30", "--out", str(html)]) == 0
    page = browser_page.open(html)
    assert "带状疱疹" in page.inner_text("body") and browser_page.console_errors == []
    family = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Noto Sans CJK SC" in family and "Microsoft YaHei" in family
    page.screenshot(path=str(tmp_path / "zh.png"), full_page=True)
