"""Regenerate the safety sample Bundles (deterministic): python samples/safety/generate.py

Synthetic, fictional subjects of NCT06438679 with fortnightly visits; see README.md for the AEs
each one should give. Edit the SUBJECTS table, rerun, and update README.md.

Beyond labs and Conditions a subject may carry: investigator AdverseEvents (`investigator`), its own
3T medication records with doses (`regimen`), other medications (`other_meds`, e.g. an IV
anti-infective), inpatient stays, a withdrawal (`withdrawn`) and visits after it (`late_visits`).
"""
from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).parent
AS_OF = date(2026, 11, 16)
LOINC, UCUM, RX = "http://loinc.org", "http://unitsofmeasure.org", "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
STUDY = {"identifier": {"system": "http://clinicaltrials.gov", "value": "NCT06438679"}, "display": "NCT06438679"}

#: test -> (LOINC, display, normal value, unit code, unit text, reference range (low, high) or None)
TESTS = {
    "alt": ("1742-6", "ALT", 24, "U/L", "U/L", (7, 40)),
    "ast": ("1920-8", "AST", 22, "U/L", "U/L", (13, 35)),
    "creatinine": ("2160-0", "Creatinine", 68, "umol/L", "µmol/L", (41, 73)),
    "potassium": ("2823-3", "Potassium", 4.2, "mmol/L", "mmol/L", (3.5, 5.3)),
    "wbc": ("6690-2", "Leukocytes", 6.1, "10*9/L", "10^9/L", (3.5, 9.5)),
    "neutrophils": ("751-8", "Neutrophils", 3.9, "10*9/L", "10^9/L", (1.8, 6.3)),
    "lymphocytes": ("731-0", "Lymphocytes", 1.6, "10*9/L", "10^9/L", (1.1, 3.2)),
    "platelets": ("777-3", "Platelets", 220, "10*9/L", "10^9/L", (125, 350)),
    "hemoglobin": ("718-7", "Hemoglobin", 128, "g/L", "g/L", (115, 150)),
}
DRUGS = {"tofacitinib": "1357536", "tacrolimus": "42316", "thalidomide": "10432"}
SCT = "http://snomed.info/sct"
MDR = "http://terminology.hl7.org/CodeSystem/mdr"
CAUSALITY = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
CTCAE_GRADE = "https://fhir3t.github.io/fhir/StructureDefinition/ctcae-grade"
IV = {"coding": [{"system": SCT, "code": "47625008", "display": "Intravenous route"}], "text": "静脉滴注"}
ORAL = {"coding": [{"system": SCT, "code": "26643006", "display": "Oral route"}]}

SUBJECTS = [
    dict(id="s01", gender="female", birth="1981-02-14", d1=date(2026, 3, 2), visits_until=AS_OF,
         # ALT grade 1 ON D1 (baseline, not an AE), normal at week 2, then 3.25x (g2), 5.25x (g3), 2.25x (g1), normal.
         labs={"alt": {0: 95, 2: 130, 3: 210, 4: 90, 5: 35}},
         conditions=[("B02.9", "Zoster without complications", "2026-06-15", "resolved", "2026-07-10")],
         # tofacitinib stopped for the zoster (statusReason: adverse reaction) while it was ongoing
         stopped={"tofacitinib": "2026-06-20"}),
    dict(id="s02", gender="male", birth="1968-09-03", d1=date(2026, 3, 16), visits_until=date(2026, 7, 13),
         deceased="2026-07-20T03:40:00+08:00",
         # creatinine in mg/dL with NO referenceRange: default male ULN 97 umol/L applies.
         units={"creatinine": ("mg/dL", "mg/dL", 0.9, None)},
         labs={"creatinine": {2: 1.3, 3: 1.7, 4: 1.5, 5: 1.4, 6: 1.45, 7: 1.5, 8: 1.4}},
         conditions=[("J18.9", "Pneumonia, unspecified organism", "2026-05-20", "active", None)],
         inpatient=[("2026-05-20T10:00:00+08:00", "2026-05-28T11:00:00+08:00")],
         other_meds=[("2193", "ceftriaxone", "头孢曲松 2 g 静脉滴注", "2026-05-20", "2026-05-27", IV)],
         # the investigator records the death the Patient resource already gives, causality unassessable
         investigator=[dict(id="s02-ae-death", date="2026-07-20", code=(SCT, "419620001", "Death"), text="死亡",
                            seriousness="SeriousResultsInDeath", outcome="fatal",
                            causality={d: "Unassessable-Unclassifiable" for d in DRUGS})]),
    dict(id="s03", gender="female", birth="1987-06-30", d1=date(2026, 4, 6), visits_until=AS_OF,
         # neutrophils in 10*3/uL (UCUM) with the lab's own range (low 2.0); Hb in g/dL.
         units={"neutrophils": ("10*3/uL", "10^3/uL", 3.4, (2.0, 7.0)), "hemoglobin": ("g/dL", "g/dL", 12.6, (11.5, 15.0))},
         labs={"neutrophils": {1: 1.6, 2: 0.9, 3: 1.2, 4: 2.3, 7: 1.4, 8: 1.9},
               "hemoglobin": {5: 9.5, 6: 11.8}},
         # the investigator records the neutropenia fhir3t finds in the labs (MedDRA PT Neutropenia, grade 3)
         investigator=[dict(id="s03-ae-neutropenia", date="2026-05-04", code=(MDR, "10029354", "Neutropenia"),
                            grade=3, seriousness="Non-serious", causality={"tofacitinib": "Probably-Likely"})],
         # tofacitinib 5 mg twice daily, held for the neutropenia from 05-04 to 05-17, restarted at 5 mg once daily
         regimen={"tofacitinib": [("2026-04-06", "2026-05-03", "stopped", 5, 2, "s03-ae-neutropenia"),
                                  ("2026-05-18", None, "active", 5, 1, "s03-ae-neutropenia")]}),
    dict(id="s04", gender="male", birth="1975-01-20", d1=date(2026, 5, 4), visits_until=date(2026, 7, 27),
         off_study="2026-07-27",
         # off study on 07-27: potassium 5.8 on 08-10 (end + 14 days) is an AE; the normal 4.6 on 08-31
         # (end + 35 days) is outside the 30-day window, so the episode stays ongoing.
         labs={"potassium_extra": {"2026-08-10": 5.8, "2026-08-31": 4.6}},
         # tremor 50 days after period.end: outside the window, not an AE (but it dates 'last known alive').
         conditions=[("R25.1", "Tremor, unspecified", "2026-09-15", "active", None)]),
    dict(id="s05", gender="female", birth="1964-11-02", d1=date(2026, 8, 3), visits_until=AS_OF,
         labs={"lymphocytes": {3: 0.7, 4: 0.9, 5: 1.3}},
         # Condition.severity moderate: a clinical AE graded 2 without a CTCAE grade extension
         conditions=[("K59.00", "Constipation, unspecified", "2026-09-01", "active", None, "moderate")]),
    dict(id="s06", gender="male", birth="1979-04-11", d1=date(2026, 3, 9), visits_until=AS_OF,
         tacrolimus_as_request=True,
         conditions=[("J11.1", "Influenza due to unidentified influenza virus", "2026-10-05", "resolved", "2026-10-15")]),
    dict(id="s07", gender="female", birth="1972-12-08", d1=date(2026, 4, 20), visits_until=AS_OF,
         # Pneumocystis pneumonia (B59) on tofacitinib: admitted, IV co-trimoxazole, resolved
         conditions=[("B59", "Pneumocystosis", "2026-07-06", "resolved", "2026-07-25")],
         inpatient=[("2026-07-06T16:20:00+08:00", "2026-07-20T09:00:00+08:00")],
         other_meds=[("10831", "sulfamethoxazole / trimethoprim", "复方磺胺甲噁唑 静脉滴注", "2026-07-06", "2026-07-19", IV)]),
    dict(id="s08", gender="male", birth="1959-05-23", d1=date(2026, 5, 11), visits_until=date(2026, 9, 14),
         withdrawn="2026-09-14",
         # deep vein thrombosis (thalidomide and tofacitinib) and a mild peripheral neuropathy (thalidomide)
         conditions=[("I82.401", "Acute embolism and thrombosis of unspecified deep veins of right lower extremity",
                      "2026-06-22", "active", None, "moderate"),
                     ("G62.0", "Drug-induced polyneuropathy", "2026-08-03", "active", None, "mild")],
         # withdrew consent on 09-14; a clinic visit on 10-20 and a death on 11-02 come after it: censored at withdrawal
         late_visits=["2026-10-20"], deceased="2026-11-02T22:10:00+08:00"),
]


def ref(kind: str, rid: str) -> dict:
    return {"reference": f"{kind}/{rid}"}


def entry(res: dict) -> dict:
    return {"fullUrl": f"http://ehr.example.org/fhir/{res['resourceType']}/{res['id']}", "resource": res}


def observation(pid: str, oid: str, test: str, day: date, value: float, unit: tuple, enc: str | None) -> dict:
    code, display, _, ucum, text, rr = TESTS[test]
    if unit:
        ucum, text, _, rr = unit
    obs = {"resourceType": "Observation", "id": oid, "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                     "code": "laboratory"}]}],
           "code": {"coding": [{"system": LOINC, "code": code}], "text": display},
           "subject": ref("Patient", pid), "effectiveDateTime": f"{day.isoformat()}T08:30:00+08:00",
           "valueQuantity": {"value": value, "unit": text, "system": UCUM, "code": ucum}}
    if enc:
        obs["encounter"] = ref("Encounter", enc)
    if rr:
        obs["referenceRange"] = [{"low": {"value": rr[0], "unit": text, "system": UCUM, "code": ucum},
                                  "high": {"value": rr[1], "unit": text, "system": UCUM, "code": ucum}}]
    return obs


def investigator_ae(pid: str, ae: dict) -> dict:
    """An AdverseEvent as the investigator records it (EDC): coded event, suspects as contained Medications."""
    system, code, display = ae["code"]
    res: dict = {"resourceType": "AdverseEvent", "id": ae["id"], "actuality": "actual",
                 "event": {"coding": [{"system": system, "code": code, "display": display}], "text": ae.get("text", display)},
                 "subject": ref("Patient", pid), "date": ae["date"], "recordedDate": ae["date"],
                 "study": [STUDY]}
    if ae.get("grade"):
        res["extension"] = [{"url": CTCAE_GRADE, "valueInteger": ae["grade"]}]
    if ae.get("seriousness"):
        res["seriousness"] = {"coding": [{"system": SERIOUSNESS, "code": ae["seriousness"]}]}
    if ae.get("outcome"):
        res["outcome"] = {"coding": [{"system": OUTCOME, "code": ae["outcome"]}]}
    contained, suspects = [], []
    for drug, assessment in ae.get("causality", {}).items():
        contained.append({"resourceType": "Medication", "id": drug,
                          "code": {"coding": [{"system": RX, "code": DRUGS[drug], "display": drug}]}})
        suspects.append({"instance": {"reference": f"#{drug}"},
                         "causality": [{"assessment": {"coding": [{"system": CAUSALITY, "code": assessment}]},
                                        "author": {"reference": "Practitioner/pi-zj2h"}}]})
    if contained:
        res["contained"], res["suspectEntity"] = contained, suspects
    return res


def build(s: dict) -> dict:
    pid, d1 = s["id"], s["d1"]
    entries = []
    patient = {"resourceType": "Patient", "id": pid,
               "identifier": [{"system": "http://hospital.example.org/mrn", "value": f"MRN-9{pid[1:]}"}],
               "name": [{"family": f"Sample{pid.upper()}", "given": ["Trial"]}],
               "gender": s["gender"], "birthDate": s["birth"]}
    if s.get("deceased"):
        patient["deceasedDateTime"] = s["deceased"]
    entries.append(entry(patient))
    period = {"start": d1.isoformat()}
    if s.get("off_study") or s.get("withdrawn"):
        period["end"] = s.get("off_study") or s["withdrawn"]
    status = "withdrawn" if s.get("withdrawn") else "off-study" if s.get("off_study") else "on-study"
    entries.append(entry({"resourceType": "ResearchSubject", "id": f"{pid}-rs",
                          "identifier": [{"system": "http://hospital.example.org/trial-subject", "value": f"3T-{pid}"}],
                          "status": status, "period": period,
                          "study": STUDY, "individual": ref("Patient", pid)}))
    for drug, rx in DRUGS.items():
        if drug in s.get("regimen", {}):
            concept = {"coding": [{"system": RX, "code": rx, "display": drug}], "text": drug}
            for j, (start, end, mstatus, mg, per_day, why) in enumerate(s["regimen"][drug]):
                ms = {"resourceType": "MedicationStatement", "id": f"{pid}-{drug}-{j + 1}", "status": mstatus,
                      "medicationCodeableConcept": concept, "subject": ref("Patient", pid),
                      "effectivePeriod": {"start": start, **({"end": end} if end else {})}, "dateAsserted": start,
                      "dosage": [{"route": ORAL, "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                                  "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}}]}]}
                if why:
                    ms["reasonReference"] = [ref("AdverseEvent", why)]
                if mstatus == "stopped":
                    ms["statusReason"] = [{"coding": [{"system": SCT, "code": "281647001", "display": "Adverse reaction"}]}]
                entries.append(entry(ms))
            continue
        eff = {"start": d1.isoformat()}
        stop = s.get("off_study") or s.get("withdrawn") or (s["deceased"][:10] if s.get("deceased") else None)
        if stop:
            eff["end"] = stop
        concept = {"coding": [{"system": RX, "code": rx, "display": drug}], "text": drug}
        stopped = s.get("stopped", {}).get(drug)
        if drug == "tacrolimus" and s.get("tacrolimus_as_request"):
            entries.append(entry({"resourceType": "MedicationRequest", "id": f"{pid}-{drug}", "status": "active",
                                  "intent": "order", "medicationCodeableConcept": concept,
                                  "subject": ref("Patient", pid), "authoredOn": (d1 - timedelta(days=3)).isoformat()}))
            continue
        ms = {"resourceType": "MedicationStatement", "id": f"{pid}-{drug}",
              "status": "completed" if stop else "active", "medicationCodeableConcept": concept,
              "subject": ref("Patient", pid), "effectivePeriod": eff, "dateAsserted": d1.isoformat()}
        if stopped:
            ms.update(status="stopped", effectivePeriod={"start": d1.isoformat(), "end": stopped},
                      statusReason=[{"coding": [{"system": "http://snomed.info/sct", "code": "281647001",
                                                 "display": "Adverse reaction"}], "text": "adverse reaction"}])
        entries.append(entry(ms))
    labs = s.get("labs", {})
    units = s.get("units", {})
    k = 0
    last_visit = None
    while True:
        day = d1 + timedelta(days=14 * k)
        if day > s["visits_until"]:
            break
        last_visit = day
        enc = f"{pid}-v{k:02d}"
        entries.append(entry({"resourceType": "Encounter", "id": enc, "status": "finished",
                              "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                                        "display": "ambulatory"},
                              "type": [{"text": f"3T study visit week {2 * k}"}], "subject": ref("Patient", pid),
                              "period": {"start": f"{day.isoformat()}T08:00:00+08:00",
                                         "end": f"{day.isoformat()}T10:00:00+08:00"}}))
        for test, (_, _, normal, *_rest) in TESTS.items():
            u = units.get(test)
            value = labs.get(test, {}).get(k, u[2] if u else normal)
            entries.append(entry(observation(pid, f"{enc}-{test}", test, day, value, u, enc)))
        k += 1
    for day_text, value in labs.get("potassium_extra", {}).items():
        day = date.fromisoformat(day_text)
        entries.append(entry(observation(pid, f"{pid}-k-{day_text}", "potassium", day, value, None, None)))
    severities = {"mild": "255604002", "moderate": "6736007", "severe": "24484000"}
    for i, (code, display, onset, status, abatement, *severity) in enumerate(s.get("conditions", [])):
        cond = {"resourceType": "Condition", "id": f"{pid}-c{i + 1}",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": status}]},
                "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                   "code": "confirmed"}]},
                "code": {"coding": [{"system": ICD, "code": code, "display": display}], "text": display},
                "subject": ref("Patient", pid), "onsetDateTime": onset, "recordedDate": onset}
        if abatement:
            cond["abatementDateTime"] = abatement
        if severity:
            cond["severity"] = {"coding": [{"system": "http://snomed.info/sct", "code": severities[severity[0]],
                                            "display": severity[0].capitalize()}]}
        entries.append(entry(cond))
    for j, (code, name, text, start, end, route) in enumerate(s.get("other_meds", [])):
        entries.append(entry({"resourceType": "MedicationAdministration", "id": f"{pid}-ma{j + 1}", "status": "completed",
                              "medicationCodeableConcept": {"coding": [{"system": RX, "code": code, "display": name}],
                                                            "text": text},
                              "subject": ref("Patient", pid),
                              "effectivePeriod": {"start": f"{start}T12:00:00+08:00", "end": f"{end}T12:00:00+08:00"},
                              "dosage": {"route": route}}))
    for day_text in s.get("late_visits", []):
        entries.append(entry({"resourceType": "Encounter", "id": f"{pid}-late-{day_text}", "status": "finished",
                              "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                                        "display": "ambulatory"},
                              "type": [{"text": "rheumatology clinic"}], "subject": ref("Patient", pid),
                              "period": {"start": f"{day_text}T09:00:00+08:00", "end": f"{day_text}T09:30:00+08:00"}}))
    for ae in s.get("investigator", []):
        entries.append(entry(investigator_ae(pid, ae)))
    for j, (start, end) in enumerate(s.get("inpatient", [])):
        entries.append(entry({"resourceType": "Encounter", "id": f"{pid}-adm{j + 1}", "status": "finished",
                              "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP",
                                        "display": "inpatient encounter"},
                              "type": [{"text": "Emergency admission"}], "subject": ref("Patient", pid),
                              "period": {"start": start, "end": end}}))
    return {"resourceType": "Bundle", "id": f"bundle-{pid}", "type": "collection",
            "timestamp": f"{AS_OF.isoformat()}T08:00:00+08:00", "entry": entries}


if __name__ == "__main__":
    for n, s in enumerate(SUBJECTS, 1):
        path = HERE / f"{n:02d}-{s['id']}.json"
        path.write_text(json.dumps(build(s), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(path.name, len(build(s)["entry"]), "entries")
