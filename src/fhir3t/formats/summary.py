"""Wording shared by the output formats: counts with plurals, what to do about an unknown, stale results.

A criterion's reason is clauses, each a finding and what would settle it ("no HBsAg result in ...",
"order HBsAg (LOINC 5196-1) at screening"); `actions` lists the latter so a worklist can show them.
`stale_on` reads the observation rule's note that the newest result is older than its window: the
criterion is unknown only because of that, which for a whole run usually means the data are older
than the as-of date (the samples screened weeks after they were written, an old export).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from fhir3t.criteria.model import STATUSES, CriterionResult, ScreeningResult
from fhir3t.enrolment import Status
from fhir3t.logic import MET, UNKNOWN
from fhir3t.messages import render


def plural(n: int, word: str) -> str:
    """'1 patient', '2 patients', '3 candidates', '2 entries'."""
    if n == 1:
        return f"{n} {word}"
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy")):
        return f"{n} {word[:-1]}ies"
    return f"{n} {word}s"


def status_counts(counts: Counter[str] | dict[str, int]) -> str:
    """'4 eligible, 18 ineligible, 3 candidates' (every status, in the usual order)."""
    return ", ".join(plural(counts.get(s, 0), s) if s == Status.CANDIDATE else f"{counts.get(s, 0)} {s}" for s in STATUSES)


def summary_line(counts: Counter[str] | dict[str, int], total: int) -> str:
    """'25 patients: 4 eligible, 18 ineligible, 3 candidates'."""
    return f"{plural(total, 'patient')}: {status_counts(counts)}"


def actions(c: CriterionResult, lang: str = "en") -> list[str]:
    """What the reason says to do, clause by clause ('order HBsAg (LOINC 5196-1) at screening', ...),
    deduplicated, in `lang`."""
    return list(dict.fromkeys(render(s, lang) for s in c.settles))


def effect(c: CriterionResult) -> str:
    """'passes' (inclusion met, exclusion not met), 'fails' (the opposite) or 'unknown'."""
    if c.result == UNKNOWN:
        return "unknown"
    return "passes" if (c.result == MET) == (c.kind == "inclusion") else "fails"


def stale_on(c: CriterionResult) -> str | None:
    """The date of the newest result, when the criterion is unknown only because it is older than the window."""
    if c.result != UNKNOWN:
        return None
    found = [cl.stale.split("..")[-1] for cl in c.explanation if cl.stale]
    return max(found) if found else None


@dataclass
class StaleTally:
    """Counts, over a run, the unknown criteria that only an older-than-the-window result left unknown."""

    unknown: int = 0
    stale: int = 0
    patients: set[str] = field(default_factory=set)
    newest: str = ""

    def add(self, r: ScreeningResult) -> None:
        for c in r.criteria:
            if c.result != UNKNOWN:
                continue
            self.unknown += 1
            when = stale_on(c)
            if when is not None:
                self.stale += 1
                self.patients.add(r.patient)
                self.newest = max(self.newest, when)

    def add_all(self, results: Iterable[ScreeningResult]) -> StaleTally:
        for r in results:
            self.add(r)
        return self

    def hint(self, as_of: object) -> str | None:
        """One line when many unknowns are only stale results (at least 3, and half of all unknowns)."""
        if self.stale < 3 or self.stale * 2 < self.unknown:
            return None
        return (f"{self.stale} of {self.unknown} unknown criteria ({plural(len(self.patients), 'patient')}) are unknown "
                f"only because the latest result is older than its window as of {as_of} (the newest of those results is "
                f"from {self.newest}): if the data were collected for an earlier day, screen with --as-of that day")


__all__ = ["StaleTally", "actions", "effect", "plural", "stale_on", "status_counts", "summary_line"]
