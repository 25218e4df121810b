"""AdverseEvents already recorded (by an investigator, or by an earlier fhir3t run) merged with the findings.

- An investigator's AdverseEvent (any AdverseEvent without fhir3t's identifier system) is an AE of
  the subject when it is `actual`, names the subject, is dated after D1 inside the AE window, and
  does not name another study. When it describes an AE fhir3t also found (spec §4 "One event, one
  AE") — it points at the same evidence (Condition / Observation), or names the same or an
  equivalent term (a shared code, the same CTCAE term reached from its MedDRA / SNOMED / ICD-10
  codes or from its text, e.g. "Neutropenia" for a neutrophil-count episode) and is dated inside
  the episode, or on the day of a death fhir3t derives from Patient.deceased* — the two are one AE
  (source "both"): the investigator's record supplies grade, seriousness, outcome and causality,
  fhir3t's the evidence. Otherwise it is an AE of its own (source "investigator"), graded from what
  the record shows when the investigator gave no grade.
- The investigator's causality assessment of a drug overrides fhir3t's inferred one. On fhir3t's
  own AdverseEvent read back from a server, only an assessment with a `causality.author` counts as
  the investigator's (fhir3t never writes an author), so a re-run keeps it instead of overwriting it.
Pure: everything comes from the record; unusable AdverseEvents are reported in Problems.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date

from fhir3t.canonical import ID_ADVERSE_EVENT
from fhir3t.errors import Problems
from fhir3t.jsonshape import child, obj, objs, text
from fhir3t.messages import table
from fhir3t.records import Res, span_of
from fhir3t.safety.clinical import clinical_grade
from fhir3t.safety.config import SafetyConfig
from fhir3t.safety.findings import (
    BY_INVESTIGATOR,
    CAUSALITY_SYSTEM,
    NOT_ASSESSED,
    UNASSESSABLE,
    Finding,
    Suspect,
    seriousness_of,
)
from fhir3t.safety.subjects import Subject
from fhir3t.safety.terms import AeTerm
from fhir3t.study import StudyMatcher
from fhir3t.terminology import Code, Terminology

#: what is said of an investigator's AdverseEvent the analysis cannot count (a problem of the run)
P = table("safety.recorded", {
    "no-id": "AdverseEvent without id",
    "gone": "{ref}: fhir3t's AdverseEvent carries an investigator's causality, but the data no longer give that AE "
            "(review it by hand)",
    "study": "{name}: cannot tell which study it belongs to; not counted",
    "no-date": "{name}: no date (date / detected / recordedDate); not counted",
    "before-d1": "{name}: dated {day}, not after D1 {d1}: not treatment-emergent, not counted",
})

SERIOUSNESS_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
OUTCOME_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"

#: (drug id or None) for a suspectEntity.instance reference of this AdverseEvent
DrugOf = Callable[[dict, str], str | None]
#: (grade, how, rule id) the record shows for an AE running to the given day, or None
Derive = Callable[[Finding, date], tuple[int, str, str] | None]


@dataclass(frozen=True)
class Assessment:
    drug: str
    causality: str
    author: dict | None


def is_fhir3t(raw: dict) -> bool:
    return any(i.get("system") == ID_ADVERSE_EVENT for i in objs(raw.get("identifier")))


def _code_in(concept: object, system: str) -> str | None:
    for c in objs(obj(concept).get("coding")):
        if c.get("system") == system and isinstance(c.get("code"), str):
            return c["code"]
    return None


def assessments(raw: dict, drug_of: DrugOf, *, authored_only: bool) -> list[Assessment]:
    """Causality per 3T drug the AdverseEvent's suspectEntities carry (the first usable one per drug)."""
    out: dict[str, Assessment] = {}
    for suspect in objs(raw.get("suspectEntity")):
        ref = child_ref(suspect, "instance")
        drug = drug_of(raw, ref) if ref else None
        if drug is None or drug in out:
            continue
        for c in objs(suspect.get("causality")):
            author = c.get("author") if isinstance(c.get("author"), dict) else None
            code = _code_in(c.get("assessment"), CAUSALITY_SYSTEM)
            if code is None or (authored_only and author is None):
                continue
            out[drug] = Assessment(drug, code, author)
            break
    return list(out.values())


def child_ref(parent: dict, key: str) -> str | None:
    return text(child(parent, key).get("reference"))


def _evidence_refs(raw: dict) -> set[str]:
    """"Type/id" of the Conditions / Observations the AdverseEvent points at."""
    refs: set[str] = set()
    for key in ("resultingCondition", "subjectMedicalHistory", "referenceDocument"):
        for r in objs(raw.get(key)):
            ref = text(r.get("reference"))
            if ref:
                refs.add("/".join(ref.rstrip("/").split("/")[-2:]))
    return refs


def _codes(concept: object) -> set[Code]:
    return {(c["system"], c["code"]) for c in objs(obj(concept).get("coding"))
            if isinstance(c.get("system"), str) and isinstance(c.get("code"), str)}


def _override(f: Finding, found: list[Assessment]) -> Finding:
    by_drug = {a.drug: a for a in found}
    suspects = tuple(replace(s, causality=by_drug[s.drug].causality, assessor=BY_INVESTIGATOR,
                             author=by_drug[s.drug].author) if s.drug in by_drug else s for s in f.suspects)
    return replace(f, suspects=suspects)


def _matches(f: Finding, raw: dict, day: date, hi: date, codes: set[Code], term: str, ctcae: AeTerm | None) -> bool:
    """Is the investigator's AE (dated `day`, with these codes, text and CTCAE term) the same event as `f`?"""
    if f.kind == "recorded":
        return False
    same_term = ctcae is not None and ctcae is f.ctcae
    if f.kind == "death":
        return same_term and day == f.onset
    if _evidence_refs(raw) & set(f.evidence):
        return True
    own = _codes(f.event) | set(f.codes) | ({(f.ctcae.system, f.ctcae.code)} if f.ctcae else set())
    same = same_term or bool(codes & own) or term.strip().lower() in {f.term.lower(), f.table_term.lower()}
    return same and f.onset <= day <= (f.end or hi)


@dataclass
class RecordedMerge:
    """Applies a subject's recorded AdverseEvents to fhir3t's findings."""

    config: SafetyConfig
    matcher: StudyMatcher
    problems: Problems
    drug_of: DrugOf
    suspects_for: Callable[[dict[str, str], date], tuple[Suspect, ...]]
    derived: Derive | None = None
    tx: Terminology | None = None

    def apply(self, findings: list[Finding], recorded: Iterable[Res], subject: Subject, hi: date) -> list[Finding]:
        out = list(findings)
        for res in recorded:
            raw = res.raw
            if is_fhir3t(raw):
                self._own(out, res)
                continue
            parsed = self._investigator(res, subject, hi)
            if parsed is None:
                continue
            finding, found, codes, day = parsed
            i = next((i for i, f in enumerate(out)
                      if _matches(f, raw, day, hi, codes, finding.term, finding.ctcae)), None)
            if i is None:
                out.append(self._graded(finding, hi))
                continue
            out[i] = self._merged(out[i], finding, found, res.ref)
        return out

    @staticmethod
    def _merged(f: Finding, rec: Finding, found: list[Assessment], ref: str) -> Finding:
        """fhir3t's AE with the investigator's word on grade, seriousness, outcome and causality (spec §4)."""
        merged = _override(f, found)
        if rec.grade is not None:
            merged = replace(merged, grade=rec.grade, grade_source=f"investigator: {rec.grade_source}", grade_rule=None)
        if rec.seriousness != "not recorded":
            merged = replace(merged, seriousness=rec.seriousness)
        if rec.outcome != "unknown":
            merged = replace(merged, outcome=rec.outcome)
        return replace(merged, source="both", recorded=(*merged.recorded, ref),
                       codes=tuple(dict.fromkeys((*merged.codes, *rec.codes))))

    def _graded(self, f: Finding, hi: date) -> Finding:
        """An investigator's AE of its own: its recorded grade, else the grade the record shows; seriousness as
        recorded, else what the grade and an overlapping inpatient stay say when they say it is serious."""
        if f.grade is None and self.derived is not None:
            got = self.derived(f, hi)
            if got is not None:
                f = replace(f, grade=got[0], grade_source=got[1], grade_rule=got[2])
        if f.seriousness == "not recorded":
            serious = seriousness_of(f.grade, bool(f.hospitalisations) or f.grade_rule == "hospitalisation")
            if serious != "Non-serious":
                f = replace(f, seriousness=serious)
        if f.grade_rule == "cause-of-death" and f.outcome == "unknown":
            f = replace(f, outcome="fatal")
        return f

    def _own(self, out: list[Finding], res: Res) -> None:
        ident = next((i.get("value") for i in objs(res.raw.get("identifier")) if i.get("system") == ID_ADVERSE_EVENT), None)
        i = next((i for i, f in enumerate(out) if f.id == ident), None)
        found = assessments(res.raw, self.drug_of, authored_only=True)
        if i is None:
            if found:
                self.problems.add(res.where, P["gone"](ref=res.ref), skipped=False)
            return
        if found:
            out[i] = replace(_override(out[i], found), recorded=(*out[i].recorded, res.ref))

    def _investigator(self, res: Res, subject: Subject, hi: date) -> tuple[Finding, list[Assessment], set[Code], date] | None:
        raw, cfg = res.raw, self.config
        name = res.ref if res.ref.startswith("AdverseEvent/") else P["no-id"]()
        if raw.get("actuality", "actual") != "actual":
            return None  # a potential AE (near miss) is no AE
        studies = objs(raw.get("study"))
        verdicts = [self.matcher.match(s) for s in studies]
        if studies and True not in verdicts:
            if None in verdicts:
                self.problems.add(res.where, P["study"](name=name))
            return None  # another study's AE
        span = span_of(raw.get("date")) or span_of(raw.get("detected")) or span_of(raw.get("recordedDate"))
        if span is None:
            self.problems.add(res.where, P["no-date"](name=name))
            return None
        day = span.lo
        if not subject.d1 < day <= hi:
            if day <= subject.d1:
                self.problems.add(res.where, P["before-d1"](name=name, day=day.isoformat(), d1=subject.d1.isoformat()),
                                  skipped=False)
            return None
        event = child(raw, "event")
        codes = set(self.tx.codes(event)) if self.tx is not None else _codes(event)
        term = text(event.get("text")) or next((text(c.get("display")) or text(c.get("code"))
                                               for c in objs(event.get("coding"))
                                               if text(c.get("display")) or text(c.get("code"))), None)
        ctcae = cfg.terms.for_codes(codes) or cfg.terms.for_text(term) or next(
            (t for t in (cfg.terms.for_text(text(c.get("display"))) for c in objs(event.get("coding"))) if t), None)
        term = term or (ctcae.name if ctcae else "AdverseEvent without an event term")
        grade, grade_source = clinical_grade(raw, cfg.grade_extensions, cfg.severity_grades)
        found = assessments(raw, self.drug_of, authored_only=False)
        base = {d.id: UNASSESSABLE for d in cfg.drugs}
        suspects = self.suspects_for(base, day)
        by_drug = {a.drug: a for a in found}
        suspects = tuple(replace(s, causality=by_drug[s.drug].causality, assessor=BY_INVESTIGATOR,
                                 author=by_drug[s.drug].author) if s.drug in by_drug else replace(s, assessor=NOT_ASSESSED)
                         for s in suspects)
        outcome = _code_in(raw.get("outcome"), OUTCOME_SYSTEM) or "unknown"
        seriousness = _code_in(raw.get("seriousness"), SERIOUSNESS_SYSTEM) or "not recorded"
        evidence = tuple(sorted(_evidence_refs(raw)))
        finding = Finding("recorded", subject.patient, res.ref, term, event or {"text": term}, grade, day, None, outcome,
                          seriousness, suspects, evidence, "", (), ctcae, grade_source, "investigator", (res.ref,),
                          cfg.related, codes=tuple(sorted(codes)), conservative_set=cfg.conservative)
        return finding, found, codes, day
