"""SAE and death narratives assembled from the record (ICH E3 12.3.2): one paragraph each with onset,
course, treatment, action taken with the 3T drugs, outcome and causality.

Every sentence is a message of MESSAGES (declared under `report.narrative`), filled from the data and never
cut from translated pieces; a paragraph is its sentences in a row, in the reader's language (`lang`), with
terms and drugs named as the data name them there (`names`, see report/words.py).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from fhir3t.messages import Text, Words, many, render, table
from fhir3t.report.words import name_in, outcome_in, sex_in
from fhir3t.safety.engine import SubjectOutcome
from fhir3t.safety.findings import BY_INVESTIGATOR, NOT_ASSESSED, Finding, seriousness_text

MESSAGES = table("report.narrative", {
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
    "word.not-yet-assessed": "not yet assessed",
})
CAUSALITY = table("report.causality", {
    "Certain": "certain", "Probably-Likely": "probable", "Possible": "possible", "Unlikely": "unlikely",
    "Conditional-Classified": "conditional", "Unassessable-Unclassifiable": "unassessable",
})
CAUSALITY_WORDS = {code: m.en for code, m in CAUSALITY.items()}


class _Say:
    """The words of one paragraph: messages in `lang`, data names (terms, drugs) in `lang` where the data have them."""

    def __init__(self, lang: str, names: Mapping[str, Text] | None) -> None:
        self.w = Words(MESSAGES, lang)
        self.lang, self.names = lang, names

    def __call__(self, key: str, **values: Any) -> str:
        return self.w(key, **values)

    def name(self, text: str) -> str:
        return name_in(self.names, text, self.lang)

    def causality(self, code: str) -> str:
        m = CAUSALITY.get(code)
        return render(m(), self.lang) if m is not None else code

    def join(self, parts: Sequence[str], clauses: bool = False) -> str:
        """Sentences in a row ("A. B." / "甲。乙。"), or clauses ("a; b" / "甲；乙")."""
        if clauses:
            return ("；" if self.lang != "en" else "; ").join(parts)
        return ("" if self.lang != "en" else " ").join(parts)


def _causality(f: Finding, m: _Say) -> str:
    parts = []
    for s in f.suspects:
        word = m.causality(s.causality)
        drug = m.name(s.drug)
        if s.assessor == BY_INVESTIGATOR:
            parts.append(m("word.assessed.investigator", drug=drug, causality=word))
        elif s.assessor == NOT_ASSESSED:
            parts.append(m("word.assessed.none", drug=drug))
        else:
            why = m("word.why.known" if s.causality in f.related_set else "word.why.unknown")
            parts.append(m("word.assessed.fhir3t", drug=drug, causality=word, why=why))
    return m.join(parts, clauses=True)


def narrate(o: SubjectOutcome, f: Finding, lang: str = "en", names: Mapping[str, Text] | None = None) -> str:
    """One SAE's paragraph."""
    m = _Say(lang, names)
    s = o.subject
    age = o.baseline.age if o.baseline else None
    parts = [m("narrative.subject", subject=s.label, sex=sex_in(o.baseline.sex if o.baseline else s.sex, lang),
                  age=m("word.age", years=age) if age is not None else m("word.age.unknown"), d1=s.d1.isoformat())]
    reported = m("narrative.reported", text=f.term) if f.term != f.table_term else None
    parts.append(m("narrative.onset", day=(f.onset - s.d1).days, onset=f.onset.isoformat(), term=m.name(f.table_term),
                   reported=reported, grade=f.grade if f.grade is not None else m("word.ungraded"),
                   how=f.grade_source or m("word.ungraded"), seriousness=seriousness_text(f.seriousness, lang)))
    last = f.end or o.window_end
    stays = [st for st in o.stays if st[0] <= last and st[1] >= f.onset]
    if stays:
        parts += [m("narrative.course.stay", kind=m(f"word.kind.{kind}"), start=a.isoformat(),
                       end=b.isoformat(), ref=ref) for a, b, ref, kind in stays]
    else:
        parts.append(m("narrative.course.none"))
    drugs = [m("word.iv", name=name) if iv else name for day, _ref, name, iv in o.treatments
             if f.onset - timedelta(days=1) <= day <= last]
    parts.append(m("narrative.treatment", drugs=many(dict.fromkeys(drugs))) if drugs
                 else m("narrative.treatment.none"))
    actions = [m(f"word.action.{c.kind}", drug=m.name(c.drug), day=c.day.isoformat() if c.day else "?",
                 until=c.until.isoformat() if c.until else "?", from_dose=c.from_dose or "?", to_dose=c.to_dose or "?")
               for e in o.exposure for c in e.changes if f.id in c.aes]
    parts.append(m("narrative.action", actions=m.join(actions, clauses=True)) if actions else m("narrative.action.none"))
    if f.end is not None:
        parts.append(m("narrative.outcome.ended", outcome=outcome_in(f.outcome, lang), end=f.end.isoformat(),
                       day=(f.end - s.d1).days))
    else:
        parts.append(m("narrative.outcome.open", outcome=outcome_in(f.outcome, lang), cutoff=o.as_of.isoformat()))
    parts.append(m("narrative.causality", assessments=_causality(f, m)))
    if f.needs_assessment:
        states = sorted({m.causality(x.causality) if x.assessor != NOT_ASSESSED else m("word.not-yet-assessed")
                         for x in f.suspects if x.causality in f.conservative_set})
        parts.append(m("narrative.flag.pending", states=" / ".join(states)))
    if f.susar:
        drugs_ = sorted(m.name(x.drug) for x in f.suspects if x.drug in f.unexpected_for and x.causality in f.related_set)
        parts.append(m("narrative.flag.susar", drugs=many(drugs_)))
    return m.join(parts)


def death_line(o: SubjectOutcome, lang: str = "en", names: Mapping[str, Text] | None = None) -> str:
    """The death sentence that opens a death narrative."""
    m = _Say(lang, names)
    assert o.death is not None
    parts = [m("narrative.death", day=o.death.isoformat(), study_day=(o.death - o.subject.d1).days,
               unknown=None if o.death_date_known else m("narrative.death.unknown_date"),
               cause=m.name(o.death_cause) if o.death_cause else m("narrative.death.no_cause"))]
    if o.withdrawal is not None and o.death > o.withdrawal:
        parts.append(m("narrative.death.after_withdrawal", day=o.withdrawal.isoformat()))
    return m.join(parts)


def narratives(outcomes: Sequence[SubjectOutcome], lang: str = "en",
               names: Mapping[str, Text] | None = None) -> list[dict[str, Any]]:
    """Every SAE's narrative, and each death's (its fatal AE's paragraph after the death sentence), in `lang`."""
    out = []
    join = _Say(lang, names).join
    for o in outcomes:
        fatal = next((f for f in o.findings if f.outcome == "fatal"), None) if o.death is not None else None
        if o.death is not None:
            text = join([death_line(o, lang, names), *([narrate(o, fatal, lang, names)] if fatal is not None else [])])
            out.append({"kind": "death", "subject": o.subject.label, "patient": o.subject.patient,
                        "ae": fatal.id if fatal else None, "day": o.death.isoformat(), "text": text})
        for f in o.findings:
            if f.serious and f is not fatal:
                out.append({"kind": "sae", "subject": o.subject.label, "patient": o.subject.patient, "ae": f.id,
                            "day": f.onset.isoformat(), "text": narrate(o, f, lang, names)})
    out.sort(key=lambda r: (r["subject"], r["day"], r["kind"]))
    return out


__all__ = ["MESSAGES", "death_line", "narrate", "narratives"]
