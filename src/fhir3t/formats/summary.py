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

import orjson

from fhir3t.criteria.model import CriterionResult, ScreeningResult
from fhir3t.enrolment import WORDS, Status
from fhir3t.logic import MET, RESULT_WORDS, UNKNOWN
from fhir3t.messages import Message, Msg, Plural, render

PATIENTS = Plural("summary.patients", "{n} patient", "{n} patients")
CANDIDATES = Plural("summary.candidates", "{n} candidate", "{n} candidates")
COUNTS = Message("summary.counts", "{eligible} eligible, {ineligible} ineligible, {candidates}")
LINE = Message("summary.line", "{patients}: {counts}")
#: a criterion's result and what it does to the patient's status, as a person reads them
EFFECT_WORDS = {"passes": Message("effect.passes", "passes"), "fails": Message("effect.fails", "fails"),
                "unknown": Message("effect.unknown", "unknown")}
STALE_HINT = Message("summary.stale-hint", "{stale} of {unknown} unknown criteria ({patients}) are unknown only because "
                     "the latest result is older than its window as of {as_of} (the newest of those results is from "
                     "{newest}): if the data were collected for an earlier day, screen with --as-of that day")


def plural(n: int, word: str) -> str:
    """'1 patient', '2 patients', '3 candidates', '2 entries' (English only: for log lines and counts in
    English text; what a person reads uses a Plural message)."""
    if n == 1:
        return f"{n} {word}"
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy")):
        return f"{n} {word[:-1]}ies"
    return f"{n} {word}s"


def status_word(status: str, lang: str = "en") -> str:
    """'eligible' / '符合条件': a screening status as a person reads it."""
    try:
        return render(WORDS[Status(status)](), lang)
    except ValueError:
        return status


def result_word(result: str, lang: str = "en") -> str:
    """'met' / 'not met' / 'unknown' in `lang`."""
    m = RESULT_WORDS.get(result)
    return render(m(), lang) if m is not None else result


def effect_word(eff: str, lang: str = "en") -> str:
    return render(EFFECT_WORDS[eff](), lang)


def counts_msg(counts: Counter[str] | dict[str, int]) -> Msg:
    return COUNTS(eligible=counts.get(Status.ELIGIBLE, 0), ineligible=counts.get(Status.INELIGIBLE, 0),
                  candidates=CANDIDATES(counts.get(Status.CANDIDATE, 0)))


def status_counts(counts: Counter[str] | dict[str, int], lang: str = "en") -> str:
    """'4 eligible, 18 ineligible, 3 candidates' (every status, in the usual order)."""
    return render(counts_msg(counts), lang)


def summary_msg(counts: Counter[str] | dict[str, int], total: int) -> Msg:
    return LINE(patients=PATIENTS(total), counts=counts_msg(counts))


def summary_line(counts: Counter[str] | dict[str, int], total: int, lang: str = "en") -> str:
    """'25 patients: 4 eligible, 18 ineligible, 3 candidates'."""
    return render(summary_msg(counts, total), lang)


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


def _stale_facts(r: ScreeningResult) -> bytes:
    """[unknown criteria, of them stale, the newest stale date] of one result (kept by a stored result)."""
    unknown = stale = 0
    newest = ""
    for c in r.criteria:
        if c.result != UNKNOWN:
            continue
        unknown += 1
        when = stale_on(c)
        if when is not None:
            stale += 1
            newest = max(newest, when)
    return orjson.dumps([unknown, stale, newest])


@dataclass
class StaleTally:
    """Counts, over a run, the unknown criteria that only an older-than-the-window result left unknown."""

    unknown: int = 0
    stale: int = 0
    patients: set[str] = field(default_factory=set)
    newest: str = ""

    def add(self, r: ScreeningResult) -> None:
        unknown, stale, newest = orjson.loads(r.rendered("stale-tally", _stale_facts))
        self.unknown += unknown
        if stale:
            self.stale += stale
            self.patients.add(r.patient)
            self.newest = max(self.newest, newest)

    def add_all(self, results: Iterable[ScreeningResult]) -> StaleTally:
        for r in results:
            self.add(r)
        return self

    def hint(self, as_of: object) -> Msg | None:
        """One line when many unknowns are only stale results (at least 3, and half of all unknowns)."""
        if self.stale < 3 or self.stale * 2 < self.unknown:
            return None
        return STALE_HINT(stale=self.stale, unknown=self.unknown, patients=PATIENTS(len(self.patients)), as_of=str(as_of),
                          newest=self.newest)


__all__ = ["EFFECT_WORDS", "PATIENTS", "RESULT_WORDS", "StaleTally", "actions", "counts_msg", "effect", "effect_word",
           "plural", "result_word", "stale_on", "status_counts", "status_word", "summary_line", "summary_msg"]
