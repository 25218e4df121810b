"""The coordinator's outputs without a browser: CSV for Excel, the worklist page's content and escaping,
display ids and names, the terminal table at 80 columns, `explain`, the samples' as-of and the stale hint."""
from __future__ import annotations

import csv
import io
import json
import re

import pytest

from conftest import SAMPLES
from factory import bundle, neg, patient
from fhir3t.cli import main

SCREENING = SAMPLES / "screening"
CMAP = str(SAMPLES / "conceptmaps" / "hospital-local.json")
BASE = ["screen", str(SCREENING), "--as-of", "2026-11-16", "--concept-map", CMAP, "--no-progress"]
MRN = "http://hospital.example.org/mrn"


def hostile(tmp_path):
    """One patient whose id, identifier, name and a free text carry markup, a formula and a control character."""
    p = patient(pid="x1", identifier=[{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                             "code": "MR"}]},
                                        "system": "urn:oid:1.2.3", "value": "=HYPERLINK(\"http://evil.example\")"},
                                       {"system": "urn:other", "value": "<script>alert(1)</script>"}],
                name=[{"text": "王<b>芳</b>\x1b[31m"}])
    hcg = neg("2106-3", "2026-11-01", pid="x1")
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(bundle(p, hcg), ensure_ascii=False), encoding="utf-8")
    return path


# -- CSV -----------------------------------------------------------------------------------------------

def read_csv(path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\xef\xbb\xbf") == 1  # one BOM, for Excel
    assert b"\r\n" in raw
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_csv_one_row_per_patient_with_display_id_and_what_to_do(tmp_path, capsys):
    out = tmp_path / "w.csv"
    assert main([*BASE, "--format", "csv", "--out", str(out)]) == 0
    rows = read_csv(out)
    assert len(rows) == 25 and list(rows[0]) == ["patient", "display_id", "status", "failing", "unknown", "to_resolve",
                                                  "notes", "as_of", "d1"]
    by = {r["patient"]: r for r in rows}
    p03 = by["Patient/p03"]
    assert p03["display_id"] == "MRN-100003" and p03["status"] == "candidate"
    assert p03["unknown"] == "E7-hbv E8-hcv E9-hiv E10-tb" and p03["failing"] == ""
    # the samples' ConceptMap maps the hospital's own codes: the order names its test too
    assert ("E7-hbv: order HBsAg (LOINC 5196-1; at this hospital: Hepatitis B surface antigen, code HBSAG) at "
            "screening") in p03["to_resolve"]
    assert by["Patient/p09"]["failing"] == "I2-dm I5-ct"
    assert by["urn:uuid:9c37c76c-bede-5d2a-8655-e7215a194c98"]["display_id"] == "MRN-100016"
    assert "name" not in rows[0]  # names only when asked


def test_csv_long_has_every_criterion_of_every_patient(tmp_path):
    out = tmp_path / "long.csv"
    assert main([*BASE, "--format", "csv-long", "--out", str(out)]) == 0
    rows = read_csv(out)
    assert len(rows) == 25 * 22
    p08 = [r for r in rows if r["patient"] == "Patient/p08"]
    assert [r["criterion"] for r in p08][:2] == ["I1-age", "I2-dm"]
    dlco = next(r for r in p08 if r["criterion"] == "I4-dlco")
    assert dlco["result"] == "not-met" and "85" in dlco["reason"] and dlco["evidence"].startswith("Observation/")
    assert dlco["title"] == "Impaired DLCO" and dlco["kind"] == "inclusion"


def test_csv_keeps_chinese_text_and_defuses_formulas(tmp_path):
    out = tmp_path / "h.csv"
    assert main(["screen", str(hostile(tmp_path)), "--as-of", "2026-11-16", "--no-progress", "--format", "csv",
                 "--show-names", "--out", str(out)]) == 0
    row = read_csv(out)[0]
    assert row["display_id"] == "'=HYPERLINK(\"http://evil.example\")"  # shown as text, never evaluated
    assert row["name"].startswith("王<b>芳</b>")


def test_csv_on_stdout_starts_with_the_bom(capsys):
    assert main([*BASE, "--format", "csv", "--patient", "p01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\ufeffpatient,display_id") and out.count("\n") == 2


# -- display id, names, --patient ----------------------------------------------------------------------

def test_display_id_is_the_mrn_or_the_chosen_system_and_names_only_when_asked(tmp_path, capsys):
    path = hostile(tmp_path)
    argv = ["screen", str(path), "--as-of", "2026-11-16", "--no-progress", "--format", "ndjson"]
    assert main(argv) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["display_id"] == "=HYPERLINK(\"http://evil.example\")" and "name" not in obj  # typed MR wins
    assert "王" not in json.dumps(obj, ensure_ascii=False)
    assert main([*argv, "--id-system", "urn:other", "--show-names"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["display_id"] == "<script>alert(1)</script>" and obj["name"].startswith("王<b>芳</b>")
    assert main([*argv, "--id-system", "urn:none"]) == 0
    assert json.loads(capsys.readouterr().out)["display_id"] == "x1"  # no such identifier: the FHIR id


def test_patient_option_selects_by_id_reference_urn_or_mrn(capsys):
    for wanted, key in [("p03", "Patient/p03"), ("Patient/p07", "Patient/p07"), ("MRN-100016", "urn:uuid:9c37c76c"),
                        (f"{MRN}|MRN-100011", "Patient/p11"), ("urn:uuid:9c37c76c-bede-5d2a-8655-e7215a194c98", "urn:uuid")]:
        assert main([*BASE, "--format", "ndjson", "--patient", wanted]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["patient"].startswith(key), wanted
    assert main([*BASE, "--format", "ndjson", "--patient", "MRN-999999"]) == 4
    err = capsys.readouterr().err
    assert "not in the input" in err or "is in the" in err
    assert "MRN-999999" not in err  # an identifier is patient data: not echoed


# -- the worklist page (content; the browser test drives it) ---------------------------------------------

def test_worklist_page_is_self_contained_and_carries_the_run(tmp_path):
    page = tmp_path / "w.html"
    assert main([*BASE, "--html", str(page), "--format", "json", "--out", str(tmp_path / "r.json")]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.count('<tr class="row"') == 25 and text.count('<tr class="detail"') == 25
    assert text.count("<table class=\"criteria\">") == 25 and text.count('<span class="cid">I1-age</span>') >= 25
    assert re.search(r'<dd id="as-of">2026-11-16</dd>', text) and '<dd id="d1">2026-11-16</dd>' in text
    assert "nct06438679-eligibility 1.0.0" in text and "sha256 " in text and "samples/screening (24 JSON files)" in text
    for status, n in (("eligible", 4), ("ineligible", 18), ("candidate", 3)):
        assert f'<span class="s-{status}">{status}</span> {n}</button>' in text
    assert "MRN-100003" in text and "Verhoeven" not in text  # display ids, no names unless asked
    # nothing loaded from anywhere: no src/href attributes, a CSP that forbids it
    assert not re.search(r'\s(?:src|href)=', text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_worklist_escapes_every_input_string(tmp_path):
    page = tmp_path / "h.html"
    assert main(["screen", str(hostile(tmp_path)), "--as-of", "2026-11-16", "--no-progress", "--show-names",
                 "--id-system", "urn:other", "--html", str(page), "--format", "ndjson"]) == 0
    text = page.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "王&lt;b&gt;芳&lt;/b&gt;" in text and "\x1b" not in text
    assert text.count("<script>") == 1  # the page's own script only


def test_worklist_names_column_only_with_show_names(tmp_path):
    page = tmp_path / "n.html"
    assert main([*BASE, "--patient", "p01", "--html", str(page), "--show-names", "--format", "ndjson"]) == 0
    text = page.read_text(encoding="utf-8")
    assert '<th scope="col">Name</th>' in text and "Lina Verhoeven" in text


def test_outputs_may_not_name_the_same_file(tmp_path, capsys):
    f = str(tmp_path / "same")
    assert main([*BASE, "--html", f, "--csv", f]) == 2
    assert "same file" in capsys.readouterr().err


# -- the terminal table -------------------------------------------------------------------------------------

def test_table_fits_80_columns_with_a_legend_and_plural_counts(capsys):
    assert main(["screen", str(SCREENING), "--as-of", "2026-11-16", "--no-progress"]) == 3  # p22 without its map
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines[:-1]), max(lines, key=len)
    assert lines[0].startswith("NCT06438679") and "as of 2026-11-16" in lines[0] and "D1 2026-11-16" in lines[0]
    assert "I2, I3, I4, I5, E5, E6, E7," in out  # p22's unknowns by code, wrapped
    legend = " ".join(out.split("criteria: ", 1)[1].split("\n")[:-2])
    assert "I3-mda5, I4-dlco," in legend and legend.rstrip().endswith("E14-investigator")
    assert "I6-contraception" not in legend  # only the codes the table uses (I6 is met for everyone)
    assert "9c37c76c-…215a194c98" in out and "urn:uuid:…" not in out  # the uuid keeps its start and end
    assert lines[-1].startswith("25 patients: 3 eligible, 18 ineligible, 4 candidates (as of 2026-11-16")


def test_table_of_one_patient_says_one(capsys):
    assert main(["screen", str(SCREENING / "01-eligible-classic.json"), "--as-of", "2026-11-16", "--no-progress"]) == 0
    assert "1 patient: 1 eligible, 0 ineligible, 0 candidates" in capsys.readouterr().out


def test_table_escapes_markup_in_ids(tmp_path, capsys):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(bundle(patient(pid="[b]p9"))))
    main(["screen", str(p), "--as-of", "2026-11-16", "--no-progress"])
    assert "Patient/[b]p9" in capsys.readouterr().out


# -- explain --------------------------------------------------------------------------------------------------

def test_explain_shows_every_criterion_of_one_patient(capsys):
    assert main(["explain", "MRN-100003", str(SCREENING), "--as-of", "2026-11-16", "--concept-map", CMAP,
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "MRN-100003 (Patient/p03): candidate"
    for cid in ("I1-age", "I8-consent", "E1-prior-3t-failure", "E14-investigator"):
        assert f" {cid} " in out
    assert len(re.findall(r"^[+x?] [IE]\d+-", out, re.M)) == 22
    assert "? E10-tb Tuberculosis or NTM: unknown (unknown)" in out
    assert "the latest result, on 2026-10-18, is older than the window" in out
    assert "evidence: Observation/p03-mda5" in out
    assert "to resolve:" in out and "E9-hiv: order HIV screen (LOINC 56888-1; at this hospital:" in " ".join(out.split())
    assert all(len(line.rstrip()) <= 80 for line in out.splitlines())


def test_explain_failing_and_json(capsys):
    assert main(["explain", "p09", str(SCREENING), "--as-of", "2026-11-16", "--no-progress", "--concept-map", CMAP]) == 0
    out = capsys.readouterr().out
    assert "x I2-dm Dermatomyositis: not met (fails)" in out and "not met: I2-dm, I5-ct" in out
    assert main(["explain", "p09", str(SCREENING), "--as-of", "2026-11-16", "--no-progress", "--concept-map", CMAP,
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 1 and data[0]["status"] == "ineligible" and len(data[0]["criteria"]) == 22


def test_explain_unknown_patient_exits_4(capsys):
    assert main(["explain", "nobody", str(SCREENING), "--as-of", "2026-11-16", "--no-progress"]) == 4
    assert "not in the input" in capsys.readouterr().err


def test_explain_needs_files_or_a_server(capsys):
    assert main(["explain", "p01"]) == 2


# -- as-of from the samples, and the stale hint ---------------------------------------------------------------

def test_samples_screen_as_of_the_day_they_were_written_for(capsys):
    assert main(["screen", str(SAMPLES), "--no-progress", "--format", "ndjson"]) == 0
    captured = capsys.readouterr()
    assert "as-of 2026-11-16, the date the sample files in the input were written for" in captured.err
    results = [json.loads(x) for x in captured.out.splitlines()]
    assert {r["as_of"] for r in results} == {"2026-11-16"}
    counts = {s: sum(r["status"] == s for r in results) for s in ("eligible", "ineligible", "candidate")}
    assert counts == {"eligible": 8, "ineligible": 31, "candidate": 6}  # the mix README documents


def test_as_of_given_wins_over_the_samples_tag_and_disagreeing_tags_are_ignored(tmp_path, capsys):
    assert main(["screen", str(SCREENING / "01-eligible-classic.json"), "--as-of", "2026-11-20", "--no-progress",
                 "--format", "ndjson"]) == 0
    captured = capsys.readouterr()
    assert "written for" not in captured.err and json.loads(captured.out)["as_of"] == "2026-11-20"
    for day, name in (("2026-11-16", "a.json"), ("2025-01-01", "b.json")):
        data = json.loads((SCREENING / "01-eligible-classic.json").read_text())
        data["meta"]["tag"][0]["code"] = day
        (tmp_path / name).write_text(json.dumps(data))
    main(["screen", str(tmp_path), "--no-progress", "--format", "ndjson"])
    err = capsys.readouterr().err
    assert "written for different days (2025-01-01, 2026-11-16)" in err and "(today, UTC)" in err


def test_stale_results_get_one_line_hint(capsys):
    assert main([*BASE, "--as-of", "2027-01-20", "--format", "ndjson"]) == 0
    err = capsys.readouterr().err
    hints = [line for line in err.splitlines() if "older than its window" in line]
    assert len(hints) == 1
    assert re.search(r"note: \d+ of \d+ unknown criteria \(25 patients\) are unknown only because the latest result "
                     r"is older than its window as of 2027-01-20 \(the newest of those results is from 2026-11-\d\d\)", hints[0])
    assert main(BASE) == 0 and "older than its window" not in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csv", "csv-long", "html", "json", "ndjson", "table"])
def test_every_format_is_listed_in_help(fmt, capsys):
    with pytest.raises(SystemExit):
        main(["screen", "--help"])
    assert fmt in capsys.readouterr().out
