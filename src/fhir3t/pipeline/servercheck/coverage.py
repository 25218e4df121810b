"""Does a patient's record come back whole? For every type the criteria read, one resource of that
type found by a plain search is looked for in its patient's record as `screen --server` fetches it
($everything or the searches). A server that silently leaves a type out would make every patient's
record look as if it had none: criteria stay unknown for everyone, or worse, take it as none recorded.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fhir3t.errors import AuthError, Problems
from fhir3t.fhirutil import fhir_id, patient_id
from fhir3t.messages import Message, Msg, Plural, many, table
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.needs import Needs
from fhir3t.pipeline.servercheck.session import Session, ref_key
from fhir3t.sources.base import RawRecord
from fhir3t.sources.rest import RestSource
from fhir3t.transport.http import HttpStatusError
from fhir3t.transport.urls import clean

W_PROBLEM = Message("check.coverage.problem", "{where}: {problem}")
HOW = table("check.how", {
    "everything": "Patient/$everything",
    "batch": "batch Bundles of searches",
    "revinclude": "Patient?_id=...&_revinclude=...",
    "search": "one search per resource type and patient",
})
W = table("check.coverage", {
    "t.e2e": "one patient end to end",
    "t.record": "record: {type}",
    "t.references": "referenced resources",
    "t.coverage": "record coverage",
    "who": "Patient/{id}",
    "who-chosen": "Patient/{id} ({chosen_by})",
    "no-patient": "no Patient came back",
    "not-fetched": "{who} could not be fetched with {strategy}: {problems}",
    "refused": "credentials refused",
    "not-fetched-example": "Patient/{patient} (which has {type}/{id}) could not be fetched with {strategy}: {problems}",
    "left-out": "{how} leaves out {type}: {type}/{id} of Patient/{patient} is found by a search but is not in the "
                "record; {consequence}",
    "not-checked": "not checked: {reasons}; whether the server returns those with a patient's record cannot be told",
    "absent": "no {types} on the server to compare with",
    "searches-refused": "searches refused for {types}",
    "type-status": "{type} ({status})",
})
FETCHED = Plural("check.coverage.fetched", "{who} fetched with {how} in {n} request: {resources} resources of {types} "
                 "types{screened}", "{who} fetched with {how} in {n} requests: {resources} resources of {types} "
                 "types{screened}")
FETCHED_BUT = Plural("check.coverage.fetched-but", "{who} fetched with {how} in {n} request: {resources} resources of "
                     "{types} types{screened}; but: {problems}", "{who} fetched with {how} in {n} requests: "
                     "{resources} resources of {types} types{screened}; but: {problems}")
SCREENED = Message("check.coverage.screened", "; {result}")
DANGLING = Plural("check.coverage.dangling", "{n} {kinds} resource the records point at did not come back with them "
                  "({references}): criteria that read a drug or a study through a reference cannot decide by it",
                  "{n} {kinds} resources the records point at did not come back with them ({references}): criteria "
                  "that read a drug or a study through a reference cannot decide by it")
COVERED = Plural("check.coverage.covered", "{checked} of {searched} types the criteria read come back with the record "
                 "(checked on {n} patient: one resource of each type found by a search)", "{checked} of {searched} "
                 "types the criteria read come back with the record (checked on {n} patients: one resource of each "
                 "type found by a search)")

#: the elements through which a record points at shared resources (Medication, ResearchStudy)
SHARED_LINKS = ("medicationReference", "study")


@dataclass
class Example:
    """One resource of a type, and the patient whose record must hold it."""

    rtype: str
    id: str
    patient: str


@dataclass
class Fetched:
    record: RawRecord | None
    problems: list[Msg | str] = field(default_factory=list)
    requests: int = 0


def _find(session: Session, source: RestSource, rtype: str, patient: str | None) -> Example | str | Msg | None:
    """An example of `rtype` (the given patient's if it has one), why the search was refused, or None."""
    try:
        if patient:
            got = session.first_page(rtype, [(source.patient_param(rtype), f"Patient/{patient}"), ("_count", "5")])
            own = [r for r in got if patient_id(r) == patient and fhir_id(r.get("id"))]
            if own:
                return Example(rtype, own[0]["id"], patient)
        for res in session.samples(rtype):
            pid, rid = patient_id(res), fhir_id(res.get("id"))
            if pid and rid:
                return Example(rtype, rid, pid)
    except HttpStatusError as exc:
        return str(exc.status)
    except AuthError:
        return W["refused"]()
    return None


def _fetch(source: RestSource, pid: str, strategy: str) -> Fetched:
    problems = Problems()
    source.problems = problems
    before = source.client.stats.requests
    records = source.fetch([pid], strategy)
    record = next((r for r in records if r.key == f"Patient/{pid}"), None)
    return Fetched(record, [W_PROBLEM(where=p.where, problem=p.msg) for p in problems],
                   source.client.stats.requests - before)


def _holds(record: RawRecord, ex: Example) -> bool:
    ref = f"{ex.rtype}/{ex.id}"
    return any(res.get("resourceType") == ex.rtype and res.get("id") == ex.id for res, _ in record.resources) \
        or any(u.type == ex.rtype and u.ref.endswith(ref) for u in record.unread)


def _dangling(record: RawRecord, shared_types: tuple[str, ...]) -> list[str]:
    """References to shared resources (a drug, a study) that the fetch did not bring along."""
    out: dict[str, None] = {}
    for res, _ in record.resources:
        for element in SHARED_LINKS:
            key = ref_key(res, element)
            if key and key.split("/")[0] in shared_types and record.resolve(key) is None:
                out[key] = None
    return list(out)


def coverage(session: Session, source: RestSource, strategy: str, needs: Needs, patient: str | None,
             chosen_by: str | Msg = "", screen: Callable[[RawRecord], Msg] | None = None) -> list[Check]:
    """The end-to-end line for `patient` (when given) and the record-coverage lines."""
    client = session.client
    found = dict(zip(needs.searched, client.map(lambda t: _find(session, source, t, patient), needs.searched)))
    examples = [e for e in found.values() if isinstance(e, Example)]
    refused = {t: s for t, s in found.items() if isinstance(s, str | Msg)}
    absent = [t for t, e in found.items() if e is None]
    order = list(dict.fromkeys([*([patient] if patient else []), *sorted(e.patient for e in examples)]))
    fetched = {pid: _fetch(source, pid, strategy) for pid in order}
    how = HOW[strategy]() if strategy in HOW else strategy
    checks: list[Check] = []

    def problems_of(f: Fetched) -> Msg | str:
        return many(f.problems[:3], "; ") if f.problems else W["no-patient"]()  # type: ignore[return-value]

    if patient:
        f = fetched[patient]
        who = (W["who-chosen"](id=clean(patient, 64), chosen_by=chosen_by) if chosen_by
               else W["who"](id=clean(patient, 64)))
        if f.record is None:
            checks.append(Check("end-to-end", W["t.e2e"](), FAIL,
                                W["not-fetched"](who=who, strategy=strategy, problems=problems_of(f)),
                                {"patient": patient, "strategy": strategy}))
        else:
            types = sorted({t for res, _ in f.record.resources if isinstance(t := res.get("resourceType"), str)})
            screened = SCREENED(result=screen(f.record)) if screen else None
            said = dict(who=who, how=how, resources=len(f.record.resources), types=len(types), screened=screened)
            checks.append(Check("end-to-end", W["t.e2e"](), WARNING if f.problems else OK,
                                FETCHED_BUT(f.requests, problems=many(f.problems[:3], "; "), **said) if f.problems
                                else FETCHED(f.requests, **said),
                                {"patient": patient, "strategy": strategy, "requests": f.requests,
                                 "resources": len(f.record.resources), "types": types}))
    left_out: list[str] = []
    checked: list[str] = []
    for ex in examples:
        f = fetched[ex.patient]
        if f.record is None:
            if ex.patient != patient:
                checks.append(Check("record-coverage", W["t.record"](type=ex.rtype), FAIL,
                                    W["not-fetched-example"](patient=clean(ex.patient, 64), type=ex.rtype,
                                                             id=clean(ex.id, 64), strategy=strategy, problems=problems_of(f)),
                                    {"type": ex.rtype, "patient": ex.patient}))
            continue
        if _holds(f.record, ex):
            checked.append(ex.rtype)
            continue
        left_out.append(ex.rtype)
        checks.append(Check("record-coverage", W["t.record"](type=ex.rtype), FAIL,
                            W["left-out"](how=how, type=ex.rtype, id=clean(ex.id, 64), patient=clean(ex.patient, 64),
                                          consequence=needs.consequence(ex.rtype)),
                            {"type": ex.rtype, "resource": f"{ex.rtype}/{ex.id}", "patient": ex.patient}))
    dangling = sorted({k for f in fetched.values() if f.record is not None for k in _dangling(f.record, needs.shared)})
    if dangling:
        kinds = sorted({k.split("/")[0] for k in dangling})
        shown = ", ".join(clean(d, 80) for d in dangling[:3]) + (", ..." if len(dangling) > 3 else "")
        checks.append(Check("record-references", W["t.references"](), WARNING,
                            DANGLING(len(dangling), kinds=many(kinds, "and"), references=shown),
                            {"references": dangling}))
    if checked:
        patients = len({e.patient for e in examples if e.rtype in checked})
        checks.append(Check("record-coverage", W["t.coverage"](), OK,
                            COVERED(patients, checked=len(checked), searched=len(needs.searched)),
                            {"checked": sorted(checked), "left_out": sorted(left_out)}))
    if absent or refused:
        bits: list[Msg] = []
        if absent:
            bits.append(W["absent"](types=", ".join(absent)))
        if refused:
            bits.append(W["searches-refused"](types=many(W["type-status"](type=t, status=s)
                                                         for t, s in sorted(refused.items()))))
        checks.append(Check("record-coverage", W["t.coverage"](), WARNING, W["not-checked"](reasons=many(bits, "; ")),
                            {"absent": absent, "refused": sorted(refused)}))
    return checks
