"""One execution: its dates, time zone, language, problems, learned studies and statistics.

A `Run` is made per execution (a CLI command, an API call, one CDS hook call, one watcher round, one
worker process) and handed with the `Definition` to every task. Nothing in it outlives the execution,
and nothing in the Definition is changed by it.

The as-of and D1 policy lives here, so the Python API, the CLI and the service agree:
as-of = the date given, else the date the input's sample files were written for (their
`Bundle.meta.tag`), else today in the site's time zone; D1 = the date given, else the as-of date.
"""
from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from fhir3t.dates import FIRST_DAY, LAST_DAY, parse_day
from fhir3t.errors import Fhir3tError, Problems, UsageError
from fhir3t.messages import Message, Plural
from fhir3t.records.relevance import RunFilter
from fhir3t.sources.files import expand_paths
from fhir3t.study import StudyMatcher

if TYPE_CHECKING:
    from fhir3t.pipeline.definition import Definition

#: Bundle.meta.tag system of the samples: the code is the as-of date they were written for
SAMPLE_AS_OF = "https://fhir3t.github.io/fhir/CodeSystem/sample-as-of"
_TAG = re.compile(rb'\{[^{}]*"' + re.escape(SAMPLE_AS_OF.encode()) + rb'"[^{}]*\}')
_CODE = re.compile(rb'"code"\s*:\s*"(\d{4}-\d{2}-\d{2})"')
_XML_TAG = re.compile(rb'<system\s+value="' + re.escape(SAMPLE_AS_OF.encode()) + rb'"\s*/>\s*<code\s+value="(\d{4}-\d{2}-\d{2})"')

OUTSIDE = Message("run.date-outside", "{option}: {value} is outside {first}-{last}")
MISSING_PARTS = Plural("input.missing-parts", "{n} result of reports the criteria read was referenced but is not in "
                       "the input (not read)", "{n} results of reports the criteria read were referenced but are not in "
                       "the input (not read)")
UNATTRIBUTED = Plural("input.unattributed", "{n} resource that could decide a criterion names no patient fhir3t can "
                      "find (see above): its patient's results may be incomplete", "{n} resources that could decide a "
                      "criterion name no patient fhir3t can find (see above): their patients' results may be incomplete")

#: where the as-of date came from
GIVEN, SAMPLES, TODAY = "given", "samples", "today"


def as_day(value: date | str | None, name: str) -> date | None:
    """A date option as given (a date or YYYY-MM-DD), checked to be in fhir3t's range."""
    if isinstance(value, date) and not FIRST_DAY <= value <= LAST_DAY:
        raise UsageError(OUTSIDE(option=name, value=value.isoformat(), first=FIRST_DAY.year, last=LAST_DAY.year))
    if value is None or isinstance(value, date):
        return value
    try:
        return parse_day(value)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def sample_as_of(paths: Iterable[str | Path], head: int = 2048) -> tuple[date | None, list[str]]:
    """The as-of date the sample files among `paths` were written for (Bundle.meta.tag), and the dates
    found when they disagree (then None). Reads only the first bytes of each .json file, as the
    ConceptMap discovery does; NDJSON (real exports) is never looked at."""
    found: set[str] = set()
    try:
        json_files, _ = expand_paths(paths, Problems())
    except Fhir3tError:
        return None, []
    for path in json_files:
        try:
            with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")) as fh:
                data = fh.read(head)
        except (OSError, EOFError, zlib.error):
            continue
        xml_tag = _XML_TAG.search(data)
        if xml_tag is not None:
            found.add(xml_tag.group(1).decode())
        tag = _TAG.search(data)
        if tag is not None:
            m = _CODE.search(tag.group(0))
            if m is not None:
                found.add(m.group(1).decode())
    if len(found) == 1:
        try:
            return parse_day(found.pop()), []
        except ValueError:
            return None, []
    return None, sorted(found)


def today_in(tz: tzinfo, clock: Callable[[], datetime] | None = None) -> date:
    """Today's date in the site's time zone (a 02:30 run in Hangzhou is 18:30 UTC the day before)."""
    now = clock() if clock is not None else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(tz).date()


@dataclass(frozen=True)
class Dates:
    """The run's dates and where the as-of came from (`given`, `samples` or `today`)."""

    as_of: date
    d1: date
    as_of_from: str
    #: the sample tags found when they disagree (then today was used)
    disagreeing: tuple[str, ...] = ()


def choose_dates(as_of: date | str | None = None, d1: date | str | None = None, *, paths: Iterable[str | Path] = (),
                 tz: tzinfo = UTC, clock: Callable[[], datetime] | None = None) -> Dates:
    """The as-of and D1 policy (see the module doc)."""
    given = as_day(as_of, "as_of")
    d1_day = as_day(d1, "d1")
    if given is not None:
        return Dates(given, d1_day or given, GIVEN)
    tagged, disagree = sample_as_of(paths) if paths else (None, [])
    if tagged is not None:
        return Dates(tagged, d1_day or tagged, SAMPLES)
    today = today_in(tz, clock)
    return Dates(today, d1_day or today, TODAY, tuple(disagree))


@dataclass
class RunStats:
    """What a run counts and says once at its end (not per patient, not per process)."""

    #: results of reports the criteria read that were referenced but not in the input
    missing_parts: int = 0
    #: resources that could decide a criterion but name no patient fhir3t can find
    unattributed: int = 0


@dataclass
class Run:
    """One execution (see the module doc). Make it with `Run.start`."""

    dates: Dates
    problems: Problems
    #: which ResearchStudy resources are this study: learnt from this run's input only
    studies: StudyMatcher
    #: the read filter of this run: the definition's verdicts, this run's problems and tallies
    filter: RunFilter
    tz: tzinfo = UTC
    lang: str = "en"
    #: put Patients' names in results (--show-names; off: results travel, names should not unless asked)
    names: bool = False
    run_id: str = ""
    stats: RunStats = field(default_factory=RunStats)

    @classmethod
    def start(cls, definition: Definition, *, as_of: date | str | None = None, d1: date | str | None = None,
              paths: Iterable[str | Path] = (), problems: Problems | None = None, tz: tzinfo = UTC,
              lang: str = "en", names: bool = False, run_id: str = "",
              clock: Callable[[], datetime] | None = None) -> Run:
        problems = problems if problems is not None else Problems()
        dates = choose_dates(as_of, d1, paths=list(paths), tz=tz, clock=clock)
        return cls(dates, problems, definition.screener.studies(), definition.relevance.for_run(problems), tz, lang,
                   names, run_id)

    @property
    def as_of(self) -> date:
        return self.dates.as_of

    @property
    def d1(self) -> date:
        return self.dates.d1

    def summary_problems(self) -> None:
        """What a run says once at its end."""
        n = self.stats.missing_parts
        if n:
            self.problems.add("input", MISSING_PARTS(n), skipped=False)
        if self.stats.unattributed:
            self.problems.add("input", UNATTRIBUTED(self.stats.unattributed))


__all__ = ["GIVEN", "SAMPLES", "SAMPLE_AS_OF", "TODAY", "Dates", "Run", "RunStats", "as_day", "choose_dates",
           "sample_as_of", "today_in"]
