"""Exposure to each 3T drug and its dose changes, from the subject's own medication records (ICH E3 12.2).

Per drug: the days on drug between D1 and the end of the subject's AE window (the union of the
records' periods: MedicationStatement / MedicationAdministration effective[x], MedicationRequest
validity period or authoredOn; an open period of an active record runs to the window's end), the
daily dose each record gives (doseQuantity × frequency per period), and the changes:

- interruption: a gap of at least one whole day between two periods on drug, or an `on-hold` record;
- reduction: a record whose daily dose (same unit) is lower than the one before it;
- discontinuation: the drug's last record ends before the window does with status `stopped`, or with an
  adverse-reaction statusReason (study.json `discontinuation_reasons`); a stop followed by a restart is
  an interruption.

Each change names its reason (statusReason / reasonCode text) and the AEs that caused it: the ones
its reasonReference points at (a Condition, Observation or AdverseEvent of the AE), else, when the
reason is an adverse reaction, the AEs related to the drug that were ongoing that day.
Pure; the engine links AEs once they are final (`link`).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from fhir3t.jsonshape import child, objs, text
from fhir3t.records import Res, never_counts
from fhir3t.safety.derive import spell
from fhir3t.safety.findings import Finding
from fhir3t.safety.units import dec
from fhir3t.terminology import Code

ChangeKind = Literal["interruption", "reduction", "discontinuation"]
PER_DAY = {"d": Decimal(1), "h": Decimal(24), "wk": Decimal(1) / Decimal(7), "min": Decimal(1440)}


@dataclass(frozen=True)
class DoseChange:
    drug: str
    kind: ChangeKind
    day: date | None  # first day of the change (None: a stop without a day)
    until: date | None  # an interruption's last day off drug
    record: str
    reason: str | None
    adverse_reaction: bool  # the reason is coded as an adverse reaction
    from_dose: str | None = None  # "10 mg/day"
    to_dose: str | None = None
    reason_refs: tuple[str, ...] = ()
    aes: tuple[str, ...] = ()  # ids of the AEs that caused it

    def to_dict(self) -> dict[str, Any]:
        return {"drug": self.drug, "kind": self.kind, "day": self.day.isoformat() if self.day else None,
                "until": self.until.isoformat() if self.until else None, "record": self.record, "reason": self.reason,
                "adverse_reaction": self.adverse_reaction, "from_dose": self.from_dose, "to_dose": self.to_dose,
                "adverse_events": list(self.aes)}


@dataclass(frozen=True)
class DrugExposure:
    drug: str
    first: date | None
    last: date | None
    days: int  # calendar days on drug from D1 to the window's end
    records: int
    doses: tuple[str, ...]  # daily doses in record order ("10 mg/day"), distinct
    changes: tuple[DoseChange, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"drug": self.drug, "first": self.first.isoformat() if self.first else None,
                "last": self.last.isoformat() if self.last else None, "days": self.days, "records": self.records,
                "daily_doses": list(self.doses), "changes": [c.to_dict() for c in self.changes]}


def _fmt(d: Decimal) -> str:
    return f"{d.quantize(Decimal('0.01')).normalize():f}"


def daily_dose(raw: dict) -> tuple[Decimal, str] | None:
    """(amount per day, unit) of a record's first dosage with a dose quantity, else None."""
    for dosage in objs(raw.get("dosage")) + objs(raw.get("dosageInstruction")):
        q = None
        for dr in objs(dosage.get("doseAndRate")):
            q = child(dr, "doseQuantity") or None
            if q:
                break
        q = q or child(dosage, "dose") or None  # MedicationAdministration.dosage.dose
        if not q:
            continue
        value, unit = dec(q.get("value")), text(q.get("unit")) or text(q.get("code"))
        if value is None or not unit:
            continue
        repeat = child(child(dosage, "timing"), "repeat")
        freq = dec(repeat.get("frequency")) or Decimal(1)
        period = dec(repeat.get("period")) or Decimal(1)
        per_day = PER_DAY.get(text(repeat.get("periodUnit")) or "d")
        if per_day is None or period <= 0:
            continue
        return value * freq * per_day / period, unit
    return None


def _reason(raw: dict) -> tuple[str | None, tuple[Code, ...], tuple[str, ...]]:
    """(text, codes, references) of why a record stopped or changed: statusReason, else reasonCode / reasonReference."""
    concepts = objs(raw.get("statusReason")) or objs(raw.get("reasonCode"))
    codes = tuple((c["system"], c["code"]) for concept in concepts for c in objs(concept.get("coding"))
                  if text(c.get("system")) and text(c.get("code")))
    words = next((t for concept in concepts for t in [concept.get("text"),
                  *(c.get("display") or c.get("code") for c in objs(concept.get("coding")))] if text(t)), None)
    refs = tuple("/".join(r.rstrip("/").split("/")[-2:]) for r in
                 (text(x.get("reference")) for x in objs(raw.get("reasonReference"))) if r)
    return words, codes, refs


def exposure(drug: str, records: Sequence[Res], d1: date, end: date, stop_statuses: frozenset[str],
             adverse: Mapping[Code, str]) -> DrugExposure:
    """One drug's exposure and dose changes between D1 and `end` (the AE window's last day)."""
    spans: list[tuple[date, date, Res]] = []
    changes: list[DoseChange] = []
    for res in records:
        if never_counts(res.type, res.raw) or res.raw.get("status") in ("cancelled", "draft", "not-taken", "intended"):
            continue
        days = spell(res, end)
        if days is None or days[1] < d1 or days[0] > end:
            continue
        lo, hi = max(days[0], d1), min(days[1], end)
        if res.raw.get("status") == "on-hold":
            words, codes, refs = _reason(res.raw)
            changes.append(DoseChange(drug, "interruption", lo, hi, res.ref, words, any(c in adverse for c in codes),
                                      reason_refs=refs))
            continue
        spans.append((lo, hi, res))
    spans.sort(key=lambda s: (s[0], s[1], s[2].ref))
    covered = 0
    merged: list[list[Any]] = []  # [lo, hi, last record]
    for lo, hi, res in spans:
        if merged and lo <= merged[-1][1] + timedelta(days=1):
            if hi > merged[-1][1]:
                merged[-1][1], merged[-1][2] = hi, res
        else:
            merged.append([lo, hi, res])
    for lo, hi, _ in merged:
        covered += (hi - lo).days + 1
    holds = [(c.day, c.until) for c in changes]
    for (_, hi, before), (lo, _, _) in itertools.pairwise(merged):
        if any(a is not None and b is not None and a <= lo - timedelta(days=1) and b >= hi + timedelta(days=1)
               for a, b in holds):
            continue  # the gap is an on-hold record's, already counted
        words, codes, refs = _reason(before.raw)
        changes.append(DoseChange(drug, "interruption", hi + timedelta(days=1), lo - timedelta(days=1), before.ref, words,
                                  any(c in adverse for c in codes), reason_refs=refs))
    doses: list[str] = []
    previous: tuple[Decimal, str] | None = None
    for lo, _, res in spans:
        dose = daily_dose(res.raw)
        if dose is None:
            continue
        label = f"{_fmt(dose[0])} {dose[1]}/day"
        if label not in doses:
            doses.append(label)
        if previous is not None and dose[1] == previous[1] and dose[0] < previous[0]:
            words, codes, refs = _reason(res.raw)
            changes.append(DoseChange(drug, "reduction", lo, None, res.ref, words, any(c in adverse for c in codes),
                                      f"{_fmt(previous[0])} {previous[1]}/day", label, refs))
        previous = dose
    for _, hi, res in spans:
        words, codes, refs = _reason(res.raw)
        ar = any(c in adverse for c in codes)
        status = res.raw.get("status")
        is_last = hi == max(s[1] for s in spans)
        if is_last and hi < end and (status == "stopped" or (status in stop_statuses and ar)):
            changes.append(DoseChange(drug, "discontinuation", hi, None, res.ref, words, ar, reason_refs=refs))
    changes.sort(key=lambda c: (c.day or date.max, c.kind, c.record))
    first = merged[0][0] if merged else None
    last = merged[-1][1] if merged else None
    return DrugExposure(drug, first, last, covered, len(spans), tuple(doses), tuple(changes))


def link(change: DoseChange, findings: Iterable[Finding]) -> DoseChange:
    """The change with the AEs that caused it (see the module doc)."""
    findings = tuple(findings)
    if change.reason_refs:
        refs = set(change.reason_refs)
        ids = tuple(f.id for f in findings if refs & set(f.evidence) or refs & set(f.recorded))
        if ids:
            return replace(change, aes=ids)
    if change.adverse_reaction and change.day is not None:
        day = change.day
        ids = tuple(f.id for f in findings if f.related_to(change.drug) and f.kind != "death"
                    and f.onset <= day and (f.end is None or f.end >= day))
        return replace(change, aes=ids)
    return change
