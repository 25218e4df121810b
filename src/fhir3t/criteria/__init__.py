"""Load the trial's criteria from data and screen one PatientRecord (pure: no I/O)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from fhir3t.criteria.context import Context, StudyMatcher
from fhir3t.criteria.load import CriteriaSet, Criterion, load_criteria
from fhir3t.criteria.model import CriterionResult, Outcome, ScreeningResult, status_of
from fhir3t.record import PatientRecord, span_of
from fhir3t.terminology import Code, Terminology, ValueSet

__all__ = ["CriteriaSet", "Criterion", "CriterionResult", "Screener", "ScreeningResult", "load_criteria"]


#: ResearchSubject statuses that mean the patient is (or was) in this study already.
ENROLLED = frozenset({"pending-on-study", "on-study", "on-study-intervention", "on-study-observation",
                      "follow-up", "off-study", "withdrawn"})


def coordinator_notes(ctx: Context) -> tuple[str, ...]:
    """What the 22 criteria do not ask but a coordinator must not miss."""
    notes: list[str] = []
    patient = ctx.record.patient or {}
    if patient.get("deceasedBoolean") is True:
        notes.append("the patient is recorded as deceased")
    elif isinstance(patient.get("deceasedDateTime"), str):
        span = span_of(patient["deceasedDateTime"])
        if span is not None and span.lo <= ctx.as_of:
            notes.append(f"the patient is recorded as deceased on {span}")
    for rs in ctx.visible("ResearchSubject"):
        status = rs.raw.get("status")
        if isinstance(status, str) and status in ENROLLED and ctx.study.match(rs.raw.get("study")) is True:
            notes.append(f"already {status} in {ctx.study.value} ({rs.ref}): screening does not change that")
    return tuple(notes)


class Screener:
    """Evaluates every criterion of a CriteriaSet on a record and maps the results to a status."""

    def __init__(self, criteria: CriteriaSet, tx: Terminology) -> None:
        self.criteria = criteria
        self.tx = tx
        self.studies = StudyMatcher(criteria.study_system, criteria.study_value)
        needs: dict[str, list[ValueSet | None]] = defaultdict(list)
        for c in criteria.criteria:
            for rtype, vs in c.rule.needs():
                needs[rtype].append(vs)
        #: types read in full (some rule takes any code) vs types filtered by value sets
        self._any_code = frozenset(t for t, vss in needs.items() if any(v is None for v in vss))
        self._by_vs = {t: tuple(v for v in vss if v is not None) for t, vss in needs.items()}
        self.types = frozenset(needs)
        self._keep_cache: dict[tuple[str, Code], bool] = {}

    def learn_studies(self, studies: Iterable[dict]) -> None:
        """Teach the screener which ResearchStudy resources in the input are this study."""
        self.studies.learn(studies)

    def keep(self, rtype: str, codes: tuple[Code, ...]) -> bool:
        """Does any criterion read this resource? (Drops the ~90 % of a record no rule looks at.)"""
        if rtype not in self.types:
            return False
        if rtype in self._any_code:
            return True
        cache = self._keep_cache
        for code in codes:
            key = (rtype, code)
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = any(code in vs for vs in self._by_vs[rtype])
            if hit:
                return True
        return False

    def screen(self, record: PatientRecord, as_of: date, d1: date | None = None) -> ScreeningResult:
        d1 = d1 or as_of
        ctx = Context(record, as_of, d1, self.tx, self.studies, self.criteria.windows)
        results = []
        for c in self.criteria.criteria:
            out: Outcome = c.rule.evaluate(ctx)
            results.append(CriterionResult(c.id, c.kind, out.result, out.evidence, out.reason, c.requires_review))
        return ScreeningResult(record.key, status_of(results), tuple(results), as_of, d1, record.source,
                               coordinator_notes(ctx))
