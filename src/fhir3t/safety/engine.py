"""Wire records → subjects → findings (no I/O beyond what the source does; no FHIR built here)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fhir3t.errors import Problems
from fhir3t.jsonshape import child, obj, objs
from fhir3t.messages import Msg, Text, render, table
from fhir3t.profiles import Profiles
from fhir3t.records import (
    MED_TYPES,
    PatientRecord,
    Read,
    ReadPlan,
    RecordBuilder,
    Relevance,
    Res,
    medication_concept,
)
from fhir3t.safety.baseline import Baseline, age_at, conditions_at, last_before
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
from fhir3t.safety.derive import RecordFacts, collect, concept_name, derive, spell
from fhir3t.safety.episodes import Episode, episodes
from fhir3t.safety.exposure import DrugExposure, exposure, link
from fhir3t.safety.findings import SERIOUS_DEATH, UNASSESSABLE, Finding, Suspect, seriousness_of
from fhir3t.safety.grading import Reading, read_lab, sex_of
from fhir3t.safety.investigator import RecordedMerge
from fhir3t.safety.stops import DrugStop, drug_stops, link_aes
from fhir3t.safety.subjects import Subject, find_subject, last_known_alive
from fhir3t.sources.base import RawRecord
from fhir3t.sources.grouping import GroupingSource, SharedIndex
from fhir3t.study import StudyMatcher
from fhir3t.terminology import Terminology, ValueSet

#: Resource types safety reads at all (everything else is dropped while the record is built).
TYPES = frozenset({"Observation", "Condition", "ResearchSubject", "Encounter", "AdverseEvent", "Procedure", *MED_TYPES})


#: what the safety analysis says of a patient it cannot analyse (a problem of the run), and the titles of the value sets
#: it reads by
P = table("safety.run", {
    "labs": "graded laboratory tests",
    "cause-of-death": "cause of death",
    "unexpected": "{key}: not analysed: a resource has an unexpected structure ({error}); check it with 'fhir3t validate'",
    "d1-unknown": "D1 given for {key}, which is not in the input",
    "not-enrolled": "{n} patient(s) with no ResearchSubject on {study} (or no usable D1) were not analysed",
    "d1-after": "{key}: D1 {d1} is after as_of; not analysed",
})


def _codes_set(vs_id: str, title: Msg, codes: Iterable[tuple[str, str]], tx: Terminology) -> ValueSet:
    vs = ValueSet(vs_id, "", render(title), tx.systems)
    vs.term = Text.of(render(title), {"zh-CN": render(title, "zh-CN")})
    for system, code in codes:
        vs.include_codes.setdefault(system, set()).add(code)
        vs.order.append((system, code))
    return vs


def safety_plan(config: SafetyConfig, tx: Terminology) -> ReadPlan:
    """What safety reads: graded labs and cause-of-death Observations, every Condition, Encounter, Procedure and
    medication record (the 3T drugs' exposure; IV anti-infectives and urgent interventions grade clinical AEs),
    enrolments, and the AdverseEvents investigators recorded."""
    labs = _codes_set("safety-labs", P["labs"](), config.by_code, tx)
    death = _codes_set("safety-cause-of-death", P["cause-of-death"](), config.grading.cause_codes, tx)
    reads = [Read("Observation", labs, frozenset({"code", "value[x]", "referenceRange", "effective[x]", "status"})),
             Read("Observation", death, frozenset({"code", "value[x]", "effective[x]", "status"})),
             Read("Condition", None), Read("ResearchSubject", None), Read("Encounter", None), Read("AdverseEvent", None),
             Read("Procedure", None)]
    reads += [Read(t, d.records) for d in config.drugs for t in MED_TYPES]
    reads += [Read(t, None) for t in MED_TYPES]
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
    baseline: Baseline | None = None
    exposure: tuple[DrugExposure, ...] = ()
    stays: tuple[tuple[date, date, str, str], ...] = ()  # (first day, last day, Encounter, "inpatient" | "icu")
    treatments: tuple[tuple[date, str, str, bool], ...] = ()  # other drugs after D1: (start, record, name, IV)
    worst_lab: dict[str, int] = field(default_factory=dict)  # test id -> worst grade after D1 (0: all normal)

    @property
    def withdrawal(self) -> date | None:
        """The day a withdrawn subject left the study (ResearchSubject.period.end), else None."""
        return self.subject.end if self.subject.withdrawn else None

    @property
    def event(self) -> bool:
        """A death counts for survival unless it came after the subject's withdrawal (censored there)."""
        return self.death is not None and (self.withdrawal is None or self.death <= self.withdrawal)

    @property
    def censored_at(self) -> str | None:
        """Why the survival time ends where it does when there is no event: 'withdrawal' or 'last-contact'."""
        if self.event:
            return None
        return "withdrawal" if self.withdrawal is not None else "last-contact"

    @property
    def survival_days(self) -> int:
        """Days from D1 to death; censored at withdrawal for a withdrawn subject, else at the last day known alive."""
        if self.event:
            assert self.death is not None
            end = self.death
        elif self.withdrawal is not None:
            end = self.withdrawal
        else:
            end = self.last_alive
        return max(0, (end - self.subject.d1).days)

    @property
    def exposure_days(self) -> int:
        """Days observed for AEs: D1 to the window end (or death, if earlier)."""
        end = min(self.window_end, self.death) if self.death else self.window_end
        return max(0, (end - self.subject.d1).days)


@dataclass(frozen=True, eq=False)
class SafetyDefinition:
    """The study's safety rules (CTCAE grading, clinical terms, AESIs, causality, the study's statuses),
    loaded once and never changed: shared by every run, like the screening Definition."""

    tx: Terminology
    config: SafetyConfig
    #: the safety read plan's keep/drop decision (verdict caches depend only on content)
    relevance: Relevance

    @classmethod
    def load(cls, concept_maps: Iterable[str | Path] = (), *, tx: Terminology | None = None,
             data_dir: Path | None = None, profiles: Profiles | None = None) -> SafetyDefinition:
        profiles = profiles or Profiles.at()
        tx = tx or Terminology.load([Path(p) for p in concept_maps], profiles)
        config = load_config(tx, data_dir, profiles=profiles)
        return cls(tx, config, Relevance(safety_plan(config, tx), tx))


@dataclass
class SafetyEngine:
    """One safety run: the shared SafetyDefinition, this run's problems and which ResearchStudy resources
    it learnt are this study. Made per run (`for_run`), never shared between runs or threads."""

    definition: SafetyDefinition
    problems: Problems = field(default_factory=Problems)
    matcher: StudyMatcher = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.definition.config
        self.matcher = StudyMatcher(cfg.study_system, cfg.study_value)

    @classmethod
    def for_run(cls, definition: SafetyDefinition, problems: Problems) -> SafetyEngine:
        return cls(definition, problems)

    @classmethod
    def load(cls, concept_maps: Iterable[str | Path] = (), problems: Problems | None = None,
             tx: Terminology | None = None, data_dir: Path | None = None) -> SafetyEngine:
        """A definition loaded for one run (scripts and tests; pipelines load the definition once)."""
        return cls(SafetyDefinition.load(concept_maps, tx=tx, data_dir=data_dir),
                   problems if problems is not None else Problems())

    @property
    def tx(self) -> Terminology:
        return self.definition.tx

    @property
    def config(self) -> SafetyConfig:
        return self.definition.config

    # ---- analysis ----------------------------------------------------------------------
    def analyse_raw(self, raws: Iterable[RawRecord], as_of: date, d1: Mapping[str, date] | None = None,
                    shared: SharedIndex | None = None) -> Iterator[SubjectOutcome]:
        builder = RecordBuilder(self.definition.relevance.for_run(self.problems), self.problems)
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
                self.problems.add(raw.source, P["unexpected"](key=raw.key, error=type(exc).__name__))
                continue
            if out is None:
                not_enrolled += 1
                continue
            yield out
        for key in sorted(set(given) - seen):
            self.problems.add("--d1", P["d1-unknown"](key=key))
        if not_enrolled:
            self.problems.add("input", P["not-enrolled"](n=not_enrolled, study=self.config.study_value), skipped=False)

    def analyse_record(self, record: PatientRecord, as_of: date, d1: date | None = None,
                       last_alive: date | None = None) -> SubjectOutcome | None:
        """One patient's AEs and survival data, or None when the patient is not a subject."""
        cfg = self.config
        where = record.source
        subject = find_subject(record, self.matcher, cfg.statuses, d1, sex_of(record.patient), self.problems,
                               cfg.disposition)
        if subject is None:
            return None
        if subject.d1 > as_of:
            self.problems.add(where, P["d1-after"](key=record.key, d1=subject.d1.isoformat()))
            return None
        hi = subject.window_end(as_of, cfg.follow_up_days)
        alive = max(last_alive or subject.d1, subject.d1)
        death = death_of(record.patient, record.key, subject.d1, as_of, alive, self.problems, where)
        meds = self._medication_records(record)
        facts = collect(record, cfg.grading, self.tx, cfg.inpatient_classes, as_of, self.problems)
        findings: list[Finding] = []
        episodes_, before, worst_lab = self._lab_episodes(record, subject, as_of)
        for ep in episodes_:
            findings.append(self._lab_finding(record.key, ep, hi, meds, facts))
        for res in new_conditions(record, subject, as_of, cfg.follow_up_days, self.problems):
            findings.append(self._condition_finding(record.key, res, hi, meds, facts))
        if death is not None and death.day <= hi:
            findings.append(self._death_finding(record.key, death.day, meds))
        recorded = record.of("AdverseEvent")
        if recorded:
            merge = RecordedMerge(cfg, self.matcher, self.problems, lambda ae, ref: self._drug_of(record, ae, ref),
                                  lambda causes, day: self._suspects(causes, meds, day),
                                  lambda f, end: self._derived(f, facts, end), self.tx)
            findings = merge.apply(findings, recorded, subject, hi)
        findings = absorb_death(findings)
        findings = [replace(f, aesi=cfg.aesi.of(f), unexpected_for=cfg.rsi.unexpected_for(f, cfg.terms.icd_systems))
                    for f in findings]
        findings.sort(key=lambda f: (f.onset, f.kind, f.term))
        stops = tuple(link_aes(st, findings, st.drug) for st in
                      drug_stops(meds, subject.d1, hi, cfg.stop_statuses, cfg.stop_reasons, self.problems))
        cause = next((f.table_term for f in findings if f.outcome == "fatal" and f.kind != "death"), None)
        exposed = tuple(
            replace(ex, changes=tuple(link(c, findings) for c in ex.changes))
            for ex in (exposure(d.id, meds.get(d.id, []), subject.d1, hi, cfg.stop_statuses, cfg.stop_reasons)
                       for d in cfg.drugs))
        baseline = Baseline(age_at((record.patient or {}).get("birthDate"), subject.d1), subject.sex,
                            last_before(before, subject.d1, cfg.baseline.lookback_days),
                            conditions_at(record.of("Condition"), subject.d1, cfg.baseline.conditions))
        stays = tuple(sorted([(a, b, ref, "inpatient") for a, b, ref in facts.inpatient] +
                             [(a, b, ref, "icu") for a, b, ref in facts.icu]))
        return SubjectOutcome(subject, tuple(findings), death.day if death else None,
                              max(alive, death.day) if death else alive, hi, as_of, stops, cause,
                              death.date_known if death else True, baseline, exposed, stays,
                              self._treatments(record, subject.d1, hi, meds, facts), worst_lab)

    def _treatments(self, record: PatientRecord, d1: date, hi: date, meds: dict[str, list[Res]],
                    facts: RecordFacts) -> tuple[tuple[date, str, str, bool], ...]:
        """Medications other than the 3T drugs started after D1 in the AE window (what narratives call treatment)."""
        ours = {id(r) for rs in meds.values() for r in rs}
        iv = {ref for _, _, ref in facts.iv_anti_infective}
        out = []
        for res in record.of(*MED_TYPES):
            if id(res) in ours or res.raw.get("status") in ("cancelled", "entered-in-error", "not-taken", "draft"):
                continue
            days = spell(res, hi)
            if days is None or not d1 < days[0] <= hi:
                continue
            concept = medication_concept(res.raw, lambda ref: _raw(record.resolve(ref)))
            name = concept_name(concept)
            out.append((days[0], res.ref, name or res.ref, res.ref in iv))
        return tuple(sorted(out))

    # ---- labs --------------------------------------------------------------------------
    def _lab_episodes(self, record: PatientRecord, subject: Subject,
                      as_of: date) -> tuple[list[Episode], list[Reading], dict[str, int]]:
        """The subject's lab AE episodes, the graded results on or before D1 (the baseline's candidates) and each
        test's worst grade in the AE window (the shift tables' columns)."""
        cfg = self.config
        by_test: dict[str, list[Reading]] = {}
        before: list[Reading] = []
        first_baseline_day = subject.d1 - timedelta(days=cfg.baseline.lookback_days)
        for res in record.of("Observation"):
            test = cfg.test_for(res.codes)
            if test is None:
                continue
            if res.span is not None and res.span.exact and not subject.in_window(res.span.lo, as_of, cfg.follow_up_days):
                if first_baseline_day <= res.span.lo <= subject.d1:
                    # a baseline result that cannot be graded leaves the baseline missing: said, but not a skip
                    scratch = Problems()
                    r = read_lab(res, test, subject.sex, cfg.units, cfg.defaults, scratch)
                    if r is not None:
                        before.append(r)
                    for p in scratch:
                        self.problems.add(p.where, f"baseline: {p.said()}", skipped=False)
                continue  # otherwise before D1 or after the window: not read (and not complained about)
            r = read_lab(res, test, subject.sex, cfg.units, cfg.defaults, self.problems)
            if r is not None:
                by_test.setdefault(test.id, []).append(r)
        out: list[Episode] = []
        for tid in sorted(by_test):
            out.extend(episodes(by_test[tid]))
        return out, before, {tid: max(r.grade for r in rs) for tid, rs in by_test.items()}

    def _lab_finding(self, patient: str, ep: Episode, hi: date, meds: dict[str, list[Res]],
                     facts: RecordFacts) -> Finding:
        cfg = self.config
        causes = lab_causality(ep.test.id, cfg.lab_causality, cfg.drugs)
        worst = ep.worst
        term = cfg.terms.by_lab[ep.test.id]  # the AE term; the lab's LOINC stays on the evidence Observations
        event = {"coding": [term.coding()], "text": ep.test.term}
        hosp = _overlapping(facts.inpatient, ep.start, ep.end or hi)
        return Finding(
            "lab", patient, ep.test.id, ep.test.term, event, ep.grade, ep.start, ep.end, ep.outcome,
            seriousness_of(ep.grade, bool(hosp)), self._suspects(causes, meds, ep.start),
            tuple(r.ref for r in ep.readings), f"worst {worst.describe()}", hosp, term,
            f"{cfg.terms.version} lab grading", related_set=cfg.related,
            codes=tuple(("http://loinc.org", c) for c in ep.test.loinc), conservative_set=cfg.conservative,
        )

    # ---- conditions --------------------------------------------------------------------
    def _condition_finding(self, patient: str, res: Res, hi: date, meds: dict[str, list[Res]],
                           facts: RecordFacts) -> Finding:
        cfg = self.config
        raw = res.raw
        assert res.span is not None
        onset = res.span.lo
        code = child(raw, "code") or {"text": "Condition"}
        term = code.get("text") or next((c.get("display") or c.get("code") for c in code.get("coding") or ()
                                         if isinstance(c, dict) and (c.get("display") or c.get("code"))), "Condition")
        outcome = condition_outcome(raw, cfg.resolved_statuses)
        end = condition_end(raw) if outcome == "resolved" else None
        hosp = _overlapping(facts.inpatient, onset, end or hi)
        key = res.ref if res.ref.startswith("Condition/") else "|".join(f"{s}|{c}" for s, c in res.codes) or res.where
        causes = condition_causality(res.codes, cfg.drugs)
        ctcae = cfg.terms.for_codes(res.codes) or cfg.terms.for_text(str(term), contained=True)
        codings: list[dict] = ([ctcae.coding()] if ctcae else []) + objs(code.get("coding"))
        event: dict[str, Any] = {"coding": codings, "text": str(term)} if codings else {"text": str(term)}
        found = Finding("condition", patient, key, str(term), event, None, onset, end, outcome, "",
                        self._suspects(causes, meds, onset), (res.ref,), "", hosp, ctcae, None, related_set=cfg.related,
                        codes=tuple(res.codes), conservative_set=cfg.conservative)
        grade, grade_source, rule = self._graded(found, raw, facts, hi)
        return replace(found, grade=grade, grade_source=grade_source, grade_rule=rule,
                       seriousness=seriousness_of(grade, bool(hosp)),
                       outcome="fatal" if rule == "cause-of-death" else outcome)

    def _graded(self, f: Finding, raw: dict, facts: RecordFacts, hi: date) -> tuple[int | None, str | None, str | None]:
        """A clinical AE's (grade, how it was found, derivation rule): a recorded CTCAE grade is kept; otherwise the
        highest of the recorded severity (mild 1 / moderate 2 / severe 3) and the grade the record shows (derive)."""
        cfg = self.config
        grade, source = clinical_grade(raw, cfg.grade_extensions, cfg.severity_grades)
        if source == "CTCAE grade extension":
            return grade, source, None
        derived = self._derived(f, facts, hi)
        if derived is not None and (grade is None or derived[0] > grade):
            return derived
        return grade, source, None

    def _derived(self, f: Finding, facts: RecordFacts, hi: date) -> tuple[int, str, str] | None:
        """(grade, source text, rule id) the record shows for a clinical AE, or None."""
        cfg = self.config
        found = derive(cfg.grading, facts, cfg.terms, lo=f.onset, hi=f.end or hi, term=f.ctcae, codes=f.codes,
                       conditions=f.evidence, seriousness=f.seriousness, outcome=f.outcome)
        if found is None:
            return None
        return found.grade, f"derived: {found.rule.ctcae} ({', '.join(found.refs)})", found.rule.id

    # ---- death -------------------------------------------------------------------------
    def _death_finding(self, patient: str, day: date, meds: dict[str, list[Res]]) -> Finding:
        cfg = self.config
        causes = {d.id: UNASSESSABLE for d in cfg.drugs}
        term = cfg.terms.death
        codings = [dict(cfg.death_code), *([term.coding()] if term else [])]
        event = {"coding": codings, "text": cfg.death_code.get("display", "Death")}
        return Finding("death", patient, "death", "Death", event, 5, day, day, "fatal",
                       seriousness_of(5, False), self._suspects(causes, meds, day), (patient,), "", (), term,
                       "death (CTCAE grade 5)", related_set=cfg.related,
                       codes=tuple((c["system"], c["code"]) for c in codings if "system" in c and "code" in c),
                       conservative_set=cfg.conservative)

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


def _overlapping(encounters: list[tuple[date, date, str]], start: date, end: date) -> tuple[str, ...]:
    return tuple(ref for lo, hi, ref in encounters if lo <= end and hi >= start)


def _raw(res: Res | None) -> dict | None:
    return res.raw if res is not None else None


def absorb_death(findings: list[Finding]) -> list[Finding]:
    """The death from Patient.deceased* and the AE that caused it are one event (CTCAE: grade 5 goes to the AE
    that led to death; 'Death NOS' only when none can be named). When the record names a cause (a fatal outcome
    the investigator recorded, or cause-of-death evidence), the death is folded into that AE: grade 5, fatal,
    seriousness death, the death's evidence and investigator records added."""
    death = next((f for f in findings if f.kind == "death"), None)
    if death is None:
        return findings
    fatal = [f for f in findings if f is not death and (f.outcome == "fatal" or f.grade_rule == "cause-of-death")]
    if not fatal:
        return findings
    cause = max(fatal, key=lambda f: (f.grade_rule == "cause-of-death", f.onset, f.id))
    recorded = tuple(dict.fromkeys((*cause.recorded, *death.recorded)))
    note = "" if cause.grade in (None, 5) else f" (recorded grade {cause.grade})"
    merged = replace(cause, grade=5, outcome="fatal", seriousness=SERIOUS_DEATH, end=cause.end or death.onset,
                     evidence=tuple(dict.fromkeys((*cause.evidence, *death.evidence))), recorded=recorded,
                     source="both" if recorded else cause.source,
                     grade_source=cause.grade_source if cause.grade == 5 else f"death from this AE{note}: CTCAE grade 5",
                     grade_rule=cause.grade_rule or "cause-of-death")
    return [merged if f is cause else f for f in findings if f is not death]


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
            engine: SafetyEngine | None = None, documents: Iterable[tuple[str, object]] = ()) -> list[SubjectOutcome]:
    """Find every subject's AEs and survival data in Bundle / NDJSON files (and `documents`: parsed Bundles, e.g.
    the enrolment state file's subjects)."""
    if engine is None:
        from fhir3t.sources.files import with_discovered_maps

        concept_maps = with_discovered_maps(list(paths), concept_maps, problems)
    eng = engine or SafetyEngine.load(concept_maps, problems)
    if problems is not None:
        eng.problems = problems
    # No read filter: every dated resource counts for 'last known alive' (the censoring day).
    source = GroupingSource(paths, eng.problems, documents=tuple(documents))
    return list(eng.analyse_raw(source, as_of, d1, source.shared))


__all__ = ["Drug", "SafetyDefinition", "SafetyEngine", "SubjectOutcome", "analyse"]
