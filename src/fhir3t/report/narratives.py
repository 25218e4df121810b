"""SAE and death narratives assembled from the record (ICH E3 12.3.2): one paragraph each with onset,
course, treatment, action taken with the 3T drugs, outcome and causality.

Every sentence is a template in MESSAGES (message id -> English with named placeholders), filled from
the data and never concatenated from translated pieces, so the catalog of issue 23 can take them over;
`narrate(..., messages=...)` takes another catalog's templates.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from fhir3t.safety.engine import SubjectOutcome
from fhir3t.safety.findings import BY_INVESTIGATOR, NOT_ASSESSED, Finding, seriousness_text

MESSAGES: dict[str, str] = {
    "narrative.subject": "Subject {subject} ({sex}, {age} at D1), D1 {d1}.",
    "narrative.onset": "On study day {day} ({onset}) the subject had {term}{reported}, grade {grade} ({how}); "
                       "seriousness: {seriousness}.",
    "narrative.reported": " (reported as “{text}”)",
    "narrative.course.stay": "Course: {kind} stay from {start} to {end} ({ref}).",
    "narrative.course.none": "Course: no hospital stay recorded during the event.",
    "narrative.treatment": "Treatment recorded from the onset: {drugs}.",
    "narrative.treatment.none": "No other treatment recorded from the onset.",
    "narrative.action": "Action with the 3T drugs: {actions}.",
    "narrative.action.none": "Action with the 3T drugs: none recorded.",
    "narrative.outcome.ended": "Outcome: {outcome} on {end} (study day {day}).",
    "narrative.outcome.open": "Outcome: {outcome} at the data cut-off ({cutoff}).",
    "narrative.causality": "Causality: {assessments}.",
    "narrative.flag.pending": "Counted as not treatment-related only because causality is {states}: the investigator's "
                              "assessment is required.",
    "narrative.flag.susar": "Suspected unexpected serious adverse reaction: not in the reference safety information "
                            "of {drugs}.",
    "narrative.death": "The subject died on {day} (study day {study_day}){unknown}; cause: {cause}.",
    "narrative.death.unknown_date": ", date not recorded (the last day known alive is used)",
    "narrative.death.no_cause": "not coded in the record",
    "narrative.death.after_withdrawal": "The death came after the subject's withdrawal on {day}: it is not a survival "
                                        "event (censored at withdrawal).",
    "word.iv": "{name} (IV)",
    "word.age": "{years} years",
    "word.age.unknown": "age unknown",
    "word.kind.inpatient": "inpatient",
    "word.kind.icu": "intensive-care",
    "word.ungraded": "ungraded",
    "word.assessed.investigator": "{drug} {causality} (investigator)",
    "word.assessed.fhir3t": "{drug} {causality} (fhir3t: {why})",
    "word.assessed.none": "{drug} not yet assessed",
    "word.why.known": "a known reaction",
    "word.why.unknown": "not a known reaction",
    "word.action.interruption": "{drug} interrupted from {day} to {until}",
    "word.action.reduction": "{drug} reduced from {from_dose} to {to_dose} on {day}",
    "word.action.discontinuation": "{drug} discontinued on {day}",
}
CAUSALITY_WORDS = {
    "Certain": "certain", "Probably-Likely": "probable", "Possible": "possible", "Unlikely": "unlikely",
    "Conditional-Classified": "conditional", "Unassessable-Unclassifiable": "unassessable",
}


def _msg(messages: Mapping[str, str], key: str, **values: Any) -> str:
    return messages.get(key, MESSAGES[key]).format(**values)


def _causality(f: Finding, m: Mapping[str, str]) -> str:
    parts = []
    for s in f.suspects:
        word = CAUSALITY_WORDS.get(s.causality, s.causality)
        if s.assessor == BY_INVESTIGATOR:
            parts.append(_msg(m, "word.assessed.investigator", drug=s.drug, causality=word))
        elif s.assessor == NOT_ASSESSED:
            parts.append(_msg(m, "word.assessed.none", drug=s.drug))
        else:
            why = _msg(m, "word.why.known" if s.causality in f.related_set else "word.why.unknown")
            parts.append(_msg(m, "word.assessed.fhir3t", drug=s.drug, causality=word, why=why))
    return "; ".join(parts)


def narrate(o: SubjectOutcome, f: Finding, messages: Mapping[str, str] | None = None) -> str:
    """One SAE's paragraph."""
    m = messages or {}
    s = o.subject
    age = o.baseline.age if o.baseline else None
    parts = [_msg(m, "narrative.subject", subject=s.label, sex=o.baseline.sex if o.baseline else s.sex,
                  age=_msg(m, "word.age", years=age) if age is not None else _msg(m, "word.age.unknown"), d1=s.d1.isoformat())]
    reported = _msg(m, "narrative.reported", text=f.term) if f.term != f.table_term else ""
    parts.append(_msg(m, "narrative.onset", day=(f.onset - s.d1).days, onset=f.onset.isoformat(), term=f.table_term,
                      reported=reported, grade=f.grade if f.grade is not None else _msg(m, "word.ungraded"),
                      how=f.grade_source or _msg(m, "word.ungraded"), seriousness=seriousness_text(f.seriousness)))
    last = f.end or o.window_end
    stays = [st for st in o.stays if st[0] <= last and st[1] >= f.onset]
    if stays:
        parts += [_msg(m, "narrative.course.stay", kind=_msg(m, f"word.kind.{kind}"), start=a.isoformat(),
                       end=b.isoformat(), ref=ref) for a, b, ref, kind in stays]
    else:
        parts.append(_msg(m, "narrative.course.none"))
    drugs = [_msg(m, "word.iv", name=name) if iv else name for day, _ref, name, iv in o.treatments
             if f.onset - timedelta(days=1) <= day <= last]
    parts.append(_msg(m, "narrative.treatment", drugs=", ".join(dict.fromkeys(drugs))) if drugs
                 else _msg(m, "narrative.treatment.none"))
    actions = [_msg(m, f"word.action.{c.kind}", drug=c.drug, day=c.day.isoformat() if c.day else "?",
                    until=c.until.isoformat() if c.until else "?", from_dose=c.from_dose or "?", to_dose=c.to_dose or "?")
               for e in o.exposure for c in e.changes if f.id in c.aes]
    parts.append(_msg(m, "narrative.action", actions="; ".join(actions)) if actions else _msg(m, "narrative.action.none"))
    if f.end is not None:
        parts.append(_msg(m, "narrative.outcome.ended", outcome=f.outcome, end=f.end.isoformat(), day=(f.end - s.d1).days))
    else:
        parts.append(_msg(m, "narrative.outcome.open", outcome=f.outcome, cutoff=o.as_of.isoformat()))
    parts.append(_msg(m, "narrative.causality", assessments=_causality(f, m)))
    if f.needs_assessment:
        states = sorted({CAUSALITY_WORDS.get(x.causality, x.causality) if x.assessor != NOT_ASSESSED else "not yet assessed"
                         for x in f.suspects if x.causality in f.conservative_set})
        parts.append(_msg(m, "narrative.flag.pending", states=" / ".join(states)))
    if f.susar:
        drugs_ = sorted(x.drug for x in f.suspects if x.drug in f.unexpected_for and x.causality in f.related_set)
        parts.append(_msg(m, "narrative.flag.susar", drugs=", ".join(drugs_)))
    return " ".join(parts)


def death_line(o: SubjectOutcome, messages: Mapping[str, str] | None = None) -> str:
    """The death sentence that opens a death narrative."""
    m = messages or {}
    assert o.death is not None
    text = _msg(m, "narrative.death", day=o.death.isoformat(), study_day=(o.death - o.subject.d1).days,
                unknown="" if o.death_date_known else _msg(m, "narrative.death.unknown_date"),
                cause=o.death_cause or _msg(m, "narrative.death.no_cause"))
    if o.withdrawal is not None and o.death > o.withdrawal:
        text += " " + _msg(m, "narrative.death.after_withdrawal", day=o.withdrawal.isoformat())
    return text


def narratives(outcomes: Sequence[SubjectOutcome], messages: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every SAE's narrative, and each death's (its fatal AE's paragraph after the death sentence)."""
    out = []
    for o in outcomes:
        fatal = next((f for f in o.findings if f.outcome == "fatal"), None) if o.death is not None else None
        if o.death is not None:
            text = death_line(o, messages) + (" " + narrate(o, fatal, messages) if fatal is not None else "")
            out.append({"kind": "death", "subject": o.subject.label, "patient": o.subject.patient,
                        "ae": fatal.id if fatal else None, "day": o.death.isoformat(), "text": text})
        for f in o.findings:
            if f.serious and f is not fatal:
                out.append({"kind": "sae", "subject": o.subject.label, "patient": o.subject.patient, "ae": f.id,
                            "day": f.onset.isoformat(), "text": narrate(o, f, messages)})
    out.sort(key=lambda r: (r["subject"], r["day"], r["kind"]))
    return out


__all__ = ["MESSAGES", "death_line", "narrate", "narratives"]
