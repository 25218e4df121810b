"""Who is on study and from when (spec §1): D1 from ResearchSubject.period.start, or given by the user.

Also the subject's AE window (after D1, up to as_of, and before period.end + N days once off study)
and the last day the patient is known alive (the latest dated resource, capped at as_of).
"""
from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from fhir3t.canonical import ID_RESEARCH_SUBJECT, ID_SUBJECT_NUMBER
from fhir3t.dates import parse_day
from fhir3t.enrolment import Status
from fhir3t.errors import InputError, Problems, UsageError
from fhir3t.jsonshape import child, objs, text
from fhir3t.messages import table
from fhir3t.r4facts import r4_facts
from fhir3t.records import PatientRecord, first_date, never_counts, span_of
from fhir3t.study import StudyMatcher

#: what is said of a study subject the analysis cannot date (a problem of the run), and of a --d1 CSV file
P = table("safety.subject", {
    "csv-unreadable": "{path}: cannot read ({error})",
    "csv-columns": "{path}:{line}: needs columns 'patient' and 'd1'",
    "study": "{ref}: cannot tell which study it belongs to (study reference names no {study} identifier or known "
             "ResearchStudy); ignored",
    "partial-start": "{ref}: period.start {start} is not a full day; no D1 from it",
    "no-start": "{ref} (status {status}) has no period.start, so no D1: {key} not analysed (give --d1 PATIENT=DATE)",
    "several": "{key} has {n} ResearchSubjects on this study; D1 from the earliest ({ref})",
    "withdrawn-no-end": "{ref}: withdrawn without period.end; censored at the last contact instead of at withdrawal",
})


@dataclass(frozen=True)
class Disposition:
    """study.json `disposition`: which subjects are withdrawn (censored at withdrawal) or lost to follow-up."""

    withdrawn_statuses: frozenset[str] = frozenset({Status.WITHDRAWN})
    progress_extension: str = ""
    withdrawal_codes: frozenset[str] = frozenset()
    lost_codes: frozenset[str] = frozenset()

    @classmethod
    def from_data(cls, data: dict) -> Disposition:
        return cls(frozenset(data["withdrawn_statuses"]), data.get("progress_extension", ""),
                   frozenset(data.get("withdrawal_reason_codes", ())), frozenset(data.get("lost_to_follow_up_reason_codes", ())))

    def reasons(self, raw: dict) -> list[str]:
        """Reason codes of the R5 ResearchSubject.progress cross-version extension(s) on a ResearchSubject."""
        out = []
        for ext in objs(raw.get("extension")):
            if ext.get("url") != self.progress_extension:
                continue
            for sub in objs(ext.get("extension")):
                if sub.get("url") == "reason":
                    out += [c["code"] for c in objs(child(sub, "valueCodeableConcept").get("coding")) if text(c.get("code"))]
        return out

    def of(self, status: str, raw: dict) -> str | None:
        """Status.WITHDRAWN, 'lost-to-follow-up' or None for one ResearchSubject."""
        reasons = set(self.reasons(raw))
        if status in self.withdrawn_statuses or reasons & self.withdrawal_codes:
            return Status.WITHDRAWN
        if reasons & self.lost_codes:
            return "lost-to-follow-up"
        return None


@dataclass(frozen=True)
class Subject:
    patient: str
    d1: date
    end: date | None  # ResearchSubject.period.end: the subject came off study
    status: str  # the ResearchSubject status, or "given" for a user-supplied D1
    source: str  # "ResearchSubject/<id>" or "--d1"
    sex: str = "unknown"
    number: str | None = None  # the study subject number (ResearchSubject.identifier), not the FHIR id
    disposition: str | None = None  # Status.WITHDRAWN (censored at withdrawal = period.end), "lost-to-follow-up", or None

    @property
    def label(self) -> str:
        """How every listing names the subject: the study subject number, else the patient reference."""
        return self.number or self.patient

    @property
    def withdrawn(self) -> bool:
        return self.disposition == Status.WITHDRAWN

    def window_end(self, as_of: date, follow_up_days: int) -> date:
        """Last day whose data can be an AE: as_of, or the day before period.end + follow_up_days."""
        if self.end is None:
            return as_of
        return min(as_of, self.end + timedelta(days=follow_up_days - 1))

    def in_window(self, day: date, as_of: date, follow_up_days: int) -> bool:
        """Strictly after D1 (a lab on D1 is baseline, not an AE) and on or before the window's end."""
        return self.d1 < day <= self.window_end(as_of, follow_up_days)


def patient_key(text: str) -> str:
    text = text.strip()
    return text if text.startswith(("Patient/", "urn:")) else f"Patient/{text}"


def parse_d1_options(values: Iterable[str]) -> dict[str, date]:
    """`--d1 PATIENT=DATE` (repeatable) → {"Patient/<id>": day}."""
    out: dict[str, date] = {}
    for v in values:
        pid, sep, day = v.partition("=")
        if not sep or not pid.strip():
            raise UsageError(f"--d1 {v!r}: expected PATIENT=YYYY-MM-DD")
        try:
            out[patient_key(pid)] = parse_day(day.strip())
        except ValueError as exc:
            raise UsageError(f"--d1 {v!r}: {exc}") from None
    return out


def read_d1_csv(path: str | Path) -> dict[str, date]:
    """A CSV with columns `patient,d1` (header required) → {"Patient/<id>": day}."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(P["csv-unreadable"](path=str(p), error=exc.strerror)) from None
    out: dict[str, date] = {}
    for i, row in enumerate(rows, 2):
        pid, day = (row.get("patient") or "").strip(), (row.get("d1") or "").strip()
        if not pid or not day:
            raise InputError(P["csv-columns"](path=str(p), line=i))
        try:
            out[patient_key(pid)] = parse_day(day)
        except ValueError as exc:
            raise InputError(f"{p}:{i}: {exc}") from None
    return out


def subject_number(raw: dict) -> str | None:
    """The site's subject number: the identifier fhir3t's enrolment workflow gives (ID_SUBJECT_NUMBER), else the
    first ResearchSubject.identifier that fhir3t did not mint."""
    idents = raw.get("identifier")
    listed = [i for i in (idents if isinstance(idents, list) else [idents]) if isinstance(i, dict)]
    ordered = [i for i in listed if i.get("system") == ID_SUBJECT_NUMBER] + \
              [i for i in listed if i.get("system") not in (ID_SUBJECT_NUMBER, ID_RESEARCH_SUBJECT)]
    for ident in ordered:
        value = ident.get("value")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def find_subject(record: PatientRecord, matcher: StudyMatcher, statuses: frozenset[str], given: date | None,
                 sex: str, problems: Problems, disposition: Disposition | None = None) -> Subject | None:
    """The patient's enrolment in this study, or None (not enrolled, or enrolled without a usable D1)."""
    disposition = disposition or Disposition()
    # (start, end, status, ref, where, number, disposition)
    found: list[tuple[date | None, date | None, str, str, str, str | None, str | None]] = []
    for res in record.of("ResearchSubject"):
        raw = res.raw
        ours = matcher.match(raw.get("study"))
        if ours is False:
            continue
        status = raw.get("status")
        if status not in statuses:
            continue
        if ours is None:
            problems.add(res.where, P["study"](ref=res.ref, study=matcher.value))
            continue
        period = child(raw, "period")
        start, end = span_of(period.get("start")), span_of(period.get("end"))
        if period.get("start") is not None and (start is None or not start.exact):
            problems.add(res.where, P["partial-start"](ref=res.ref, start=repr(period.get("start"))))
            start = None
        found.append((start.lo if start else None, end.hi if end else None, status, res.ref, res.where,
                      subject_number(raw), disposition.of(status, raw)))
    if given is not None:
        ordered = sorted(found, key=lambda f: (f[0] is None, f[0]))
        last = next((e for s, e, *_ in ordered if e), None)
        return Subject(record.key, given, last, "given", "--d1", sex, next((f[5] for f in ordered if f[5]), None),
                       next((f[6] for f in ordered if f[6]), None))
    usable = sorted((f for f in found if f[0] is not None), key=lambda f: f[0])  # type: ignore[arg-type, return-value]
    if not usable:
        for _, _, status, ref, where, _number, _disp in found:
            problems.add(where, P["no-start"](ref=ref, status=status, key=record.key))
        return None
    first, last, status, ref, where, number, disp = usable[0]
    if len(usable) > 1:
        problems.add(where, P["several"](key=record.key, n=len(usable), ref=ref), skipped=False)
    if disp == Status.WITHDRAWN and last is None:
        problems.add(where, P["withdrawn-no-end"](ref=ref), skipped=False)
    return Subject(record.key, first, last, status, ref, sex, number, disp)  # type: ignore[arg-type]


#: Statuses of things that did not (yet) happen, across resource types.
NOT_HAPPENED = frozenset({"planned", "proposed", "draft", "cancelled", "intended", "booked", "pending", "revoked"})


def last_known_alive(resources: Iterable[tuple[dict, str]], as_of: date) -> date | None:
    """The latest day any counted, dated resource of the patient falls on, capped at as_of.

    Planned, proposed or cancelled things (a booked visit next month) say nothing of being alive.
    """
    latest: date | None = None
    facts = r4_facts()
    for res, _ in resources:
        rtype = res.get("resourceType")
        fields = facts.date_fields(rtype) if isinstance(rtype, str) else None
        if not fields or never_counts(rtype, res) or res.get("status") in NOT_HAPPENED:  # type: ignore[arg-type]
            continue
        span = span_of(first_date(res, fields)[1])
        if span is None:
            continue
        day = min(span.lo, as_of)
        if latest is None or day > latest:
            latest = day
    return latest
