"""The text report a person reads: issues grouped by kind, with counts and a few locations each.

A kind is (severity, issue code, the message with its quoted values and numbers blanked), so 600
"not in the value set" errors on one element read as one line with a count rather than a flood.
Every issue stays in the OperationOutcome (`--format json`); this view only condenses. Kinds are told apart by
the English message; each is shown in the reader's language. Text from the input is escaped so no control
character reaches the terminal.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from fhir3t.messages import EN, Plural
from fhir3t.messages import render as say
from fhir3t.validate.issues import Issue

SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}
_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d+\b")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MORE = Plural("validate.report.more", "... and {n} more (--format json lists every one)",
              "... and {n} more (--format json lists every one)")


def escape(text: str) -> str:
    """`text` with control characters (ANSI escapes, newlines) shown as \\xNN, safe for a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def at_least(issues: Iterable[Issue], min_severity: str) -> list[Issue]:
    limit = SEVERITY_ORDER[min_severity]
    return [i for i in issues if SEVERITY_ORDER.get(i.severity, 3) <= limit]


@dataclass
class Group:
    severity: str
    code: str
    message: str                     # the first issue's message, as an example of the kind
    where: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.where)


def group(issues: Iterable[Issue], lang: str = EN) -> list[Group]:
    groups: dict[tuple[str, str, str], Group] = {}
    for i in issues:
        key = (i.severity, i.code, _VALUES.sub("…", i.diagnostics))
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(i.severity, i.code, i.text(lang))
        g.where.append(" ".join(x for x in (i.source, i.expression) if x) or "-")
    return sorted(groups.values(), key=lambda g: (SEVERITY_ORDER.get(g.severity, 3), -g.count, g.code, g.message))


def render(issues: Sequence[Issue], summary: str, *, locations: int = 5, lang: str = EN) -> Iterator[str]:
    """Lines of the grouped report in `lang`, the summary (already in `lang`) last."""
    for g in group(issues, lang):
        yield f"{g.severity:<11} {g.code:<13} {g.count:>5}×  {escape(g.message)}"
        for w in g.where[:locations]:
            yield f"{'':<33}{escape(w)}"
        if g.count > locations:
            yield f"{'':<33}{say(MORE(g.count - locations), lang)}"
    yield escape(summary)
