"""Clinical AEs (spec §3): Conditions with onset (else recordedDate) after D1, causality from data.

Causality per 3T drug comes from its known-reaction value set (profiles/valuesets/known-reactions-<drug>.json)
for conditions, and from profiles/safety/lab-causality.json for lab AEs: `Possible` when listed,
otherwise `Unassessable-Unclassifiable` (an investigator must assess).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from fhir3t.errors import Problems
from fhir3t.messages import table
from fhir3t.records import PatientRecord, Res, span_of, status_code
from fhir3t.safety.findings import POSSIBLE, UNASSESSABLE
from fhir3t.safety.subjects import Subject
from fhir3t.terminology import Code, ValueSet


@dataclass(frozen=True)
class Drug:
    id: str
    records: ValueSet  # codes of the patient's medication records of this drug
    known_reactions: ValueSet | None
    code: dict[str, str]  # coding for a contained Medication


def condition_causality(codes: Iterable[Code], drugs: Iterable[Drug]) -> dict[str, str]:
    """drug id → Possible if any code is in that drug's known-reaction value set, else Unassessable."""
    codes = tuple(codes)
    return {d.id: POSSIBLE if d.known_reactions is not None and any(c in d.known_reactions for c in codes)
            else UNASSESSABLE for d in drugs}


def lab_causality(test_id: str, table: dict[str, tuple[str, ...]], drugs: Iterable[Drug]) -> dict[str, str]:
    listed = table.get(test_id, ())
    return {d.id: POSSIBLE if d.id in listed else UNASSESSABLE for d in drugs}


def condition_outcome(raw: dict, resolved_statuses: frozenset[str]) -> str:
    """clinicalStatus resolved / inactive / remission → resolved; anything else (or none) → ongoing."""
    return "resolved" if status_code(raw.get("clinicalStatus")) in resolved_statuses else "ongoing"


def condition_end(raw: dict) -> date | None:
    for f in ("abatementDateTime", "abatementPeriod"):
        v = raw.get(f)
        if isinstance(v, dict):
            v = v.get("end") or v.get("start")
        span = span_of(v)
        if span is not None:
            return span.hi
    return None


#: what is said of a Condition the safety analysis cannot place in time (a problem of the run)
P = table("safety.condition", {
    "no-id": "Condition without id",
    "no-date": "{name}: no onset or recordedDate; cannot tell whether it began after D1",
    "straddles": "{name}: onset {onset} may be before or after D1 {d1}; not counted (review by hand)",
})


def new_conditions(record: PatientRecord, subject: Subject, as_of: date, follow_up_days: int,
                   problems: Problems) -> list[Res]:
    """Conditions whose onset (else recordedDate) falls in the subject's AE window."""
    hi = subject.window_end(as_of, follow_up_days)
    out = []
    for res in record.of("Condition"):
        name = res.ref if res.ref.startswith("Condition/") else P["no-id"]()
        if res.span is None:
            problems.add(res.where, P["no-date"](name=name))
            continue
        if res.span.lo > subject.d1 and res.span.lo <= hi:
            out.append(res)
        elif res.span.lo <= subject.d1 < res.span.hi:
            problems.add(res.where, P["straddles"](name=name, onset=repr(res.date_text), d1=subject.d1.isoformat()))
    return out


def clinical_grade(raw: dict, extensions: tuple[str, ...], severity: dict[Code, int]) -> tuple[int | None, str | None]:
    """(grade, how it was found) of a Condition or AdverseEvent: a CTCAE grade extension, else its
    severity (mild 1 / moderate 2 / severe 3), else (None, None): ungraded, never guessed."""
    for ext in raw.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") in extensions:
            v = ext.get("valueInteger")
            if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5:
                return v, "CTCAE grade extension"
    concept = raw.get("severity")
    for c in concept.get("coding") or () if isinstance(concept, dict) else ():
        if isinstance(c, dict):
            g = severity.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if g is not None:
                rtype = raw.get("resourceType") if isinstance(raw.get("resourceType"), str) else "resource"
                return g, f"{rtype}.severity {c.get('display') or c.get('code')}"
    return None, None
