"""A hospital-shaped safety corpus with ground truth: the oracle `fhir3t safety` and `fhir3t report` are tested against.

Enrolled subjects of NCT06438679 as the Second Affiliated Hospital's systems would send them: the HIS
(Patient, ResearchSubject with the subject number, diagnoses in the ICD-10 national clinical edition with
Chinese text, inpatient and intensive-care stays, procedures), the LIS (graded labs under the laboratory's
own codes, mapped to LOINC by a ConceptMap written beside the data, units as the analysers print them,
+08:00 timestamps), the pharmacy (the 3T drugs with doses, dose changes and holds, anti-infectives under
formulary codes and Chinese names, routes as text) and the EDC (the investigator's AdverseEvents with MedDRA
codes or only Chinese text, CTCAE grades, causality by drug). Each system writes one Bundle per patient.

The truth is written from shared/spec/adverse-events.md and CTCAE v5.0 by construction, next to each
scenario, never by running fhir3t: each scenario says which AEs it must give (CTCAE term, grade and how,
onset, outcome, seriousness, causality primary and conservative, flags, AESIs) and the survival time.
Filler subjects (normal labs, no event) make the cohort large enough for multi-page tables and plots.

    python tests/safety_corpus.py OUT_DIR

writes OUT_DIR/data/{his,lis,pharmacy,edc}/<patient>.json, OUT_DIR/data/ConceptMap-zj2h-lis.json and
OUT_DIR/truth.json. Analyse with `--as-of 2026-11-16`.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

AS_OF = date(2026, 11, 16)
SITE = "http://zj2h.example.org/fhir"
LIS = f"{SITE}/CodeSystem/lis-test"
FORMULARY = f"{SITE}/CodeSystem/formulary"
SUBJECT_NO = f"{SITE}/NamingSystem/trial-subject-number"
LOINC, UCUM, RX = "http://loinc.org", "http://unitsofmeasure.org", "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
SCT = "http://snomed.info/sct"
MDR = "http://terminology.hl7.org/CodeSystem/mdr"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CAUSALITY = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
CTCAE_GRADE = "https://fhir3t.github.io/fhir/StructureDefinition/ctcae-grade"
PROGRESS = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ResearchSubject.progress"
STUDY = {"identifier": {"system": "http://clinicaltrials.gov", "value": "NCT06438679"}}
BASE = {"his": "http://his.zj2h.example.org/fhir", "lis": "http://lis.zj2h.example.org/fhir",
        "pharmacy": "http://pharmacy.zj2h.example.org/fhir", "edc": "http://edc.zj2h.example.org/fhir"}
DRUGS = {"tofacitinib": "1357536", "tacrolimus": "42316", "thalidomide": "10432"}
DRUG_ZH = {"tofacitinib": "枸橼酸托法替布片", "tacrolimus": "他克莫司胶囊", "thalidomide": "沙利度胺片"}
#: (mg per dose, doses a day) of the regimen
DOSE = {"tofacitinib": (5, 2), "tacrolimus": (1, 2), "thalidomide": (50, 1)}
IV_TEXT = {"text": "静脉滴注"}
IV_CODED = {"coding": [{"system": SCT, "code": "47625008", "display": "Intravenous route"}]}
ORAL = {"text": "口服"}

#: test -> (LIS code or None = LOINC only, LOINC, Chinese display, normal value, UCUM code, unit text, (low, high))
TESTS = {
    "alt": ("ALT", "1742-6", "丙氨酸氨基转移酶", 22, "U/L", "U/L", (9, 40)),
    "ast": ("AST", "1920-8", "天门冬氨酸氨基转移酶", 21, "U/L", "U/L", (15, 40)),
    "creatinine": ("CREA", "2160-0", "肌酐", 70, "umol/L", "μmol/L", (57, 97)),
    "potassium": (None, "2823-3", "钾", 4.1, "mmol/L", "mmol/L", (3.5, 5.3)),
    "wbc": ("WBC", "6690-2", "白细胞计数", 6.2, "10*9/L", "10^9/L", (3.5, 9.5)),
    "neutrophils": ("NEUT#", "751-8", "中性粒细胞绝对值", 3.8, "10*9/L", "10^9/L", (1.8, 6.3)),
    "lymphocytes": ("LYMPH#", "731-0", "淋巴细胞绝对值", 1.7, "10*9/L", "10^9/L", (1.1, 3.2)),
    "platelets": ("PLT", "777-3", "血小板计数", 230, "10*9/L", "10^9/L", (125, 350)),
    "hemoglobin": ("HGB", "718-7", "血红蛋白", 132, "g/L", "g/L", (115, 150)),
}


@dataclass
class Truth:
    """One AE the scenario must give (spec §2-§5, CTCAE v5.0)."""

    term: str  # CTCAE v5.0 term (as ctcae-v5-terms.json names it)
    grade: int | None
    onset: str
    outcome: str
    seriousness: str
    related: bool  # primary definition: Certain / Probably-Likely / Possible for a 3T drug
    conservative: bool  # + unassessable / conditional / not yet assessed
    pending: bool  # death or SAE related only in the conservative line: flagged
    source: str  # fhir3t | investigator | both
    related_drugs: tuple[str, ...]
    aesi: tuple[str, ...] = ()
    susar: bool = False
    grade_rule: str | None = None  # how the grade was derived from the record (None: lab table or recorded)

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "grade": self.grade, "onset": self.onset, "outcome": self.outcome,
                "seriousness": self.seriousness, "related": self.related, "conservative": self.conservative,
                "pending": self.pending, "source": self.source, "related_drugs": sorted(self.related_drugs),
                "aesi": sorted(self.aesi), "susar": self.susar, "grade_rule": self.grade_rule}


@dataclass
class Subject:
    pid: str
    number: str
    gender: str
    birth: str
    d1: date
    visits_until: date = AS_OF
    every: int = 14  # days between study visits (a lab panel each)
    labs: dict[str, dict[int, float]] = field(default_factory=dict)  # test -> visit index -> value
    extra_labs: list[tuple[str, str, float]] = field(default_factory=list)  # (test, dateTime, value)
    panel_time: str = "08:10:00"
    conditions: list[dict[str, Any]] = field(default_factory=list)
    encounters: list[dict[str, Any]] = field(default_factory=list)
    procedures: list[dict[str, Any]] = field(default_factory=list)
    other_meds: list[dict[str, Any]] = field(default_factory=list)
    investigator: list[dict[str, Any]] = field(default_factory=list)
    regimen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # drug -> its records (else one, D1 on)
    deceased: str | None = None
    status: str = "on-study"
    period_end: str | None = None
    progress_reason: str | None = None
    late_visits: list[str] = field(default_factory=list)
    # --- truth ---
    aes: list[Truth] = field(default_factory=list)
    survival_days: int = 0
    event: bool = False
    censored_at: str | None = "last-contact"
    changes: list[tuple[str, str]] = field(default_factory=list)  # (drug, interruption | reduction | discontinuation)


def d(text: str) -> date:
    return date.fromisoformat(text)


def days(a: date, b: str | date) -> int:
    return ((d(b) if isinstance(b, str) else b) - a).days


def cond(code: str, zh: str, onset: str, status: str = "active", abated: str | None = None, severity: str | None = None,
         cid: str | None = None) -> dict[str, Any]:
    return {"code": code, "zh": zh, "onset": onset, "status": status, "abated": abated, "severity": severity, "id": cid}


# ---------------------------------------------------------------------------------------------------
# The scenarios, each with its truth written beside it from the spec and CTCAE v5.0.
# ---------------------------------------------------------------------------------------------------
def scenarios() -> list[Subject]:
    out: list[Subject] = []

    # z01: a death (Patient.deceasedDateTime) the investigator also records, causality UNASSESSABLE for all three
    # drugs. Spec §4: one AE (same term, same day); not treatment-related by the primary definition; the
    # conservative line counts it; a death in that state is flagged for the investigator's assessment.
    s = Subject("z01", "3T-001", "male", "1961-09-30", d("2026-04-13"), visits_until=d("2026-08-03"),
                deceased="2026-08-10T23:50:00+08:00")
    s.investigator.append({"id": "z01-ae1", "date": "2026-08-10", "code": (MDR, "10011906", "Death"), "text": "死亡",
                           "seriousness": "SeriousResultsInDeath", "outcome": "fatal",
                           "causality": {k: "Unassessable-Unclassifiable" for k in DRUGS}})
    s.aes = [Truth("Death NOS", 5, "2026-08-10", "fatal", "SeriousResultsInDeath", False, True, True, "both", ())]
    s.survival_days, s.event, s.censored_at = days(s.d1, "2026-08-10"), True, None
    out.append(s)

    # z02: sepsis in intensive care, discharged dead with sepsis as principal diagnosis, recorded by the investigator
    # as fatal (tofacitinib possible). CTCAE: death related to the AE is grade 5 of that AE (not a second 'Death NOS'):
    # the Condition, the investigator's record and the derived death are one AE. A41 is in tofacitinib's known
    # reactions (serious infection) and its reference safety information: expected, no SUSAR.
    s = Subject("z02", "3T-002", "female", "1958-02-11", d("2026-03-23"), visits_until=d("2026-08-24"),
                deceased="2026-09-05T06:30:00+08:00")
    s.conditions.append(cond("A41.900", "脓毒症", "2026-08-28T02:15:00+08:00", cid="z02-c1"))
    s.encounters.append({"id": "z02-icu", "class": "IMP", "start": "2026-08-28T03:00:00+08:00", "end": "2026-09-05T06:30:00+08:00",
                         "service": "重症医学科", "location_type": {"text": "ICU 重症监护病房"}, "expired": True,
                         "diagnosis": "z02-c1"})
    s.other_meds.append({"id": "z02-mem", "type": "MedicationAdministration", "code": (FORMULARY, "F-MEM-1G"),
                         "text": "注射用美罗培南 1g", "start": "2026-08-28", "end": "2026-09-04", "route": IV_TEXT})
    s.investigator.append({"id": "z02-ae1", "date": "2026-08-28", "code": (MDR, "10040047", "Sepsis"), "text": "脓毒症",
                           "seriousness": "SeriousResultsInDeath", "outcome": "fatal",
                           "causality": {"tofacitinib": "Possible", "tacrolimus": "Unlikely", "thalidomide": "Unlikely"}})
    s.aes = [Truth("Sepsis", 5, "2026-08-28", "fatal", "SeriousResultsInDeath", True, True, False, "both", ("tofacitinib",),
                   ("serious-infection",), grade_rule="cause-of-death")]
    s.survival_days, s.event, s.censored_at = days(s.d1, "2026-09-05"), True, None
    out.append(s)

    # z03: creatinine (LIS code CREA, umol/L, ULN 97) at the visits of 04-13, 04-27, 05-11, 05-25: 165 (1.70 x:
    # > 1.5-3 x, grade 2), 310 (3.20 x: > 3 x, grade 3), 130 (1.34 x, grade 1), 85 (normal: the episode ends).
    # The investigator records "Blood creatinine increased" (MedDRA 10005483, the same CTCAE term) on 04-27, inside
    # the episode, grade 3, tacrolimus probably related: one AE, not two. Tacrolimus reduced from 1 mg twice daily
    # to 0.5 mg twice daily for it from 04-28 (reasonReference).
    s = Subject("z03", "3T-003", "male", "1970-06-14", d("2026-02-16"))
    s.labs["creatinine"] = {4: 165, 5: 310, 6: 130, 7: 85}
    s.investigator.append({"id": "z03-ae1", "date": "2026-04-27", "code": (MDR, "10005483", "Blood creatinine increased"),
                           "text": "血肌酐升高", "grade": 3, "seriousness": "Non-serious", "outcome": "resolved",
                           "causality": {"tacrolimus": "Probably-Likely"}})
    s.regimen["tacrolimus"] = [
        {"start": "2026-02-16", "end": "2026-04-27", "status": "completed", "mg": 1, "per_day": 2},
        {"start": "2026-04-28", "end": None, "status": "active", "mg": 0.5, "per_day": 2, "because": "z03-ae1"}]
    s.aes = [Truth("Creatinine increased", 3, "2026-04-13", "resolved", "Non-serious", True, True, False, "both",
                   ("tacrolimus",), ("nephrotoxicity",))]
    s.survival_days = days(s.d1, "2026-11-09")
    s.changes = [("tacrolimus", "reduction")]
    out.append(s)

    # z04: pneumocystis pneumonia (B59, national clinical edition B59.x00) on tofacitinib: admitted, IV co-trimoxazole
    # (formulary code, Chinese name), resolved. CTCAE: lung infection, hospitalisation indicated = grade 3; serious
    # (hospitalisation). B59 is an opportunistic infection in tofacitinib's AND tacrolimus's known reactions (spec §3).
    s = Subject("z04", "3T-004", "female", "1983-01-25", d("2026-03-02"))
    s.conditions.append(cond("B59.x00", "肺孢子菌肺炎", "2026-06-10T21:40:00+08:00", "resolved", "2026-06-30"))
    s.encounters.append({"id": "z04-adm", "class": "IMP", "start": "2026-06-10T22:30:00+08:00", "end": "2026-06-24T10:00:00+08:00"})
    s.other_meds.append({"id": "z04-smz", "type": "MedicationAdministration", "code": (FORMULARY, "F-SMZ-INJ"),
                         "text": "复方磺胺甲噁唑注射液", "start": "2026-06-11", "end": "2026-06-21", "route": IV_TEXT})
    s.aes = [Truth("Lung infection", 3, "2026-06-10", "resolved", "SeriousResultsInHospitalization", True, True, False,
                   "fhir3t", ("tofacitinib", "tacrolimus"), ("serious-infection", "opportunistic-infection", "pjp"),
                   grade_rule="hospitalisation")]
    s.survival_days = days(s.d1, "2026-11-09")
    out.append(s)

    # z05: herpes zoster treated with IV acyclovir in the day ward, no admission. CTCAE (infections): IV antiviral
    # intervention indicated = grade 3; not serious (no criterion met). Shingles; tofacitinib's known reaction.
    s = Subject("z05", "3T-005", "male", "1976-10-03", d("2026-04-06"))
    s.conditions.append(cond("B02.900", "带状疱疹", "2026-07-01", "resolved", "2026-07-20"))
    s.other_meds.append({"id": "z05-acv", "type": "MedicationAdministration", "code": (RX, "281"),
                         "text": "注射用阿昔洛韦", "start": "2026-07-01", "end": "2026-07-07", "route": IV_CODED})
    s.aes = [Truth("Shingles", 3, "2026-07-01", "resolved", "Non-serious", True, True, False, "fhir3t", ("tofacitinib",),
                   ("herpes-zoster", "serious-infection"), grade_rule="iv-anti-infective")]
    s.survival_days = days(s.d1, "2026-11-16")
    out.append(s)

    # z06: new-onset type 2 diabetes on tacrolimus, admitted (IV insulin: not an anti-infective, and not an
    # infection). Hyperglycemia, grade 3 (hospitalisation), serious; tacrolimus's known reaction, in its RSI.
    s = Subject("z06", "3T-006", "female", "1966-12-19", d("2026-03-09"))
    s.conditions.append(cond("E11.900", "2型糖尿病", "2026-05-20"))
    s.encounters.append({"id": "z06-adm", "class": "IMP", "start": "2026-05-20T09:00:00+08:00", "end": "2026-05-25T11:00:00+08:00"})
    s.other_meds.append({"id": "z06-ins", "type": "MedicationAdministration", "code": (FORMULARY, "F-INS-R"),
                         "text": "胰岛素注射液", "start": "2026-05-20", "end": "2026-05-24", "route": IV_TEXT})
    s.aes = [Truth("Hyperglycemia", 3, "2026-05-20", "ongoing", "SeriousResultsInHospitalization", True, True, False,
                   "fhir3t", ("tacrolimus",), ("hyperglycaemia",), grade_rule="hospitalisation")]
    s.survival_days = days(s.d1, "2026-11-16")
    out.append(s)

    # z07: pulmonary embolism, three days in intensive care, then the ward. CTCAE grade 4 (life-threatening;
    # urgent intervention), seriousness life-threatening (spec §4: grade 4). VTE: tofacitinib and thalidomide.
    s = Subject("z07", "3T-007", "male", "1969-04-07", d("2026-05-04"))
    s.conditions.append(cond("I26.900", "肺栓塞", "2026-07-15"))
    s.encounters += [{"id": "z07-icu", "class": "IMP", "start": "2026-07-15T04:10:00+08:00", "end": "2026-07-18T10:00:00+08:00",
                      "service": "重症医学科"},
                     {"id": "z07-ward", "class": "IMP", "start": "2026-07-18T10:00:00+08:00", "end": "2026-07-28T09:00:00+08:00"}]
    s.aes = [Truth("Thromboembolic event", 4, "2026-07-15", "ongoing", "SeriousIsLifeThreatening", True, True, False,
                   "fhir3t", ("tofacitinib", "thalidomide"), ("vte", "pe"), grade_rule="icu")]
    s.survival_days = days(s.d1, "2026-11-16")
    out.append(s)

    # z08: peripheral neuropathy that only the investigator records, as Chinese text without a code (周围神经病,
    # a synonym of Peripheral sensory neuropathy), grade 2, thalidomide possible: an AE of its own. Thalidomide
    # reduced from 100 to 50 mg a day for it.
    s = Subject("z08", "3T-008", "female", "1979-08-21", d("2026-04-27"))
    s.investigator.append({"id": "z08-ae1", "date": "2026-09-01", "code": None, "text": "周围神经病", "grade": 2,
                           "seriousness": "Non-serious", "outcome": "ongoing", "causality": {"thalidomide": "Possible"}})
    s.regimen["thalidomide"] = [
        {"start": "2026-04-27", "end": "2026-09-02", "status": "completed", "mg": 100, "per_day": 1},
        {"start": "2026-09-03", "end": None, "status": "active", "mg": 50, "per_day": 1, "because": "z08-ae1"}]
    s.aes = [Truth("Peripheral sensory neuropathy", 2, "2026-09-01", "ongoing", "Non-serious", True, True, False,
                   "investigator", ("thalidomide",), ("peripheral-neuropathy",))]
    s.survival_days = days(s.d1, "2026-11-09")
    s.changes = [("thalidomide", "reduction")]
    out.append(s)

    # z09: withdrawn (status withdrawn, period.end 08-01); a clinic visit and a death after it. Censored at
    # withdrawal; the death (10-05) is after the AE window (period.end + 30 days) and is no survival event.
    s = Subject("z09", "3T-009", "male", "1963-05-02", d("2026-03-16"), visits_until=d("2026-07-20"),
                status="withdrawn", period_end="2026-08-01", late_visits=["2026-09-10"],
                deceased="2026-10-05T14:00:00+08:00")
    s.survival_days, s.censored_at = days(s.d1, "2026-08-01"), "withdrawal"
    out.append(s)

    # z10: off study with the R5 progress reason 'withdrawal-of-consent' (as the enrolment workflow writes it):
    # censored at withdrawal (period.end), not at the later visit.
    s = Subject("z10", "3T-010", "female", "1985-11-11", d("2026-02-23"), visits_until=d("2026-07-13"),
                status="off-study", period_end="2026-07-15", progress_reason="withdrawal-of-consent",
                late_visits=["2026-09-20"])
    s.survival_days, s.censored_at = days(s.d1, "2026-07-15"), "withdrawal"
    out.append(s)

    # z11: lost to follow-up (progress reason), off study on 08-20 but last seen on 07-20: censored at the last
    # contact, day 182 exactly (still at risk on day 182).
    s = Subject("z11", "3T-011", "male", "1972-02-29", d("2026-01-19"), visits_until=d("2026-07-20"),
                status="off-study", period_end="2026-08-20", progress_reason="lost-to-follow-up")
    s.survival_days = days(s.d1, "2026-07-20")
    out.append(s)

    # z12: neutrophils (10^9/L, LLN 1.8): 1.2 (< 1.5-1.0: grade 2), 1.6 (grade 1), 2.4 (normal). Tofacitinib on hold
    # (an on-hold order with an adverse-reaction reason) from 06-30 to 07-13: one interruption, caused by it.
    s = Subject("z12", "3T-012", "female", "1988-07-09", d("2026-05-18"))
    s.labs["neutrophils"] = {3: 1.2, 4: 1.6, 5: 2.4}
    s.regimen["tofacitinib"] = [
        {"start": "2026-05-18", "end": "2026-06-29", "status": "completed", "mg": 5, "per_day": 2},
        {"start": "2026-06-30", "end": "2026-07-13", "status": "on-hold", "mg": 5, "per_day": 2, "reason": "281647001"},
        {"start": "2026-07-14", "end": None, "status": "active", "mg": 5, "per_day": 2}]
    s.aes = [Truth("Neutrophil count decreased", 2, "2026-06-29", "resolved", "Non-serious", True, True, False, "fhir3t",
                   ("tofacitinib",), ("cytopenia",))]
    s.survival_days = days(s.d1, "2026-11-16")
    s.changes = [("tofacitinib", "interruption")]
    out.append(s)

    # z13: CMV infection treated at home with oral valganciclovir: nothing in the record grades it (ungraded, never
    # grade 1); not serious; opportunistic infection for tofacitinib and tacrolimus.
    s = Subject("z13", "3T-013", "male", "1974-03-15", d("2026-06-01"))
    s.conditions.append(cond("B25.900", "巨细胞病毒感染", "2026-08-12"))
    s.other_meds.append({"id": "z13-vgc", "type": "MedicationRequest", "code": (FORMULARY, "F-VGC-450"),
                         "text": "盐酸缬更昔洛韦片", "start": "2026-08-12", "end": "2026-09-09", "route": ORAL})
    s.aes = [Truth("Cytomegalovirus infection reactivation", None, "2026-08-12", "ongoing", "Non-serious", True, True,
                   False, "fhir3t", ("tofacitinib", "tacrolimus"), ("opportunistic-infection", "cmv"))]
    s.survival_days = days(s.d1, "2026-11-16")
    out.append(s)

    # z14: pulmonary tuberculosis (reactivation), admitted: grade 3, serious; 'Infections and infestations - Other,
    # specify: tuberculosis'; opportunistic infection of both immunosuppressants.
    s = Subject("z14", "3T-014", "female", "1967-09-09", d("2026-03-30"))
    s.conditions.append(cond("A15.000", "肺结核", "2026-09-20"))
    s.encounters.append({"id": "z14-adm", "class": "IMP", "start": "2026-09-20T10:00:00+08:00", "end": "2026-10-02T10:00:00+08:00"})
    s.aes = [Truth("Infections and infestations - Other, specify: tuberculosis", 3, "2026-09-20", "ongoing",
                   "SeriousResultsInHospitalization", True, True, False, "fhir3t", ("tofacitinib", "tacrolimus"),
                   ("serious-infection", "opportunistic-infection", "tb"), grade_rule="hospitalisation")]
    s.survival_days = days(s.d1, "2026-11-09")
    out.append(s)

    # z15: acute kidney injury, admitted, recorded by the investigator as probably related to THALIDOMIDE (and
    # possibly to tacrolimus): serious, suspected, and not in thalidomide's reference safety information: a SUSAR.
    s = Subject("z15", "3T-015", "male", "1960-01-08", d("2026-04-20"))
    s.conditions.append(cond("N17.900", "急性肾损伤", "2026-08-17", "resolved", "2026-09-10"))
    s.encounters.append({"id": "z15-adm", "class": "IMP", "start": "2026-08-17T15:00:00+08:00", "end": "2026-08-26T10:00:00+08:00"})
    s.investigator.append({"id": "z15-ae1", "date": "2026-08-17", "code": (ICD10, "N17.900", "急性肾损伤"), "text": "急性肾损伤",
                           "grade": 3, "seriousness": "SeriousResultsInHospitalization",
                           "causality": {"thalidomide": "Probably-Likely", "tacrolimus": "Possible", "tofacitinib": "Unlikely"}})
    s.aes = [Truth("Acute kidney injury", 3, "2026-08-17", "resolved", "SeriousResultsInHospitalization", True, True, False,
                   "both", ("tacrolimus", "thalidomide"), ("nephrotoxicity",), susar=True)]
    s.survival_days = days(s.d1, "2026-11-16")
    out.append(s)

    # z16: interstitial lung disease progression (J84, the disease's own course): in no known-reaction set, so
    # causality unassessable (not yet assessed): not related, related in the conservative line; not serious, so
    # not flagged; ungraded; AESI ILD progression.
    s = Subject("z16", "3T-016", "female", "1981-05-30", d("2026-05-25"))
    s.conditions.append(cond("J84.900", "间质性肺疾病进展", "2026-06-30"))
    s.aes = [Truth("Pneumonitis", None, "2026-06-30", "ongoing", "Non-serious", False, True, False, "fhir3t", (),
                   ("ild-progression",))]
    s.survival_days = days(s.d1, "2026-11-09")
    out.append(s)

    # z17: hyperlipidaemia, severity mild: Cholesterol high grade 1 (from the recorded severity); lipids are not in
    # the spec's known reactions: unassessable, not related; AESI lipid increases.
    s = Subject("z17", "3T-017", "male", "1977-10-10", d("2026-06-15"))
    s.conditions.append(cond("E78.500", "高脂血症", "2026-08-10", severity="mild"))
    s.aes = [Truth("Cholesterol high", 1, "2026-08-10", "ongoing", "Non-serious", False, True, False, "fhir3t", (),
                   ("lipid-increase",))]
    s.survival_days = days(s.d1, "2026-11-16")
    out.append(s)

    # z18: pneumonia needing mechanical ventilation during the admission: urgent intervention = grade 4,
    # seriousness life-threatening; tofacitinib's known reaction.
    s = Subject("z18", "3T-018", "male", "1965-12-01", d("2026-05-11"))
    s.conditions.append(cond("J18.900", "肺炎", "2026-10-01"))
    s.encounters.append({"id": "z18-adm", "class": "IMP", "start": "2026-10-01T08:00:00+08:00", "end": "2026-10-20T10:00:00+08:00"})
    s.procedures.append({"id": "z18-mv", "code": (SCT, "40617009"), "text": "机械通气", "start": "2026-10-03T11:00:00+08:00",
                         "end": "2026-10-08T09:00:00+08:00"})
    s.aes = [Truth("Lung infection", 4, "2026-10-01", "ongoing", "SeriousIsLifeThreatening", True, True, False, "fhir3t",
                   ("tofacitinib",), ("serious-infection",), grade_rule="urgent-intervention")]
    s.survival_days = days(s.d1, "2026-11-09")
    out.append(s)

    # z19: the D1 panel drawn at 23:50 (+08:00) is baseline, whatever its value (ALT 180 = 4.5 x ULN 40: baseline
    # grade 2); ALT 130 (3.25 x, grade 2) twenty minutes later, on the next calendar day, starts an AE; 60 (1.5 x,
    # grade 1), then 30 (normal) ends it. ALT: all three drugs possible. Shift: baseline 2 -> worst 2.
    s = Subject("z19", "3T-019", "female", "1990-02-02", d("2026-07-06"), panel_time="23:50:00")
    s.labs["alt"] = {0: 180, 1: 60, 2: 30}
    s.extra_labs.append(("alt", "2026-07-07T00:10:00+08:00", 130))
    s.aes = [Truth("Alanine aminotransferase increased", 2, "2026-07-07", "resolved", "Non-serious", True, True, False,
                   "fhir3t", ("tofacitinib", "tacrolimus", "thalidomide"))]
    s.survival_days = days(s.d1, "2026-11-09")
    out.append(s)

    # z20: a rash only the investigator records (MedDRA 10037868, no grade, no seriousness), with a dermatology
    # admission during it: graded 3 from the record (hospitalisation), serious by it; thalidomide possible.
    s = Subject("z20", "3T-020", "female", "1984-04-04", d("2026-03-09"))
    s.encounters.append({"id": "z20-adm", "class": "IMP", "start": "2026-09-10T16:00:00+08:00", "end": "2026-09-14T10:00:00+08:00"})
    s.investigator.append({"id": "z20-ae1", "date": "2026-09-10", "code": (MDR, "10037868", "Rash maculo-papular"),
                           "text": "斑丘疹", "causality": {"thalidomide": "Possible"}})
    s.aes = [Truth("Rash maculo-papular", 3, "2026-09-10", "unknown", "SeriousResultsInHospitalization", True, True, False,
                   "investigator", ("thalidomide",), (), grade_rule="hospitalisation")]
    s.survival_days = days(s.d1, "2026-11-16")
    out.append(s)
    return out


def fillers(n: int = 22) -> list[Subject]:
    """Subjects with normal results every four weeks and nothing else: no AE, censored at the last visit."""
    out = []
    start = d("2026-01-12")
    for i in range(n):
        d1 = start + timedelta(days=11 * i)
        s = Subject(f"f{i + 1:02d}", f"3T-{101 + i:03d}", "female" if i % 3 else "male",
                    f"{1960 + (i * 7) % 30}-{1 + i % 12:02d}-{1 + (i * 5) % 27:02d}", d1, every=28)
        k = (AS_OF - d1).days // 28
        s.survival_days = 28 * k
        out.append(s)
    return out


# ---------------------------------------------------------------------------------------------------
# FHIR, as each system writes it
# ---------------------------------------------------------------------------------------------------
def ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


def observation(s: Subject, oid: str, test: str, when: str, value: float) -> dict[str, Any]:
    local, loinc, zh, _, ucum, unit, (low, high) = TESTS[test]
    coding = [{"system": LIS, "code": local, "display": zh}] if local else [{"system": LOINC, "code": loinc, "display": zh}]
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": coding, "text": zh}, "subject": ref("Patient", s.pid), "effectiveDateTime": when,
            "issued": when, "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": ucum},
            "referenceRange": [{"low": {"value": low, "unit": unit, "system": UCUM, "code": ucum},
                                "high": {"value": high, "unit": unit, "system": UCUM, "code": ucum},
                                "text": f"{low}-{high}"}]}


def dosage(mg: float, per_day: int, route: dict) -> dict[str, Any]:
    return {"route": route, "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}}]}


def med_request(s: Subject, drug: str, rid: str, rec: dict[str, Any]) -> dict[str, Any]:
    mr: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": rid, "status": rec["status"], "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RX, "code": DRUGS[drug], "display": drug}], "text": DRUG_ZH[drug]},
        "subject": ref("Patient", s.pid), "authoredOn": rec["start"],
        "dosageInstruction": [dosage(rec["mg"], rec["per_day"], ORAL)]}
    validity = {"start": rec["start"], **({"end": rec["end"]} if rec.get("end") else {})}
    mr["dispenseRequest"] = {"validityPeriod": validity}
    if rec.get("reason"):
        mr["statusReason"] = {"coding": [{"system": SCT, "code": rec["reason"], "display": "Adverse reaction"}], "text": "药物不良反应"}
    if rec.get("because"):
        mr["reasonReference"] = [ref("AdverseEvent", rec["because"])]
    return mr


def his(s: Subject) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    patient: dict[str, Any] = {"resourceType": "Patient", "id": s.pid,
                               "identifier": [{"system": f"{SITE}/NamingSystem/mrn", "value": f"ZJ{sum(map(ord, s.pid)) * 7919:08d}"}],
                               "gender": s.gender, "birthDate": s.birth}
    if s.deceased:
        patient["deceasedDateTime"] = s.deceased
    out.append(patient)
    period = {"start": s.d1.isoformat(), **({"end": s.period_end} if s.period_end else {})}
    rs: dict[str, Any] = {"resourceType": "ResearchSubject", "id": f"{s.pid}-rs", "status": s.status, "period": period,
                          "identifier": [{"system": SUBJECT_NO, "value": s.number}],
                          "study": STUDY, "individual": ref("Patient", s.pid)}
    if s.progress_reason:
        rs["extension"] = [{"url": PROGRESS, "extension": [
            {"url": "type", "valueCodeableConcept": {"text": "state"}},
            {"url": "reason", "valueCodeableConcept": {"coding": [{"system": f"{SITE}/CodeSystem/subject-state-reason",
                                                                    "code": s.progress_reason}]}},
            {"url": "startDate", "valueDateTime": s.period_end}]}]
    out.append(rs)
    # the disease that brought them into the trial, before D1 (baseline, never an AE)
    for i, (code, zh, before) in enumerate((("M33.101", "抗MDA5抗体阳性皮肌炎", 120), ("J84.900", "间质性肺病", 100))):
        out.append({"resourceType": "Condition", "id": f"{s.pid}-h{i + 1}",
                    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                    "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
                    "code": {"coding": [{"system": ICD10, "code": code, "display": zh}], "text": zh},
                    "subject": ref("Patient", s.pid), "onsetDateTime": (s.d1 - timedelta(days=before)).isoformat()})
    for i, c in enumerate(s.conditions):
        res: dict[str, Any] = {
            "resourceType": "Condition", "id": c["id"] or f"{s.pid}-c{i + 1}",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": c["status"]}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "code": {"coding": [{"system": ICD10, "code": c["code"], "display": c["zh"]}], "text": c["zh"]},
            "subject": ref("Patient", s.pid), "onsetDateTime": c["onset"], "recordedDate": c["onset"]}
        if c["abated"]:
            res["abatementDateTime"] = c["abated"]
        if c["severity"]:
            sev = {"mild": "255604002", "moderate": "6736007", "severe": "24484000"}[c["severity"]]
            res["severity"] = {"coding": [{"system": SCT, "code": sev, "display": c["severity"].capitalize()}]}
        out.append(res)
    visits = []
    k = 0
    while s.d1 + timedelta(days=s.every * k) <= s.visits_until:
        visits.append(s.d1 + timedelta(days=s.every * k))
        k += 1
    for k, day in enumerate(visits):
        out.append({"resourceType": "Encounter", "id": f"{s.pid}-v{k:02d}", "status": "finished",
                    "class": {"system": ACT, "code": "AMB", "display": "门诊"}, "type": [{"text": f"3T 研究随访 第{k * s.every // 7}周"}],
                    "subject": ref("Patient", s.pid),
                    "period": {"start": f"{day.isoformat()}T{s.panel_time}+08:00", "end": f"{day.isoformat()}T{s.panel_time}+08:00"}})
    for day in s.late_visits:
        out.append({"resourceType": "Encounter", "id": f"{s.pid}-late-{day}", "status": "finished",
                    "class": {"system": ACT, "code": "AMB"}, "type": [{"text": "风湿免疫科门诊"}], "subject": ref("Patient", s.pid),
                    "period": {"start": f"{day}T09:00:00+08:00", "end": f"{day}T09:20:00+08:00"}})
    for e in s.encounters:
        enc: dict[str, Any] = {"resourceType": "Encounter", "id": e["id"], "status": "finished",
                               "class": {"system": ACT, "code": e["class"], "display": "住院"},
                               "subject": ref("Patient", s.pid), "period": {"start": e["start"], "end": e["end"]}}
        if e.get("service"):
            enc["serviceType"] = {"text": e["service"]}
        if e.get("location_type"):
            enc["location"] = [{"location": {"display": "病区"}, "physicalType": e["location_type"]}]
        if e.get("diagnosis"):
            enc["diagnosis"] = [{"condition": ref("Condition", e["diagnosis"]), "rank": 1}]
        if e.get("expired"):
            enc["hospitalization"] = {"dischargeDisposition": {"coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "exp", "display": "Expired"}]}}
        out.append(enc)
    for p in s.procedures:
        system, code = p["code"]
        out.append({"resourceType": "Procedure", "id": p["id"], "status": "completed",
                    "code": {"coding": [{"system": system, "code": code}], "text": p["text"]},
                    "subject": ref("Patient", s.pid), "performedPeriod": {"start": p["start"], "end": p["end"]}})
    return out


def lis(s: Subject) -> list[dict[str, Any]]:
    out = []
    k = 0
    while s.d1 + timedelta(days=s.every * k) <= s.visits_until:
        day = s.d1 + timedelta(days=s.every * k)
        when = f"{day.isoformat()}T{s.panel_time}+08:00"
        for test, spec in TESTS.items():
            value = s.labs.get(test, {}).get(k, spec[3])
            out.append(observation(s, f"{s.pid}-v{k:02d}-{test}", test, when, value))
        k += 1
    for i, (test, when, value) in enumerate(s.extra_labs):
        out.append(observation(s, f"{s.pid}-x{i + 1}-{test}", test, when, value))
    return out


def pharmacy(s: Subject) -> list[dict[str, Any]]:
    out = []
    end = s.period_end
    for drug in DRUGS:
        records = s.regimen.get(drug) or [{"start": s.d1.isoformat(), "end": end, "status": "completed" if end else "active",
                                           "mg": DOSE[drug][0], "per_day": DOSE[drug][1]}]
        for j, rec in enumerate(records):
            out.append(med_request(s, drug, f"{s.pid}-{drug}-{j + 1}", rec))
    for m in s.other_meds:
        system, code = m["code"]
        concept = {"coding": [{"system": system, "code": code}], "text": m["text"]}
        if m["type"] == "MedicationAdministration":
            out.append({"resourceType": "MedicationAdministration", "id": m["id"], "status": "completed",
                        "medicationCodeableConcept": concept, "subject": ref("Patient", s.pid),
                        "effectivePeriod": {"start": f"{m['start']}T10:00:00+08:00", "end": f"{m['end']}T10:00:00+08:00"},
                        "dosage": {"route": m["route"]}})
        else:
            out.append({"resourceType": "MedicationRequest", "id": m["id"], "status": "completed", "intent": "order",
                        "medicationCodeableConcept": concept, "subject": ref("Patient", s.pid), "authoredOn": m["start"],
                        "dispenseRequest": {"validityPeriod": {"start": m["start"], "end": m["end"]}},
                        "dosageInstruction": [{"route": m["route"]}]})
    return out


def edc(s: Subject) -> list[dict[str, Any]]:
    out = []
    for ae in s.investigator:
        event: dict[str, Any] = {"text": ae["text"]}
        if ae.get("code"):
            system, code, display = ae["code"]
            event["coding"] = [{"system": system, "code": code, "display": display}]
        res: dict[str, Any] = {"resourceType": "AdverseEvent", "id": ae["id"], "actuality": "actual", "event": event,
                               "subject": ref("Patient", s.pid), "date": ae["date"], "recordedDate": ae["date"],
                               "study": [STUDY], "recorder": {"reference": "Practitioner/pi-zj2h"}}
        if ae.get("grade"):
            res["extension"] = [{"url": CTCAE_GRADE, "valueInteger": ae["grade"]}]
        if ae.get("seriousness"):
            res["seriousness"] = {"coding": [{"system": SERIOUSNESS, "code": ae["seriousness"]}]}
        if ae.get("outcome"):
            res["outcome"] = {"coding": [{"system": OUTCOME, "code": ae["outcome"]}]}
        contained, suspects = [], []
        for drug, assessment in ae.get("causality", {}).items():
            contained.append({"resourceType": "Medication", "id": drug,
                              "code": {"coding": [{"system": RX, "code": DRUGS[drug], "display": drug}], "text": DRUG_ZH[drug]}})
            suspects.append({"instance": {"reference": f"#{drug}"},
                             "causality": [{"assessment": {"coding": [{"system": CAUSALITY, "code": assessment}]},
                                            "author": {"reference": "Practitioner/pi-zj2h"}}]})
        if contained:
            res["contained"], res["suspectEntity"] = contained, suspects
        out.append(res)
    return out


def concept_map() -> dict[str, Any]:
    elements = [{"code": local, "display": zh, "target": [{"code": loinc, "equivalence": "equivalent"}]}
                for local, loinc, zh, *_ in TESTS.values() if local]
    return {"resourceType": "ConceptMap", "id": "zj2h-lis-safety", "url": f"{SITE}/ConceptMap/lis-safety", "status": "active",
            "group": [{"source": LIS, "target": LOINC, "element": elements}]}


def bundle(system: str, s: Subject, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "id": f"{system}-{s.pid}", "type": "collection",
            "entry": [{"fullUrl": f"{BASE[system]}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources]}


def subjects() -> list[Subject]:
    return scenarios() + fillers()


def write(out: Path) -> list[Subject]:
    everyone = subjects()
    data = out / "data"
    for system in BASE:
        (data / system).mkdir(parents=True, exist_ok=True)
    (data / "ConceptMap-zj2h-lis.json").write_text(json.dumps(concept_map(), ensure_ascii=False, indent=1), encoding="utf-8")
    for s in everyone:
        for system, make in (("his", his), ("lis", lis), ("pharmacy", pharmacy), ("edc", edc)):
            resources = make(s)
            if resources:
                (data / system / f"{s.pid}.json").write_text(json.dumps(bundle(system, s, resources), ensure_ascii=False),
                                                             encoding="utf-8")
    truth = {s.pid: {"number": s.number, "d1": s.d1.isoformat(), "aes": [a.to_dict() for a in s.aes],
                     "survival_days": s.survival_days, "event": s.event, "censored_at": s.censored_at,
                     "changes": [list(c) for c in s.changes]} for s in everyone}
    (out / "truth.json").write_text(json.dumps({"as_of": AS_OF.isoformat(), "subjects": truth}, indent=1, ensure_ascii=False),
                                    encoding="utf-8")
    return everyone


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    args = p.parse_args()
    n = len(write(args.out))
    print(f"{n} subjects written to {args.out / 'data'}; truth in {args.out / 'truth.json'}")


if __name__ == "__main__":
    main()
