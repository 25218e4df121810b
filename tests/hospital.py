"""Hospital-shaped patients with ground truth: the oracle the screening engine is tested against.

Patients are shaped the way a Chinese tertiary hospital's systems send them (issue 9): the HBV
five-marker panel (乙肝五项) and the myositis antibody panel as components of one Observation, a
pulmonary-function panel with DLCO as a component, `hasMember` panels, DiagnosticReports whose
`result` points at Observations, local codes with Chinese display text (and a ConceptMap for them),
+08:00 timestamps around midnight and window edges, RxNorm product (SCD/SBD) and local formulary
codes for the E1/E2/E3/E11 drugs, DLCO units `%`, `{%pred}`, `%{pred}`, `% pred`, Chinese grade
strings, full-width characters, values with reference text, and every record split over the
systems of a multi-system export (HIS, LIS, PACS, pharmacy, TB clinic, an outside lab).

The truth is derived from shared/spec/eligibility.md by construction, never by running fhir3t:
each patient is a baseline that is eligible by the spec, plus one change whose effect on each
criterion is written next to it. Where the spec is silent and nothing is unambiguous, the truth
is `unknown`; where a person reads a value unambiguously (`阴性(-)` is negative) that reading is
expected and the spec-literal `unknown` acceptable. `acceptable` lists the other answers a
careful reading may give; none of them makes a patient eligible whom the expected answers do
not (an engine with a terminology server may say `met` where one without says `unknown`; both
are accepted). The truth goes to a sidecar file, never into FHIR.

    python tests/hospital.py OUT_DIR [--layout ndjson|bundles|both] [--gz]

writes OUT_DIR/<layout>/... (FHIR input; a ConceptMap among it) and OUT_DIR/truth.ndjson.
Screen with `--as-of 2026-11-16` (d1 = as_of) and the ConceptMap written beside the data.
"""
from __future__ import annotations

import argparse
import copy
import gzip
import itertools
import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

AS_OF = date(2026, 11, 16)

CRITERIA = ("I1-age", "I2-dm", "I3-mda5", "I4-dlco", "I5-ct", "I6-contraception", "I7-compliance", "I8-consent",
            "E1-prior-3t-failure", "E2-recent-immunomodulator", "E3-depleting-agent", "E4-investigational",
            "E5-immunodeficiency", "E6-malignancy", "E7-hbv", "E8-hcv", "E9-hiv", "E10-tb", "E11-hypersensitivity",
            "E12-vaccination", "E13-pregnancy", "E14-investigator")
MET, NOT_MET, UNKNOWN = "met", "not-met", "unknown"

# ---- code systems (standard ones as the spec names them; the hospital's are fictional) ---------
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
V3I = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBSCAT = "http://terminology.hl7.org/CodeSystem/observation-category"
CHECKLIST = "https://fhir3t.github.io/fhir/Questionnaire/3t-screening-checklist"
SITE = "http://zj2h.example.org/fhir"  # fictional: the site's systems
LIS = f"{SITE}/CodeSystem/lis-test"
HISDX = f"{SITE}/CodeSystem/his-diagnosis-gb"  # ICD-10 national clinical edition extension codes
FORMULARY = f"{SITE}/CodeSystem/formulary"
PACS = f"{SITE}/CodeSystem/pacs-exam"
VACCINE = f"{SITE}/CodeSystem/vaccine"
CONCEPT_MAP_FILE = "ConceptMap-zj2h-local.json"

#: systems of the multi-system export: folder name -> how its references are written
SYSTEMS = {"his": "relative", "lis": "relative", "pacs": "absolute", "pharmacy": "relative", "tb": "relative",
           "tb-clinic": "relative", "outside-lab": "absolute", "ehr-later": "relative"}
ABSOLUTE_BASE = {"pacs": "http://pacs.zj2h.example.org/fhir", "outside-lab": "http://lab.example.org/fhir"}
#: Bundle layout: the hospital EHR's $everything (HIS + LIS + PACS + the TB lab) holds the Patient;
#: the pharmacy, the TB clinic and the outside lab send their own Bundles (without it, or with a copy)
BUNDLE_OF = {"his": "ehr", "lis": "ehr", "pacs": "ehr", "tb": "ehr", "pharmacy": "pharmacy", "tb-clinic": "tb-clinic",
             "outside-lab": "outside-lab", "ehr-later": "ehr-later"}
#: "ehr-later" is a later export of the same EHR (the same ids, newer versions: issue 20's class 1)

# ---- local codes and their standard targets (the ConceptMap) -----------------------------------
#: LIS code -> (Chinese display, LOINC or None when the hospital never mapped it)
LIS_CODES: dict[str, tuple[str, str | None]] = {
    "HBV5": ("乙肝五项", None), "HBSAG": ("乙肝表面抗原", "5196-1"), "HBSAB": ("乙肝表面抗体", None),
    "HBEAG": ("乙肝e抗原", None), "HBEAB": ("乙肝e抗体", None), "HBCAB": ("乙肝核心抗体", "16933-4"),
    "HBVDNA": ("乙肝病毒DNA定量", "42595-9"), "HCVAB": ("丙肝抗体", "13955-0"), "HCVRNA": ("丙肝病毒RNA定量", "11011-4"),
    "HIVAGAB": ("HIV抗原抗体联合检测", "56888-1"), "TSPOT": ("T-SPOT.TB (结核感染T细胞斑点试验)", "71773-6"),
    "HCG": ("血清人绒毛膜促性腺激素", "2106-3"), "MSA": ("肌炎抗体谱", None), "MDA5": ("抗MDA5抗体", "82424-3"),
    "JO1": ("抗Jo-1抗体", None), "PL7": ("抗PL-7抗体", None), "PL12": ("抗PL-12抗体", None), "EJ": ("抗EJ抗体", None),
    "OJ": ("抗OJ抗体", None), "MI2": ("抗Mi-2抗体", None), "TIF1G": ("抗TIF1-γ抗体", None), "NXP2": ("抗NXP2抗体", None),
    "SAE1": ("抗SAE1抗体", None), "RO52": ("抗Ro-52抗体", None), "PFT": ("肺功能检查", None),
    "DLCOPP": ("一氧化碳弥散量实测值/预计值%", "98130-8"), "DLCOM": ("一氧化碳弥散量实测值", "19911-7"),
    "DLCOP": ("一氧化碳弥散量预计值", "19910-9"), "FVCPP": ("用力肺活量占预计值%", None),
    "WBC": ("白细胞计数", None), "HGB": ("血红蛋白", None), "PLT": ("血小板计数", None), "ALT": ("丙氨酸氨基转移酶", None),
    "AST": ("天门冬氨酸氨基转移酶", None), "CK": ("肌酸激酶", None), "LDH": ("乳酸脱氢酶", None), "FER": ("铁蛋白", None),
    "CRE": ("肌酐", None), "ESR": ("血沉", None),
}
PACS_CODES = {"CTCHEST": ("胸部CT平扫", "24627-2"), "HRCT": ("胸部高分辨率CT", "29252-4")}
#: HIS diagnosis (national clinical edition) -> (display, ICD-10 target or None)
HISDX_CODES = {"M33.101": ("皮肌炎", "M33.1"), "M33.102": ("无肌病性皮肌炎", "M33.1"), "M33.001": ("幼年型皮肌炎", "M33.0"),
               "I10.x00": ("高血压", "I10"), "K21.901": ("胃食管反流病", "K21.9"), "B18.101": ("慢性乙型病毒性肝炎", "B18.1"),
               "A15.001": ("肺结核", "A15.0"), "C50.901": ("乳腺恶性肿瘤", "C50.9")}


@dataclass(frozen=True)
class Drug:
    name: str
    zh: str
    brand: str
    brand_zh: str
    group: str  # 3T | E2 | E3 | other
    ingredient: str  # RxNorm ingredient as the spec lists it
    atc: str
    #: illustrative RxNorm clinical-drug / branded-drug codes: NOT verified against RxNorm; only
    #: their absence from the value sets matters here (tests check that)
    scd: tuple[str, str]
    sbd: tuple[str, str]
    formulary: str  # local formulary code


DRUGS = {d.name: d for d in (
    Drug("baricitinib", "巴瑞替尼", "Olumiant", "艾乐明", "E2", "2047232", "L04AF02",
         ("2047237", "baricitinib 2 MG Oral Tablet"), ("2047241", "Olumiant 2 MG Oral Tablet"), "YP07310"),
    Drug("upadacitinib", "乌帕替尼", "Rinvoq", "瑞福", "E2", "2196092", "L04AF03",
         ("2196098", "upadacitinib 15 MG Extended Release Oral Tablet"), ("2196100", "Rinvoq 15 MG Extended Release Oral Tablet"), "YP07322"),
    Drug("ruxolitinib", "芦可替尼", "Jakafi", "捷恪卫", "E2", "1193326", "L01EJ01",
         ("1193332", "ruxolitinib 5 MG Oral Tablet"), ("1193334", "Jakafi 5 MG Oral Tablet"), "YP08801"),
    Drug("cyclosporine", "环孢素", "Neoral", "新山地明", "E2", "3008", "L04AD01",
         ("835893", "cycloSPORINE 25 MG Oral Capsule"), ("241834", "Neoral 25 MG Oral Capsule"), "YP07105"),
    Drug("lenalidomide", "来那度胺", "Revlimid", "瑞复美", "E2", "342369", "L04AX04",
         ("351279", "lenalidomide 10 MG Oral Capsule"), ("351281", "Revlimid 10 MG Oral Capsule"), "YP08012"),
    Drug("tofacitinib", "托法替布", "Xeljanz", "尚杰", "3T", "1357536", "L04AF01",
         ("1357540", "tofacitinib 5 MG Oral Tablet"), ("1357542", "Xeljanz 5 MG Oral Tablet"), "YP07330"),
    Drug("tacrolimus", "他克莫司", "Prograf", "普乐可复", "3T", "42316", "L04AD02",
         ("198378", "tacrolimus 1 MG Oral Capsule"), ("152916", "Prograf 1 MG Oral Capsule"), "YP07110"),
    Drug("thalidomide", "沙利度胺", "Thalomid", "反应停", "3T", "10432", "L04AX02",
         ("205323", "thalidomide 50 MG Oral Capsule"), ("205324", "Thalomid 50 MG Oral Capsule"), "YP08003"),
    Drug("rituximab", "利妥昔单抗", "Rituxan", "美罗华", "E3", "121191", "L01FA01",
         ("1731560", "rituximab 10 MG/ML Injectable Solution"), ("1731564", "Rituxan 10 MG/ML Injectable Solution"), "YP09001"),
    Drug("omeprazole", "奥美拉唑", "Losec", "洛赛克", "other", "7646", "A02BC01",
         ("1295351", "omeprazole 20 MG Delayed Release Oral Capsule"), ("1295352", "Losec 20 MG Delayed Release Oral Capsule"), "YP01201"),
)}
#: formulary codes the hospital mapped in its ConceptMap (the others are sent unmapped)
MAPPED_FORMULARY = {"baricitinib", "tacrolimus", "rituximab", "thalidomide", "omeprazole"}


def concept_map() -> dict:
    """The hospital's ConceptMap: LIS, PACS, HIS diagnosis and formulary codes to standard ones."""
    def group(source: str, target: str, rows: Iterable[tuple[str, str, str | None]]) -> dict:
        return {"source": source, "target": target,
                "element": [{"code": c, "display": d, "target": [{"code": t, "equivalence": "equivalent"}]}
                            for c, d, t in rows if t]}

    return {
        "resourceType": "ConceptMap", "id": "zj2h-local-to-standard", "url": f"{SITE}/ConceptMap/local-to-standard",
        "version": "2026.11", "name": "Zj2hLocalToStandard", "status": "active", "date": "2026-11-01",
        "publisher": "fictional tertiary hospital (test data)",
        "description": "Local LIS / PACS / HIS diagnosis / formulary codes of a fictional hospital to LOINC, ICD-10 and RxNorm "
                       "(fhir3t test data; product codes in the data are deliberately NOT mapped).",
        "group": [group(LIS, LOINC, ((c, d, t) for c, (d, t) in LIS_CODES.items())),
                  group(PACS, LOINC, ((c, d, t) for c, (d, t) in PACS_CODES.items())),
                  group(HISDX, ICD10, ((c, d, t) for c, (d, t) in HISDX_CODES.items())),
                  group(FORMULARY, RX, ((d.formulary, f"{d.zh}", d.ingredient) for d in DRUGS.values() if d.name in MAPPED_FORMULARY))],
    }


# ---- the chart: one patient's resources by slot, and its truth ----------------------------------
Item = tuple[str, dict]  # (system folder, resource)


@dataclass
class Chart:
    """One generated patient: resources grouped in named slots (so a scenario can replace one), truth."""

    pid: str
    scenario: str
    as_of: date
    gender: str
    birth: str
    slots: dict[str, list[Item]] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)
    acceptable: dict[str, set[str]] = field(default_factory=dict)
    description: str = ""
    n: itertools.count = field(default_factory=lambda: itertools.count(1))
    #: documents written as they are beside the resources (system folder, file name, JSON): a history
    #: Bundle, a record whose resourceType is garbled (not a valid resource, so not among the slots)
    documents: list[tuple[str, str, dict]] = field(default_factory=list)

    def rid(self, tag: str) -> str:
        return f"{self.pid}-{tag}{next(self.n)}"

    def put(self, slot: str, *items: Item) -> None:
        self.slots[slot] = list(items)

    def add(self, slot: str, *items: Item) -> None:
        self.slots.setdefault(slot, []).extend(items)

    def expect(self, crit: str, result: str, *also: str) -> None:
        assert crit in CRITERIA and result in (MET, NOT_MET, UNKNOWN), (crit, result)
        self.expected[crit] = result
        self.acceptable[crit] = {result, *also}

    def allow(self, result: str, *crits: str) -> None:
        """Also accept `result` for these criteria (a safe answer the spec leaves open)."""
        for crit in crits:
            self.acceptable[crit].add(result)

    def items(self) -> list[Item]:
        return [it for slot in self.slots.values() for it in slot]

    def day(self, back: int) -> str:
        return (self.as_of - timedelta(days=back)).isoformat()

    @property
    def key(self) -> str:
        return f"Patient/{self.pid}"

    def status(self) -> str:
        return status_of(self.expected)

    def statuses(self) -> set[str]:
        """Every status the acceptable answers can give (the expected one among them)."""
        alts = [sorted(self.acceptable.get(c, {self.expected[c]})) for c in CRITERIA]
        return {status_of(dict(zip(CRITERIA, combo))) for combo in itertools.product(*alts)}

    def truth(self) -> dict[str, Any]:
        return {"patient": self.key, "scenario": self.scenario, "description": self.description,
                "as_of": self.as_of.isoformat(), "d1": self.as_of.isoformat(), "status": self.status(),
                "acceptable_status": sorted(self.statuses()),
                "criteria": {c: self.expected[c] for c in CRITERIA},
                "acceptable": {c: sorted(self.acceptable[c]) for c in CRITERIA if len(self.acceptable[c]) > 1}}


def status_of(results: dict[str, str]) -> str:
    """eligibility.md §2: ineligible if an inclusion is not-met or an exclusion met; eligible if all pass."""
    if any((c.startswith("I") and r == NOT_MET) or (c.startswith("E") and r == MET) for c, r in results.items()):
        return "ineligible"
    if all(r == (MET if c.startswith("I") else NOT_MET) for c, r in results.items()):
        return "eligible"
    return "candidate"


# ---- resource builders --------------------------------------------------------------------------
def coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def concept(*codings: dict, text: str | None = None) -> dict:
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = list(codings)
    if text:
        out["text"] = text
    return out


def lis(code: str, loinc: bool = True) -> dict:
    """An LIS test code: the local coding, plus LOINC where the hospital sends it (`loinc`)."""
    display, target = LIS_CODES[code]
    codings = [coding(LIS, code, display)]
    if loinc and target:
        codings.append(coding(LOINC, target))
    return concept(*codings, text=display)


def loinc(code: str, display: str) -> dict:
    return concept(coding(LOINC, code, display), text=display)


def ts(day: str, hhmm: str = "09:30", zone: str = "+08:00") -> str:
    return f"{day}T{hhmm}:00{zone}"


POS_CC = {"valueCodeableConcept": concept(coding(SCT, "10828004", "Positive"), text="阳性")}
NEG_CC = {"valueCodeableConcept": concept(coding(SCT, "260385009", "Negative"), text="阴性")}


def v_str(s: str) -> dict:
    return {"valueString": s}


def v_qty(value: float, unit: str, code: str | None = None, comparator: str | None = None) -> dict:
    q: dict[str, Any] = {"value": value, "unit": unit}
    if code is not None:
        q["system"], q["code"] = UCUM, code
    if comparator:
        q["comparator"] = comparator
    return {"valueQuantity": q}


def interp(code: str, text: str | None = None) -> dict:
    return {"interpretation": [concept(coding(V3I, code), text=text)]}


class Build:
    """Resource builders bound to one chart (ids, subject reference per system)."""

    def __init__(self, chart: Chart) -> None:
        self.c = chart

    def subject(self, system: str) -> dict:
        if SYSTEMS.get(system) == "absolute":
            return {"reference": f"{ABSOLUTE_BASE[system]}/Patient/{self.c.pid}"}
        return {"reference": f"Patient/{self.c.pid}"}

    def obs(self, system: str, code: dict, when: str | None, *, category: str = "laboratory", status: str = "final",
            subject: bool = True, issued: str | None = None, **value: Any) -> Item:
        r: dict[str, Any] = {"resourceType": "Observation", "id": self.c.rid("o"), "status": status,
                             "category": [concept(coding(OBSCAT, category))], "code": code}
        if subject:
            r["subject"] = self.subject(system)
        if when is not None:
            r["effectiveDateTime"] = when
        if issued:
            r["issued"] = issued
        r.update(value)
        return system, r

    def panel(self, system: str, code: dict, when: str, components: list[dict], **extra: Any) -> Item:
        """An LIS panel: one Observation whose results are components (no value of its own)."""
        return self.obs(system, code, when, issued=_issued(when), component=components, **extra)

    def cond(self, system: str, code: dict, *, clinical: str | None = "active", verification: str | None = "confirmed",
             **dates: Any) -> Item:
        r: dict[str, Any] = {"resourceType": "Condition", "id": self.c.rid("c"), "code": code, "subject": self.subject(system)}
        if clinical:
            r["clinicalStatus"] = concept(coding(CLIN, clinical))
        if verification:
            r["verificationStatus"] = concept(coding(VER, verification))
        r.update(dates)
        return system, r

    def med(self, rtype: str, drug: dict | None, *, status: str, system: str = "pharmacy", med_ref: str | None = None,
            **extra: Any) -> Item:
        r: dict[str, Any] = {"resourceType": rtype, "id": self.c.rid("m"), "status": status, "subject": self.subject(system)}
        if rtype == "MedicationRequest":
            r["intent"] = "order"
        if med_ref:
            r["medicationReference"] = {"reference": med_ref}
        else:
            r["medicationCodeableConcept"] = drug
        r.update(extra)
        return system, r


def _issued(when: str) -> str:
    """A report issued a few hours after collection (same local day), as an instant."""
    day = when[:10]
    return f"{day}T16:40:00.000+08:00"


def comp(code: dict, **value: Any) -> dict:
    return {"code": code, **value}


# ---- the baseline: eligible by the spec, shaped like the hospital's data ------------------------
def baseline(pid: str, scenario: str, rng: random.Random, as_of: date = AS_OF, gender: str | None = None,
             age: int | None = None) -> Chart:
    gender = gender or rng.choice(["male", "female"])
    age = age if age is not None else rng.randint(25, 70)
    born = as_of - relativedelta(years=age) - timedelta(days=rng.randint(1, 300))
    c = Chart(pid, scenario, as_of, gender, born.isoformat())
    b = Build(c)
    his = "his"
    c.put("patient", (his, {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": c.birth,
                            "identifier": [{"system": f"{SITE}/sid/mrn", "value": f"MRN{pid}"}],
                            "name": [{"text": f"测试患者{pid}"}], "address": [{"city": "杭州市", "country": "CN"}]}))
    c.expect("I1-age", MET)
    # I2: a national-clinical-edition diagnosis code (mapped by the ConceptMap) or WHO ICD-10 directly
    dm_code = rng.choice([concept(coding(HISDX, "M33.101", "皮肌炎"), text="皮肌炎"),
                          concept(coding(ICD10, "M33.1", "其他皮肌炎"), text="皮肌炎"),
                          concept(coding(HISDX, "M33.102", "无肌病性皮肌炎"), coding(ICD10, "M33.1"), text="临床无肌病性皮肌炎")])
    c.put("dm", b.cond(his, dm_code, onsetDateTime=c.day(rng.randint(60, 400)), recordedDate=c.day(rng.randint(20, 50))))
    c.expect("I2-dm", MET)
    lab_day = c.day(rng.randint(6, 20))
    c.put("mda5", b.obs("lis", lis("MDA5"), ts(lab_day, "08:10"), issued=_issued(lab_day), **v_str(rng.choice(["+++", "++"]))))
    c.expect("I3-mda5", MET)
    c.put("dlco", b.obs("lis", lis("DLCOPP"), ts(c.day(rng.randint(3, 20)), "10:00"), category="exam",
                        **v_qty(rng.choice([48.0, 55.5, 62.0, 71.3]), "%", "%")))
    c.expect("I4-dlco", MET)
    c.put("ct", ct_report(b, c.day(rng.randint(3, 25)), concept(coding(SCT, "233703007", "Interstitial lung disease"), text="间质性肺病")))
    c.expect("I5-ct", MET)
    c.put("checklist", (his, checklist(c, c.day(rng.randint(1, 10)))))
    for crit in ("I6-contraception", "I7-compliance", "I8-consent"):
        c.expect(crit, MET)
    c.expect("E14-investigator", NOT_MET)
    for crit in ("E1-prior-3t-failure", "E2-recent-immunomodulator", "E3-depleting-agent", "E4-investigational",
                 "E5-immunodeficiency", "E6-malignancy", "E11-hypersensitivity", "E12-vaccination"):
        c.expect(crit, NOT_MET)  # no record: the EHR is taken as complete
    neg = rng.choice([v_str("阴性"), NEG_CC, {**v_str("阴性"), **interp("NEG", "阴性")}])
    hep_day = c.day(rng.randint(5, 20))
    c.put("hbv", b.obs("lis", lis("HBSAG"), ts(hep_day, "07:40"), issued=_issued(hep_day), **neg),
          b.obs("lis", lis("HBCAB"), ts(hep_day, "07:40"), issued=_issued(hep_day), **neg))
    c.expect("E7-hbv", NOT_MET)
    c.put("hcv", b.obs("lis", lis("HCVAB"), ts(hep_day, "07:40"), issued=_issued(hep_day), **neg))
    c.expect("E8-hcv", NOT_MET)
    c.put("hiv", b.obs("lis", lis("HIVAGAB"), ts(hep_day, "07:40"), issued=_issued(hep_day), **neg))
    c.expect("E9-hiv", NOT_MET)
    c.put("tb", b.obs("tb", lis("TSPOT"), ts(c.day(rng.randint(5, 20)), "09:00"), **v_str("阴性")))
    c.expect("E10-tb", NOT_MET)
    if gender == "female" and age < 55:
        c.put("hcg", b.obs("lis", lis("HCG"), ts(c.day(rng.randint(1, 10)), "08:00"), **v_qty(0.5, "mIU/mL", "m[IU]/mL", "<")))
        # a hCG below the limit of detection is negative (spec §3: comparator `<`)
    c.expect("E13-pregnancy", NOT_MET)  # male, female >= 55, or negative hCG
    background(c, b, rng)
    return c


def ct_report(b: Build, day: str, finding: dict | None, text: str = "双肺间质性改变", code: dict | None = None) -> Item:
    r: dict[str, Any] = {"resourceType": "DiagnosticReport", "id": b.c.rid("dr"), "status": "final",
                         "category": [concept(coding("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD"))],
                         "code": code or concept(coding(PACS, "CTCHEST", "胸部CT平扫"), coding(LOINC, "24627-2"), text="胸部CT平扫"),
                         "subject": b.subject("pacs"), "effectiveDateTime": ts(day, "14:20"), "issued": f"{day}T18:05:00+08:00",
                         "conclusion": text}
    if finding:
        r["conclusionCode"] = [finding]
    return "pacs", r


def checklist(c: Chart, day: str, **answers: bool) -> dict:
    ans = {"contraception": True, "compliance": True, "consent": True, "investigator-ok": True, **answers}
    return {"resourceType": "QuestionnaireResponse", "id": c.rid("qr"), "status": "completed", "questionnaire": CHECKLIST,
            "subject": {"reference": f"Patient/{c.pid}"}, "authored": ts(day, "11:00"),
            "item": [{"linkId": k, "answer": [{"valueBoolean": v}]} for k, v in ans.items()]}


def background(c: Chart, b: Build, rng: random.Random) -> None:
    """What a real record also holds and no criterion reads: visits, vitals, routine labs, old vaccines."""
    items: list[Item] = []
    for _ in range(3):
        day = c.day(rng.randint(1, 200))
        items.append(("his", {"resourceType": "Encounter", "id": c.rid("e"), "status": "finished",
                              "class": coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "门诊"),
                              "subject": b.subject("his"), "period": {"start": ts(day, "08:30"), "end": ts(day, "09:10")}}))
    for code in rng.sample(["WBC", "HGB", "PLT", "ALT", "AST", "CK", "LDH", "FER", "CRE", "ESR"], 6):
        day = c.day(rng.randint(1, 60))
        items.append(b.obs("lis", lis(code), ts(day, "07:30"), issued=_issued(day), **v_qty(round(rng.uniform(1, 300), 1), "U/L", "U/L")))
    items.append(b.obs("his", loinc("85354-9", "Blood pressure panel"), ts(c.day(2), "09:00"), category="vital-signs",
                       component=[comp(loinc("8480-6", "Systolic blood pressure"), **v_qty(rng.randint(105, 150), "mmHg", "mm[Hg]")),
                                  comp(loinc("8462-4", "Diastolic blood pressure"), **v_qty(rng.randint(60, 95), "mmHg", "mm[Hg]"))]))
    items.append(b.cond("his", concept(coding(HISDX, "K21.901", "胃食管反流病"), text="胃食管反流病"), onsetDateTime=c.day(900)))
    omep = DRUGS["omeprazole"]
    items.append(b.med("MedicationRequest", concept(coding(FORMULARY, omep.formulary, f"{omep.zh}肠溶胶囊 20mg"), text=f"{omep.zh}肠溶胶囊"),
                       status="active", authoredOn=c.day(30)))
    items.append(("his", {"resourceType": "Immunization", "id": c.rid("v"), "status": "completed", "patient": b.subject("his"),
                          "vaccineCode": concept(coding(CVX, "141", "Influenza, seasonal, injectable"), text="流感疫苗"),
                          "occurrenceDateTime": c.day(rng.randint(200, 700))}))
    c.put("background", *items)


# ---- scenarios: one change to the baseline each, with its truth ---------------------------------
Scenario = Callable[[Chart, Build, random.Random], None]
SCENARIOS: dict[str, tuple[str, Scenario]] = {}


def scenario(name: str, description: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        assert name not in SCENARIOS, name
        SCENARIOS[name] = (description, fn)
        return fn
    return register


scenario("baseline", "eligible by the spec, LIS-shaped standalone results")(lambda c, b, rng: None)


def hbv_panel(b: Build, system: str, when: str, hbsag: dict, hbcab: dict, *, local_only: bool = False) -> Item:
    """乙肝五项: five components of one Observation (HBsAg, anti-HBs, HBeAg, anti-HBe, anti-HBc)."""
    neg, pos = v_str("阴性"), v_str("阳性")
    return b.panel(system, lis("HBV5"), when, [
        comp(lis("HBSAG", not local_only), **hbsag), comp(lis("HBSAB"), **pos), comp(lis("HBEAG"), **neg),
        comp(lis("HBEAB"), **neg), comp(lis("HBCAB", not local_only), **hbcab)])


@scenario("hbv-panel-hbsag-pos", "乙肝五项 panel: HBsAg component 阳性, no standalone HBsAg")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("hbv", hbv_panel(b, "lis", ts(c.day(6), "07:20"), v_str("阳性"), v_str("阳性")))
    c.expect("E7-hbv", MET)


@scenario("hbv-panel-newer-pos", "older standalone HBsAg negative, newer 乙肝五项 panel with HBsAg 阳性 (issue 9 class 1)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("hbv", b.obs("outside-lab", loinc("5196-1", "HBsAg"), c.day(20), **NEG_CC),
          b.obs("outside-lab", loinc("16933-4", "anti-HBc"), c.day(20), **NEG_CC),
          hbv_panel(b, "lis", ts(c.day(4), "07:20"), POS_CC, v_str("阴性")))
    c.expect("E7-hbv", MET)


@scenario("hbv-panel-older-pos", "older 乙肝五项 panel with HBsAg 阳性, newer standalone HBsAg negative: the newer decides")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("hbv", hbv_panel(b, "lis", ts(c.day(20), "07:20"), v_str("阳性"), v_str("阴性")),
          b.obs("lis", lis("HBSAG"), ts(c.day(4), "07:20"), **v_str("阴性")))
    c.expect("E7-hbv", NOT_MET, UNKNOWN)


@scenario("hbv-panel-all-neg", "乙肝五项 panel all negative, no standalone results")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("hbv", hbv_panel(b, "lis", ts(c.day(6), "07:20"), v_str("阴性"), NEG_CC))
    c.expect("E7-hbv", NOT_MET, UNKNOWN)


@scenario("hbv-panel-local-codes", "乙肝五项 panel whose components carry only LIS codes (the ConceptMap maps them): HBsAg 阳性")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("hbv", hbv_panel(b, "lis", ts(c.day(6), "07:20"), v_str("阳性"), v_str("阴性"), local_only=True))
    c.expect("E7-hbv", MET)


@scenario("hbv-panel-antihbc-dna-neg", "panel HBsAg 阴性, anti-HBc 阳性; HBV DNA <20 IU/mL (below detection = negative)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("hbv", hbv_panel(b, "lis", ts(c.day(8), "07:20"), v_str("阴性"), v_str("阳性")),
          b.obs("lis", lis("HBVDNA"), ts(c.day(7), "10:00"), **v_qty(20, "IU/mL", "[IU]/mL", "<")))
    c.expect("E7-hbv", NOT_MET, UNKNOWN)


@scenario("hbv-panel-antihbc-no-dna", "panel HBsAg 阴性, anti-HBc 阳性, no HBV DNA result: cannot be decided")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("hbv", hbv_panel(b, "lis", ts(c.day(8), "07:20"), v_str("阴性"), v_str("阳性")))
    c.expect("E7-hbv", UNKNOWN)


@scenario("hbv-panel-antihbc-dna-pos", "panel anti-HBc 阳性 and HBV DNA 3.2e4 IU/mL (no comparator, > 0 = positive)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("hbv", hbv_panel(b, "lis", ts(c.day(8), "07:20"), v_str("阴性"), v_str("阳性")),
          b.obs("lis", lis("HBVDNA"), ts(c.day(7), "10:00"), **v_qty(32000, "IU/mL", "[IU]/mL")))
    c.expect("E7-hbv", MET)


@scenario("hbv-report-results-no-subject", "DiagnosticReport 乙肝五项 whose result Observations carry no subject: HBsAg positive")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    day = ts(c.day(5), "07:20")
    members = [b.obs("lis", lis("HBSAG"), day, subject=False, **POS_CC), b.obs("lis", lis("HBCAB"), day, subject=False, **NEG_CC)]
    report = ("lis", {"resourceType": "DiagnosticReport", "id": c.rid("dr"), "status": "final", "code": lis("HBV5"),
                      "subject": b.subject("lis"), "effectiveDateTime": day, "issued": _issued(day),
                      "result": [{"reference": f"Observation/{r['id']}"} for _, r in members]})
    c.put("hbv", report, *members)
    # the Observations belong to the report's patient; an engine that cannot see that must not call E7 decided
    c.expect("E7-hbv", MET, UNKNOWN)


@scenario("hbv-report-results", "DiagnosticReport 乙肝五项 pointing at its Observations (which name the patient): HBsAg 阳性")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    day = ts(c.day(5), "07:20")
    members = [b.obs("lis", lis("HBSAG"), day, **v_str("阳性")), b.obs("lis", lis("HBCAB"), day, **v_str("阴性"))]
    report = ("lis", {"resourceType": "DiagnosticReport", "id": c.rid("dr"), "status": "final", "code": lis("HBV5"),
                      "subject": b.subject("lis"), "effectiveDateTime": day, "issued": _issued(day),
                      "result": [{"reference": f"Observation/{r['id']}"} for _, r in members]})
    c.put("hbv", report, *members)
    c.expect("E7-hbv", MET)


@scenario("hbv-hasmember-pos", "乙肝五项 as a hasMember panel; the HBsAg member 阳性")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    day = ts(c.day(5), "07:20")
    members = [b.obs("lis", lis("HBSAG"), day, **v_str("阳性")), b.obs("lis", lis("HBCAB"), day, **v_str("阴性")),
               b.obs("lis", lis("HBSAB"), day, **v_str("阴性"))]
    c.put("hbv", b.obs("lis", lis("HBV5"), day, hasMember=[{"reference": f"Observation/{r['id']}"} for _, r in members]), *members)
    c.expect("E7-hbv", MET)


def _hbsag_string(name: str, value: Any, expected: str, also: tuple[str, ...], what: str) -> None:
    def fn(c: Chart, b: Build, rng: random.Random) -> None:
        c.put("hbv", b.obs("lis", lis("HBSAG"), ts(c.day(6), "07:20"), **value),
              b.obs("lis", lis("HBCAB"), ts(c.day(6), "07:20"), **v_str("阴性")))
        c.expect("E7-hbv", expected, *also)
    scenario(name, what)(fn)


# Strings the spec does not list are "anything else" (§3: unknown); where a person reads them
# unambiguously (阴性(-) is negative) that reading is expected and the spec-literal unknown acceptable.
_hbsag_string("hbsag-grade-pos", v_str("阳性(+)"), MET, (UNKNOWN,), "HBsAg valueString 阳性(+)")
_hbsag_string("hbsag-weak-pos", v_str("弱阳性"), MET, (UNKNOWN,), "HBsAg valueString 弱阳性 (weakly positive)")
_hbsag_string("hbsag-fullwidth-pos", v_str("阳性（＋）"), MET, (UNKNOWN,), "HBsAg valueString with full-width brackets and plus")
_hbsag_string("hbsag-grade-neg", v_str("阴性(-)"), NOT_MET, (UNKNOWN,), "HBsAg valueString 阴性(-)")
_hbsag_string("hbsag-reftext-pos", v_str("阳性 (参考值: 阴性)"), MET, (UNKNOWN,),
              "HBsAg 阳性 followed by reference text naming 阴性: never read as negative")
_hbsag_string("hbsag-reftext-neg", v_str("阴性 (参考值: 阴性)"), NOT_MET, (UNKNOWN,), "HBsAg 阴性 with reference text")
_hbsag_string("hbsag-quant-pos-interp", {**v_qty(235.7, "IU/mL", "[IU]/mL"), **interp("POS", "阳性")}, MET, (),
              "quantitative HBsAg 235.7 IU/mL with interpretation POS")
_hbsag_string("hbsag-quant-neg-interp", {**v_qty(0.01, "IU/mL", "[IU]/mL"), **interp("NEG", "阴性")}, NOT_MET, (UNKNOWN,),
              "quantitative HBsAg 0.01 IU/mL with interpretation NEG")
_hbsag_string("hbsag-quant-no-interp", v_qty(0.01, "IU/mL", "[IU]/mL"), UNKNOWN, (),
              "quantitative HBsAg 0.01 IU/mL, no interpretation: not a viral load, no cut-off → unknown")
_hbsag_string("hbsag-positive-english", v_str(" Positive "), MET, (), "HBsAg valueString ' Positive ' (trimmed, case-insensitive)")


# ---- ordering date-only against timed results (issue 9 class 3) ---------------------------------
def _order(name: str, slot: str, crit: str, first: tuple[str, dict], second: tuple[str, dict], expected: str,
           also: tuple[str, ...], what: str) -> None:
    """Two results of one test (when, value); everything else in the slot stays decided."""
    def fn(c: Chart, b: Build, rng: random.Random) -> None:
        d = {"D": c.day(6), "D-1": c.day(7)}

        def when(w: str) -> str:
            key, _, rest = w.partition(" ")
            return d[key] + rest if rest else d[key]

        if slot == "hbv":
            test = [b.obs("outside-lab" if "T" not in when(first[0]) else "lis", lis("HBSAG"), when(first[0]), **first[1]),
                    b.obs("lis", lis("HBSAG"), when(second[0]), **second[1]),
                    b.obs("lis", lis("HBCAB"), ts(c.day(6), "07:20"), **v_str("阴性"))]
        else:
            test = [b.obs("lis", lis("MDA5"), when(first[0]), **first[1]), b.obs("lis", lis("MDA5"), when(second[0]), **second[1])]
        c.put(slot, *test)
        c.expect(crit, expected, *also)
    scenario(name, what)(fn)


_order("order-hbsag-dateonly-neg-day-before", "hbv", "E7-hbv", ("D-1", NEG_CC), ("D T07:20:00+08:00", POS_CC), MET, (),
       "HBsAg negative dated the day before (date only, outside lab); positive 07:20+08:00 next day: the later local day decides")
_order("order-hbsag-same-day-conflict", "hbv", "E7-hbv", ("D", NEG_CC), ("D T07:20:00+08:00", POS_CC), UNKNOWN, (),
       "HBsAg negative (date only) and positive (07:20+08:00) on the same local day: cannot be ordered")
_order("order-hbsag-timed-pos-later", "hbv", "E7-hbv", ("D T08:00:00+08:00", NEG_CC), ("D T15:00:00+08:00", POS_CC), MET, (),
       "two timed HBsAg results the same day: positive at 15:00 after negative at 08:00")
_order("order-hbsag-timed-neg-later", "hbv", "E7-hbv", ("D T08:00:00+08:00", POS_CC), ("D T15:00:00+08:00", NEG_CC), NOT_MET, (UNKNOWN,),
       "two timed HBsAg results the same day: negative at 15:00 after positive at 08:00")
_order("order-hbsag-zones-pos-later", "hbv", "E7-hbv", ("D T23:30:00+08:00", NEG_CC), ("D T16:00:00Z", POS_CC), MET, (),
       "negative at 23:30+08:00 (15:30Z) and positive at 16:00Z, both written on day D: the positive is later")
_order("order-hbsag-zones-neg-later", "hbv", "E7-hbv", ("D T23:30:00+08:00", POS_CC), ("D T16:00:00Z", NEG_CC), NOT_MET, (UNKNOWN,),
       "positive at 23:30+08:00 (15:30Z) and negative at 16:00Z, both written on day D: the negative is later")
_order("order-hbsag-dateonly-pos-day-before", "hbv", "E7-hbv", ("D-1", POS_CC), ("D T00:10:00+08:00", NEG_CC), NOT_MET, (UNKNOWN,),
       "HBsAg positive dated the day before (date only); negative at 00:10+08:00 (16:10Z the day before): the later local day decides")
_order("order-hbsag-two-dateonly-conflict", "hbv", "E7-hbv", ("D", NEG_CC), ("D", POS_CC), UNKNOWN, (),
       "HBsAg negative and positive, both date-only on the same day: cannot be ordered")
_order("order-mda5-dateonly-weak-day-before", "mda5", "I3-mda5", ("D-1", v_str("+")), ("D T07:20:00+08:00", v_str("+++")), MET, (),
       "anti-MDA5 + (date only) the day before, +++ at 07:20+08:00: the later local day decides")
_order("order-mda5-timed-strong-day-before", "mda5", "I3-mda5", ("D-1 T23:50:00+08:00", v_str("+++")), ("D", v_str("+")), NOT_MET, (),
       "anti-MDA5 +++ at 23:50+08:00 the day before, + (date only) on day D: + decides")
_order("order-mda5-same-day-conflict", "mda5", "I3-mda5", ("D", v_str("+++")), ("D T09:00:00+08:00", v_str("+")), UNKNOWN, (),
       "anti-MDA5 +++ (date only) and + (09:00+08:00) on the same day: cannot be ordered")


# ---- anti-MDA5 in the myositis antibody panel and as strings (I3) -------------------------------
MSA_OTHERS = ["JO1", "PL7", "PL12", "EJ", "OJ", "MI2", "TIF1G", "NXP2", "SAE1"]


def msa_panel(b: Build, when: str, mda5: dict | None, ro52: str = "阴性(-)", mda5_loinc: bool = True) -> Item:
    """肌炎抗体谱: a dozen antibodies as components; anti-MDA5 one of them, anti-Ro-52 beside it."""
    comps = [comp(lis(code), **v_str("阴性(-)")) for code in MSA_OTHERS]
    if mda5 is not None:
        comps.append(comp(lis("MDA5", mda5_loinc), **mda5))
    comps.append(comp(lis("RO52"), **v_str(ro52)))
    return b.panel("lis", lis("MSA"), when, comps)


def _msa(name: str, mda5: dict | None, expected: str, also: tuple[str, ...], what: str, *, ro52: str = "阴性(-)",
         mda5_loinc: bool = True, back: int = 6) -> None:
    def fn(c: Chart, b: Build, rng: random.Random) -> None:
        c.put("mda5", msa_panel(b, ts(c.day(back), "08:30"), mda5, ro52, mda5_loinc))
        c.expect("I3-mda5", expected, *also)
    scenario(name, what)(fn)


_msa("msa-panel-mda5-3plus", v_str("阳性(+++)"), MET, (), "肌炎抗体谱 panel: anti-MDA5 component 阳性(+++)")
_msa("msa-panel-mda5-1plus", v_str("阳性(+)"), NOT_MET, (), "肌炎抗体谱 panel: anti-MDA5 component 阳性(+) (too weak)")
_msa("msa-panel-mda5-neg", v_str("阴性(-)"), NOT_MET, (), "肌炎抗体谱 panel: anti-MDA5 component 阴性(-)")
_msa("msa-panel-mda5-weak", v_str("弱阳性"), UNKNOWN, (NOT_MET,),
     "肌炎抗体谱 panel: anti-MDA5 弱阳性 (weakly positive: no grade the spec lists)")
_msa("msa-panel-ro52-strong-mda5-neg", v_str("阴性(-)"), NOT_MET, (), "anti-Ro-52 +++ beside a negative anti-MDA5 component",
     ro52="阳性(+++)")
_msa("msa-panel-no-mda5", None, UNKNOWN, (), "肌炎抗体谱 panel without anti-MDA5 (anti-Ro-52 +++ only)", ro52="阳性(+++)")
_msa("msa-panel-mda5-local-only", v_str("阳性(+++)"), MET, (), "anti-MDA5 component coded only with the LIS code (mapped)",
     mda5_loinc=False)
_msa("msa-panel-mda5-cc-text", {"valueCodeableConcept": concept(text="阳性(++)")}, MET, (),
     "anti-MDA5 component valueCodeableConcept.text 阳性(++)")
_msa("msa-panel-outside-window", v_str("阳性(+++)"), UNKNOWN, (), "肌炎抗体谱 panel collected 29 days before as_of", back=29)


def _mda5_string(name: str, value: dict, expected: str, also: tuple[str, ...], what: str) -> None:
    def fn(c: Chart, b: Build, rng: random.Random) -> None:
        c.put("mda5", b.obs("lis", lis("MDA5"), ts(c.day(6), "08:30"), **value))
        c.expect("I3-mda5", expected, *also)
    scenario(name, what)(fn)


_mda5_string("mda5-fullwidth-2plus", v_str("＋＋"), MET, (), "anti-MDA5 valueString full-width ＋＋")
_mda5_string("mda5-fullwidth-3plus-zh", v_str("阳性（＋＋＋）"), MET, (), "anti-MDA5 valueString 阳性（＋＋＋） full-width")
_mda5_string("mda5-titer-reftext", v_str("1:320 阳性"), UNKNOWN, (), "anti-MDA5 '1:320 阳性': positive without a grade")
_mda5_string("mda5-3plus-arabic", v_str("3+"), MET, (), "anti-MDA5 valueString 3+")
_mda5_string("mda5-1plus-arabic", v_str("1+"), NOT_MET, (), "anti-MDA5 valueString 1+")
_mda5_string("mda5-positive-ungraded", v_str("阳性"), UNKNOWN, (), "anti-MDA5 阳性 without a grade")
_mda5_string("mda5-number-no-cutoff", v_qty(46.0, "U/mL", "U/mL"), UNKNOWN, (), "anti-MDA5 46 U/mL: a number with no configured cut-off")
_mda5_string("mda5-interp-text-grade", {**v_str("阳性"), "interpretation": [concept(text="+++")]}, MET, (UNKNOWN,),
             "anti-MDA5 valueString 阳性, interpretation text +++")


@scenario("mda5-hasmember", "肌炎抗体谱 as a hasMember panel; the anti-MDA5 member (LIS code only) +++")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    day = ts(c.day(6), "08:30")
    members = [b.obs("lis", lis("MDA5", loinc=False), day, **v_str("+++")), b.obs("lis", lis("JO1"), day, **v_str("阴性(-)"))]
    c.put("mda5", b.obs("lis", lis("MSA"), day, hasMember=[{"reference": f"Observation/{r['id']}"} for _, r in members]), *members)
    c.expect("I3-mda5", MET)


# ---- DLCO in the pulmonary-function panel and its units (I4) ------------------------------------
def pft_panel(b: Build, when: str, dlco: list[dict]) -> Item:
    return b.panel("lis", lis("PFT"), when, [comp(lis("FVCPP"), **v_qty(71.0, "%", "%")), *dlco], category="exam")


for _unit, _ucum in (("%", "%"), ("{%pred}", "{%pred}"), ("%{pred}", "%{pred}"), ("% pred", None)):
    def _dlco_unit(c: Chart, b: Build, rng: random.Random, unit: str = _unit, code: str | None = _ucum) -> None:
        c.put("dlco", pft_panel(b, ts(c.day(9), "10:00"), [comp(lis("DLCOPP"), **v_qty(61.0, unit, code))]))
        c.expect("I4-dlco", MET)

    def _dlco_unit_high(c: Chart, b: Build, rng: random.Random, unit: str = _unit, code: str | None = _ucum) -> None:
        c.put("dlco", b.obs("lis", lis("DLCOPP"), ts(c.day(9), "10:00"), category="exam", **v_qty(86.0, unit, code)))
        c.expect("I4-dlco", NOT_MET)

    scenario(f"dlco-panel-unit-{_unit}", f"肺功能 panel, DLCO % predicted 61 as a component, unit {_unit!r}")(_dlco_unit)
    scenario(f"dlco-unit-{_unit}-86", f"standalone DLCO % predicted 86, unit {_unit!r}")(_dlco_unit_high)


@scenario("dlco-unknown-unit", "DLCO coded % predicted but valued 6.1 mmol/min/kPa: the unit is not a percentage")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("dlco", pft_panel(b, ts(c.day(9), "10:00"), [comp(lis("DLCOPP"), **v_qty(6.1, "mmol/min/kPa", "mmol/min/kPa"))]))
    c.expect("I4-dlco", UNKNOWN)


@scenario("dlco-panel-ratio", "肺功能 panel with DLCO measured 5.1 and predicted 8.5 mmol/min/kPa components (60 %)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("dlco", pft_panel(b, ts(c.day(9), "10:00"), [comp(lis("DLCOM"), **v_qty(5.1, "mmol/min/kPa", "mmol/min/kPa")),
                                                        comp(lis("DLCOP"), **v_qty(8.5, "mmol/min/kPa", "mmol/min/kPa"))]))
    c.expect("I4-dlco", MET)


for _value, _res in ((80.0, NOT_MET), (79.9, MET)):
    def _dlco_cut(c: Chart, b: Build, rng: random.Random, value: float = _value, res: str = _res) -> None:
        c.put("dlco", pft_panel(b, ts(c.day(9), "10:00"), [comp(lis("DLCOPP"), **v_qty(value, "%", "%"))]))
        c.expect("I4-dlco", res)
    scenario(f"dlco-panel-cutoff-{_value}", f"肺功能 panel DLCO % predicted {_value} (cut-off < 80)")(_dlco_cut)


@scenario("dlco-string-value", "DLCO % predicted written as valueString '62%'")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("dlco", b.obs("lis", lis("DLCOPP"), ts(c.day(9), "10:00"), category="exam", **v_str("62%")))
    c.expect("I4-dlco", MET, UNKNOWN)


# ---- chest CT as PACS reports (I5) ---------------------------------------------------------------
@scenario("ct-report-text-only", "chest CT DiagnosticReport with conclusion text 双肺间质性肺炎 only (no conclusionCode)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("ct", ct_report(b, c.day(8), None, "双肺间质性肺炎，建议随访"))
    c.expect("I5-ct", UNKNOWN)


@scenario("ct-report-local-code-icd", "HRCT report coded only with the PACS code (mapped to 29252-4), conclusionCode ICD-10 J84.1")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("ct", ct_report(b, c.day(8), concept(coding(ICD10, "J84.1", "其他伴有纤维化的间质性肺病")),
                          code=concept(coding(PACS, "HRCT", "胸部高分辨率CT"), text="胸部高分辨率CT")))
    c.expect("I5-ct", MET)


@scenario("ct-report-normal", "chest CT DiagnosticReport with conclusionCode Normal (17621005)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("ct", ct_report(b, c.day(8), concept(coding(SCT, "17621005", "Normal"), text="未见明显异常"), "双肺未见明显异常"))
    c.expect("I5-ct", NOT_MET)


@scenario("ct-report-result-obs", "chest CT DiagnosticReport (no conclusionCode) whose result Observation is coded ILD")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    day = c.day(8)
    finding = b.obs("pacs", concept(coding(LOINC, "24627-2", "CT Chest"), text="胸部CT"), ts(day, "14:20"), category="imaging",
                    valueCodeableConcept=concept(coding(SCT, "233703007", "Interstitial lung disease"), text="间质性肺病"))
    _, report = ct_report(b, day, None)
    report["result"] = [{"reference": f"Observation/{finding[1]['id']}"}]
    c.put("ct", ("pacs", report), finding)
    c.expect("I5-ct", MET, UNKNOWN)  # the report and the Observation it points at are one study


# ---- diagnoses (I2 and the condition-based exclusions) -------------------------------------------
@scenario("dm-juvenile-local", "only diagnosis: 幼年型皮肌炎 (national clinical edition M33.001, mapped to M33.0)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("dm", b.cond("his", concept(coding(HISDX, "M33.001", "幼年型皮肌炎"), text="幼年型皮肌炎"), onsetDateTime=c.day(800)))
    c.expect("I2-dm", NOT_MET)


@scenario("dm-text-only", "only diagnosis: Condition with text 皮肌炎 and no coding")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("dm", b.cond("his", concept(text="皮肌炎"), onsetDateTime=c.day(300)))
    # an unreadable Condition could be the one I2 looks for, so it cannot be "none"; not-met is also safe
    c.expect("I2-dm", UNKNOWN, NOT_MET)
    for crit in ("E5-immunodeficiency", "E6-malignancy"):
        c.expect(crit, UNKNOWN, NOT_MET)  # absence-based: the unreadable record could be one of theirs
    # E7/E8 (chronic hepatitis Condition), E9/E10/E13 (conditions) rely on absence too, but their tests decide:
    # E7/E8/E9/E10 are decided not-met only if the Condition part is not-met; unknown OR not-met = unknown
    for crit in ("E7-hbv", "E8-hcv", "E9-hiv", "E10-tb"):
        c.expect(crit, UNKNOWN, NOT_MET)
    if c.gender == "female":
        c.expect("E13-pregnancy", UNKNOWN, NOT_MET)


@scenario("dm-provisional", "dermatomyositis Condition with verificationStatus provisional")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("dm", b.cond("his", concept(coding(ICD10, "M33.1"), text="皮肌炎?"), verification="provisional", onsetDateTime=c.day(20)))
    c.expect("I2-dm", UNKNOWN)


@scenario("dm-resolved", "only dermatomyositis Condition is clinicalStatus resolved")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("dm", b.cond("his", concept(coding(HISDX, "M33.101", "皮肌炎")), clinical="resolved", onsetDateTime=c.day(2000)))
    c.expect("I2-dm", NOT_MET)


@scenario("hbv-chronic-condition-local", "active 慢性乙型病毒性肝炎 (HIS code B18.101 → B18.1), tests negative")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.add("dm", b.cond("his", concept(coding(HISDX, "B18.101", "慢性乙型病毒性肝炎"), text="慢性乙型病毒性肝炎"), onsetDateTime=c.day(3000)))
    c.expect("E7-hbv", MET)


@scenario("tb-condition-in-tb-clinic", "active pulmonary TB (A15.001 → A15.0) recorded only by the TB clinic's system")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.add("tb", b.cond("tb-clinic", concept(coding(HISDX, "A15.001", "肺结核"), text="肺结核"), onsetDateTime=c.day(40)))
    c.expect("E10-tb", MET)


@scenario("tspot-panel-positive", "T-SPOT.TB panel 74281-7 with overall result 阳性 and spot-count components")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("tb", b.obs("tb", loinc("74281-7", "T-SPOT.TB panel"), ts(c.day(9), "09:00"), **v_str("阳性"),
                      component=[comp(concept(coding(LIS, "ESAT6", "ESAT-6孔斑点数")), **v_qty(24, "SFC", "1")),
                                 comp(concept(coding(LIS, "CFP10", "CFP-10孔斑点数")), **v_qty(11, "SFC", "1"))]))
    c.expect("E10-tb", MET)


@scenario("tspot-panel-counts-only", "T-SPOT.TB panel with spot counts only, no overall interpretation: not a negative")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("tb", b.obs("tb", loinc("74281-7", "T-SPOT.TB panel"), ts(c.day(9), "09:00"),
                      component=[comp(concept(coding(LIS, "ESAT6", "ESAT-6孔斑点数")), **v_qty(24, "SFC", "1")),
                                 comp(concept(coding(LIS, "CFP10", "CFP-10孔斑点数")), **v_qty(3, "SFC", "1"))]))
    c.expect("E10-tb", UNKNOWN)


@scenario("tst-8mm", "TST induration 8 mm (>= 5 mm) instead of an IGRA")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("tb", b.obs("tb", loinc("1648-5", "TST induration"), ts(c.day(9), "09:00"), **v_qty(8, "mm", "mm")))
    c.expect("E10-tb", MET)


@scenario("tst-3mm", "TST induration 3 mm (< 5 mm), no IGRA")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("tb", b.obs("tb", loinc("1648-5", "TST induration"), ts(c.day(9), "09:00"), **v_qty(3, "mm", "mm")))
    c.expect("E10-tb", NOT_MET)


@scenario("vaccine-text-only-recent", "Immunization 流感疫苗 (text only, no code) 30 days before d1: any vaccine counts")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.add("background", ("his", {"resourceType": "Immunization", "id": c.rid("v"), "status": "completed", "patient": b.subject("his"),
                                 "vaccineCode": concept(text="流感病毒裂解疫苗"), "occurrenceDateTime": ts(c.day(30), "10:00")}))
    c.expect("E12-vaccination", MET)


@scenario("vaccine-live-recommendation-local", "ImmunizationRecommendation of 乙脑减毒活疫苗 (local code, ATC J07BA? not listed)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.add("background", ("his", {"resourceType": "ImmunizationRecommendation", "id": c.rid("ir"), "patient": b.subject("his"),
                                 "date": ts(c.day(3), "10:00"),
                                 "recommendation": [{"vaccineCode": [concept(coding(VACCINE, "JE-L", "乙脑减毒活疫苗"), text="乙脑减毒活疫苗")],
                                                     "forecastStatus": concept(coding("http://terminology.hl7.org/CodeSystem/immunization-recommendation-status", "due"))}]}))
    # a live vaccine the value set cannot see (local code): not decidable; `not-met` would hide a live vaccine
    c.expect("E12-vaccination", UNKNOWN, MET)


# ---- drugs: product codes, local formulary codes, Chinese and brand names (E1/E2/E3/E11) ---------
def scd(d: Drug) -> dict:
    return concept(coding(RX, d.scd[0], d.scd[1]), text=d.scd[1])


def sbd(d: Drug) -> dict:
    return concept(coding(RX, d.sbd[0], d.sbd[1]), text=f"{d.brand_zh} {d.sbd[1]}")


def formulary(d: Drug) -> dict:
    return concept(coding(FORMULARY, d.formulary, f"{d.zh}片"), text=f"{d.zh}({d.brand_zh})")


DRUG_RULES = ("E1-prior-3t-failure", "E2-recent-immunomodulator", "E3-depleting-agent")


def _drug(name: str, what: str, crit: str | tuple[str, ...], expected: str, also: tuple[str, ...],
          make: Callable[[Chart, Build], list[Item]], *, readable: bool = False) -> None:
    """A drug record; unless `readable` (coded in a value set's terms), the other drug rules may say unknown:
    a record whose ingredient an engine cannot read could be any drug."""
    def fn(c: Chart, b: Build, rng: random.Random) -> None:
        c.put("drug", *make(c, b))
        if not readable:
            c.allow(UNKNOWN, *(DRUG_RULES if make.__name__ != "allergy" else ("E1-prior-3t-failure", "E11-hypersensitivity")))
        for k in (crit,) if isinstance(crit, str) else crit:
            c.expect(k, expected, *also)
    scenario(name, what)(fn)


def _stmt(code: dict, *, status: str, end_back: int | None = None, start_back: int = 120, reason: str | None = None):
    def make(c: Chart, b: Build) -> list[Item]:
        first = max(start_back, (end_back or 0) + 30)  # a period starts before it ends (R4 per-1)
        extra: dict[str, Any] = {"effectivePeriod": {"start": c.day(first)}}
        if end_back is not None:
            extra["effectivePeriod"]["end"] = ts(c.day(end_back), "20:00")
        if reason:
            label = {"58848006": "Lack of drug action", "62014003": "Adverse reaction to drug"}[reason]
            extra["statusReason"] = [concept(coding(SCT, reason, label), text="疗效不佳" if reason == "58848006" else "药物不良反应")]
        return [b.med("MedicationStatement", code, status=status, **extra)]
    return make


B = DRUGS
# E2: JAK inhibitors other than tofacitinib, cyclosporine, lenalidomide in [d1-14, d1]
_drug("e2-baricitinib-scd-active", "baricitinib 2 MG Oral Tablet (SCD product code), MedicationStatement active",
      "E2-recent-immunomodulator", UNKNOWN, (MET,), _stmt(scd(B["baricitinib"]), status="active"))
_drug("e2-baricitinib-sbd-ended-5d", "Olumiant 2 MG Oral Tablet (SBD), completed 5 days before d1",
      "E2-recent-immunomodulator", UNKNOWN, (MET,), _stmt(sbd(B["baricitinib"]), status="completed", end_back=5))
_drug("e2-baricitinib-formulary-mapped", "巴瑞替尼 by local formulary code (mapped to RxNorm 2047232), completed 3 days before d1",
      "E2-recent-immunomodulator", MET, (), _stmt(formulary(B["baricitinib"]), status="completed", end_back=3), readable=True)
_drug("e2-upadacitinib-formulary-unmapped", "乌帕替尼(瑞福) by a formulary code the ConceptMap does not map, active",
      "E2-recent-immunomodulator", UNKNOWN, (MET,), _stmt(formulary(B["upadacitinib"]), status="active"))
_drug("e2-ruxolitinib-product-with-atc", "ruxolitinib product code plus ATC L01EJ01, completed 7 days before d1",
      "E2-recent-immunomodulator", MET, (),
      _stmt(concept(coding(RX, B["ruxolitinib"].scd[0], B["ruxolitinib"].scd[1]), coding(ATC, "L01EJ01", "ruxolitinib"), text="芦可替尼片"),
            status="completed", end_back=7), readable=True)
_drug("e2-baricitinib-product-ended-30d", "baricitinib SCD product, completed 30 days before d1 (outside 14 days)",
      "E2-recent-immunomodulator", NOT_MET, (UNKNOWN,), _stmt(scd(B["baricitinib"]), status="completed", end_back=30))
_drug("e2-cyclosporine-sbd-active", "Neoral (新山地明) SBD product, active", "E2-recent-immunomodulator", UNKNOWN, (MET,),
      _stmt(sbd(B["cyclosporine"]), status="active"))
_drug("e2-lenalidomide-text-only", "来那度胺胶囊 (瑞复美) with text only, completed 3 days before d1",
      "E2-recent-immunomodulator", UNKNOWN, (MET,),
      _stmt(concept(text="来那度胺胶囊(瑞复美) 10mg"), status="completed", end_back=3))


@scenario("e2-baricitinib-medication-ref", "MedicationRequest → Medication (pharmacy export) coded with the SBD, text 'Olumiant 2mg'")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    d = B["baricitinib"]
    med = ("pharmacy", {"resourceType": "Medication", "id": f"{c.pid}-med-olumiant",
                        "code": concept(coding(RX, d.sbd[0], d.sbd[1]), text="Olumiant 2mg (艾乐明)")})
    c.put("drug", b.med("MedicationRequest", None, status="active", med_ref=f"Medication/{med[1]['id']}", authoredOn=c.day(10)))
    c.put("shared-medication", med)
    c.allow(UNKNOWN, *DRUG_RULES)
    c.expect("E2-recent-immunomodulator", UNKNOWN, MET)


@scenario("e2-tofacitinib-product-active", "Xeljanz (tofacitinib) SBD active: tofacitinib is not an E2 drug, and an active 3T record is no E1")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("drug", *_stmt(sbd(B["tofacitinib"]), status="active")(c, b))
    c.expect("E3-depleting-agent", NOT_MET, UNKNOWN)
    c.expect("E2-recent-immunomodulator", NOT_MET, UNKNOWN)
    c.expect("E1-prior-3t-failure", NOT_MET, UNKNOWN)


# E1: a past 3T drug with poor response; E11: an allergy to a 3T drug
_drug("e1-tofacitinib-sbd-lack-of-effect", "Xeljanz 5 MG (SBD) stopped for lack of drug action", "E1-prior-3t-failure", UNKNOWN, (MET,),
      _stmt(sbd(B["tofacitinib"]), status="stopped", end_back=90, reason="58848006"))
_drug("e1-tacrolimus-formulary-adverse", "他克莫司 (formulary code, mapped) stopped for an adverse reaction", "E1-prior-3t-failure", MET, (),
      _stmt(formulary(B["tacrolimus"]), status="stopped", end_back=200, reason="62014003"), readable=True)
_drug("e1-tacrolimus-sbd-stopped-no-reason", "Prograf (SBD) stopped, no statusReason", "E1-prior-3t-failure", UNKNOWN, (),
      _stmt(sbd(B["tacrolimus"]), status="stopped", end_back=200))
_drug("e1-tacrolimus-formulary-active", "他克莫司 (formulary, mapped) active: only active 3T records", "E1-prior-3t-failure", NOT_MET, (),
      _stmt(formulary(B["tacrolimus"]), status="active"), readable=True)


def _allergy(code: dict, status: str = "active") -> Callable[[Chart, Build], list[Item]]:
    def allergy(c: Chart, b: Build) -> list[Item]:
        return [("his", {"resourceType": "AllergyIntolerance", "id": c.rid("a"), "patient": b.subject("his"),
                         "clinicalStatus": concept(coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", status)),
                         "verificationStatus": concept(coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed")),
                         "category": ["medication"], "code": code, "recordedDate": c.day(400),
                         "reaction": [{"manifestation": [concept(coding(SCT, "271807003", "Eruption of skin"), text="皮疹")]}]})]
    return allergy


_drug("e11-thalidomide-allergy-mapped", "allergy to 沙利度胺 by formulary code (mapped to RxNorm 10432)",
      ("E11-hypersensitivity", "E1-prior-3t-failure"), MET, (), _allergy(formulary(B["thalidomide"])), readable=True)
_drug("e11-thalidomide-allergy-text", "allergy to 沙利度胺 written as text only", ("E11-hypersensitivity", "E1-prior-3t-failure"),
      UNKNOWN, (MET,), _allergy(concept(text="沙利度胺")))
_drug("e11-thalidomide-allergy-scd", "allergy coded with the thalidomide 50 MG capsule SCD", ("E11-hypersensitivity", "E1-prior-3t-failure"),
      UNKNOWN, (MET,), _allergy(scd(B["thalidomide"])))


# E3: depleting agents in [d1-6 months, d1]
def _admin(code: dict, back: int) -> Callable[[Chart, Build], list[Item]]:
    def make(c: Chart, b: Build) -> list[Item]:
        return [b.med("MedicationAdministration", code, status="completed", effectiveDateTime=ts(c.day(back), "10:30"),
                      dosage={"text": "利妥昔单抗 500mg 静滴",
                              "dose": {"value": 500, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}})]
    return make


_drug("e3-rituximab-sbd-3mo", "Rituxan (美罗华) SBD administered 90 days before d1", "E3-depleting-agent", UNKNOWN, (MET,),
      _admin(sbd(B["rituximab"]), 90))
_drug("e3-rituximab-formulary-3mo", "利妥昔单抗 by formulary code (mapped), 90 days before d1", "E3-depleting-agent", MET, (),
      _admin(formulary(B["rituximab"]), 90), readable=True)
_drug("e3-rituximab-sbd-8mo", "Rituxan SBD administered 240 days before d1 (outside 6 months)", "E3-depleting-agent", NOT_MET, (UNKNOWN,),
      _admin(sbd(B["rituximab"]), 240))


# ---- split records (issue 9 class 2): the deciding resource only in another system --------------
@scenario("split-hbsag-outside-lab", "HBsAg positive only in the outside lab's export (absolute references), after the site's negative")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.add("hbv", b.obs("outside-lab", loinc("5196-1", "Hepatitis B virus surface Ag"), ts(c.day(2), "11:00"), **POS_CC))
    c.expect("E7-hbv", MET)


@scenario("split-rituximab-pharmacy", "rituximab (RxNorm ingredient 121191) 60 days before d1, only in the pharmacy export")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.put("drug", *_admin(concept(coding(RX, "121191", "rituximab"), text="利妥昔单抗注射液"), 60)(c, b))
    c.expect("E3-depleting-agent", MET)


@scenario("split-duplicate-patient", "the outside lab sends its own copy of the Patient with a newer positive HBsAg")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    _, pat = c.slots["patient"][0]
    c.add("patient", ("outside-lab", dict(pat)))
    c.add("hbv", b.obs("outside-lab", loinc("5196-1", "Hepatitis B virus surface Ag"), ts(c.day(1), "15:00"), **v_str("阳性")))
    c.expect("E7-hbv", MET)


# ---- window edges: the day before / on / after every edge, written date-only, +08:00 and Z ------
#: (form, how to write day d); Z at 23:55 is the next local day in Hangzhou, the only form whose
#: written day and site day differ: there `unknown` is acceptable too
FORMS = (("date", lambda d: d), ("cst-0005", lambda d: f"{d}T00:05:00+08:00"), ("cst-2355", lambda d: f"{d}T23:55:00+08:00"),
         ("utc-2355", lambda d: f"{d}T23:55:00Z"))


def _in(lo: date, hi: date, d: date) -> bool:
    return lo <= d <= hi


Edge = Callable[[Chart, Build, str], None]


def _edge(crit: str, label: str, lo_of: Callable[[date], date], put: Edge, inside: str, outside: str,
          after_as_of: str | None = None, after_also: tuple[str, ...] = ()) -> None:
    """Patients with one deciding record on the days around the window [lo, as_of]."""
    def build(offset_name: str, day_of: Callable[[date], date], form: str, write: Callable[[str], str]) -> None:
        def fn(c: Chart, b: Build, rng: random.Random) -> None:
            d = day_of(c.as_of)
            lo = lo_of(c.as_of)
            put(c, b, write(d.isoformat()))
            also: tuple[str, ...] = ()
            if d > c.as_of:
                res, also = after_as_of or outside, after_also
            else:
                res = inside if _in(lo, c.as_of, d) else outside
            if form == "utc-2355":
                site = d + timedelta(days=1)
                site_res = (after_as_of or outside) if site > c.as_of else (inside if _in(lo, c.as_of, site) else outside)
                if site_res != res:
                    also = (*also, UNKNOWN)
            c.expect(crit, res, *also)
        scenario(f"edge-{label}-{offset_name}-{form}", f"{crit}: deciding record on {offset_name}, written {form}")(fn)

    days = {"start-1": lambda a: lo_of(a) - timedelta(days=1), "start": lo_of, "start+1": lambda a: lo_of(a) + timedelta(days=1),
            "as_of": lambda a: a, "as_of+1": lambda a: a + timedelta(days=1)}
    for offset_name, day_of in days.items():
        for form, write in FORMS:
            build(offset_name, day_of, form, write)


def _days(n: int) -> Callable[[date], date]:
    return lambda a: a - timedelta(days=n)


def _months(n: int) -> Callable[[date], date]:
    return lambda a: a - relativedelta(months=n)


def _years(n: int) -> Callable[[date], date]:
    return lambda a: a - relativedelta(years=n)


def _put_obs(slot: str, code: str, value: dict, keep: Callable[[Chart, Build], list[Item]] | None = None) -> Edge:
    def put(c: Chart, b: Build, when: str) -> None:
        c.put(slot, b.obs("lis", lis(code), when, **value), *(keep(c, b) if keep else ()))
    return put


def _anti_hbc_neg(c: Chart, b: Build) -> list[Item]:
    return [b.obs("lis", lis("HBCAB"), ts(c.day(6), "07:20"), **v_str("阴性"))]


_edge("I3-mda5", "mda5", _days(28), _put_obs("mda5", "MDA5", v_str("+++")), MET, UNKNOWN)
_edge("I4-dlco", "dlco", _days(28), _put_obs("dlco", "DLCOPP", v_qty(58.0, "%", "%")), MET, UNKNOWN)
_edge("E7-hbv", "hbsag", _days(28), _put_obs("hbv", "HBSAG", v_str("阳性"), _anti_hbc_neg), MET, UNKNOWN)
_edge("E9-hiv", "hiv", _days(28), _put_obs("hiv", "HIVAGAB", v_str("阳性")), MET, UNKNOWN)
_edge("E10-tb", "igra", _days(28), _put_obs("tb", "TSPOT", v_str("阳性")), MET, UNKNOWN)


def _put_ct(c: Chart, b: Build, when: str) -> None:
    sys_, r = ct_report(b, when[:10], concept(coding(SCT, "233703007", "Interstitial lung disease")))
    r["effectiveDateTime"] = when
    r.pop("issued")
    c.put("ct", (sys_, r))


_edge("I5-ct", "ct", _days(28), _put_ct, MET, UNKNOWN)


def _put_hcv(c: Chart, b: Build, when: str) -> None:
    c.put("hcv", b.obs("lis", lis("HCVAB"), when, **v_str("阳性")), b.obs("lis", lis("HCVRNA"), when, **v_qty(3.5e5, "IU/mL", "[IU]/mL")))


_edge("E8-hcv", "hcv", _days(28), _put_hcv, MET, UNKNOWN)


def _put_hcg(c: Chart, b: Build, when: str) -> None:
    c.put("hcg", b.obs("lis", lis("HCG"), when, **v_qty(1520.0, "mIU/mL", "m[IU]/mL"), **interp("POS", "阳性")))


_edge("E13-pregnancy", "hcg", _days(28), _put_hcg, MET, UNKNOWN)


def _put_e2(c: Chart, b: Build, when: str) -> None:
    c.put("drug", b.med("MedicationStatement", concept(coding(RX, "2047232", "baricitinib"), text="巴瑞替尼"), status="completed",
                        effectivePeriod={"start": c.day(200), "end": when}))


# an end date after d1: exposure went on through d1 (the spec's window ends at d1; it is silent on a later end,
# and not-met would hide a patient on baricitinib at D1): met, or unknown
_edge("E2-recent-immunomodulator", "e2", _days(14), _put_e2, MET, NOT_MET, after_as_of=MET, after_also=(UNKNOWN,))


def _put_e3(c: Chart, b: Build, when: str) -> None:
    c.put("drug", b.med("MedicationAdministration", concept(coding(RX, "121191", "rituximab"), text="利妥昔单抗"),
                        status="completed", effectiveDateTime=when))


_edge("E3-depleting-agent", "e3", _months(6), _put_e3, MET, NOT_MET)


def _put_e4(c: Chart, b: Build, when: str) -> None:
    study = ("his", {"resourceType": "ResearchStudy", "id": "hx-2026-017", "status": "active", "title": "另一项临床研究 HX-2026-017",
                     "identifier": [{"system": f"{SITE}/sid/study", "value": "HX-2026-017"}]})
    c.put("study", ("his", {
        "resourceType": "ResearchSubject", "id": c.rid("rs"), "status": "on-study", "study": {"reference": "ResearchStudy/hx-2026-017"},
        "individual": b.subject("his"), "period": {"start": c.day(300), "end": when}}))
    c.put("shared-study", study)


_edge("E4-investigational", "e4", _days(28), _put_e4, MET, NOT_MET, after_as_of=MET)


def _put_e5(c: Chart, b: Build, when: str) -> None:
    c.add("dm", b.cond("his", concept(coding(ICD10, "B59", "肺孢子菌病"), text="肺孢子菌肺炎"), clinical="resolved",
                       onsetDateTime=(date.fromisoformat(when[:10]) - timedelta(days=20)).isoformat(), abatementDateTime=when))


# abatement after as_of: the onset (20 days before it) lies in the window
_edge("E5-immunodeficiency", "e5", _months(6), _put_e5, MET, NOT_MET, after_as_of=MET)


def _put_e6(c: Chart, b: Build, when: str) -> None:
    c.add("dm", b.cond("his", concept(coding(HISDX, "C50.901", "乳腺恶性肿瘤"), text="乳腺癌"), clinical="resolved",
                       onsetDateTime=(date.fromisoformat(when[:10]) - timedelta(days=200)).isoformat(), abatementDateTime=when))


# abatement after as_of: the onset (200 days before it) lies in the window
_edge("E6-malignancy", "e6", _years(5), _put_e6, MET, NOT_MET, after_as_of=MET)


def _put_e12(c: Chart, b: Build, when: str) -> None:
    c.add("background", ("his", {"resourceType": "Immunization", "id": c.rid("v"), "status": "completed", "patient": b.subject("his"),
                                 "vaccineCode": concept(coding(CVX, "141", "Influenza, seasonal, injectable"), text="流感疫苗"),
                                 "occurrenceDateTime": when}))


_edge("E12-vaccination", "e12", _days(84), _put_e12, MET, NOT_MET)

# Patients that need a given gender / age for their scenario to mean what it says
NEEDS_FEMALE_UNDER_55 = {n for n in SCENARIOS if n.startswith("edge-hcg-")}


@scenario("age-18-on-as-of", "turns 18 on as_of")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.slots["patient"][0][1]["birthDate"] = (c.as_of - relativedelta(years=18)).isoformat()
    c.expect("I1-age", MET)


@scenario("age-18-day-after", "turns 18 the day after as_of")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.slots["patient"][0][1]["birthDate"] = (c.as_of - relativedelta(years=18) + timedelta(days=1)).isoformat()
    c.expect("I1-age", NOT_MET)


@scenario("age-partial-month-undecided", "birthDate YYYY-MM of the month 18 years before as_of: 17 or 18")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.slots["patient"][0][1]["birthDate"] = (c.as_of - relativedelta(years=18)).isoformat()[:7]
    c.expect("I1-age", UNKNOWN)



# ---- the one promise (issue 20): versions, concepts in other elements, ways to name the patient, ----
# ---- unreadable entries, dates of other shapes -------------------------------------------------------
def _meta(r: dict, version: str | None = None, updated: str | None = None) -> dict:
    out = copy.deepcopy(r)
    out["meta"] = {k: v for k, v in (("versionId", version), ("lastUpdated", updated)) if v}
    return out


def _dm_only(c: Chart) -> dict:
    """The chart's one dermatomyositis Condition (the baseline's)."""
    return c.slots["dm"][0][1]


@scenario("version-dm-newer-entered-in-error", "the EHR's later export holds version 2 of the only dermatomyositis "
          "diagnosis, entered-in-error (spec §2: it never counts)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    system, dm = c.slots["dm"][0]
    c.put("dm", (system, _meta(dm, "1", "2026-09-01T10:00:00+08:00")))
    later = _meta(dm, "2", "2026-11-02T09:00:00+08:00")
    later["verificationStatus"] = concept(coding(VER, "entered-in-error"))
    later.pop("clinicalStatus", None)  # con-5: an entered-in-error diagnosis has no clinical status
    c.add("dm", ("ehr-later", later))
    c.expect("I2-dm", NOT_MET)


@scenario("version-dm-older-entered-in-error", "an older version of the dermatomyositis diagnosis, entered-in-error, in "
          "the later export folder: the newer (active, confirmed) one counts")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    system, dm = c.slots["dm"][0]
    c.put("dm", (system, _meta(dm, "3")))
    older = _meta(dm, "2")
    older["verificationStatus"] = concept(coding(VER, "entered-in-error"))
    older.pop("clinicalStatus", None)
    c.add("dm", ("ehr-later", older))
    c.expect("I2-dm", MET)


@scenario("version-hbsag-corrected-positive", "HBsAg negative as version 1 (LIS), corrected to 阳性 as version 2 in the "
          "later export (lastUpdated in UTC, later than the +08:00 one)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    system, hbsag = c.slots["hbv"][0]
    c.slots["hbv"][0] = (system, _meta(hbsag, None, "2026-11-10T09:00:00+08:00"))
    fixed = _meta(hbsag, None, "2026-11-10T01:00:01Z")
    for k in [k for k in fixed if k.startswith("value") or k == "interpretation"]:
        fixed.pop(k)
    fixed["valueString"] = "阳性"
    c.add("hbv", ("ehr-later", fixed))
    c.expect("E7-hbv", MET)


@scenario("version-hbsag-unordered", "two copies of the HBsAg result, negative and 阳性, neither with a version nor a "
          "lastUpdated: which is current cannot be told")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    _, hbsag = c.slots["hbv"][0]
    other = copy.deepcopy(hbsag)
    for k in [k for k in other if k.startswith("value") or k == "interpretation"]:
        other.pop(k)
    other["valueString"] = "阳性"
    c.add("hbv", ("ehr-later", other))
    c.expect("E7-hbv", UNKNOWN)


@scenario("version-history-delete-rituximab", "rituximab 60 days before d1 (version 1, pharmacy); the EHR's history "
          "Bundle deletes it at version 2: no depleting agent")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    _, admin = _admin(concept(coding(RX, "121191", "rituximab"), text="利妥昔单抗注射液"), 60)(c, b)[0]
    c.put("drug", ("pharmacy", _meta(admin, "1")))
    c.documents.append(("his", f"history-{c.pid}.json", {"resourceType": "Bundle", "type": "history", "entry": [
        {"request": {"method": "DELETE", "url": f"MedicationAdministration/{admin['id']}"},
         "response": {"status": "204 No Content", "etag": 'W/"2"', "lastModified": ts(c.day(10), "10:00")}}]}))
    c.expect("E3-depleting-agent", NOT_MET)


@scenario("version-history-newest-first-positive", "a history Bundle of the HBsAg result without versionIds: 阳性 listed "
          "first (the newest), negative after it")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    _, hbsag = c.slots["hbv"][0]
    positive = copy.deepcopy(hbsag)
    for k in [k for k in positive if k.startswith("value") or k == "interpretation"]:
        positive.pop(k)
    positive["valueString"] = "阳性"
    c.slots["hbv"].pop(0)
    c.documents.append(("his", f"history-{c.pid}.json", {"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": positive, "request": {"method": "PUT", "url": f"Observation/{hbsag['id']}"}},
        {"resource": copy.deepcopy(hbsag), "request": {"method": "POST", "url": "Observation"}}]}))
    c.expect("E7-hbv", MET)


def _allergy_substance(substance: dict) -> Callable[[Chart, Build], list[Item]]:
    def allergy(c: Chart, b: Build) -> list[Item]:
        _, a = _allergy(concept(coding(SCT, "416098002", "Drug allergy"), text="药物过敏"))(c, b)[0]
        a["reaction"][0]["substance"] = substance
        return [("his", a)]
    allergy.__name__ = "allergy"
    return allergy


_drug("elsewhere-allergy-substance-thalidomide", "AllergyIntolerance coded 'Drug allergy', thalidomide (formulary, mapped) "
      "only in reaction.substance: the spec reads the allergy's code, a person reads thalidomide",
      ("E11-hypersensitivity", "E1-prior-3t-failure"), UNKNOWN, (MET,), _allergy_substance(formulary(B["thalidomide"])))
_drug("elsewhere-allergy-substance-text", "AllergyIntolerance coded 'Drug allergy', reaction.substance text 反应停",
      ("E11-hypersensitivity", "E1-prior-3t-failure"), UNKNOWN, (MET,), _allergy_substance(concept(text="反应停(沙利度胺)")))


def _contained_ingredient(code: dict, back: int) -> Callable[[Chart, Build], list[Item]]:
    def make(c: Chart, b: Build) -> list[Item]:
        system, r = _admin(code, back)(c, b)[0]
        r.pop("medicationCodeableConcept")
        r["contained"] = [{"resourceType": "Medication", "id": "med", "ingredient": [{"itemCodeableConcept": code}]}]
        r["medicationReference"] = {"reference": "#med"}
        return [(system, r)]
    return make


_drug("elsewhere-contained-ingredient-rituximab", "MedicationAdministration of a contained Medication without a code, "
      "its ingredient rituximab (RxNorm 121191), 60 days before d1", "E3-depleting-agent", UNKNOWN, (MET,),
      _contained_ingredient(concept(coding(RX, "121191", "rituximab")), 60))


@scenario("elsewhere-condition-evidence-cancer", "Condition coded 'Disease' (SNOMED 64572001), active, its evidence "
          "乳腺恶性肿瘤 C50.9: the code is no diagnosis the spec reads, the evidence is a cancer")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.add("dm", b.cond("his", concept(coding(SCT, "64572001", "Disease"), text="疾病"), onsetDateTime=c.day(100),
                       evidence=[{"code": [concept(coding(ICD10, "C50.9", "乳腺恶性肿瘤"))]}]))
    c.expect("E6-malignancy", UNKNOWN, MET)
    for crit in ("I2-dm", "E5-immunodeficiency", "E7-hbv", "E8-hcv", "E9-hiv", "E10-tb", "E13-pregnancy"):
        c.allow(UNKNOWN, crit)  # a diagnosis whose code reads as 'Disease' could be any of theirs


@scenario("elsewhere-hbsag-newer-text-only", "a newer HBsAg 阳性 coded only by its text 乙型肝炎病毒表面抗原 (no code), "
          "after the LIS's readable negative")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.add("hbv", b.obs("outside-lab", concept(text="乙型肝炎病毒表面抗原"), ts(c.day(2), "11:00"), **v_str("阳性")))
    c.expect("E7-hbv", UNKNOWN, MET)


@scenario("elsewhere-hbsag-report-conclusion", "a newer DiagnosticReport coded HBsAg (LOINC 5196-1) whose conclusionCode "
          "is Positive, after the LIS's negative Observation")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    day = ts(c.day(2), "11:00")
    c.add("hbv", ("outside-lab", {"resourceType": "DiagnosticReport", "id": c.rid("dr"), "status": "final",
                                  "code": loinc("5196-1", "Hepatitis B virus surface Ag"), "subject": b.subject("outside-lab"),
                                  "effectiveDateTime": day, "issued": _issued(day),
                                  "conclusionCode": [concept(coding(SCT, "10828004", "Positive"), text="阳性")]}))
    c.expect("E7-hbv", MET, UNKNOWN)


@scenario("elsewhere-hbsag-contained-in-report", "乙肝五项 DiagnosticReport whose results are contained in it "
          "(result '#hbsag'): HBsAg 阳性, newer than the LIS's negative")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    day = ts(c.day(2), "08:00")
    hbsag = {"resourceType": "Observation", "id": "hbsag", "status": "final", "code": lis("HBSAG"),
             "effectiveDateTime": day, "valueString": "阳性"}
    c.add("hbv", ("lis", {"resourceType": "DiagnosticReport", "id": c.rid("dr"), "status": "final", "code": lis("HBV5"),
                          "subject": b.subject("lis"), "effectiveDateTime": day, "issued": _issued(day),
                          "contained": [hbsag], "result": [{"reference": "#hbsag"}]}))
    c.expect("E7-hbv", MET)


def _pharmacy_link(link: Callable[[Chart], dict], *also: str) -> Scenario:
    def fn(c: Chart, b: Build, rng: random.Random) -> None:
        _, r = _admin(concept(coding(RX, "121191", "rituximab"), text="利妥昔单抗注射液"), 60)(c, b)[0]
        r["subject"] = link(c)
        c.put("drug", ("pharmacy", r))
        c.expect("E3-depleting-agent", MET, *also)
    return fn


scenario("patient-logical-ref-pharmacy", "the pharmacy names the patient by identifier only (subject.identifier MRN): "
         "rituximab 60 days before d1")(_pharmacy_link(lambda c: {"identifier": {"system": f"{SITE}/sid/mrn", "value": f"MRN{c.pid}"}}))
scenario("patient-conditional-ref-pharmacy", "the pharmacy names the patient by a conditional reference "
         "Patient?identifier=mrn|MRN: rituximab 60 days before d1")(
    _pharmacy_link(lambda c: {"reference": f"Patient?identifier={SITE}/sid/mrn|MRN{c.pid}"}))
scenario("patient-absolute-other-base-pharmacy", "the pharmacy names the patient by an absolute URL on its own server: "
         "rituximab 60 days before d1 (whether another server's Patient/<id> is this patient the spec does not say: "
         "unknown is safe too)")(
    _pharmacy_link(lambda c: {"reference": f"https://pharmacy.zj2h.example.org/fhir/Patient/{c.pid}"}, UNKNOWN))


@scenario("unreadable-type-statement-tacrolimus", "the pharmacy's MedicationStatement of tacrolimus stopped for lack of "
          "effect, its resourceType misspelt 'MedicationStatment': it names the patient and could be any record")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    _, r = _stmt(formulary(B["tacrolimus"]), status="stopped", end_back=200, reason="58848006")(c, b)[0]
    r["resourceType"] = "MedicationStatment"
    c.documents.append(("pharmacy", f"garbled-{c.pid}.json", {"resourceType": "Bundle", "type": "collection",
                                                              "entry": [{"resource": r}]}))
    c.expect("E1-prior-3t-failure", UNKNOWN, MET)
    for crit in CRITERIA:  # an entry of no known type could be any record: any criterion may be left unknown
        c.allow(UNKNOWN, crit)


def _cancer_aged(age: dict) -> Scenario:
    def fn(c: Chart, b: Build, rng: random.Random) -> None:
        c.add("dm", b.cond("his", concept(coding(HISDX, "C50.901", "乳腺恶性肿瘤"), text="乳腺癌"), clinical="resolved",
                           onsetAge=age["onset"], abatementAge=age["abatement"]))
        birth = date.fromisoformat(c.birth)
        lo = birth + relativedelta(years=age["onset"]["value"])
        hi = birth + relativedelta(years=age["abatement"]["value"] + 1) - timedelta(days=1)
        start = c.as_of - relativedelta(years=5)
        ab_lo = birth + relativedelta(years=age["abatement"]["value"])
        on_hi = birth + relativedelta(years=age["onset"]["value"] + 1) - timedelta(days=1)
        inside = (start <= lo and on_hi <= c.as_of) or (start <= ab_lo and hi <= c.as_of)
        outside = on_hi < start and hi < start
        c.expect("E6-malignancy", MET if inside else NOT_MET if outside else UNKNOWN)
    return fn


def _age(n: int) -> dict:
    return {"value": n, "unit": "岁", "system": "http://unitsofmeasure.org", "code": "a"}


scenario("date-cancer-age-recent", "breast cancer (resolved) dated only by age: onset 2 years, abatement 1 year before "
         "the current age (spec §5 E6: within 5 years)")(
    lambda c, b, rng: _cancer_aged({"onset": _age(_years_old(c) - 3), "abatement": _age(_years_old(c) - 2)})(c, b, rng))
scenario("date-cancer-age-long-ago", "breast cancer (resolved) dated only by age, ten and nine years ago")(
    lambda c, b, rng: _cancer_aged({"onset": _age(_years_old(c) - 11), "abatement": _age(_years_old(c) - 10)})(c, b, rng))


def _years_old(c: Chart) -> int:
    born = date.fromisoformat(c.birth)
    return c.as_of.year - born.year - ((c.as_of.month, c.as_of.day) < (born.month, born.day))


@scenario("date-history-z85-2020", "personal history of breast cancer Z85.3, onset and abatement in 2020 (outside 5 "
          "years: spec §5 E6, the dates decide)")
def _(c: Chart, b: Build, rng: random.Random) -> None:
    c.add("dm", b.cond("his", concept(coding(ICD10, "Z85.3", "Personal history of malignant neoplasm of breast"),
                                      text="乳腺恶性肿瘤个人史"), clinical="resolved", onsetDateTime="2020-03-01",
                       abatementDateTime="2020-09-30", recordedDate=c.day(30)))  # con-4: abated -> resolved
    c.expect("E6-malignancy", NOT_MET)


#: scenarios whose records include documents written as they are (a history Bundle, a garbled entry): not
#: mixed into the population generator, which writes resources as NDJSON lines
DOCUMENT_SCENARIOS = {"version-history-delete-rituximab", "version-history-newest-first-positive",
                      "unreadable-type-statement-tacrolimus"}

# ---- generation ----------------------------------------------------------------------------------
def make_chart(name: str, pid: str, rng: random.Random, as_of: date = AS_OF) -> Chart:
    description, fn = SCENARIOS[name]
    if name in NEEDS_FEMALE_UNDER_55:
        c = baseline(pid, name, rng, as_of, gender="female", age=rng.randint(25, 45))
    elif name.startswith("age-"):
        c = baseline(pid, name, rng, as_of, gender="male")
    else:
        c = baseline(pid, name, rng, as_of)
    c.description = description
    fn(c, Build(c), rng)
    missing = set(CRITERIA) - set(c.expected)
    assert not missing, (name, missing)
    return c


def corpus(seed: int = 0, as_of: date = AS_OF, copies: int = 1) -> list[Chart]:
    """Every scenario `copies` times (each copy a different baseline), deterministic by seed."""
    rng = random.Random(seed)
    charts = []
    for k in range(copies):
        for i, name in enumerate(SCENARIOS):
            charts.append(make_chart(name, f"h{k:02d}{i:04d}", rng, as_of))
    return charts


def chart_for(index: int, pid: str, seed: int, as_of: date = AS_OF) -> Chart:
    """The index-th hospital patient of a population (scenarios in turn), independent of the others."""
    names = [n for n in SCENARIOS if n not in DOCUMENT_SCENARIOS]
    return make_chart(names[index % len(names)], pid, random.Random(f"{seed}:{index}"), as_of)


def shared_items(charts: Iterable[Chart]) -> Iterator[Item]:
    """Medication / ResearchStudy resources, once each."""
    seen: set[str] = set()
    for c in charts:
        for slot, items in c.slots.items():
            if slot.startswith("shared-"):
                for system, r in items:
                    ref = f"{r['resourceType']}/{r['id']}"
                    if ref not in seen:
                        seen.add(ref)
                        yield system, r


def patient_items(c: Chart) -> list[Item]:
    return [it for slot, items in c.slots.items() if not slot.startswith("shared-") for it in items]


def _open(path: Path, gz: bool):
    path.parent.mkdir(parents=True, exist_ok=True)
    return gzip.open(str(path) + ".gz", "wt", encoding="utf-8") if gz else path.open("w", encoding="utf-8")


def dumps(r: dict) -> str:
    return json.dumps(r, ensure_ascii=False, separators=(",", ":"))


def write_ndjson(charts: list[Chart], folder: Path, gz: bool = False) -> None:
    """A multi-system Bulk export: folder/<system>/<Type>.ndjson, one line per resource."""
    handles: dict[tuple[str, str], Any] = {}
    try:
        for system, r in [*shared_items(charts), *(it for c in charts for it in patient_items(c))]:
            key = (system, r["resourceType"])
            if key not in handles:
                handles[key] = _open(folder / system / f"{r['resourceType']}.ndjson", gz)
            handles[key].write(dumps(r) + "\n")
    finally:
        for h in handles.values():
            h.close()
    write_documents(charts, folder)
    (folder / CONCEPT_MAP_FILE).write_text(json.dumps(concept_map(), ensure_ascii=False, indent=1), encoding="utf-8")


def write_documents(charts: Iterable[Chart], folder: Path) -> None:
    """Each chart's documents (a history Bundle, a garbled entry) as they are, in its system's folder."""
    for c in charts:
        for system, name, doc in c.documents:
            (folder / system).mkdir(parents=True, exist_ok=True)
            (folder / system / name).write_text(dumps(doc), encoding="utf-8")


def write_bundles(charts: list[Chart], folder: Path) -> None:
    """Collection Bundles per patient: folder/<ehr|pharmacy|tb|outside-lab>/<pid>.json (see BUNDLE_OF)."""
    def entry(system: str, r: dict) -> dict:
        base = ABSOLUTE_BASE.get(system, f"{SITE}/{system}")
        return {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r}

    shared = list(shared_items(charts))
    for c in charts:
        by_system: dict[str, list[dict]] = {}
        for system, r in patient_items(c):
            by_system.setdefault(BUNDLE_OF[system], []).append(entry(system, r))
        for system, entries in by_system.items():
            path = folder / system / f"{c.pid}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}), encoding="utf-8")
    if shared:
        (folder / "pharmacy").mkdir(parents=True, exist_ok=True)
        (folder / "pharmacy" / "shared.json").write_text(
            dumps({"resourceType": "Bundle", "type": "collection", "entry": [entry(s, r) for s, r in shared]}), encoding="utf-8")
    write_documents(charts, folder)
    (folder / CONCEPT_MAP_FILE).write_text(json.dumps(concept_map(), ensure_ascii=False, indent=1), encoding="utf-8")


def write_truth(charts: Iterable[Chart], path: Path) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for c in charts:
            fh.write(dumps(c.truth()) + "\n")
            n += 1
    return n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--layout", choices=["ndjson", "bundles", "both"], default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copies", type=int, default=1, help="each scenario this many times, on different baselines")
    ap.add_argument("--gz", action="store_true", help="gzip the NDJSON files")
    args = ap.parse_args(argv)
    charts = corpus(args.seed, copies=args.copies)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.layout in ("ndjson", "both"):
        write_ndjson(charts, args.out / "ndjson", args.gz)
    if args.layout in ("bundles", "both"):
        write_bundles(charts, args.out / "bundles")
    n = write_truth(charts, args.out / "truth.ndjson")
    counts: dict[str, int] = {}
    for c in charts:
        counts[c.status()] = counts.get(c.status(), 0) + 1
    print(f"{n} patients ({len(SCENARIOS)} scenarios x {args.copies}) in {args.out}: {counts}; truth in {args.out / 'truth.ndjson'}; "
          f"screen with --as-of {AS_OF.isoformat()}")


if __name__ == "__main__":
    main()
