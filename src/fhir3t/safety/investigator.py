"""AdverseEvents already recorded (by an investigator, or by an earlier fhir3t run) merged with the findings.

- An investigator's AdverseEvent (any AdverseEvent without fhir3t's identifier system) is an AE of
  the subject when it is `actual`, names the subject, is dated after D1 inside the AE window, and
  does not name another study. When it describes an AE fhir3t also found — it points at the same
  evidence (Condition / Observation), or shares a code or CTCAE term and falls inside the episode —
  the two are one AE (source "both"); otherwise it is an AE of its own (source "investigator").
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
)
from fhir3t.safety.subjects import Subject
from fhir3t.study import StudyMatcher
from fhir3t.terminology import Code

SERIOUSNESS_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
OUTCOME_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"

#: (drug id or None) for a suspectEntity.instance reference of this AdverseEvent
DrugOf = Callable[[dict, str], str | None]


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


def _matches(f: Finding, raw: dict, day: date, hi: date, codes: set[Code], term: str) -> bool:
    if f.kind in ("death", "recorded"):
        return False
    if _evidence_refs(raw) & set(f.evidence):
        return True
    own = _codes(f.event) | ({(f.ctcae.system, f.ctcae.code)} if f.ctcae else set())
    same = bool(codes & own) or term.strip().lower() in {f.term.lower(), f.table_term.lower()}
    return same and f.onset <= day <= (f.end or hi)


@dataclass
class RecordedMerge:
    """Applies a subject's recorded AdverseEvents to fhir3t's findings."""

    config: SafetyConfig
    matcher: StudyMatcher
    problems: Problems
    drug_of: DrugOf
    suspects_for: Callable[[dict[str, str], date], tuple[Suspect, ...]]

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
            i = next((i for i, f in enumerate(out) if _matches(f, raw, day, hi, codes, finding.term)), None)
            if i is None:
                out.append(finding)
                continue
            merged = _override(out[i], found)
            if merged.grade is None and finding.grade is not None:
                merged = replace(merged, grade=finding.grade, grade_source=finding.grade_source)
            out[i] = replace(merged, source="both", recorded=(*merged.recorded, res.ref))
        return out

    def _own(self, out: list[Finding], res: Res) -> None:
        ident = next((i.get("value") for i in objs(res.raw.get("identifier")) if i.get("system") == ID_ADVERSE_EVENT), None)
        i = next((i for i, f in enumerate(out) if f.id == ident), None)
        found = assessments(res.raw, self.drug_of, authored_only=True)
        if i is None:
            if found:
                self.problems.add(res.where, f"{res.ref}: fhir3t's AdverseEvent carries an investigator's causality, "
                                             "but the data no longer give that AE (review it by hand)", skipped=False)
            return
        if found:
            out[i] = replace(_override(out[i], found), recorded=(*out[i].recorded, res.ref))

    def _investigator(self, res: Res, subject: Subject, hi: date) -> tuple[Finding, list[Assessment], set[Code], date] | None:
        raw, cfg = res.raw, self.config
        name = res.ref if res.ref.startswith("AdverseEvent/") else "AdverseEvent without id"
        if raw.get("actuality", "actual") != "actual":
            return None  # a potential AE (near miss) is no AE
        studies = objs(raw.get("study"))
        verdicts = [self.matcher.match(s) for s in studies]
        if studies and True not in verdicts:
            if None in verdicts:
                self.problems.add(res.where, f"{name}: cannot tell which study it belongs to; not counted")
            return None  # another study's AE
        span = span_of(raw.get("date")) or span_of(raw.get("detected")) or span_of(raw.get("recordedDate"))
        if span is None:
            self.problems.add(res.where, f"{name}: no date (date / detected / recordedDate); not counted")
            return None
        day = span.lo
        if not subject.d1 < day <= hi:
            if day <= subject.d1:
                self.problems.add(res.where, f"{name}: dated {day.isoformat()}, not after D1 {subject.d1.isoformat()}: "
                                             "not treatment-emergent, not counted", skipped=False)
            return None
        event = child(raw, "event")
        codes = _codes(event)
        term = text(event.get("text")) or next((text(c.get("display")) or text(c.get("code"))
                                               for c in objs(event.get("coding"))
                                               if text(c.get("display")) or text(c.get("code"))), None)
        ctcae = cfg.terms.for_codes(codes)
        term = term or (ctcae.term if ctcae else "AdverseEvent without an event term")
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
                          cfg.related)
        return finding, found, codes, day
