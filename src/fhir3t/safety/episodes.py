"""Lab AE episodes: consecutive graded results of one test form one AE (spec §2, "Episodes").

Pure: takes graded Readings already limited to the subject's AE window (after D1, up to as_of).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from fhir3t.safety.grading import LabTest, Reading

Outcome = Literal["resolved", "recovering", "ongoing"]


@dataclass(frozen=True)
class Episode:
    test: LabTest
    abnormal: tuple[Reading, ...]  # the results of grade >= 1, in order
    closing: Reading | None  # the first later grade-0 result, which ends the episode

    @property
    def start(self) -> date:
        return self.abnormal[0].day

    @property
    def end(self) -> date | None:
        return self.closing.day if self.closing else None

    @property
    def worst(self) -> Reading:
        """The first result with the highest grade."""
        top = max(r.grade for r in self.abnormal)
        return next(r for r in self.abnormal if r.grade == top)

    @property
    def grade(self) -> int:
        return self.worst.grade

    @property
    def outcome(self) -> Outcome:
        if self.closing is not None:
            return "resolved"
        return "recovering" if self.abnormal[-1].grade < self.grade else "ongoing"

    @property
    def readings(self) -> tuple[Reading, ...]:
        return self.abnormal + ((self.closing,) if self.closing else ())


def order_key(r: Reading) -> tuple[date, str, str]:
    return (r.day, r.order, r.ref)


def episodes(readings: Iterable[Reading]) -> list[Episode]:
    """Split one test's results (any order) into episodes: start at the first grade >= 1, end at the next grade 0."""
    out: list[Episode] = []
    current: list[Reading] = []
    test: LabTest | None = None
    for r in sorted(readings, key=order_key):
        test = test or r.test
        if r.grade >= 1:
            current.append(r)
        elif current:
            out.append(Episode(r.test, tuple(current), r))
            current = []
    if current and test is not None:
        out.append(Episode(test, tuple(current), None))
    return out
