"""Grade a clinical AE from what the record shows, per CTCAE v5.0 (profiles/safety/clinical-grading.json).

CTCAE grades most terms by what had to be done: hospitalisation indicated is grade 3 (and, for an
infection, IV antibiotic / antifungal / antiviral treatment), life-threatening consequences with an
urgent intervention grade 4, death grade 5. fhir3t reads those facts from the patient's record, once
per patient (`collect`), and a rule applies when its evidence falls inside the AE (onset to end, or
to the end of the AE window while it is ongoing):

- `inpatient_encounter`: an Encounter of an inpatient class (study.json) that overlaps the AE;
- `icu_encounter`: an Encounter whose class, type, serviceType or location.physicalType is intensive
  care (codes or names in the data);
- `urgent_procedure`: a Procedure in the urgent-interventions value set performed during the AE;
- `iv_anti_infective`: a MedicationAdministration / MedicationRequest / MedicationStatement of a
  systemic anti-infective with an intravenous route, during the AE (rules restrict it to infections);
- `recorded_life_threatening`: the investigator recorded the AE as life-threatening;
- `cause_of_death`: a cause-of-death Observation naming the AE's term or one of its codes, an
  expired discharge whose principal diagnosis is the AE's Condition, or an investigator's outcome
  `fatal`.

Pure: `collect` reads a PatientRecord; `derive` decides. Evidence that cannot be dated is not used
(and said in Problems), so it can never raise a grade by accident.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir3t.errors import Problems
from fhir3t.jsonshape import child, objs, text
from fhir3t.messages import table
from fhir3t.records import MED_TYPES, PatientRecord, Res, span_of
from fhir3t.safety.terms import AeTerm, Terms
from fhir3t.terminology import Code, Terminology, ValueSet
from fhir3t.textnorm import fold, name_pattern

#: what is said of a record the grading of clinical AEs cannot use (a problem of the run)
P = table("safety.derive", {
    "urgent-no-date": "{ref}: urgent intervention without a date; not used for grading",
    "stay-no-start": "{ref}: inpatient Encounter without period.start; not used for seriousness or grading",
})

#: statuses of things that did not happen (or not yet)
NOT_DONE = frozenset({"planned", "cancelled", "not-done", "entered-in-error", "preparation", "draft", "proposed",
                      "intended", "not-taken", "on-hold", "revoked"})
EVIDENCE_KINDS = frozenset({"inpatient_encounter", "icu_encounter", "urgent_procedure", "iv_anti_infective",
                            "recorded_life_threatening", "cause_of_death"})


@dataclass(frozen=True)
class Rule:
    id: str
    grade: int
    evidence: str
    socs: frozenset[str] = frozenset()  # empty: any system organ class
    ctcae: str = ""  # the CTCAE wording the rule stands for (shown in the report)


@dataclass(frozen=True)
class GradingData:
    rules: tuple[Rule, ...]  # highest grade first
    icu_codes: frozenset[Code]
    icu_names: re.Pattern[str] | None
    iv_routes: frozenset[Code]
    iv_names: re.Pattern[str] | None
    anti_infectives: ValueSet
    urgent: ValueSet
    cause_codes: frozenset[Code]
    expired: frozenset[Code]

    @classmethod
    def from_data(cls, data: dict[str, Any], tx: Terminology) -> GradingData:
        rules = tuple(sorted((Rule(r["id"], int(r["grade"]), r["evidence"], frozenset(r.get("socs", ())), r.get("ctcae", ""))
                              for r in data["rules"]), key=lambda r: -r.grade))
        for r in rules:
            if r.evidence not in EVIDENCE_KINDS or not 1 <= r.grade <= 5:
                raise ValueError(f"grading rule {r.id!r}: unknown evidence {r.evidence!r} or grade outside 1..5")

        def codes(items: Iterable[dict]) -> frozenset[Code]:
            return frozenset(c for item in items for c in tx.codes(item))

        iv = data["iv"]
        cod = data["cause_of_death"]
        return cls(rules, codes(data["icu"]["codings"]), name_pattern(data["icu"].get("names", ())), codes(iv["route_codings"]),
                   name_pattern(iv.get("route_names", ())), tx.valueset(iv["anti_infectives"]), tx.valueset(data["urgent_interventions"]),
                   codes(cod["observation_codes"]), codes(cod["discharge_dispositions"]))

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


Spell = tuple[date, date, str]  # (first day, last day, "Type/id")


@dataclass
class RecordFacts:
    """What one patient's record shows that can grade a clinical AE (all dated, all referenced)."""

    inpatient: list[Spell] = field(default_factory=list)
    icu: list[Spell] = field(default_factory=list)
    urgent: list[Spell] = field(default_factory=list)
    iv_anti_infective: list[Spell] = field(default_factory=list)
    causes_of_death: list[tuple[tuple[Code, ...], str]] = field(default_factory=list)  # (value codes, Observation)
    expired_diagnoses: dict[str, str] = field(default_factory=dict)  # Condition ref -> the Encounter


def spell(res: Res, as_of: date) -> tuple[date, date] | None:
    """First and last day of a resource's period (Encounter.period, performed[x], effective[x]; a request's
    validity period, else its dosage's boundsPeriod, else from authoredOn); an open end runs to as_of when the
    thing is still going on (status in-progress / active), else it is its first day."""
    raw = res.raw
    value: object
    if res.type == "Encounter":
        value = raw.get("period")
    elif res.type == "Procedure":
        value = raw.get("performedPeriod") or raw.get("performedDateTime")
    elif res.type == "MedicationRequest":
        bounds = next((child(child(child(d, "timing"), "repeat"), "boundsPeriod") for d in objs(raw.get("dosageInstruction"))
                       if child(child(child(d, "timing"), "repeat"), "boundsPeriod")), None)
        authored = raw.get("authoredOn")
        value = child(raw, "dispenseRequest").get("validityPeriod") or bounds or ({"start": authored} if authored else None)
    else:
        value = raw.get("effectivePeriod") or raw.get("effectiveDateTime")
    if isinstance(value, dict):
        lo, hi = span_of(value.get("start")), span_of(value.get("end"))
        if lo is None:
            return None
        going = raw.get("status") in ("in-progress", "active", "arrived", "onleave")
        end = hi.hi if hi is not None else (as_of if going else lo.lo)
        return lo.lo, max(lo.lo, min(end, as_of))
    span = span_of(value)
    return (span.lo, span.lo) if span is not None else None


def concept_name(concept: object) -> str | None:
    """A CodeableConcept as a person names it: its text, else a coding's display, else a coding's code."""
    if not isinstance(concept, dict):
        return None
    for t in [concept.get("text"), *(c.get("display") for c in objs(concept.get("coding"))),
              *(c.get("code") for c in objs(concept.get("coding")))]:
        if isinstance(t, str) and t.strip():
            return t.strip()
    return None


def _concept_codes(tx: Terminology, concepts: Iterable[object]) -> list[Code]:
    return [c for concept in concepts for c in tx.codes(concept)]


def _texts(concepts: Iterable[object]) -> list[str]:
    out = []
    for concept in concepts:
        if isinstance(concept, dict):
            out += [fold(t) for t in [concept.get("text"), *(c.get("display") for c in objs(concept.get("coding")))]
                    if isinstance(t, str)]
    return out


def _named(rx: re.Pattern[str] | None, texts: Iterable[str]) -> bool:
    return rx is not None and any(rx.search(t) for t in texts)


def collect(record: PatientRecord, data: GradingData, tx: Terminology, inpatient_classes: frozenset[str],
            as_of: date, problems: Problems) -> RecordFacts:
    """Everything in one patient's record that a grading rule can use."""
    facts = RecordFacts()
    for res in record.of("Encounter"):
        if res.raw.get("status") not in NOT_DONE:
            _encounter(res, facts, data, tx, inpatient_classes, as_of, problems)
    for res in record.of("Procedure"):
        if res.raw.get("status") in NOT_DONE or not (any(c in data.urgent for c in res.codes) or data.urgent.named_in(res.texts)):
            continue
        days = spell(res, as_of)
        if days is None:
            problems.add(res.where, P["urgent-no-date"](ref=res.ref), skipped=False)
            continue
        facts.urgent.append((*days, res.ref))
    for res in record.of(*MED_TYPES):
        if _iv_anti_infective(res, data, tx):
            days = spell(res, as_of)
            if days is not None:
                facts.iv_anti_infective.append((*days, res.ref))
    for res in record.of("Observation"):
        if set(res.codes) & data.cause_codes and res.raw.get("status") not in ("entered-in-error", "cancelled"):
            facts.causes_of_death.append((tx.codes(res.raw.get("valueCodeableConcept")), res.ref))
    return facts


def _encounter(res: Res, facts: RecordFacts, data: GradingData, tx: Terminology, inpatient_classes: frozenset[str],
               as_of: date, problems: Problems) -> None:
    """An Encounter's part of the facts: inpatient stay, intensive care, an expired discharge's principal diagnosis."""
    raw = res.raw
    days = spell(res, as_of)
    klass = child(raw, "class")
    inpatient = klass.get("code") in inpatient_classes
    if days is None:
        if inpatient:
            problems.add(res.where, P["stay-no-start"](ref=res.ref))
        return
    lo, hi = days
    if inpatient:
        facts.inpatient.append((lo, hi, res.ref))
    concepts = [klass, *objs(raw.get("type")), child(raw, "serviceType"),
                *(child(loc, "physicalType") for loc in objs(raw.get("location")))]
    if set(_concept_codes(tx, concepts)) & data.icu_codes or _named(data.icu_names, _texts(concepts)):
        facts.icu.append((lo, hi, res.ref))
    if set(tx.codes(child(raw, "hospitalization").get("dischargeDisposition"))) & data.expired:
        diagnoses = objs(raw.get("diagnosis"))
        principal = [d for d in diagnoses if d.get("rank") == 1] or (diagnoses if len(diagnoses) == 1 else [])
        for d in principal:
            ref = text(child(d, "condition").get("reference"))
            if ref:
                facts.expired_diagnoses["/".join(ref.rstrip("/").split("/")[-2:])] = res.ref


def _iv_anti_infective(res: Res, data: GradingData, tx: Terminology) -> bool:
    """A systemic anti-infective (code or name) given by an intravenous route (code or name)."""
    raw = res.raw
    if res.type == "MedicationDispense" or raw.get("status") in NOT_DONE:
        return False
    if not (any(c in data.anti_infectives for c in res.codes) or data.anti_infectives.named_in(res.texts)):
        return False
    routes = [child(d, "route") for d in objs(raw.get("dosage")) + objs(raw.get("dosageInstruction"))]
    return bool(set(_concept_codes(tx, routes)) & data.iv_routes) or _named(data.iv_names, _texts(routes))


@dataclass(frozen=True)
class Derived:
    grade: int
    rule: Rule
    refs: tuple[str, ...]  # the resources that showed it


def _during(spells: Iterable[Spell], lo: date, hi: date) -> tuple[str, ...]:
    return tuple(ref for a, b, ref in spells if a <= hi and b >= lo)


def derive(data: GradingData, facts: RecordFacts, terms: Terms, *, lo: date, hi: date, term: AeTerm | None,
           codes: Iterable[Code], conditions: Iterable[str], seriousness: str | None = None,
           outcome: str | None = None) -> Derived | None:
    """The highest grade a rule gives the AE running from `lo` to `hi`, or None (no rule applies)."""
    codes = set(codes)
    for rule in data.rules:
        if rule.socs and (term is None or term.soc not in rule.socs):
            continue
        refs: tuple[str, ...] = ()
        if rule.evidence == "inpatient_encounter":
            refs = _during(facts.inpatient, lo, hi)
        elif rule.evidence == "icu_encounter":
            refs = _during(facts.icu, lo, hi)
        elif rule.evidence == "urgent_procedure":
            refs = _during(facts.urgent, lo, hi)
        elif rule.evidence == "iv_anti_infective":
            refs = _during(facts.iv_anti_infective, lo, hi)
        elif rule.evidence == "recorded_life_threatening":
            refs = ("seriousness",) if seriousness == "SeriousIsLifeThreatening" else ()
        elif rule.evidence == "cause_of_death":
            refs = tuple(ref for values, ref in facts.causes_of_death
                         if (term is not None and terms.for_codes(values) is term) or codes & set(values))
            refs += tuple(enc for cond, enc in facts.expired_diagnoses.items() if cond in set(conditions))
            if outcome == "fatal":
                refs += ("outcome",)
        if refs:
            return Derived(rule.grade, rule, refs)
    return None
