"""Bad input gives a clear issue naming the file (and line), never a traceback; memory stays bounded."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from fhir3t.validate import validate_issues, validate_paths
from fhir3t.validate.reader import read_items

DATA = Path(__file__).parent / "data" / "validate"


def only_issue(path: Path, **kw):
    issues, tally = validate_issues([path], **kw)
    assert len(issues) == 1, issues
    return issues[0], tally.documents


def test_non_json(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text("<Patient/>")
    issue, count = only_issue(p)
    assert (issue.severity, issue.code, issue.source, count) == ("fatal", "structure", str(p), 0)
    assert "not valid JSON" in issue.diagnostics


def test_empty_file(tmp_path: Path) -> None:
    for name in ("e.json", "e.ndjson"):
        (tmp_path / name).write_bytes(b"")
        issue, _ = only_issue(tmp_path / name)
        assert issue.severity == "fatal" and "empty file" in issue.diagnostics


def test_json_that_is_not_fhir(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"patient": "Ann"}')
    issue, count = only_issue(p)
    assert issue.is_error and "no resourceType" in issue.diagnostics and count == 1


def test_missing_path_is_fatal_issue(tmp_path: Path) -> None:
    oo = validate_paths([tmp_path / "nope.json"])
    assert oo["issue"][0]["severity"] == "fatal" and oo["issue"][0]["code"] == "not-found"
    assert "nope.json" in oo["issue"][0]["diagnostics"]


def test_ndjson_issues_name_the_line() -> None:
    issues, tally = validate_issues([DATA / "observations.ndjson"])
    assert tally.documents == 5 and tally.resources == 4  # 4 observations + the JSON line without resourceType
    by_line = {i.source.rsplit(":", 1)[1]: i for i in issues if i.is_error}
    assert set(by_line) == {"2", "3", "4", "5", "7"}
    assert "obs-6" in by_line["2"].diagnostics
    assert by_line["3"].expression == "Observation.status"
    assert "not valid JSON" in by_line["5"].diagnostics


def test_big_file_is_refused_without_reading(tmp_path: Path) -> None:
    p = tmp_path / "huge.json"
    with open(p, "wb") as fh:  # sparse: 2 GiB apparent size, no disk blocks
        fh.truncate(2 * 1024**3)
    issue, count = only_issue(p)
    assert (issue.severity, issue.code, count) == ("fatal", "too-costly", 0)
    assert "2,147,483,648 bytes" in issue.diagnostics


def test_size_limit_is_configurable_and_ndjson_streams(tmp_path: Path) -> None:
    doc = {"resourceType": "Patient", "gender": "female", "name": [{"family": "x" * 500}]}
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    issue, _ = only_issue(p, max_bytes=100)
    assert issue.code == "too-costly"
    nd = tmp_path / "p.ndjson"
    nd.write_text(json.dumps({"resourceType": "Patient"}) + "\n" + json.dumps(doc) + "\n"
                  + json.dumps({"resourceType": "Patient", "gender": "f"}) + "\n")
    issues, tally = validate_issues([nd], max_bytes=100)
    assert tally.documents == 2  # the over-long line 2 is skipped, lines 1 and 3 are read
    assert [(i.source, i.code) for i in issues] == [(f"{nd}:2", "too-costly"), (f"{nd}:3", "code-invalid")]


def test_truncated_gzip(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"resourceType": "Patient", "id": f"p{i}"}) + "\n" for i in range(2000))
    blob = gzip.compress(lines.encode())
    p = tmp_path / "cut.ndjson.gz"
    p.write_bytes(blob[: len(blob) // 2])
    items = list(read_items(p))
    last = items[-1]
    assert getattr(last, "severity", None) == "fatal" and "after line" in last.diagnostics
    assert 0 < len(items) - 1 < 2000  # what came before the cut was still checked
    q = tmp_path / "cut.json.gz"
    q.write_bytes(gzip.compress(json.dumps({"resourceType": "Patient"}).encode())[:-12])
    issue, _ = only_issue(q)
    assert issue.severity == "fatal" and str(q) == issue.source


def test_gzip_ndjson_and_json_lines_in_json_file(tmp_path: Path) -> None:
    p = tmp_path / "ok.ndjson.gz"
    p.write_bytes(gzip.compress(b'{"resourceType":"Patient"}\n{"resourceType":"Patient","gender":"x"}\n'))
    issues, tally = validate_issues([p])
    assert tally.documents == 2 and [i.source for i in issues] == [f"{p}:2"]
    j = tmp_path / "lines.json"
    j.write_text('{"resourceType":"Patient"}\n{"resourceType":"Patient"}\n')
    issues, tally = validate_issues([j])
    assert (issues, tally.documents) == ([], 2)


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"resourceType":"Patient"}')
    (tmp_path / "notes.txt").write_text("ignored")
    issues, tally = validate_issues([tmp_path])
    assert (issues, tally.files, tally.documents) == ([], 1, 1)


def test_odd_shapes_and_deep_nesting_are_issues_not_crashes(tmp_path) -> None:
    import json

    from fhir3t.cli import main

    odd = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "contained": [{"resourceType": "Medication", "id": ["m"]}], "subject": {"reference": "#m"}}
    depth = 600  # deeper than the json module (or Python's recursion limit) would build
    item = '{"linkId": "g", "type": "group", "item": [' * depth + '{"linkId": "leaf", "type": "display"}' + "]}" * depth
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    (tmp_path / "deep.json").write_text('{"resourceType": "Questionnaire", "status": "active", "item": [' + item + "]}")
    assert main(["validate", str(tmp_path)]) == 1  # errors found, no internal error (70)
