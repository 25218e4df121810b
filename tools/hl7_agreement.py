"""Agreement of `fhir3t validate` with the HL7 Java validator's published verdicts on its R4 test
cases (github FHIR/fhir-test-cases, validator/manifest.json; base spec: cases that load packages,
profiles or supporting files, or need a terminology server (modules tx*), are left out).
The test data is read from a git checkout given on the command line and is never copied here.

    python tools/hl7_agreement.py /path/to/fhir-test-cases [-v]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from fhir3t.validate import validate_issues

SPECIAL = ("packages", "supporting", "profiles", "profile", "logical", "bundle-param", "ips", "security-checks",
           "noHtmlInMarkdown")


def git_show(repo: Path, path: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, check=True).stdout


def main() -> int:
    repo, verbose = Path(sys.argv[1]), "-v" in sys.argv
    manifest = json.loads(git_show(repo, "validator/manifest.json"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in manifest["test-cases"]:
            java = t.get("java")
            if (t.get("version") not in ("4.0", "4.0.1") or any(t.get(k) for k in SPECIAL) or not java
                    or not t["file"].endswith(".json") or "/" in t["file"] or t.get("use-test") is False
                    or str(t.get("module", "")).startswith("tx")):
                continue
            try:
                data = git_show(repo, f"validator/{t['file']}")
                if isinstance(java, dict):
                    expected = java.get("errorCount", 0)
                else:
                    oo = json.loads(git_show(repo, f"validator/outcomes/{java}"))
                    expected = sum(i["severity"] in ("error", "fatal") for i in oo.get("issue", []))
            except subprocess.CalledProcessError:
                continue
            p = Path(tmp) / t["file"]
            p.write_bytes(data)
            issues, _ = validate_issues([p])
            ours = sum(i.is_error for i in issues)
            rows.append((t["name"], expected > 0, ours > 0))
    agree = sum(e == o for _, e, o in rows)
    print(f"{len(rows)} cases: agreement {agree}/{len(rows)} = {agree / len(rows):.0%}; "
          f"invalid passed {sum(e and not o for _, e, o in rows)}, valid rejected {sum(o and not e for _, e, o in rows)}")
    if verbose:
        for name, e, o in rows:
            if e != o:
                print(("missed  " if e else "extra   ") + name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
