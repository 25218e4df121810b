"""The coordinator's outputs from a real FHIR server: the worklist, explain, and the config's [server]."""
from __future__ import annotations

import json
import re

from fhir3t.cli import main
from integration.conftest import AS_OF, CONCEPT_MAP


def test_worklist_and_csv_from_the_server(loaded_server, tmp_path, capsys):
    page, table = tmp_path / "worklist.html", tmp_path / "worklist.csv"
    assert main(["screen", "--server", loaded_server, "--as-of", AS_OF, "--concept-map", str(CONCEPT_MAP),
                 "--no-progress", "--html", str(page), "--csv", str(table), "--format", "ndjson"]) == 0
    results = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    text = page.read_text(encoding="utf-8")
    assert text.count('<tr class="row"') == len(results) == 24  # the candidates (p09 has no DM diagnosis)
    assert "MRN-100003" in text and "MRN-100016" in text  # display ids from the server's Patient.identifier
    assert re.search(r"<dt>Inputs</dt><dd>http://127\.0\.0\.1:\d+/fhir</dd>", text)
    assert "Verhoeven" not in text  # no names unless asked
    rows = table.read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 25 and rows[0].startswith("patient,display_id,status")


def test_explain_a_patient_on_the_server_by_id(loaded_server, capsys):
    assert main(["explain", "p03", "--server", loaded_server, "--as-of", AS_OF, "--concept-map", str(CONCEPT_MAP),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("MRN-100003 (Patient/p03): candidate") and "to resolve:" in out


def test_the_config_names_the_server(loaded_server, tmp_path, capsys):
    cfg = tmp_path / "fhir3t.toml"
    cfg.write_text(f'[server]\nurl = "{loaded_server}"\n[terminology]\nconcept_maps = ["{CONCEPT_MAP}"]\n'
                   '[screen]\nformat = "csv"\nno-progress = true\n')
    assert main(["--config", str(cfg), "screen", "--as-of", AS_OF, "--patient", "p01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\ufeffpatient,display_id") and "Patient/p01,MRN-100001,eligible" in out
