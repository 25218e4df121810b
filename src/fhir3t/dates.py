"""FHIR dates as calendar-day spans, and closed windows.

A FHIR date may be partial (`2024`, `2024-05`); it then covers every day of its span, and a
rule is decided only if all those days agree. Times are dropped: the calendar day is the one
written in the source (the hospital's local day), not converted to UTC.
"""
from __future__ import annotations

import calendar
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta

from fhir3t.logic import MET, NOT_MET, UNKNOWN, Tri

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


@dataclass(frozen=True, slots=True)
class Span:
    """The closed range of calendar days a FHIR date or period may denote."""

    lo: date
    hi: date

    @property
    def exact(self) -> bool:
        return self.lo == self.hi

    def __str__(self) -> str:
        if self.exact:
            return self.lo.isoformat()
        if self.lo.month == 1 and self.lo.day == 1 and self.hi.month == 12 and self.hi.day == 31 and self.lo.year == self.hi.year:
            return f"{self.lo.year}"
        if self.lo.day == 1 and self.lo.year == self.hi.year and self.lo.month == self.hi.month:
            return f"{self.lo.year:04d}-{self.lo.month:02d}"
        return f"{self.lo.isoformat()}..{self.hi.isoformat()}"


def parse_date(value: object) -> Span:
    """Parse a FHIR date, dateTime or instant into a Span. Raises ValueError if unparseable."""
    if not isinstance(value, str):
        raise ValueError(f"not a date string: {value!r}")
    s = value.strip()
    if len(s) >= 10 and s[4] == "-" and s[7] == "-":
        d = date.fromisoformat(s[:10])  # ValueError on nonsense like 2026-02-30
        if len(s) > 10 and s[10] not in "T ":
            raise ValueError(f"not a FHIR date: {value!r}")
        return Span(d, d)
    m = _PARTIAL.match(s)
    if not m:
        raise ValueError(f"not a FHIR date: {value!r}")
    year = int(m.group(1))
    if m.group(2) is None:
        return Span(date(year, 1, 1), date(year, 12, 31))
    month = int(m.group(2))
    if not 1 <= month <= 12:
        raise ValueError(f"not a FHIR date: {value!r}")
    return Span(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))


def instant(text: str | None) -> float | None:
    """UTC timestamp of a dateTime that has a time and a zone; None otherwise (order by day only)."""
    if not isinstance(text, str) or len(text) <= 10 or "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


#: the days fhir3t screens on (--as-of, --d1): windows reach back years and forward months from them
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)


def parse_day(value: str) -> date:
    """A full calendar day (for --as-of / --d1), between 1900 and 2199."""
    span = parse_date(value)
    if not span.exact:
        raise ValueError(f"need a full date YYYY-MM-DD, got {value!r}")
    if not FIRST_DAY <= span.lo <= LAST_DAY:
        raise ValueError(f"{value!r} is outside {FIRST_DAY.year}-{LAST_DAY.year}")
    return span.lo


def today_utc() -> date:
    return datetime.now(UTC).date()


#: the earliest clinical date fhir3t believes; the latest is a few years after today (a planned end)
EARLIEST_PLAUSIBLE = date(1900, 1, 1)
_FUTURE_YEARS = 5


def plausible(span: Span) -> bool:
    """A date a record can really carry: not before 1900, not more than five years after today.

    A year 0026 or 2126 is a garbled digit, not a fact: read as one it would quietly put a drug or a
    diagnosis outside every window.
    """
    today = today_utc()
    return span.hi >= EARLIEST_PLAUSIBLE and span.lo <= date(today.year + _FUTURE_YEARS, 12, 31)


#: UCUM units an Age is written in, as calendar steps
_AGE_UNITS = {"a": "years", "yr": "years", "year": "years", "years": "years", "mo": "months", "month": "months",
              "months": "months", "wk": "weeks", "week": "weeks", "weeks": "weeks", "d": "days", "day": "days",
              "days": "days"}


def age_span(birth: Span, age: object, *, upper: bool = False) -> Span | None:
    """The days on which a person born in `birth` was of the R4 Age `age` ({value, code|unit}): 40 years
    is every day from the 40th birthday to the day before the 41st (a partial birth date widens it).
    None when the Age cannot be read (no number, a unit other than years, months, weeks, days, or a
    comparator: '<40 a' says no day)."""
    if not isinstance(age, dict) or age.get("comparator") is not None:
        return None
    value = age.get("value")
    unit = _AGE_UNITS.get(str(age.get("code") or age.get("unit") or "").strip().lower())
    if not isinstance(value, (int, float)) or isinstance(value, bool) or unit is None or not 0 <= value < 60_000:
        return None
    whole = int(value)

    def step(n: int) -> relativedelta:
        return relativedelta(years=n) if unit == "years" else relativedelta(months=n) if unit == "months" else \
            relativedelta(weeks=n) if unit == "weeks" else relativedelta(days=n)

    try:
        lo = birth.lo + step(whole)
        hi = birth.hi + step(whole + 1) - relativedelta(days=1)
    except (ValueError, OverflowError):
        return None
    return Span(lo, hi)


def range_span(birth: Span, rng: object) -> Span | None:
    """The days an R4 Range of Ages ({low, high}) covers from `birth`: from the low age's first day to the
    high age's last; an open end reaches birth (low) or the last day fhir3t screens on (high)."""
    if not isinstance(rng, dict) or not ("low" in rng or "high" in rng):
        return None
    low = age_span(birth, rng["low"]) if "low" in rng else Span(birth.lo, birth.lo)
    high = age_span(birth, rng["high"]) if "high" in rng else Span(LAST_DAY, LAST_DAY)
    if low is None or high is None or high.hi < low.lo:
        return None
    return Span(low.lo, high.hi)


_DURATION = re.compile(r"^\s*(\d+)\s*(d|day|days|w|wk|week|weeks|mo|month|months|y|a|yr|year|years)\s*$")


@dataclass(frozen=True, slots=True)
class Duration:
    """A calendar duration: days, weeks, months or years (months/years are calendar units)."""

    amount: int
    unit: str  # "d" | "mo" | "y"

    @classmethod
    def parse(cls, text: str) -> Duration:
        m = _DURATION.match(text)
        if not m:
            raise ValueError(f"not a duration like '28d', '6mo', '5y': {text!r}")
        n, u = int(m.group(1)), m.group(2)
        if u in ("w", "wk", "week", "weeks"):
            return cls(n * 7, "d")
        if u in ("d", "day", "days"):
            return cls(n, "d")
        if u in ("mo", "month", "months"):
            return cls(n, "mo")
        return cls(n, "y")

    def before(self, d: date) -> date:
        if self.unit == "d":
            return d - relativedelta(days=self.amount)
        if self.unit == "mo":
            return d - relativedelta(months=self.amount)
        return d - relativedelta(years=self.amount)

    def __str__(self) -> str:
        return f"{self.amount} {'days' if self.unit == 'd' else 'months' if self.unit == 'mo' else 'years'}"


@dataclass(frozen=True, slots=True)
class Window:
    """A closed interval of calendar days [lo, hi]."""

    lo: date
    hi: date

    def __str__(self) -> str:
        return f"{self.lo.isoformat()}..{self.hi.isoformat()}"

    def contains(self, span: Span) -> Tri:
        """met if every day of span lies inside, not-met if none does, else unknown."""
        if span.lo >= self.lo and span.hi <= self.hi:
            return MET
        if span.hi < self.lo or span.lo > self.hi:
            return NOT_MET
        return UNKNOWN


def age_on(birth: date, on: date) -> int:
    """Completed years; a 29 February birthday turns over on 1 March in common years."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


# ---------------------------------------------------------------- the site's time zone (defaults and display only)
def zone(name: str) -> tzinfo | None:
    """The IANA time zone `name` (Asia/Shanghai; UTC), or None when there is none by that name."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def system_zone() -> tzinfo:
    """The system's time zone: $TZ when it names one, else the zone /etc/localtime links to, else the current
    offset (a fixed one: enough for today's date and for the time now)."""
    named = os.environ.get("TZ", "").lstrip(":")
    found = zone(named) if named else None
    if found is not None:
        return found
    try:
        link = Path("/etc/localtime").resolve(strict=True)
        parts = link.parts
        if "zoneinfo" in parts:
            found = zone("/".join(parts[parts.index("zoneinfo") + 1:]))
            if found is not None:
                return found
    except OSError:
        pass
    return datetime.now().astimezone().tzinfo or UTC


def zone_name(tz: tzinfo) -> str:
    """Asia/Shanghai, UTC, or the offset (+08:00) of a zone without a name."""
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    if tz is UTC:
        return "UTC"
    offset = datetime.now(tz).strftime("%z")
    return f"{offset[:3]}:{offset[3:]}" if offset else str(tz)


def local_time(when: datetime | str, tz: tzinfo) -> str:
    """A moment as a person in the site reads it: `2026-11-17 02:30:00 +08:00` (local, with its offset).
    A string is read as ISO 8601 (a naive one as UTC); one that is not is returned as it is."""
    if isinstance(when, str):
        try:
            moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            return when
    else:
        moment = when
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(tz)
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M:%S") + (f" {offset[:3]}:{offset[3:]}" if offset else "")
