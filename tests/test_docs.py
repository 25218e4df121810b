"""The documentation site says what the code does (issue 26): its marked shell examples run against the samples
with the exit code and a line of output they promise, its references are what tools/gen_reference.py makes of
the code today, and the JSON contract it documents is the one the output keeps.

An example is marked by an HTML comment right above a ```sh block (invisible on the site):

    <!-- example: exit=0 expect="25 patients: 4 eligible" -->
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import ROOT, SAMPLES

DOCS = ROOT / "docs"
MARK = re.compile(r'<!-- example: exit=(?P<exit>\d+) expect="(?P<expect>[^"]+)" -->\n```sh\n(?P<body>.*?)\n```', re.S)


def examples() -> list[tuple[str, int, str, str]]:
    out = []
    for page in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:  # the README's tour is held to the same rule
        text = page.read_text(encoding="utf-8")
        for m in MARK.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append((f"{page.relative_to(ROOT)}:{line}", int(m["exit"]), m["expect"], m["body"]))
    return out


def test_the_docs_mark_examples_on_every_role_page_that_runs_commands():
    pages = {where.split(":")[0] for where, *_ in examples()}
    assert {"README.md", "docs/index.md", "docs/coordinator.md", "docs/integration-engineer.md",
            "docs/dsmb-statistician.md"} <= pages
    assert len(examples()) >= 5


@pytest.mark.parametrize(("where", "code", "expect", "body"), examples(), ids=[e[0] for e in examples()])
def test_a_documented_example_runs_as_the_page_says(where, code, expect, body, tmp_path):
    bindir = Path(sys.executable).parent
    if not (bindir / "fhir3t").exists():
        pytest.skip("the fhir3t console script is not installed next to this Python")
    (tmp_path / "samples").symlink_to(SAMPLES)  # the examples run from a checkout; what they write lands here
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "FHIR3T_CONFIG": "none",
           "COLUMNS": "100"}
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == code, f"{where}: exit {r.returncode}\n{r.stderr[-2000:]}"
    assert expect in r.stdout + r.stderr, f"{where}: {expect!r} not in the output:\n{(r.stdout + r.stderr)[-2000:]}"


def test_the_references_are_what_the_code_says():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_reference.py"), "--check"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_every_result_the_samples_give_keeps_the_documented_json_contract(tmp_path):
    from fhir3t.cli import main

    schema = json.loads((ROOT / "src" / "fhir3t" / "formats" / "screening-result.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    out = tmp_path / "r.json"
    assert main(["screen", str(SAMPLES), "--format", "json", "--out", str(out), "--show-names", "--no-progress"]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert len(results) == len({r["patient"] for r in results}) >= 40  # every sample patient, once
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for r in results:
        validator.validate(r)
    bad = dict(results[0], criteria=[dict(results[0]["criteria"][0], result="maybe")])
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)  # the schema is strict enough to notice a change
