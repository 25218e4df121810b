"""Agreement of `fhir3t validate` with the HL7 Java validator's published verdicts on the R4 test cases of
github FHIR/fhir-test-cases (validator/manifest.json).

The set: every R4 case (version 4.0 / 4.0.1) whose file is JSON or XML and that has a Java verdict. Cases
are left out only for a reason printed with its count:

- it loads an external package (`packages`, a logical model, IPS, matchetype), which fhir3t does not fetch;
- it is validated against StructureDefinitions (or other conformance resources but Questionnaires) shipped
  with the test (`profiles`, `supporting`): fhir3t validates against R4 and its own profiles only;
- its verdict depends on a terminology server: a `tx` module, or every error the Java validator reports is a
  terminology answer (code not in a value set, unknown code, wrong display), so without a server the case
  has no verdict to compare;
- it is switched off upstream (`use-test: false`) or needs an option fhir3t does not have (security checks,
  reference fetching, bundle validation parameters, markdown rules).

A case's verdict is "invalid" when the Java outcome has an error or fatal issue. Questionnaires among the
`supporting` files are given to fhir3t as context (`Options.context`), as the Java harness loads them.
Valid cases that fhir3t rejects for a reason listed in KNOWN_REJECTED are counted apart with that reason.
The test data is read from a git checkout given on the command line and is never copied into fhir3t.

    python tools/hl7_agreement.py /path/to/fhir-test-cases [-v] [--json OUT]
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Terminology answers of the Java validator (errors only a terminology server can give).
TX_MESSAGE = re.compile(
    r"not (found )?in the value set|is not in the value set|Unknown code|Unknown Code|unknown code|"
    r"Wrong Display Name|wrong display|Display Name for .* should be|could not be validated|"
    r"Unable to check whether|not a valid code in|was not found in the value set|"
    r"No valid Display Names found|does not exist in the code ?system|A definition for CodeSystem|"
    r"None of the codings provided are in the value set|Unable to validate code|"
    r"The code system .* is not known|is not a known code|Unknown code system|not found in the CodeSystem|"
    r"The value set .* could not be found|could not be found, so the code cannot be validated|"
    r"is not valid in the value set|Error from (the )?(terminology )?server|"
    r"The Coding references a value in the|Code .* is not a valid",
    re.I)

#: Valid cases fhir3t rejects on purpose, with the reason (the HL7 example is wrong per R4 or per
#: a rule the Java validator does not apply). Names are manifest test names.
KNOWN_REJECTED: dict[str, str] = {
    "bundle-questionnaire": "display items without linkId: R4 Questionnaire.item.linkId is 1..1 "
                            "(the Java validator does not report it)",
    "ref-policy-default-r4": "a urn:uuid reference that resolves to no entry of the Bundle: a urn:uuid names "
                             "nothing outside a Bundle, so fhir3t reports it in every Bundle type",
    "ref-policy-default-apply-r5": "the same file as ref-policy-default-r4",
    "test-input-params-example1": "an unknown modifierExtension: R4 says a modifier that is not understood "
                                  "must not be ignored (the Java validator lets example.org ones pass)",
}

UNSUPPORTED_OPTIONS = ("security-checks", "bundle-param", "noHtmlInMarkdown", "validateReference",
                       "fhir-validator-cli-options", "validateContains", "r5-bundle-relative-reference-policy")


@dataclass
class Case:
    name: str
    file: str
    expected_invalid: bool | None
    excluded: str | None
    supporting: list[str]
    messages: list[str]


def git_show(repo: Path, path: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, check=True).stdout


def has_file(repo: Path, path: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"HEAD:validator/{path}"],
                          capture_output=True).returncode == 0


def expected_errors(repo: Path, java: Any) -> list[str]:
    """The Java validator's error and fatal messages for a case."""
    if isinstance(java, dict):
        out = [str(m) for m in java.get("output", []) if str(m).startswith(("ERROR", "FATAL"))]
        return out if out or not java.get("errorCount") else ["(errors not listed)"] * int(java["errorCount"])
    oo = json.loads(git_show(repo, f"validator/outcomes/{java}"))
    return [(i.get("details") or {}).get("text") or i.get("diagnostics") or "" for i in oo.get("issue", [])
            if i.get("severity") in ("error", "fatal")]


def resource_type(repo: Path, path: str) -> str | None:
    try:
        data = git_show(repo, f"validator/{path}")
    except subprocess.CalledProcessError:
        return None
    if path.endswith(".json"):
        try:
            return json.loads(data.decode("utf-8-sig")).get("resourceType")
        except (ValueError, AttributeError):
            return None
    m = re.search(rb"<([A-Za-z]+)[\s>]", re.sub(rb"<\?.*?\?>|<!--.*?-->", b"", data, flags=re.S))
    return m.group(1).decode() if m else None


def classify(repo: Path, t: dict) -> Case | None:
    """The case, with why it is left out (None: not part of the set at all)."""
    if t.get("version") not in ("4.0", "4.0.1") or not t.get("java") or not t["file"].endswith((".json", ".xml")):
        return None
    supporting = list(t.get("supporting") or []) + list(t.get("supporting5") or [])
    case = Case(t["name"], t["file"], None, None, [], [])
    try:
        case.messages = expected_errors(repo, t["java"])
    except (subprocess.CalledProcessError, ValueError):
        case.excluded = "no published outcome (the Java harness writes one on its first run)"
        return case
    case.expected_invalid = bool(case.messages)
    if not all(has_file(repo, f) for f in [t["file"], *supporting]):
        case.excluded = "a file of the case is missing from the checkout"
    elif t.get("use-test") is False:
        case.excluded = "switched off upstream (use-test: false)"
    elif t.get("packages") or t.get("logical") or t.get("ips") or t.get("matchetype") or t.get("package-map"):
        case.excluded = "loads an external package"
    elif str(t.get("module", "")).startswith("tx") or t.get("sct"):
        case.excluded = "needs a terminology server (tx module)"
    elif t.get("profiles"):
        case.excluded = "validated against StructureDefinitions supplied with the test"
    elif any(resource_type(repo, s) != "Questionnaire" for s in supporting):
        case.excluded = "validated against StructureDefinitions supplied with the test"
    elif any(t.get(k) for k in UNSUPPORTED_OPTIONS):
        case.excluded = "needs a validator option fhir3t does not have"
    elif case.messages and all(TX_MESSAGE.search(m) for m in case.messages):
        case.excluded = "needs a terminology server (every reported error is a terminology answer)"
    case.supporting = supporting
    return case


def run_cases(repo: Path, cases: list[Case]) -> Iterator[tuple[Case, list[str]]]:
    """Each included case with fhir3t's error messages."""
    import fhir3t.validate as v

    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            p = Path(tmp) / case.file
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(git_show(repo, f"validator/{case.file}"))
            options = None
            if case.supporting and hasattr(v, "load_context"):
                ctx = []
                for s in case.supporting:
                    sp = Path(tmp) / s
                    sp.parent.mkdir(parents=True, exist_ok=True)
                    sp.write_bytes(git_show(repo, f"validator/{s}"))
                    ctx.append(sp)
                options = v.Options(context=v.load_context(ctx)[0])
            issues, _ = v.validate_issues([p], options=options)
            yield case, [str(i) for i in issues if i.is_error]


def main(argv: list[str]) -> int:
    repo, verbose = Path(argv[0]), "-v" in argv
    out_json = argv[argv.index("--json") + 1] if "--json" in argv else None
    manifest = json.loads(git_show(repo, "validator/manifest.json"))
    cases = [c for t in manifest["test-cases"] if (c := classify(repo, t)) is not None]
    excluded = Counter(c.excluded for c in cases if c.excluded)
    included = [c for c in cases if not c.excluded]
    rows = list(run_cases(repo, included))
    agree = sum(c.expected_invalid == bool(ours) for c, ours in rows)
    valid_rejected = [(c, o) for c, o in rows if o and not c.expected_invalid]
    known = [(c, o) for c, o in valid_rejected if c.name in KNOWN_REJECTED]
    unexplained = [(c, o) for c, o in valid_rejected if c.name not in KNOWN_REJECTED]
    missed = [(c, o) for c, o in rows if c.expected_invalid and not o]
    n_json = sum(c.file.endswith(".json") for c, _ in rows)
    print(f"R4 JSON/XML cases with a verdict: {len(cases)}; left out {sum(excluded.values())}:")
    for why, n in excluded.most_common():
        print(f"  {n:4d}  {why}")
    print(f"{len(rows)} cases ({n_json} JSON, {len(rows) - n_json} XML): agreement {agree}/{len(rows)} = "
          f"{agree / len(rows):.1%}; invalid passed {len(missed)}, valid rejected {len(valid_rejected)} "
          f"({len(known)} listed with a reason, {len(unexplained)} not)")
    for c, _ in known:
        print(f"  listed: {c.name}: {KNOWN_REJECTED[c.name]}")
    if verbose:
        for c, o in unexplained:
            print(f"extra   {c.name} ({c.file}): {o[:3]}")
        for c, _ in missed:
            print(f"missed  {c.name} ({c.file}): {c.messages[:3]}")
    if out_json:
        Path(out_json).write_text(json.dumps({
            "cases": len(rows), "agree": agree, "excluded": dict(excluded),
            "valid_rejected": [c.name for c, _ in valid_rejected], "invalid_passed": [c.name for c, _ in missed],
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
