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
from fhir3t.pipeline.servercheck.capability import STRATEGY_TEXT
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.needs import Needs
from fhir3t.pipeline.servercheck.session import Session, ref_key
from fhir3t.sources.base import RawRecord
from fhir3t.sources.rest import RestSource
from fhir3t.transport.http import HttpStatusError
from fhir3t.transport.urls import clean

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
    problems: list[str] = field(default_factory=list)
    requests: int = 0


def _find(session: Session, source: RestSource, rtype: str, patient: str | None) -> Example | str | None:
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
        return "credentials refused"
    return None


def _fetch(source: RestSource, pid: str, strategy: str) -> Fetched:
    problems = Problems()
    source.problems = problems
    before = source.client.stats.requests
    records = source.fetch([pid], strategy)
    record = next((r for r in records if r.key == f"Patient/{pid}"), None)
    return Fetched(record, [str(p) for p in problems], source.client.stats.requests - before)


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
             chosen_by: str = "", screen: Callable[[RawRecord], str] | None = None) -> list[Check]:
    """The end-to-end line for `patient` (when given) and the record-coverage lines."""
    client = session.client
    found = dict(zip(needs.searched, client.map(lambda t: _find(session, source, t, patient), needs.searched)))
    examples = [e for e in found.values() if isinstance(e, Example)]
    refused = {t: s for t, s in found.items() if isinstance(s, str)}
    absent = [t for t, e in found.items() if e is None]
    order = list(dict.fromkeys([*([patient] if patient else []), *sorted(e.patient for e in examples)]))
    fetched = {pid: _fetch(source, pid, strategy) for pid in order}
    how = STRATEGY_TEXT.get(strategy, strategy).split(",")[0]
    checks: list[Check] = []
    if patient:
        f = fetched[patient]
        who = f"Patient/{clean(patient, 64)}" + (f" ({chosen_by})" if chosen_by else "")
        if f.record is None:
            checks.append(Check("end-to-end", "one patient end to end", FAIL,
                                f"{who} could not be fetched with {strategy}: " + ("; ".join(f.problems[:3]) or
                                                                                   "no Patient came back"),
                                {"patient": patient, "strategy": strategy}))
        else:
            types = sorted({t for res, _ in f.record.resources if isinstance(t := res.get("resourceType"), str)})
            screened = f"; {screen(f.record)}" if screen else ""
            checks.append(Check("end-to-end", "one patient end to end", WARNING if f.problems else OK,
                                f"{who} fetched with {how} in {f.requests} request{'s' if f.requests != 1 else ''}: "
                                f"{len(f.record.resources)} resources of {len(types)} types{screened}"
                                + (f"; but: {'; '.join(f.problems[:3])}" if f.problems else ""),
                                {"patient": patient, "strategy": strategy, "requests": f.requests,
                                 "resources": len(f.record.resources), "types": types}))
    left_out: list[str] = []
    checked: list[str] = []
    for ex in examples:
        f = fetched[ex.patient]
        if f.record is None:
            if ex.patient != patient:
                checks.append(Check("record-coverage", f"record: {ex.rtype}", FAIL,
                                    f"Patient/{clean(ex.patient, 64)} (which has {ex.rtype}/{clean(ex.id, 64)}) could not "
                                    f"be fetched with {strategy}: " + ("; ".join(f.problems[:3]) or "no Patient came back"),
                                    {"type": ex.rtype, "patient": ex.patient}))
            continue
        if _holds(f.record, ex):
            checked.append(ex.rtype)
            continue
        left_out.append(ex.rtype)
        checks.append(Check("record-coverage", f"record: {ex.rtype}", FAIL,
                            f"{how} leaves out {ex.rtype}: {ex.rtype}/{clean(ex.id, 64)} of Patient/{clean(ex.patient, 64)} "
                            f"is found by a search but is not in the record; {needs.consequence(ex.rtype)}",
                            {"type": ex.rtype, "resource": f"{ex.rtype}/{ex.id}", "patient": ex.patient}))
    dangling = sorted({k for f in fetched.values() if f.record is not None for k in _dangling(f.record, needs.shared)})
    if dangling:
        kinds = sorted({k.split("/")[0] for k in dangling})
        checks.append(Check("record-references", "referenced resources", WARNING,
                            f"{len(dangling)} {' and '.join(kinds)} resource(s) the records point at did not come back "
                            f"with them ({', '.join(clean(d, 80) for d in dangling[:3])}{', ...' if len(dangling) > 3 else ''}):"
                            " criteria that read a drug or a study through a reference cannot decide by it",
                            {"references": dangling}))
    if checked:
        patients = len({e.patient for e in examples if e.rtype in checked})
        checks.append(Check("record-coverage", "record coverage", OK,
                            f"{len(checked)} of {len(needs.searched)} types the criteria read come back with the record "
                            f"(checked on {patients} patient{'s' if patients != 1 else ''}: one resource of each type "
                            "found by a search)", {"checked": sorted(checked), "left_out": sorted(left_out)}))
    if absent or refused:
        bits = []
        if absent:
            bits.append(f"no {', '.join(absent)} on the server to compare with")
        if refused:
            bits.append("searches refused for " + ", ".join(f"{t} ({s})" for t, s in sorted(refused.items())))
        checks.append(Check("record-coverage", "record coverage", WARNING,
                            f"not checked: {'; '.join(bits)}; whether the server returns those with a patient's record "
                            "cannot be told", {"absent": absent, "refused": sorted(refused)}))
    return checks
