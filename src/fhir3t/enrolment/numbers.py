"""Study subject numbers from a pattern (`S-{n:03d}` gives S-001, S-002, ...; the study's own is in profiles/study.json).

The pattern is data (profiles/study.json `enrolment.subject_number`, or `[enrolment] subject_number` in the
config file): literal text around exactly one `{n}` field, with an optional zero-padded width (`{n:03d}`).
The next number is one more than the highest number of the pattern already given, whatever else the
store holds (numbers written by hand in another form are left alone, never reused).
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

from fhir3t.errors import ConfigError
from fhir3t.messages import Message

_FIELD = re.compile(r"0?(\d{0,2})d?")
BAD_PATTERN = Message("enrolment.number-pattern", "subject number pattern {pattern}: give literal text and one {{n}} "
                                                  "field (at most 64 characters), e.g. S-{{n:03d}}")


@dataclass(frozen=True)
class SubjectNumbers:
    pattern: str

    def __post_init__(self) -> None:
        try:
            fields = list(string.Formatter().parse(self.pattern))
        except ValueError:
            fields = []
        names = [name for _, name, _, _ in fields if name is not None]
        if (names != ["n"] or len(self.pattern) > 64
                or not all(_FIELD.fullmatch(spec or "") and conv is None for _, name, spec, conv in fields if name is not None)):
            raise ConfigError(BAD_PATTERN(pattern=repr(self.pattern)[:80]))

    @property
    def _regex(self) -> re.Pattern[str]:
        out = ""
        for lit, name, _spec, _ in string.Formatter().parse(self.pattern):
            out += re.escape(lit)
            if name is not None:
                out += r"(\d{1,9})"
        return re.compile(out)

    def format(self, n: int) -> str:
        return self.pattern.format(n=n)

    def parse(self, value: object) -> int | None:
        """The number in a subject number of this pattern (None: another form)."""
        if not isinstance(value, str):
            return None
        m = self._regex.fullmatch(value.strip())
        return int(m.group(1)) if m else None

    def next(self, given: Iterable[object]) -> str:
        """The number after the highest one of this pattern in `given` (the first one when there is none)."""
        highest = max((n for n in map(self.parse, given) if n is not None), default=0)
        return self.format(highest + 1)


__all__ = ["SubjectNumbers"]
