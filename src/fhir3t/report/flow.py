"""Screening flow (CONSORT 2010 style) from a screening run's output and the subjects on study (pure).

Screened → eligible / candidate / ineligible, the ineligible broken down by the first criterion
that rules them out in the order the criteria are written (an inclusion `not-met`, an exclusion
`met`), → enrolled (ResearchSubjects on study). Enrolled subjects are matched to the screening run
by patient reference; those the run did not screen are counted apart, never folded in.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir3t.enrolment import RESULTS, Status
from fhir3t.enrolment.log import Row
from fhir3t.errors import Problems
from fhir3t.jsonshape import objs, text

STATUSES = RESULTS


@dataclass(frozen=True)
class Screened:
    patient: str
    status: str
    ruled_out_by: str | None  # id of the first criterion that makes the patient ineligible


def rules_out(criterion: Mapping[str, Any]) -> bool:
    return (criterion.get("kind"), criterion.get("result")) in (("inclusion", "not-met"), ("exclusion", "met"))


def parse_screening(items: Iterable[tuple[object, str]], order: Sequence[str], problems: Problems) -> list[Screened]:
    """Screening-run objects (`fhir3t screen --format json|ndjson`) → one Screened per patient.

    `order` is the criteria's written order; unknown ids go last in the order met. An object that is
    not a screening result is reported (where = file and index/line) and skipped; a patient screened
    twice keeps its last result.
    """
    rank = {cid: i for i, cid in enumerate(order)}
    out: dict[str, Screened] = {}
    for item, where in items:
        patient = text(item.get("patient")) if isinstance(item, dict) else None
        status = text(item.get("status")) if isinstance(item, dict) else None
        if patient is None or status not in STATUSES:
            problems.add(where, "not a screening result (needs patient and status eligible|candidate|ineligible); skipped")
            continue
        assert isinstance(item, dict)
        criteria = objs(item.get("criteria"))
        failing = sorted((c for c in criteria if rules_out(c) and text(c.get("id"))),
                         key=lambda c: rank.get(c["id"], len(rank)))
        first = failing[0]["id"] if failing else None
        if status == Status.INELIGIBLE and first is None:
            problems.add(where, f"{patient}: ineligible, but no criterion in the result rules it out; counted as "
                                "'reason not given'", skipped=False)
        if patient in out:
            problems.add(where, f"{patient}: screened more than once; the last result is used", skipped=False)
        out[patient] = Screened(patient, status, first if status == Status.INELIGIBLE else None)
    return list(out.values())


def screened_from_log(rows: Iterable[Row], order: Sequence[str]) -> list[Screened]:
    """The enrolment log's rows (fhir3t log: each patient's latest screening) as the flow's screened patients: the
    status, and for the ineligible the first criterion ruling them out in the criteria's written order."""
    rank = {cid: i for i, cid in enumerate(order)}
    out = []
    for r in rows:
        if r.screening_status not in STATUSES:
            continue
        first = sorted(r.not_met, key=lambda c: rank.get(c, len(rank)))[0] if r.not_met else None
        out.append(Screened(r.patient, r.screening_status, first if r.screening_status == Status.INELIGIBLE else None))
    return out


def screening_flow(screened: Sequence[Screened], enrolled: Iterable[str], order: Sequence[str],
                   titles: Mapping[str, str]) -> dict[str, Any]:
    """The flow's counts (the JSON `screening_flow` object)."""
    counts: dict[str, int] = {s: sum(1 for x in screened if x.status == s) for s in STATUSES}
    by_reason: dict[str | None, int] = {}
    for x in screened:
        if x.status == Status.INELIGIBLE:
            by_reason[x.ruled_out_by] = by_reason.get(x.ruled_out_by, 0) + 1
    ordered = [c for c in order if c in by_reason] + sorted(c for c in by_reason if c is not None and c not in order)
    reasons = [{"criterion": c, "title": titles.get(c, c), "patients": by_reason[c]} for c in ordered]
    if None in by_reason:
        reasons.append({"criterion": None, "title": "reason not given", "patients": by_reason[None]})
    status_of = {x.patient: x.status for x in screened}
    subjects = list(dict.fromkeys(enrolled))
    came_from: dict[str, int] = {s: sum(1 for p in subjects if status_of.get(p) == s) for s in STATUSES}
    not_screened = sum(1 for p in subjects if p not in status_of)
    return {
        "screened": len(screened),
        **counts,
        "ineligible_by_first_criterion": reasons,
        "enrolled": len(subjects),
        "enrolled_by_screening_status": {**came_from, "not_in_screening_run": not_screened},
        "eligible_not_enrolled": counts[Status.ELIGIBLE] - came_from[Status.ELIGIBLE],
        "definition": "screened = patients in the screening run; ineligible by the first criterion that rules the "
                      "patient out in the criteria's written order (inclusion not met, exclusion met); enrolled = "
                      "subjects with a ResearchSubject on study, matched to the run by patient",
    }
