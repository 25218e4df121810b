"""Synthetic population as a hospital's Bulk Data export: N patients, type-split NDJSON (issue 11 §4).

    python benchmarks/population.py N OUT_DIR [--seed S] [--lines-per-file L] [--gz] [--jobs J]
                                    [--dm-fraction 0.05] [--split-fraction 0.1] [--hospital-fraction 0]

Writes OUT_DIR/fhir/<Type>.<chunk>.<part>.ndjson[.gz] (a new part every L lines), a second system's
export in OUT_DIR/fhir/lis/ (some patients' labs and reports, with absolute references), and the
ground truth in OUT_DIR/truth.ndjson (never inside the FHIR files). Screen with
`--as-of 2026-11-16` (the default --as-of here).

The mix is Synthea-like: ~100 resources per patient (encounters, vitals, lab panels with
DiagnosticReports, conditions, medication requests, immunizations, procedures, an allergy, care
plans), most patients irrelevant to the trial; a fraction (--dm-fraction) has dermatomyositis and
screening labs with randomised results whose expected criterion results are set beside them (from
shared/spec/eligibility.md, not from fhir3t); --hospital-fraction mixes in the hospital-shaped
patients of tests/hospital.py (panels, local codes, product codes, split records) with their truth.

Deterministic by seed whatever --jobs: patients are generated in chunks of --chunk patients, each
from its own seed, and each chunk writes its own files. Streams (one chunk in memory at a time per
worker), so 1 M patients (~100 M resources) need no more memory than 10 k.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

from dateutil.relativedelta import relativedelta

ROOT = Path(__file__).resolve().parents[1]

AS_OF = date(2026, 11, 16)
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CHECKLIST = "https://fhir3t.github.io/fhir/Questionnaire/3t-screening-checklist"
LIS_BASE = "http://lis.example.org/fhir"

# ---- what an irrelevant record holds (no code here is in any of fhir3t's value sets: tests check) ----
VITALS = (("8867-4", "Heart rate", "/min", 55, 110), ("9279-1", "Respiratory rate", "/min", 12, 22),
          ("29463-7", "Body weight", "kg", 45, 110), ("8302-2", "Body height", "cm", 150, 190),
          ("39156-5", "Body mass index", "kg/m2", 17, 35), ("8310-5", "Body temperature", "Cel", 36, 38))
LAB_PANELS = (
    ("58410-2", "CBC panel", (("6690-2", "Leukocytes", "10*3/uL", 3, 12), ("789-8", "Erythrocytes", "10*6/uL", 3, 6),
                              ("718-7", "Hemoglobin", "g/dL", 9, 17), ("4544-3", "Hematocrit", "%", 30, 50),
                              ("787-2", "MCV", "fL", 75, 100), ("785-6", "MCH", "pg", 25, 34), ("786-4", "MCHC", "g/dL", 31, 36),
                              ("777-3", "Platelets", "10*3/uL", 140, 420))),
    ("51990-0", "Basic metabolic panel", (("2339-0", "Glucose", "mg/dL", 70, 160), ("6299-2", "Urea nitrogen", "mg/dL", 7, 25),
                                          ("38483-4", "Creatinine", "mg/dL", 0.6, 1.4), ("49765-1", "Calcium", "mg/dL", 8.5, 10.5),
                                          ("2947-0", "Sodium", "mmol/L", 134, 146), ("6298-4", "Potassium", "mmol/L", 3.4, 5.2),
                                          ("2069-3", "Chloride", "mmol/L", 97, 108), ("20565-8", "Carbon dioxide", "mmol/L", 21, 31))),
    ("57698-3", "Lipid panel", (("2093-3", "Cholesterol", "mg/dL", 140, 260), ("2571-8", "Triglyceride", "mg/dL", 60, 260),
                                ("18262-6", "LDL cholesterol", "mg/dL", 60, 180), ("2085-9", "HDL cholesterol", "mg/dL", 30, 80),
                                ("1742-6", "ALT", "U/L", 8, 60), ("1920-8", "AST", "U/L", 8, 50), ("1975-2", "Bilirubin", "mg/dL", 0.2, 1.4),
                                ("2885-2", "Protein", "g/dL", 6, 8.3))),
)
CONDITIONS = (("44054006", "Diabetes mellitus type 2"), ("38341003", "Hypertensive disorder"), ("55822004", "Hyperlipidemia"),
              ("195662009", "Acute viral pharyngitis"), ("40055000", "Chronic sinusitis"), ("15777000", "Prediabetes"),
              ("10509002", "Acute bronchitis"), ("162864005", "Body mass index 30+ - obesity"), ("271737000", "Anemia"),
              ("444814009", "Viral sinusitis"), ("239873007", "Osteoarthritis of knee"), ("68496003", "Polyp of colon"))
MEDS = (("197361", "amlodipine 5 MG Oral Tablet"), ("310798", "hydrochlorothiazide 25 MG Oral Tablet"),
        ("314076", "lisinopril 10 MG Oral Tablet"), ("860975", "metformin hydrochloride 500 MG Oral Tablet"),
        ("308136", "amlodipine 2.5 MG Oral Tablet"), ("313782", "acetaminophen 325 MG Oral Tablet"),
        ("198405", "ibuprofen 200 MG Oral Tablet"), ("562251", "amoxicillin 250 MG / clavulanate 125 MG Oral Tablet"),
        ("312961", "simvastatin 20 MG Oral Tablet"), ("1049221", "acetaminophen 325 MG / oxycodone 5 MG Oral Tablet"))
VACCINES = (("140", "Influenza, seasonal, injectable, preservative free"), ("113", "Td (adult) preservative free"),
            ("133", "Pneumococcal conjugate PCV 13"), ("08", "Hep B, adolescent or pediatric"), ("62", "HPV, quadrivalent"))
PROCEDURES = (("430193006", "Medication reconciliation"), ("710824005", "Assessment of health and social care needs"),
              ("171207006", "Depression screening"), ("428191000124101", "Documentation of current medications"),
              ("73761001", "Colonoscopy"), ("76601001", "Intramuscular injection"))
ALLERGIES = (("91935009", "Allergy to peanuts"), ("300913006", "Shellfish allergy"), ("232350006", "House dust mite allergy"),
             ("418689008", "Allergy to grass pollen"))

CRITERIA = ("I1-age", "I2-dm", "I3-mda5", "I4-dlco", "I5-ct", "I6-contraception", "I7-compliance", "I8-consent",
            "E1-prior-3t-failure", "E2-recent-immunomodulator", "E3-depleting-agent", "E4-investigational",
            "E5-immunodeficiency", "E6-malignancy", "E7-hbv", "E8-hcv", "E9-hiv", "E10-tb", "E11-hypersensitivity",
            "E12-vaccination", "E13-pregnancy", "E14-investigator")


def _dumps(r: dict) -> str:
    return json.dumps(r, ensure_ascii=False, separators=(",", ":"))


class Writers:
    """One chunk's output: <folder>/<Type>.<chunk>.<part>.ndjson, a new part every `lines` lines."""

    def __init__(self, root: Path, chunk: int, lines: int, gz: bool) -> None:
        self.root, self.chunk, self.lines, self.gz = root, chunk, lines, gz
        self.open: dict[tuple[str, str], tuple[TextIO, int, int]] = {}  # (folder, type) -> (handle, part, lines so far)
        self.count = 0

    def _new(self, folder: str, rtype: str, part: int) -> TextIO:
        d = self.root / folder if folder else self.root
        d.mkdir(parents=True, exist_ok=True)
        name = f"{rtype}.{self.chunk:04d}.{part:03d}.ndjson"
        if self.gz:
            return gzip.open(d / (name + ".gz"), "wt", encoding="utf-8", compresslevel=1)  # type: ignore[return-value]
        return (d / name).open("w", encoding="utf-8", buffering=1 << 20)

    def write(self, folder: str, rtype: str, line: str) -> None:
        key = (folder, rtype)
        entry = self.open.get(key)
        if entry is None:
            entry = (self._new(folder, rtype, 0), 0, 0)
        fh, part, n = entry
        if n >= self.lines:
            fh.close()
            part += 1
            fh, n = self._new(folder, rtype, part), 0
        fh.write(line)
        fh.write("\n")
        self.open[key] = (fh, part, n + 1)
        self.count += 1

    def close(self) -> None:
        for fh, _, _ in self.open.values():
            fh.close()
        self.open.clear()


class Gen:
    """Generates one chunk of patients into Writers; the truth of each goes to `truth`."""

    def __init__(self, seed: int, chunk: int, as_of: date, args: Any) -> None:
        self.rng = random.Random(f"{seed}/{chunk}")
        self.seed, self.as_of, self.args = seed, as_of, args
        self.days = [(as_of - timedelta(days=k)).isoformat() for k in range(3700)]  # days[k] = as_of - k

    # -- the irrelevant part of every record, as string templates (fast) --
    def background(self, w: Writers, pid: str, gender: str, birth: str, split: bool, folder_lab: str) -> list[str]:
        """Writes ~99 resources; returns the days of its immunizations (E12 for DM patients)."""
        rng, days = self.rng, self.days
        ref = f'{{"reference":"Patient/{pid}"}}'
        lab_ref = f'{{"reference":"{LIS_BASE}/Patient/{pid}"}}' if split else ref
        w.write("", "Patient",
                f'{{"resourceType":"Patient","id":"{pid}","meta":{{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]}},'
                f'"identifier":[{{"system":"http://hospital.example.org/mrn","value":"MRN{pid}"}}],'
                f'"name":[{{"use":"official","family":"Family{pid[-4:]}","given":["Given{pid[-3:]}"]}}],"gender":"{gender}","birthDate":"{birth}",'
                f'"address":[{{"city":"Hangzhou","state":"Zhejiang","country":"CN"}}],"maritalStatus":{{"text":"M"}}}}')
        enc_days = sorted(rng.randrange(1, 2000) for _ in range(8))
        for e, k in enumerate(enc_days):
            d = days[k]
            w.write("", "Encounter",
                    f'{{"resourceType":"Encounter","id":"{pid}-e{e}","status":"finished","class":{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}},'
                    f'"type":[{{"coding":[{{"system":"{SCT}","code":"185349003","display":"Encounter for check up"}}],"text":"Encounter for check up"}}],'
                    f'"subject":{ref},"period":{{"start":"{d}T09:00:00+08:00","end":"{d}T09:30:00+08:00"}}}}')
            for v in range(3):
                code, name, unit, lo, hi = VITALS[(e + v) % len(VITALS)]
                w.write("", "Observation",
                        f'{{"resourceType":"Observation","id":"{pid}-v{e}-{v}","status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}}]}}],'
                        f'"code":{{"coding":[{{"system":"{LOINC}","code":"{code}","display":"{name}"}}],"text":"{name}"}},"subject":{ref},"encounter":{{"reference":"Encounter/{pid}-e{e}"}},'
                        f'"effectiveDateTime":"{d}T09:05:00+08:00","valueQuantity":{{"value":{round(rng.uniform(lo, hi), 1)},"unit":"{unit}","system":"http://unitsofmeasure.org","code":"{unit}"}}}}')
        for p in range(4):
            pcode, pname, tests = LAB_PANELS[p % len(LAB_PANELS)]
            d = days[enc_days[p * 2]]
            ids = []
            for t, (code, name, unit, lo, hi) in enumerate(tests):
                oid = f"{pid}-l{p}-{t}"
                ids.append(oid)
                w.write(folder_lab if split else "", "Observation",
                        f'{{"resourceType":"Observation","id":"{oid}","status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}}]}}],'
                        f'"code":{{"coding":[{{"system":"{LOINC}","code":"{code}","display":"{name}"}}],"text":"{name}"}},"subject":{lab_ref},'
                        f'"effectiveDateTime":"{d}T07:30:00+08:00","issued":"{d}T11:02:00.000+08:00","valueQuantity":{{"value":{round(rng.uniform(lo, hi), 2)},"unit":"{unit}","system":"http://unitsofmeasure.org","code":"{unit}"}}}}')
            results = ",".join(f'{{"reference":"Observation/{i}"}}' for i in ids)
            w.write(folder_lab if split else "", "DiagnosticReport",
                    f'{{"resourceType":"DiagnosticReport","id":"{pid}-r{p}","status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v2-0074","code":"LAB"}}]}}],'
                    f'"code":{{"coding":[{{"system":"{LOINC}","code":"{pcode}","display":"{pname}"}}],"text":"{pname}"}},"subject":{lab_ref},'
                    f'"effectiveDateTime":"{d}T07:30:00+08:00","issued":"{d}T11:02:00.000+08:00","result":[{results}]}}')
        for c in range(6):
            code, name = CONDITIONS[rng.randrange(len(CONDITIONS))]
            w.write("", "Condition",
                    f'{{"resourceType":"Condition","id":"{pid}-c{c}","clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"{"active" if c % 2 else "resolved"}"}}]}},'
                    f'"verificationStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}}]}},'
                    f'"category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"encounter-diagnosis"}}]}}],'
                    f'"code":{{"coding":[{{"system":"{SCT}","code":"{code}","display":"{name}"}}],"text":"{name}"}},"subject":{ref},'
                    f'"onsetDateTime":"{days[rng.randrange(30, 3650)]}","recordedDate":"{days[rng.randrange(1, 30)]}"}}')
        for m in range(10):
            code, name = MEDS[rng.randrange(len(MEDS))]
            status = "active" if m < 3 else "completed"
            w.write("", "MedicationRequest",
                    f'{{"resourceType":"MedicationRequest","id":"{pid}-m{m}","status":"{status}","intent":"order",'
                    f'"medicationCodeableConcept":{{"coding":[{{"system":"{RX}","code":"{code}","display":"{name}"}}],"text":"{name}"}},"subject":{ref},'
                    f'"authoredOn":"{days[rng.randrange(1, 1500)]}","dosageInstruction":[{{"text":"1 tablet daily"}}]}}')
        imm_days = []
        for v in range(5):
            code, name = VACCINES[v]
            d = days[rng.randrange(1, 1800)]
            imm_days.append(d)
            w.write("", "Immunization",
                    f'{{"resourceType":"Immunization","id":"{pid}-i{v}","status":"completed","vaccineCode":{{"coding":[{{"system":"{CVX}","code":"{code}","display":"{name}"}}],"text":"{name}"}},'
                    f'"patient":{ref},"occurrenceDateTime":"{d}T10:00:00+08:00","primarySource":true}}')
        for p in range(6):
            code, name = PROCEDURES[p]
            w.write("", "Procedure",
                    f'{{"resourceType":"Procedure","id":"{pid}-p{p}","status":"completed","code":{{"coding":[{{"system":"{SCT}","code":"{code}","display":"{name}"}}],"text":"{name}"}},'
                    f'"subject":{ref},"performedDateTime":"{days[rng.randrange(1, 2000)]}T10:00:00+08:00"}}')
        code, name = ALLERGIES[rng.randrange(len(ALLERGIES))]
        w.write("", "AllergyIntolerance",
                f'{{"resourceType":"AllergyIntolerance","id":"{pid}-a0","clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}}]}},'
                f'"verificationStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}}]}},"type":"allergy","category":["food"],'
                f'"code":{{"coding":[{{"system":"{SCT}","code":"{code}","display":"{name}"}}],"text":"{name}"}},"patient":{ref},"recordedDate":"{days[rng.randrange(100, 3000)]}"}}')
        for cp in range(2):
            w.write("", "CarePlan",
                    f'{{"resourceType":"CarePlan","id":"{pid}-cp{cp}","status":"completed","intent":"order","subject":{ref},'
                    f'"category":[{{"coding":[{{"system":"{SCT}","code":"734163000","display":"Care plan"}}]}}],"period":{{"start":"{days[rng.randrange(200, 2000)]}"}}}}')
        w.write("", "Observation",
                f'{{"resourceType":"Observation","id":"{pid}-s0","status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"social-history"}}]}}],'
                f'"code":{{"coding":[{{"system":"{LOINC}","code":"72166-2","display":"Tobacco smoking status"}}]}},"subject":{ref},"effectiveDateTime":"{days[enc_days[-1]]}",'
                f'"valueCodeableConcept":{{"coding":[{{"system":"{SCT}","code":"266919005","display":"Never smoked tobacco"}}]}}}}')
        return imm_days

    # -- a dermatomyositis patient with screening labs and their truth (spec-shaped codes) --
    def dm_patient(self, w: Writers, pid: str, gender: str, birth: str, age: int, split: bool, imm_days: list[str]) -> dict[str, str]:
        rng, days = self.rng, self.days
        folder = "lis" if split else ""
        subj = {"reference": f"{LIS_BASE}/Patient/{pid}" if split else f"Patient/{pid}"}
        t: dict[str, str] = {}
        n = iter(range(1000))

        def obs(code: str, k: int, **value: Any) -> None:
            r = {"resourceType": "Observation", "id": f"{pid}-x{next(n)}", "status": "final", "code": {"coding": [{"system": LOINC, "code": code}]},
                 "subject": subj, "effectiveDateTime": f"{days[k]}T08:{rng.randrange(60):02d}:00+08:00", **value}
            w.write(folder, "Observation", _dumps(r))

        neg = {"valueCodeableConcept": {"coding": [{"system": SCT, "code": "260385009", "display": "Negative"}]}}
        pos = {"valueCodeableConcept": {"coding": [{"system": SCT, "code": "10828004", "display": "Positive"}]}}
        w.write("", "Condition", _dumps({
            "resourceType": "Condition", "id": f"{pid}-dm", "subject": {"reference": f"Patient/{pid}"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": ICD10CM, "code": rng.choice(["M33.10", "M33.11", "M33.12", "M33.19"])}]},
            "onsetDateTime": days[rng.randrange(40, 900)]}))
        t["I2-dm"] = "met"
        # I3: most recent anti-MDA5 in window decides; some have an older one too (decided by the newer)
        grade = rng.choice(["+++", "++", "+", "-", "positive", None])
        if grade is not None:
            k = rng.randrange(0, 28)
            if rng.random() < 0.3:
                obs("82424-3", k + rng.randrange(1, 10), valueString=rng.choice(["+", "+++"]))  # older: may be outside the window
            obs("82424-3", k, valueString=grade)
        t["I3-mda5"] = {"+++": "met", "++": "met", "+": "not-met", "-": "not-met"}.get(grade or "", "unknown")
        dlco = rng.choice([None, *range(35, 100, 3)])
        if dlco is not None:
            k = rng.randrange(0, 40)
            obs("98130-8", k, valueQuantity={"value": dlco, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"})
            t["I4-dlco"] = "unknown" if k > 28 else ("met" if dlco < 80 else "not-met")
        else:
            t["I4-dlco"] = "unknown"
        ct = rng.choice(["ild", "ild", "normal", None])
        if ct:
            obs("24627-2", rng.randrange(0, 28), valueCodeableConcept={"coding": [{"system": SCT, "code": "233703007" if ct == "ild" else "17621005"}]})
        t["I5-ct"] = {"ild": "met", "normal": "not-met"}.get(ct or "", "unknown")
        for crit, tests in (("E7-hbv", ("5196-1",)), ("E8-hcv", ("13955-0",)), ("E9-hiv", ("56888-1",)), ("E10-tb", ("71773-6",))):
            r = rng.random()
            if r < 0.12:
                t[crit] = "unknown"  # not tested
                continue
            positive = r > 0.96
            for code in tests:
                obs(code, rng.randrange(0, 28), **(pos if positive else neg))
            if crit == "E8-hcv" and positive:
                obs("11011-4", rng.randrange(0, 28), valueQuantity={"value": 250000, "unit": "IU/mL"})  # anti-HCV AND RNA positive
            if crit == "E7-hbv":
                obs("16933-4", rng.randrange(0, 28), **neg)  # anti-HBc negative: the second arm is not-met
            t[crit] = "met" if positive else "not-met"
        if gender == "female" and age < 55:
            r = rng.random()
            if r < 0.8:
                obs("2106-3", rng.randrange(0, 28), **neg)
                t["E13-pregnancy"] = "not-met"
            elif r < 0.85:
                obs("2106-3", rng.randrange(0, 28), **pos)
                t["E13-pregnancy"] = "met"
            else:
                t["E13-pregnancy"] = "unknown"
        else:
            t["E13-pregnancy"] = "not-met"
        if rng.random() < 0.85:
            answers = {"contraception": True, "compliance": True, "consent": True, "investigator-ok": rng.random() > 0.05}
            w.write("", "QuestionnaireResponse", _dumps({
                "resourceType": "QuestionnaireResponse", "id": f"{pid}-qr", "status": "completed", "questionnaire": CHECKLIST,
                "subject": {"reference": f"Patient/{pid}"}, "authored": days[rng.randrange(0, 20)],
                "item": [{"linkId": k, "answer": [{"valueBoolean": v}]} for k, v in answers.items()]}))
            t.update({"I6-contraception": "met", "I7-compliance": "met", "I8-consent": "met",
                      "E14-investigator": "not-met" if answers["investigator-ok"] else "met"})
        else:
            t.update({"I6-contraception": "unknown", "I7-compliance": "unknown", "I8-consent": "unknown", "E14-investigator": "unknown"})
        t["E3-depleting-agent"] = "not-met"
        if rng.random() < 0.04:
            k = rng.randrange(0, 365)
            w.write("", "MedicationAdministration", _dumps({
                "resourceType": "MedicationAdministration", "id": f"{pid}-rtx", "status": "completed", "subject": {"reference": f"Patient/{pid}"},
                "medicationCodeableConcept": {"coding": [{"system": RX, "code": "121191", "display": "rituximab"}]},
                "effectiveDateTime": f"{days[k]}T10:00:00+08:00"}))
            six_months = self.as_of - relativedelta(months=6)
            t["E3-depleting-agent"] = "met" if date.fromisoformat(days[k]) >= six_months else "not-met"
        lo = (self.as_of - timedelta(days=84)).isoformat()
        t["E12-vaccination"] = "met" if any(lo <= d <= self.as_of.isoformat() for d in imm_days) else "not-met"
        for crit in ("E1-prior-3t-failure", "E2-recent-immunomodulator", "E4-investigational", "E5-immunodeficiency",
                     "E6-malignancy", "E11-hypersensitivity"):
            t[crit] = "not-met"
        return t

    def hospital(self, w: Writers, index: int, pid: str) -> dict:
        from hospital import chart_for, patient_items  # tests/hospital.py

        chart = chart_for(index, pid, self.seed, self.as_of)
        folder_of = {"his": "", "pacs": "", "tb": "", "lis": "lis"}
        for system, r in patient_items(chart):
            w.write(folder_of.get(system, system), r["resourceType"], _dumps(r))
        for _, r in (it for slot, items in chart.slots.items() if slot.startswith("shared-") for it in items):
            w.write("", r["resourceType"], _dumps(r))
        return chart.truth()


def age_at(birth: date, as_of: date) -> int:
    return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))


def status_of(t: dict[str, str]) -> str:
    if any((c.startswith("I") and r == "not-met") or (c.startswith("E") and r == "met") for c, r in t.items()):
        return "ineligible"
    if len(t) == len(CRITERIA) and all(r == ("met" if c.startswith("I") else "not-met") for c, r in t.items()):
        return "eligible"
    return "candidate"


def run_chunk(job: tuple[int, int, int, str, dict]) -> tuple[int, int, int]:
    """Generate patients [lo, hi) as chunk `chunk`; returns (chunk, patients, resources)."""
    chunk, lo, hi, out, opts = job
    args = argparse.Namespace(**opts)
    as_of = date.fromisoformat(args.as_of)
    root = Path(out)
    w = Writers(root / "fhir", chunk, args.lines_per_file, args.gz)
    g = Gen(args.seed, chunk, as_of, args)
    rng = g.rng
    truth_lines = []
    try:
        for i in range(lo, hi):
            pid = f"p{i:07d}"
            r = rng.random()
            if r < args.hospital_fraction:
                t = g.hospital(w, i, pid)
                truth_lines.append(_dumps(t))
                continue
            dm = r < args.hospital_fraction + args.dm_fraction
            gender = "female" if rng.random() < 0.5 else "male"
            birth = date(rng.randrange(1936, 2009) if not dm else rng.randrange(1950, 2006), rng.randrange(1, 13), rng.randrange(1, 29))
            split = rng.random() < args.split_fraction
            imm = g.background(w, pid, gender, birth.isoformat(), split, "lis")
            age = age_at(birth, as_of)
            if dm:
                t = g.dm_patient(w, pid, gender, birth.isoformat(), age, split or rng.random() < args.split_fraction, imm)
            else:
                t = {"I2-dm": "not-met"}
            t["I1-age"] = "met" if age >= 18 else "not-met"
            criteria = {c: t[c] for c in CRITERIA if c in t}
            truth_lines.append(_dumps({"patient": f"Patient/{pid}", "scenario": "population-dm" if dm else "population-background",
                                       "as_of": args.as_of, "d1": args.as_of, "status": status_of(criteria), "criteria": criteria}))
    finally:
        w.close()
    tdir = root / ".truth-parts"
    tdir.mkdir(exist_ok=True)
    (tdir / f"{chunk:04d}.ndjson").write_text("\n".join(truth_lines) + "\n", encoding="utf-8")
    return chunk, hi - lo, w.count


def generate(n: int, out: Path, *, seed: int = 0, jobs: int = 1, chunk: int = 5000, progress: Callable[[int, int], None] | None = None,
             **opts: Any) -> dict:
    """Write the population; returns counts. Same output for any `jobs`."""
    defaults = {"lines_per_file": 200_000, "gz": False, "dm_fraction": 0.05, "split_fraction": 0.1, "hospital_fraction": 0.0,
                "as_of": AS_OF.isoformat()}
    options = {**defaults, **opts, "seed": seed}
    if options["hospital_fraction"] > 0:
        sys.path.insert(0, str(ROOT / "tests"))
        from hospital import CONCEPT_MAP_FILE, concept_map
        (out / "fhir").mkdir(parents=True, exist_ok=True)
        (out / "fhir" / CONCEPT_MAP_FILE).write_text(json.dumps(concept_map(), ensure_ascii=False, indent=1), encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    work = [(c, lo, min(lo + chunk, n), str(out), options) for c, lo in enumerate(range(0, n, chunk))]
    done = resources = 0
    t0 = time.perf_counter()
    if jobs > 1:
        init = _init_worker
        with ProcessPoolExecutor(jobs, initializer=init) as pool:
            for _, p, r in pool.map(run_chunk, work):
                done, resources = done + p, resources + r
                if progress:
                    progress(done, resources)
    else:
        for job in work:
            _, p, r = run_chunk(job)
            done, resources = done + p, resources + r
            if progress:
                progress(done, resources)
    wall = time.perf_counter() - t0
    tdir = out / ".truth-parts"
    with (out / "truth.ndjson").open("w", encoding="utf-8") as fh:
        for c, *_ in work:
            part = tdir / f"{c:04d}.ndjson"
            fh.write(part.read_text(encoding="utf-8"))
            part.unlink()
    tdir.rmdir()
    size = sum(p.stat().st_size for p in (out / "fhir").rglob("*") if p.is_file())
    return {"patients": n, "resources": resources, "bytes": size, "seconds": wall}


def _init_worker() -> None:
    sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int, help="number of patients")
    ap.add_argument("out", type=Path, help="output folder (FHIR in OUT/fhir, truth in OUT/truth.ndjson)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lines-per-file", type=int, default=200_000, help="start a new part file after this many lines (default 200000)")
    ap.add_argument("--gz", action="store_true", help="gzip the NDJSON (level 1)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (output is the same for any value)")
    ap.add_argument("--chunk", type=int, default=5000, help="patients per chunk (part of the seed: changing it changes the data)")
    ap.add_argument("--dm-fraction", type=float, default=0.05, help="patients with dermatomyositis and screening labs (default 0.05)")
    ap.add_argument("--split-fraction", type=float, default=0.1, help="patients whose labs come in the second system's export (lis/)")
    ap.add_argument("--hospital-fraction", type=float, default=0.0, help="hospital-shaped patients from tests/hospital.py (default 0)")
    ap.add_argument("--as-of", default=AS_OF.isoformat())
    args = ap.parse_args(argv)
    if (args.out / "fhir").exists() and any((args.out / "fhir").iterdir()):
        ap.error(f"{args.out / 'fhir'} is not empty")
    last = [time.perf_counter()]

    def progress(done: int, resources: int) -> None:
        if time.perf_counter() - last[0] > 5 or done == args.n:
            last[0] = time.perf_counter()
            print(f"  {done}/{args.n} patients, {resources} resources", file=sys.stderr)

    r = generate(args.n, args.out, seed=args.seed, jobs=args.jobs, chunk=args.chunk, progress=progress,
                 lines_per_file=args.lines_per_file, gz=args.gz, dm_fraction=args.dm_fraction, split_fraction=args.split_fraction,
                 hospital_fraction=args.hospital_fraction, as_of=args.as_of)
    print(f"{r['patients']} patients, {r['resources']} resources ({r['resources'] / r['patients']:.1f}/patient), "
          f"{r['bytes'] / 1e6:.1f} MB in {r['seconds']:.1f} s with {args.jobs} job(s): {r['patients'] / r['seconds']:.0f} patients/s, "
          f"{r['resources'] / r['seconds'] / 1e3:.0f} k resources/s, {r['bytes'] / r['seconds'] / 1e6:.0f} MB/s; truth in {args.out / 'truth.ndjson'}")


if __name__ == "__main__":
    main()
