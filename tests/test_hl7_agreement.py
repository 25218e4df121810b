"""Agreement with the HL7 Java validator's published verdicts over every R4 JSON and XML case of the HL7
fhir-test-cases repository that needs no terminology server and no external package (tools/hl7_agreement.py).

Needs a git checkout of github.com/FHIR/fhir-test-cases, named by FHIR_TEST_CASES (or ../fhir-test-cases
beside the repository); skipped without it. Its files are read with git and never copied here."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = Path(os.environ.get("FHIR_TEST_CASES") or ROOT.parent / "fhir-test-cases")


def _has_checkout() -> bool:
    return subprocess.run(["git", "-C", str(CHECKOUT), "cat-file", "-e", "HEAD:validator/manifest.json"],
                          capture_output=True).returncode == 0 if CHECKOUT.exists() else False


@pytest.mark.skipif(not _has_checkout(), reason="no fhir-test-cases checkout (set FHIR_TEST_CASES)")
def test_agreement_with_the_hl7_validator_is_at_least_90_percent_with_no_unexplained_rejection(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("hl7_agreement", ROOT / "tools" / "hl7_agreement.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tool  # its dataclasses look their module up
    spec.loader.exec_module(tool)
    out = tmp_path / "agreement.json"
    assert tool.main([str(CHECKOUT), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["cases"] >= 300
    assert got["agree"] / got["cases"] >= 0.90, got["invalid_passed"]
    assert sorted(set(got["valid_rejected"]) - set(tool.KNOWN_REJECTED)) == []
    assert sum(got["excluded"].values()) > 0 and all(n > 0 for n in got["excluded"].values())
