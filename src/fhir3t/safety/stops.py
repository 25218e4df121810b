"""3T drugs stopped for an adverse reaction (ICH E3 12.3.2: AEs that led to discontinuation).

A medication record of a 3T drug whose status says it ended (profiles/safety/study.json
`discontinuation_reasons.statuses`) with a statusReason coded as an adverse reaction, stopped after
D1, and not followed by a later record of the drug (a restart makes it an interruption). Pure: reads
resources already in the patient's record.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from fhir3t.errors import Problems
from fhir3t.jsonshape import child, objs
from fhir3t.messages import table
from fhir3t.records import Res, span_of
from fhir3t.terminology import Code

#: what is said of a discontinuation the analysis cannot date (a problem of the run)
P = table("safety.stops", {
    "no-stop-day": "{ref}: {drug} stopped for an adverse reaction without a stop day (effectivePeriod.end); listed "
                   "without one",
})


@dataclass(frozen=True)
class DrugStop:
    drug: str
    day: date | None  # None: stopped for an adverse reaction, but the record gives no stop day
    ref: str  # the medication record
    reason: str  # display of the statusReason code that says "adverse reaction"
    aes: tuple[str, ...] = ()  # ids of the subject's AEs related to the drug and ongoing at the stop

    def to_dict(self) -> dict[str, object]:
        return {"drug": self.drug, "day": self.day.isoformat() if self.day else None, "record": self.ref,
                "reason": self.reason, "adverse_events": list(self.aes)}


def _stop_day(res: Res) -> date | None:
    raw = res.raw
    if res.type == "MedicationRequest":
        end = child(child(raw, "dispenseRequest"), "validityPeriod").get("end")
    else:
        end = child(raw, "effectivePeriod").get("end")
    span = span_of(end)
    return span.lo if span else None


def _start_day(res: Res) -> date | None:
    return res.span.lo if res.span is not None else None


def drug_stops(meds: Mapping[str, list[Res]], d1: date, window_end: date, statuses: frozenset[str],
               reasons: Mapping[Code, str], problems: Problems) -> list[DrugStop]:
    """Each 3T medication record stopped after D1 (and in the AE window) for an adverse reaction."""
    out: list[DrugStop] = []
    for drug, records in sorted(meds.items()):
        for res in records:
            if res.raw.get("status") not in statuses:
                continue
            reason = _reason(res.raw.get("statusReason"), reasons)
            if reason is None:
                continue
            day = _stop_day(res)
            if day is not None and any(_start_day(r) is not None and _start_day(r) > day for r in records if r is not res):  # type: ignore[operator]
                continue  # restarted later: an interruption (fhir3t.safety.exposure), not a discontinuation
            if day is None:
                problems.add(res.where, P["no-stop-day"](ref=res.ref, drug=drug), skipped=False)
            elif not d1 < day <= window_end:
                continue
            out.append(DrugStop(drug, day, res.ref, reason))
    return out


def _reason(value: object, reasons: Mapping[Code, str]) -> str | None:
    for concept in objs(value):  # MedicationStatement: 0..*; MedicationRequest: 0..1
        for c in objs(concept.get("coding")):
            hit = reasons.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if hit is not None:
                return hit
    return None


def link_aes(stop: DrugStop, findings: Iterable, related_to: str) -> DrugStop:
    """The stop with the subject's AEs related to its drug that were ongoing on the stop day."""
    ids = tuple(f.id for f in findings if f.related_to(related_to) and f.kind != "death"
                and (stop.day is None or (f.onset <= stop.day and (f.end is None or f.end >= stop.day))))
    return DrugStop(stop.drug, stop.day, stop.ref, stop.reason, ids)
