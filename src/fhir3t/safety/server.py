"""Safety from a FHIR server: the study's subjects, their records, and the AdverseEvents recorded there.

Only the public FhirClient methods (search / map) and fhir3t.sources.rest are used. Every server value is
untrusted: a ResearchSubject counts for this study only if its study resolves to it (checked again on
the record by `find_subject`), and an AdverseEvent counts for a patient only if it references that
patient. Records are analysed exactly like files, AdverseEvents included, so a server and an export
of it give the same report.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from fhir3t.errors import Problems
from fhir3t.fhirutil import normalize_reference
from fhir3t.jsonshape import child, text
from fhir3t.messages import table
from fhir3t.safety.engine import TYPES, SafetyEngine, SubjectOutcome
from fhir3t.sources.base import RawRecord
from fhir3t.sources.grouping import SharedIndex
from fhir3t.sources.rest import PAGE, RestSource, study_subject_patients
from fhir3t.transport.http import FhirClient, HttpStatusError

#: what is said of the AdverseEvents a server holds (a problem of the run)
P = table("safety.server", {
    "no-search": "the server cannot search AdverseEvent by subject: AdverseEvents recorded there are not included",
    "foreign": "{n} AdverseEvent(s) returned for a patient they do not name (or without an id); ignored",
})


@dataclass
class ServerPull:
    patients: list[str] = field(default_factory=list)
    adverse_events: int = 0  # AdverseEvents the server holds for those patients (fhir3t's own included)
    rejected: int = 0  # AdverseEvents returned that do not name the patient asked for


def _names_patient(ae: dict, pid: str) -> bool:
    ref = text(child(ae, "subject").get("reference"))
    return ref is not None and normalize_reference(ref, {}) == f"Patient/{pid}"


def recorded_adverse_events(client: FhirClient, patients: Sequence[str], problems: Problems,
                            pull: ServerPull) -> dict[str, list[tuple[dict, str]]]:
    """Patient/<id> → the AdverseEvents the server holds for it, each checked to name that patient."""
    def fetch(pid: str) -> tuple[str, list[dict] | None]:
        try:
            return pid, list(client.search("AdverseEvent", [("subject", f"Patient/{pid}"), ("_count", str(PAGE))]))
        except HttpStatusError as exc:
            if exc.status in (400, 404, 422, 501):
                return pid, None
            raise

    out: dict[str, list[tuple[dict, str]]] = {}
    unsupported = False
    for pid, found in client.map(fetch, patients):
        if found is None:
            unsupported = True
            continue
        for ae in found:
            rid = ae.get("id")
            if ae.get("resourceType") != "AdverseEvent" or not isinstance(rid, str) or not _names_patient(ae, pid):
                pull.rejected += 1
                continue
            out.setdefault(f"Patient/{pid}", []).append((ae, f"{client.base}/AdverseEvent/{rid}"))
            pull.adverse_events += 1
    if unsupported:
        problems.add("AdverseEvent search", P["no-search"]())
    if pull.rejected:
        problems.add("AdverseEvent search", P["foreign"](n=pull.rejected))
    return out


def _with_recorded(raws: Iterable[RawRecord], recorded: Mapping[str, list[tuple[dict, str]]]) -> Iterator[RawRecord]:
    for raw in raws:
        have = {res.get("id") for res, _ in raw.resources if res.get("resourceType") == "AdverseEvent"}
        raw.resources.extend((ae, where) for ae, where in recorded.get(raw.key, ()) if ae.get("id") not in have)
        yield raw


def server_outcomes(client: FhirClient, engine: SafetyEngine, as_of: date, d1: Mapping[str, date],
                    problems: Problems, patients: Sequence[str] = ()) -> tuple[list[SubjectOutcome], ServerPull]:
    """Subjects of the study on the server (or the given patient ids), analysed with their recorded AEs."""
    cfg = engine.config
    pull = ServerPull()
    ids = [p.split("/")[-1] for p in patients] or [k.split("/")[-1] for k in d1] or \
        study_subject_patients(client, cfg.study_system, cfg.study_value, problems, cfg.statuses)
    pull.patients = list(dict.fromkeys(ids))
    if not pull.patients:
        return [], pull
    recorded = recorded_adverse_events(client, pull.patients, problems, pull)
    shared = SharedIndex()
    types = sorted({"Patient", *TYPES} - {"AdverseEvent"})  # read above, each checked against its patient
    source = RestSource(client, engine.tx, types, problems, shared, patients=pull.patients)
    return list(engine.analyse_raw(_with_recorded(source, recorded), as_of, d1, shared)), pull
