"""The one storage interface of the enrolment workflow, over two implementations holding the same FHIR resources:
the hospital's FHIR server (state/server.py) and an embedded SQLite state file (state/sqlite.py).

A store reads what the workflow needs (the study, a patient's subject with its version, the team's records,
the screenings) and writes a step as one atomic transaction of entries: a version-aware update (If-Match: the
version read; a newer one is a `Conflict`, nothing written), a conditional create (If-None-Exist), or a PUT to
a fhir3t-chosen id (sent twice, still one resource).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fhir3t.enrolment.records import Screening
from fhir3t.messages import Message

CHANGED = Message("state.changed", "{ref} was changed by someone else since it was read (version {expected}, now {now}): "
                                   "nothing was written; look at it again and repeat the step if it still applies")
CHANGED_SERVER = Message("state.changed-server", "{ref} was changed on {where} since it was read (If-Match version "
                                                 "{expected} refused): nothing was written; look at it again and repeat "
                                                 "the step if it still applies")


@dataclass(frozen=True)
class Versioned:
    """A resource as the store holds it, with its version (the If-Match of a write that must not overwrite)."""

    resource: dict[str, Any]
    version: str | None

    @property
    def ref(self) -> str:
        return f"{self.resource.get('resourceType')}/{self.resource.get('id')}"


@dataclass(frozen=True)
class Entry:
    """One write of a transaction."""

    resource: dict[str, Any]
    #: the version the write expects to replace (None: no check; "0": the resource must not exist yet)
    if_match: str | None = None
    #: a conditional create: written only when nothing matches this query (e.g. identifier=system|value)
    if_none_exist: str | None = None
    #: the entry's fullUrl, when other entries refer to it (urn:uuid:...)
    full_url: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"


@dataclass(frozen=True)
class Written:
    ref: str  # Type/id as the store holds it
    version: str | None


class Store(Protocol):
    """What the enrolment tasks read and write (see the module doc)."""

    #: where the store is, for messages (a file path, or the server's label)
    label: str

    def study(self, system: str, value: str) -> Versioned | None:
        """The ResearchStudy carrying this identifier."""
        ...

    def subject(self, patient: str, subject_id: str, study_ref: str) -> Versioned | None:
        """This study's ResearchSubject of the patient: the one with fhir3t's id, else one naming the study."""
        ...

    def subjects(self, study_ref: str) -> list[Versioned]:
        """Every ResearchSubject of the study."""
        ...

    def team_records(self, study_ref: str, patient: str | None = None, subject_ref: str | None = None) -> list[dict]:
        """The team's Communications, Consents and (for one patient) Provenances."""
        ...

    def screenings(self, study_ref: str, patient: str | None = None) -> list[Screening]:
        """The recorded screenings (of one patient, or all), oldest first."""
        ...

    def display_ids(self, patients: Iterable[str]) -> dict[str, str]:
        """Patient/<id> -> what a coordinator looks them up by (an MRN), where the store knows it."""
        ...

    def find_patient(self, wanted: str) -> str | None:
        """Patient/<id> for a FHIR id, a reference or an identifier value (None: not known)."""
        ...

    def commit(self, entries: Sequence[Entry]) -> list[Written]:
        """Write the entries as one transaction: all or nothing; a stale If-Match raises `Conflict`."""
        ...

    def close(self) -> None: ...


def relink(res: dict, mapping: Mapping[str, str]) -> dict:
    """A copy of `res` whose references named in `mapping` point where it says (a urn:uuid: to the id a store gave,
    a subject to the one the server holds for the patient)."""
    if not mapping:
        return res

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: (mapping.get(v, v) if k == "reference" and isinstance(v, str) else walk(v)) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj
    out: dict = walk(res)
    return out


__all__ = ["CHANGED", "CHANGED_SERVER", "Entry", "Store", "Versioned", "Written", "relink"]
