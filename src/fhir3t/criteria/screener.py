"""Screen one PatientRecord: every criterion of a CriteriaSet, then the status (pure, no I/O)."""
from __future__ import annotations

from datetime import date

from fhir3t.criteria.context import Context
from fhir3t.criteria.load import CriteriaSet
from fhir3t.criteria.model import MR_TYPE, CriterionResult, Outcome, PatientId, ScreeningResult, status_of
from fhir3t.enrolment import is_teams, status_word
from fhir3t.messages import Message, Msg
from fhir3t.r4facts import r4_facts
from fhir3t.records.build import span_of
from fhir3t.records.model import PatientRecord
from fhir3t.records.plan import Read, ReadPlan
from fhir3t.study import StudyMatcher
from fhir3t.terminology import Terminology

DECEASED = Message("note.deceased", "the patient is recorded as deceased")
DECEASED_ON = Message("note.deceased-on", "the patient is recorded as deceased on {day}")
ALREADY = Message("note.already", "already {status} in {study} ({subject}): screening does not change that")
SUBJECT_UNREAD = Message("note.subject-unread", "{subject} is a ResearchSubject of {study} whose {element} cannot be "
                         "read: check whether the patient is already enrolled")


def coordinator_notes(ctx: Context) -> tuple[Msg, ...]:
    """What the criteria do not ask but a coordinator must not miss."""
    notes: list[Msg] = []
    patient = ctx.record.patient or {}
    if patient.get("deceasedBoolean") is True:
        notes.append(DECEASED())
    elif isinstance(patient.get("deceasedDateTime"), str):
        span = span_of(patient["deceasedDateTime"])
        if span is not None and span.lo <= ctx.as_of:
            notes.append(DECEASED_ON(day=str(span)))
    for rs in ctx.visible("ResearchSubject"):
        status = rs.raw.get("status")
        if is_teams(status) and ctx.study.match(rs.raw.get("study")) is True:
            notes.append(ALREADY(status=status_word(status), study=ctx.study.value, subject=rs.ref))
    for rs in ctx.record.unread_of("ResearchSubject"):
        if rs.raw and ctx.study.match(rs.raw.get("study")) is True:
            notes.append(SUBJECT_UNREAD(subject=rs.ref, study=ctx.study.value, element=rs.bad or "status"))
    return tuple(notes)


def patient_ids(patient: dict | None) -> tuple[PatientId, ...]:
    """Patient.identifier as (system, value, typed MR?), skipping malformed entries."""
    out = []
    for ident in (patient or {}).get("identifier") or ():
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        system: str = ident["system"] if isinstance(ident.get("system"), str) else ""
        codings = (ident.get("type") or {}).get("coding") if isinstance(ident.get("type"), dict) else None
        mr = any(isinstance(c, dict) and (c.get("system"), c.get("code")) == MR_TYPE for c in codings or ())
        out.append(PatientId(system, ident["value"], mr))
    return tuple(out)


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def patient_name(patient: dict | None) -> str | None:
    """The official (else first) HumanName as a person writes it: its text, else given + family
    (family first, unspaced, for Chinese names)."""
    names = [n for n in (patient or {}).get("name") or () if isinstance(n, dict)]
    if not names:
        return None
    name = next((n for n in names if n.get("use") == "official"), names[0])
    if isinstance(name.get("text"), str) and name["text"].strip():
        return name["text"].strip()
    family: str = name["family"] if isinstance(name.get("family"), str) else ""
    given = [g for g in name.get("given") or () if isinstance(g, str)]
    if _has_cjk(family + "".join(given)):
        return (family + "".join(given)) or None
    return " ".join([*given, family]).strip() or None


#: what the notes and the display id read besides the criteria (so the records keep it)
NOTE_READS = (Read("Patient", None, frozenset({"deceased[x]", "identifier", "name"})),
              Read("ResearchSubject", None, frozenset({"status", "study"})))


class Screener:
    """Evaluates every criterion of a CriteriaSet on a record and maps the results to a status.

    Holds no run's state (the dates, which ResearchStudy resources are this study, whether names are
    shown come with each call), so one Screener serves every run and every thread at once."""

    def __init__(self, criteria: CriteriaSet, tx: Terminology) -> None:
        self.criteria = criteria
        self.tx = tx
        self.plan = ReadPlan([*(r for c in criteria.criteria for r in c.rule.reads()), *NOTE_READS],
                             r4_facts().mention_types)
        #: each criterion's value sets by type: a record one of its rules reads by code is no suspect of another
        self._sets = {c.id: ReadPlan(c.rule.reads()).valuesets for c in criteria.criteria}

    @property
    def types(self) -> frozenset[str]:
        """Resource types some criterion reads (what a server pull asks for)."""
        return self.plan.types - {"Patient"}

    def studies(self) -> StudyMatcher:
        """A fresh matcher of this study (a run teaches it the ResearchStudy resources it meets)."""
        return StudyMatcher(self.criteria.study_system, self.criteria.study_value)

    def screen(self, record: PatientRecord, as_of: date, d1: date | None = None, *, studies: StudyMatcher | None = None,
               names: bool = False) -> ScreeningResult:
        """Every criterion on one patient's record. `studies`: the run's matcher (default: identifiers only);
        `names`: put the Patient's name in the result (only when a run asks: --show-names)."""
        d1 = d1 or as_of
        ctx = Context(record, as_of, d1, self.tx, studies or self.studies(), self.criteria.windows, self.plan.valuesets)
        results = []
        for c in self.criteria.criteria:
            ctx.criterion_sets = self._sets[c.id]
            out: Outcome = c.rule.evaluate(ctx)
            results.append(CriterionResult(c.id, c.kind, out.result, out.evidence, out.reason, c.requires_review))
        return ScreeningResult(record.key, status_of(results), tuple(results), as_of, d1, record.source,
                               coordinator_notes(ctx), patient_ids(record.patient),
                               patient_name(record.patient) if names else None)
