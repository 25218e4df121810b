"""Death (spec §3): Patient.deceased[x] after D1 is a fatal AE and the survival endpoint's event."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fhir3t.errors import Problems
from fhir3t.messages import table
from fhir3t.records import span_of

#: what is said of a death record the safety analysis cannot use as it is (a problem of the run)
P = table("safety.death", {
    "unparseable": "{key}: unparseable deceasedDateTime {value}; death not counted",
    "before-d1": "{key}: deceasedDateTime {day} is not after D1 {d1}; not an AE (check the dates)",
    "partial": "{key}: deceasedDateTime {value} is partial; its first day {day} is used",
    "no-date": "{key}: deceasedBoolean true without a date; death dated at the last day known alive {day}",
})


@dataclass(frozen=True)
class Death:
    day: date
    date_known: bool  # False for deceasedBoolean true: the day is the last known alive


def death_of(patient: dict | None, key: str, d1: date, as_of: date, last_alive: date | None,
             problems: Problems, where: str) -> Death | None:
    """The patient's death on or before as_of and after D1, if recorded; odd records are reported."""
    if not patient:
        return None
    if "deceasedDateTime" in patient:
        span = span_of(patient["deceasedDateTime"])
        if span is None:
            problems.add(where, P["unparseable"](key=key, value=repr(patient["deceasedDateTime"])))
            return None
        day = span.lo
        if day > as_of:
            return None
        if day <= d1:
            problems.add(where, P["before-d1"](key=key, day=day.isoformat(), d1=d1.isoformat()))
            return None
        if not span.exact:
            problems.add(where, P["partial"](key=key, value=repr(patient["deceasedDateTime"]), day=day.isoformat()),
                         skipped=False)
        return Death(day, True)
    if patient.get("deceasedBoolean") is True:
        day = last_alive if last_alive and last_alive > d1 else d1
        problems.add(where, P["no-date"](key=key, day=day.isoformat()), skipped=False)
        return Death(day, False)
    return None
