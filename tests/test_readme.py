"""The README's two set-up commands stay the ones CI runs, and its documented examples stay true."""
from __future__ import annotations

import re

from conftest import ROOT


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _setup_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    install_and_run, install_and_test = commands
    assert "pip install -e ." in install_and_run and "fhir3t screen samples/" in install_and_run
    assert "pytest" in install_and_test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install_and_test in ci


def test_readme_table_counts_match_the_samples(capsys, monkeypatch):
    from fhir3t.cli import main

    monkeypatch.chdir(ROOT)  # the README's paths are relative to the project folder
    command = _setup_commands()[0].split("&& fhir3t ", 1)[1].split()
    assert main([*command, "--no-progress"]) == 0
    out = capsys.readouterr().out
    documented = re.search(r"(\d+ patients: \d+ eligible, \d+ ineligible, \d+ candidate)",
                           (ROOT / "README.md").read_text(encoding="utf-8")).group(1)
    assert documented in out


def test_the_readme_is_a_short_page_whose_links_all_lead_somewhere():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150  # what it is, the two commands, a tour, links: the rest is on the site
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 6
    for link in links:
        if "://" not in link:
            assert (ROOT / link).exists(), link
