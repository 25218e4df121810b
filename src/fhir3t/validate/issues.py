"""Validation findings and their FHIR form (an R4 OperationOutcome).

Every check returns plain `Issue` values instead of raising, so one run can report all problems
of a file and the CLI can pick the exit code from the worst severity.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from fhir3t.messages import EN, Message, Msg, render

Severity = Literal["fatal", "error", "warning", "information"]

_ERRORS = frozenset({"fatal", "error"})


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding.

    `expression` is a FHIRPath-like location inside the resource (`Bundle.entry[3].resource.status`);
    `source` names where the resource came from (`file.ndjson:12`), never patient data. `msg` is what is wrong,
    a message said in the reader's language (`text`), or text passed on as it came (the operating system's
    reason a file cannot be read); `diagnostics` is its English, the OperationOutcome's `diagnostics` (stable
    whatever the language: programs and the HL7 comparisons read it).
    """

    severity: Severity
    code: str
    msg: Msg | str
    expression: str | None = None
    source: str | None = None

    @property
    def diagnostics(self) -> str:
        return self.text(EN)

    def text(self, lang: str = EN) -> str:
        """What is wrong, in `lang`."""
        return render(self.msg, lang) if isinstance(self.msg, Msg) else self.msg

    @property
    def is_error(self) -> bool:
        return self.severity in _ERRORS

    def at(self, prefix: str) -> Issue:
        """The same issue, located inside `prefix` (e.g. `Bundle.entry[2].resource`).

        The resource's own type name is replaced by the prefix, so `Patient.gender` found in entry 2
        becomes `Bundle.entry[2].resource.gender`.
        """
        expr = self.expression
        if not expr:
            return replace(self, expression=prefix)
        head, _dot, _rest = expr.partition(".")
        tail = expr[len(head):] if head and head[0].isupper() else "." + expr
        return replace(self, expression=prefix + tail)

    def with_source(self, source: str) -> Issue:
        return self if self.source else replace(self, source=source)

    def __str__(self) -> str:
        where = " ".join(x for x in (self.source, self.expression) if x)
        return f"{self.severity:<11} {self.code:<13} {where}: {self.diagnostics}" if where else (
            f"{self.severity:<11} {self.code:<13} {self.diagnostics}"
        )


def has_errors(issues: Iterable[Issue]) -> bool:
    return any(i.is_error for i in issues)


#: the one issue of a clean result
NO_ISSUES = Message("validate.no-issues", "No issues found")


def to_operation_outcome(issues: Iterable[Issue], lang: str = EN) -> dict:
    """An R4 OperationOutcome (as a JSON-ready dict) listing `issues` in order.

    R4 requires at least one issue, so a clean result says so with one `information` issue.
    The source (file and line) goes in front of `diagnostics` because R4 has no element for it
    other than the deprecated XPath `location`. `diagnostics` is English whatever the language (programs
    compare it); in another language each issue's `details.text` says it in that language.
    """
    out = []
    for i in issues:
        entry: dict = {"severity": i.severity, "code": i.code}
        if lang != EN:
            said = i.text(lang)
            entry["details"] = {"text": f"{i.source}: {said}" if i.source else said}
        entry["diagnostics"] = f"{i.source}: {i.diagnostics}" if i.source else i.diagnostics
        if i.expression:
            entry["expression"] = [i.expression]
        out.append(entry)
    if not out:
        out.append({"severity": "information", "code": "informational",
                    **({"details": {"text": render(NO_ISSUES(), lang)}} if lang != EN else {}),
                    "diagnostics": render(NO_ISSUES(), EN)})
    return {"resourceType": "OperationOutcome", "issue": out}
