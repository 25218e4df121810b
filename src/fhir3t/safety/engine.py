"""Wire records → subjects → findings (no I/O beyond what the source does; no FHIR built here)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fhir3t.errors import Problems
from fhir3t.jsonshape import child, obj, objs
from fhir3t.records import MED_TYPES, PatientRecord, Read, ReadPlan, RecordBuilder, Relevance, Res, span_of
from fhir3t.safety.clinical import (
    Drug,
    clinical_grade,
    condition_causality,
    condition_end,
    condition_outcome,
    lab_causality,
    new_conditions,
)
from fhir3t.safety.config import SafetyConfig, load_config
from fhir3t.safety.death import death_of
from fhir3t.safety.episodes import Episode, episodes
from fhir3t.safety.findings import UNASSESSABLE, Finding, Suspect, seriousness_of
from fhir3t.safety.grading import Reading, read_lab, sex_of
from fhir3t.safety.investigator import RecordedMerge
from fhir3t.safety.stops import DrugStop, drug_stops, link_aes
from fhir3t.safety.subjects import Subject, find_subject, last_known_alive
from fhir3t.sources.base import RawRecord
from fhir3t.sources.grouping import GroupingSource, SharedIndex
from fhir3t.study import StudyMatcher
from fhir3t.terminology import Terminology, ValueSet

#: Resource types safety reads at all (everything else is dropped while the record is built).
TYPES = frozenset({"Observation", "Condition", "ResearchSubject", "Encounter", "AdverseEvent", *MED_TYPES})


def safety_plan(config: SafetyConfig, tx: Terminology) -> ReadPlan:
    """What safety reads: graded labs, every Condition, the 3T drugs' records, enrolments, encounters."""
    labs = ValueSet("safety-labs", "", "graded laboratory tests", tx.systems)
    for system, code in config.by_code:
        labs.include_codes.setdefault(system, set()).add(code)
        labs.order.append((system, code))
    reads = [Read("Observation", labs, frozenset({"code", "value[x]", "referenceRange", "effective[x]", "status"})),
             Read("Condition", None), Read("ResearchSubject", None), Read("Encounter", None), Read("AdverseEvent", None)]
    reads += [Read(t, d.records) for d in config.drugs for t in MED_TYPES]
    return ReadPlan(reads)


@dataclass(frozen=True)
class SubjectOutcome:
    """Everything the report needs about one subject."""

    subject: Subject
    findings: tuple[Finding, ...]
    death: date | None
    last_alive: date  # latest dated resource, capped at as_of (>= D1)
    window_end: date  # last day whose data could be an AE
    as_of: date
    stops: tuple[DrugStop, ...] = ()  # 3T drugs stopped for an adverse reaction
    death_cause: str | None = None  # the term of a fatal AE of the subject, when one is coded
    death_date_known: bool = True  # False: deceasedBoolean, dated at the last day known alive

    @property
    def event(self) -> bool:
        return self.death is not None

    @property
    def survival_days(self) -> int:
        """Days from D1 to death, or to the last day known alive (censored)."""
        end = self.death if self.death is not None else self.last_alive
        return max(0, (end - self.subject.d1).days)

    @property
    def exposure_days(self) -> int:
        """Days observed for AEs: D1 to the window end (or death, if earlier)."""
        end = min(self.window_end, self.death) if self.death else self.window_end
        return max(0, (end - self.subject.d1).days)


@dataclass
class SafetyEngine:
    tx: Terminology
    config: SafetyConfig
    matcher: StudyMatcher
    problems: Problems = field(default_factory=Problems)

    @classmethod
    def load(cls, concept_maps: Iterable[str | Path] = (), problems: Problems | None = None,
             tx: Terminology | None = None, data_dir: Path | None = None) -> SafetyEngine:
        tx = tx or Terminology.load([Path(p) for p in concept_maps])
        config = load_config(tx, data_dir)
        return cls(tx, config, StudyMatcher(config.study_system, config.study_value), problems if problems is not None else Problems())

    # ---- analysis ----------------------------------------------------------------------
    def analyse_raw(self, raws: Iterable[RawRecord], as_of: date, d1: Mapping[str, date] | None = None,
                    shared: SharedIndex | None = None) -> Iterator[SubjectOutcome]:
        builder = RecordBuilder(Relevance(safety_plan(self.config, self.tx), self.tx).for_run(self.problems), self.problems)
        given = dict(d1 or {})
        seen: set[str] = set()
        not_enrolled = 0
        learned = -1
        for raw in raws:
            if shared is not None and len(shared.by_ref) != learned:
                self.matcher.learn(shared.studies())
                learned = len(shared.by_ref)
            try:
                alive = last_known_alive(raw.resources, as_of)
                record = builder.build(raw)
                seen.add(record.key)
                out = self.analyse_record(record, as_of, given.get(record.key), alive)
            except (TypeError, AttributeError, ValueError, KeyError, ArithmeticError, RecursionError) as exc:
                # Input shaped in a way no rule expected: this patient is reported, the run goes on.
                self.problems.add(raw.source, f"{raw.key}: not analysed: a resource has an unexpected structure "
                                              f"({type(exc).__name__}); check it with 'fhir3t validate'")
                continue
            if out is None:
                not_enrolled += 1
                continue
            yield out
        for key in sorted(set(given) - seen):
            self.problems.add("--d1", f"D1 given for {key}, which is not in the input")
        if not_enrolled:
            self.problems.add("input", f"{not_enrolled} patient(s) with no ResearchSubject on "
                                       f"{self.config.study_value} (or no usable D1) were not analysed", skipped=False)

    def analyse_record(self, record: PatientRecord, as_of: date, d1: date | None = None,
                       last_alive: date | None = None) -> SubjectOutcome | None:
        """One patient's AEs and survival data, or None when the patient is not a subject."""
        cfg = self.config
        where = record.source
        subject = find_subject(record, self.matcher, cfg.statuses, d1, sex_of(record.patient), self.problems)
        if subject is None:
            return None
        if subject.d1 > as_of:
            self.problems.add(where, f"{record.key}: D1 {subject.d1.isoformat()} is after as_of; not analysed")
            return None
        hi = subject.window_end(as_of, cfg.follow_up_days)
        alive = max(last_alive or subject.d1, subject.d1)
        death = death_of(record.patient, record.key, subject.d1, as_of, alive, self.problems, where)
        meds = self._medication_records(record)
        encounters = self._inpatient(record, as_of)
        findings: list[Finding] = []
        for ep in self._lab_episodes(record, subject, as_of):
            findings.append(self._lab_finding(record.key, ep, hi, meds, encounters))
        for res in new_conditions(record, subject, as_of, cfg.follow_up_days, self.problems):
            findings.append(self._condition_finding(record.key, res, hi, meds, encounters))
        if death is not None and death.day <= hi:
            findings.append(self._death_finding(record.key, death.day, meds))
        recorded = record.of("AdverseEvent")
        if recorded:
            merge = RecordedMerge(cfg, self.matcher, self.problems, lambda ae, ref: self._drug_of(record, ae, ref),
                                  lambda causes, day: self._suspects(causes, meds, day))
            findings = merge.apply(findings, recorded, subject, hi)
        findings.sort(key=lambda f: (f.onset, f.kind, f.term))
        stops = tuple(link_aes(st, findings, st.drug) for st in
                      drug_stops(meds, subject.d1, hi, cfg.stop_statuses, cfg.stop_reasons, self.problems))
        cause = next((f.table_term for f in findings if f.outcome == "fatal" and f.kind != "death"), None)
        return SubjectOutcome(subject, tuple(findings), death.day if death else None,
                              max(alive, death.day) if death else alive, hi, as_of, stops, cause,
                              death.date_known if death else True)

    # ---- labs --------------------------------------------------------------------------
    def _lab_episodes(self, record: PatientRecord, subject: Subject, as_of: date) -> list[Episode]:
        cfg = self.config
        by_test: dict[str, list[Reading]] = {}
        for res in record.of("Observation"):
            test = cfg.test_for(res.codes)
            if test is None:
                continue
            if res.span is not None and res.span.exact and not subject.in_window(res.span.lo, as_of, cfg.follow_up_days):
                continue  # before/on D1 or after the window: not read (and not complained about)
            r = read_lab(res, test, subject.sex, cfg.units, cfg.defaults, self.problems)
            if r is not None:
                by_test.setdefault(test.id, []).append(r)
        out: list[Episode] = []
        for tid in sorted(by_test):
            out.extend(episodes(by_test[tid]))
        return out

    def _lab_finding(self, patient: str, ep: Episode, hi: date, meds: dict[str, list[Res]],
                     encounters: list[tuple[date, date, str]]) -> Finding:
        cfg = self.config
        causes = lab_causality(ep.test.id, cfg.lab_causality, cfg.drugs)
        worst = ep.worst
        term = cfg.terms.by_lab[ep.test.id]  # the AE term; the lab's LOINC stays on the evidence Observations
        event = {"coding": [term.coding()], "text": ep.test.term}
        hosp = _overlapping(encounters, ep.start, ep.end or hi)
        return Finding(
            "lab", patient, ep.test.id, ep.test.term, event, ep.grade, ep.start, ep.end, ep.outcome,
            seriousness_of(ep.grade, bool(hosp)), self._suspects(causes, meds, ep.start),
            tuple(r.ref for r in ep.readings), f"worst {worst.describe()}", hosp, term,
            f"{cfg.terms.version} lab grading", related_set=cfg.related,
        )

    # ---- conditions --------------------------------------------------------------------
    def _condition_finding(self, patient: str, res: Res, hi: date, meds: dict[str, list[Res]],
                           encounters: list[tuple[date, date, str]]) -> Finding:
        cfg = self.config
        raw = res.raw
        assert res.span is not None
        onset = res.span.lo
        code = child(raw, "code") or {"text": "Condition"}
        term = code.get("text") or next((c.get("display") or c.get("code") for c in code.get("coding") or ()
                                         if isinstance(c, dict) and (c.get("display") or c.get("code"))), "Condition")
        outcome = condition_outcome(raw, cfg.resolved_statuses)
        end = condition_end(raw) if outcome == "resolved" else None
        hosp = _overlapping(encounters, onset, end or hi)
        key = res.ref if res.ref.startswith("Condition/") else "|".join(f"{s}|{c}" for s, c in res.codes) or res.where
        causes = condition_causality(res.codes, cfg.drugs)
        ctcae = cfg.terms.for_codes(res.codes)
        grade, grade_source = clinical_grade(raw, cfg.grade_extensions, cfg.severity_grades)
        codings: list[dict] = ([ctcae.coding()] if ctcae else []) + objs(code.get("coding"))
        event: dict[str, Any] = {"coding": codings, "text": str(term)} if codings else {"text": str(term)}
        return Finding("condition", patient, key, str(term), event, grade, onset, end, outcome,
                       seriousness_of(grade, bool(hosp)), self._suspects(causes, meds, onset),
                       (res.ref,), "", hosp, ctcae, grade_source, related_set=cfg.related)

    # ---- death -------------------------------------------------------------------------
    def _death_finding(self, patient: str, day: date, meds: dict[str, list[Res]]) -> Finding:
        cfg = self.config
        causes = {d.id: UNASSESSABLE for d in cfg.drugs}
        term = cfg.terms.death
        event = {"coding": [dict(cfg.death_code), *([term.coding()] if term else [])],
                 "text": cfg.death_code.get("display", "Death")}
        return Finding("death", patient, "death", "Death", event, 5, day, day, "fatal",
                       seriousness_of(5, False), self._suspects(causes, meds, day), (patient,), "", (), term,
                       "death (CTCAE grade 5)", related_set=cfg.related)

    def _drug_of(self, record: PatientRecord, ae: dict, ref: str) -> str | None:
        """The 3T drug a suspectEntity.instance names: a contained Medication or a medication record of the patient."""
        if ref.startswith("#"):
            target = next((c for c in objs(ae.get("contained")) if c.get("id") == ref[1:]), None)
            concept = obj(target).get("code") or obj(target).get("medicationCodeableConcept")
            codes = self.tx.codes(concept) if concept else ()
        else:
            res = record.resolve("/".join(ref.rstrip("/").split("/")[-2:]))
            codes = res.codes if res is not None else ()
        return next((d.id for d in self.config.drugs if any(c in d.records for c in codes)), None)

    # ---- context -----------------------------------------------------------------------
    def _medication_records(self, record: PatientRecord) -> dict[str, list[Res]]:
        out: dict[str, list[Res]] = {}
        for res in record.of(*MED_TYPES):
            for d in self.config.drugs:
                if any(c in d.records for c in res.codes):
                    out.setdefault(d.id, []).append(res)
        return out

    def _suspects(self, causes: dict[str, str], meds: dict[str, list[Res]], onset: date) -> tuple[Suspect, ...]:
        return tuple(Suspect(d.id, causes[d.id], _instance(meds.get(d.id, []), onset), d.code) for d in self.config.drugs)

    def _inpatient(self, record: PatientRecord, as_of: date) -> list[tuple[date, date, str]]:
        out = []
        for res in record.of("Encounter"):
            raw = res.raw
            klass = raw.get("class")
            if not (isinstance(klass, dict) and klass.get("code") in self.config.inpatient_classes):
                continue
            if raw.get("status") in ("planned", "cancelled"):
                continue
            period = child(raw, "period")
            start, end = span_of(period.get("start")), span_of(period.get("end"))
            if start is None:
                self.problems.add(res.where, f"{res.ref}: inpatient Encounter without period.start; "
                                             "not used for seriousness")
                continue
            out.append((start.lo, end.hi if end else as_of, res.ref))
        return out


def _overlapping(encounters: list[tuple[date, date, str]], start: date, end: date) -> tuple[str, ...]:
    return tuple(ref for lo, hi, ref in encounters if lo <= end and hi >= start)


def _instance(records: list[Res], onset: date) -> str | None:
    """The patient's record of the drug to point at: the latest started on or before the onset, else
    the earliest. Only MedicationStatement / MedicationAdministration (what R4's
    suspectEntity.instance allows) or the Medication a MedicationRequest names."""
    usable: list[tuple[date, str]] = []
    for r in records:
        ref: str | None = None
        if r.type in ("MedicationStatement", "MedicationAdministration") and r.ref.startswith(f"{r.type}/"):
            ref = r.ref
        elif r.type == "MedicationRequest":
            mr = r.raw.get("medicationReference")
            target = mr.get("reference") if isinstance(mr, dict) else None
            if isinstance(target, str) and target.startswith("Medication/"):
                ref = target
        if ref is not None:
            usable.append((r.span.lo if r.span else date.min, ref))
    if not usable:
        return None
    before = [u for u in usable if u[0] <= onset]
    return max(before)[1] if before else min(usable)[1]


def analyse(paths: Iterable[str | Path], *, as_of: date, d1: Mapping[str, date] | None = None,
            concept_maps: Iterable[str | Path] = (), problems: Problems | None = None,
            engine: SafetyEngine | None = None) -> list[SubjectOutcome]:
    """Find every subject's AEs and survival data in Bundle / NDJSON files."""
    if engine is None:
        from fhir3t.sources.files import with_discovered_maps

        concept_maps = with_discovered_maps(list(paths), concept_maps, problems)
    eng = engine or SafetyEngine.load(concept_maps, problems)
    if problems is not None:
        eng.problems = problems
    # No read filter: every dated resource counts for 'last known alive' (the censoring day).
    source = GroupingSource(paths, eng.problems)
    return list(eng.analyse_raw(source, as_of, d1, source.shared))


__all__ = ["Drug", "SafetyEngine", "SubjectOutcome", "analyse"]
