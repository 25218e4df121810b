"""What every source hands over, and the interfaces sources are built against.

A source yields one `RawRecord` per patient: that patient's resources as read (plain JSON), where
each came from, and how to resolve references to resources no single patient owns (Medication,
ResearchStudy, a report's results). Sources know nothing of the trial; what to keep is decided by
an injected `ReadFilter` that the records layer derives from the criteria's declared reads.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from fhir3t.messages import Msg
from fhir3t.sources.versions import Conflict

#: resolve(reference) -> the resource, or None. References as written ("Medication/x", a fullUrl).
Resolve = Callable[[str], "dict | None"]


def _no_resolve(ref: str) -> dict | None:
    return None


@dataclass(frozen=True, slots=True)
class Unread:
    """A piece of a patient's input fhir3t could not use, kept so no criterion counts it as absent.

    `type` is the resource type it was (or appears to be), `where` locates it (file#entry / file:line),
    `why` says what could not be read, naming the element, never its value. `resource`: the resource
    itself when it is whole but no record of its own (contained in a record no rule reads, carried by an
    operation's Parameters): the builder judges it by its codes, so it keeps unknown only what it could decide.
    """

    type: str
    where: str
    why: Msg
    ref: str = ""
    resource: dict | None = None


@dataclass
class RawRecord:
    """One patient's resources as a source read them."""

    key: str  # "Patient/<id>", or the urn:uuid fullUrl of an id-less Patient
    resources: list[tuple[dict, str]]  # (resource, where): where = "file#entry[3]" or "file:12"
    source: str
    resolve: Resolve = _no_resolve
    aliases: dict[str, str] = field(default_factory=dict)  # fullUrl -> "Type/id" (or the entry's location)
    #: resources the source saw for this patient but could not hand over (e.g. a garbled patient reference
    #: in a Bundle that holds only this patient)
    unread: list[Unread] = field(default_factory=list)
    #: whether `resolve` may find results that name no patient (a report's subject-less Observations):
    #: when not, reports are not followed for results the record does not already hold
    has_orphans: bool = True
    #: resources held in copies whose order cannot be told and that differ (sources.versions): the
    #: records layer keeps what they could decide unknown, naming the copies
    conflicts: list[Conflict] = field(default_factory=list)
    #: records of a read type the input holds without any usable patient (in a document naming none):
    #: they may be this patient's, so the records layer keeps what they could decide unknown
    anyone: list[tuple[dict, str]] = field(default_factory=list)


#: the mark of a stand-in among `RawRecord.anyone` for a record of a type in an input file that could not be read
#: at all: it may hold this patient's record of that type
UNREAD_FILE = "fhir3t:unread-file"


@runtime_checkable
class ReadFilter(Protocol):
    """Decides while reading which resources to keep (most of a real record is dropped here).

    `types` lets a source skip whole resource types before parsing them further. `__call__` may keep
    more than a criterion needs, never less: what it drops can never decide a criterion.
    """

    types: frozenset[str]

    def __call__(self, resource: dict, where: str) -> bool: ...


class Source(Protocol):
    """Yields one RawRecord per patient; problems (skipped input) go to the source's `Problems`."""

    def __iter__(self) -> Iterator[RawRecord]: ...
