"""`Frozen`: the base of the frozen slotted dataclasses a run keeps (results, reasons, messages), so that
they pickle as their class and field values.

Why: `dataclass(slots=True)` pickles through `__getstate__` / `__setstate__`, which call `fields()` on
every object; the patient store (sources/statestore.py) unpickles every kept result each night.
Measured on 10 024 stored results of 6 KB each: 11.4 s to unpickle with the dataclass default, which
made a nightly run that re-screens 1 % of patients a third of a full run; see benchmarks/bench_nightly.py.
A class with this base rebuilds through its own `__init__` (every field must be an init field, which
`test_frozen` checks for each subclass).
"""
from __future__ import annotations

from typing import Any


class Frozen:
    """Mix into a `@dataclass(frozen=True, slots=True)`: pickles as `cls(*values)`."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        names: tuple[str, ...] = self.__slots__  # the dataclass's, in field order
        return type(self), tuple(getattr(self, name) for name in names)


class Shared(Frozen):
    """A `Frozen` value that many stored results hold equal copies of (a criterion's result: most patients
    share "no <lab test> result in the window"): the patient store keeps one copy of each and the results
    point at it (sources/statestore.py). Measured on 10 035 stored results: 220 770 criterion results,
    27 146 distinct."""

    __slots__ = ()


__all__ = ["Frozen", "Shared"]
