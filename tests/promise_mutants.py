"""Mutants for the one promise (issue 20): data fhir3t cannot read never makes a patient eligible.

A *case* is one patient's input as documents (Bundles): a not-eligible or eligible sample of
samples/screening, or a patient of the hospital-shaped corpus (tests/hospital.py, its records split
over the EHR's, the pharmacy's, the TB clinic's and the outside lab's Bundles). A *mutant* changes the
case in one way a real export may, in four classes:

- relocate: the deciding record's concept moved to another element that can carry it (an extension,
  text only, a display-only coding, Condition.evidence, AllergyIntolerance.reaction.substance, a
  contained or referenced Medication's code or ingredient, a panel's component, a contained hasMember
  child, a result contained in its DiagnosticReport, a report coded for the test with the value as
  its conclusionCode), its own code made generic ("Disease", "Drug allergy", ...);
- version: an older copy of the deciding record, differing in what decides, in another document, in
  both orders, ordered by versionId, by lastUpdated, by both, or in a history Bundle (with a DELETE);
  or a copy whose order cannot be told; or a newer copy that differs only in a note;
- reref: one record (or all) naming the patient another legal way (absolute, _history, conditional
  `Patient?identifier=`, `Patient?_id=`, logical `identifier`), optionally moved to another document
  without the Patient;
- garble: one record's resourceType missing, misspelt, lower-cased or another version's name, or its
  subject/patient a number, a plain string, missing, another id, a display only.

And for eligible cases, `eie`: a newer entered-in-error version of a record whose removal changes the
status, in another document, in both orders and every meta style.

Used by tests/test_promise_property.py (hypothesis draws mutants; a fixed seed in CI, longer behind the
`fuzz` marker) and, run as a script, enumerates every mutant of every case and counts those that come
out eligible, through `screen` and through a CDS patient-view call on the same data:

    python tests/promise_mutants.py [--cases samples|hospital|all] [--cds] [--limit N]
"""
from __future__ import annotations

import argparse
import copy
import difflib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
import hospital

ROOT = Path(__file__).resolve().parents[1]
SCREENING = ROOT / "samples" / "screening"
SAMPLE_MAP = ROOT / "samples" / "conceptmaps" / "hospital-local.json"
AS_OF = "2026-11-16"

SCT, LOINC, RX, CVX = "http://snomed.info/sct", "http://loinc.org", "http://www.nlm.nih.gov/research/umls/rxnorm", \
    "http://hl7.org/fhir/sid/cvx"
MED_TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration", "MedicationDispense")
LINK = {"AllergyIntolerance": "patient", "Immunization": "patient", "ImmunizationRecommendation": "patient",
        "Consent": "patient", "ResearchSubject": "individual"}
CLASSES = ("relocate", "version", "reref", "garble")


def cc(system: str | None, code: str | None, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


#: a type's generic code: what the record is a kind of, not which
GENERIC = {"Condition": cc(SCT, "64572001", "Disease"), "AllergyIntolerance": cc(SCT, "416098002", "Drug allergy"),
           "Observation": cc(SCT, "15220000", "Laboratory test"), "DiagnosticReport": cc(LOINC, "11502-2", "Laboratory report"),
           "Immunization": cc(CVX, "999", "unknown vaccine"), "Medication": cc(SCT, "410942007", "Drug or medicament")}
#: a code no criterion reads (an older version's 'other' concept)
OTHER = {"Condition": cc(SCT, "38341003", "Hypertensive disorder"), "AllergyIntolerance": cc(SCT, "256349002", "Peanut"),
         "Observation": cc(LOINC, "2345-7", "Glucose"), "DiagnosticReport": cc(LOINC, "58410-2", "CBC panel"),
         "Immunization": cc(CVX, "141", "Influenza, seasonal"), "Medication": cc(RX, "7646", "omeprazole")}
MAIN = {"Immunization": "vaccineCode", **{t: "medicationCodeableConcept" for t in MED_TYPES}}
EIE = {"Condition": ("verificationStatus", {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                         "code": "entered-in-error"}]}),
       "AllergyIntolerance": ("verificationStatus", {"coding": [{"system":
                                                                 "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                                                                 "code": "entered-in-error"}]})}


@dataclass
class Case:
    """One patient's input: documents, the patient, which definition screens it (ConceptMaps)."""

    name: str
    patient: str
    docs: list[tuple[str, dict]]
    maps: str  # "samples" | "hospital"
    identifier: tuple[str, str] | None = None  # (system, value) of the Patient
    base: str = "http://ehr.example.org/fhir"
    #: filled by `prepare`: the original's status and the records that decide it
    status: str = ""
    deciding: list[str] = field(default_factory=list)


def sample_cases() -> list[Case]:
    out = []
    for path in sorted(SCREENING.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        for e in bundle["entry"]:
            p = e["resource"]
            if p["resourceType"] != "Patient":
                continue
            key = f"Patient/{p['id']}" if p.get("id") else e["fullUrl"]
            ident = next(((i["system"], i["value"]) for i in p.get("identifier", ()) if i.get("system")), None)
            out.append(Case(f"sample {path.stem} {key}", key, [(path.name, bundle)], "samples", ident))
    return out


def hospital_cases(seed: int = 0) -> list[Case]:
    """The corpus's patients as their systems send them: one Bundle per system (tests/hospital.py BUNDLE_OF)."""
    charts = hospital.corpus(seed=seed)
    shared = [{"resource": r} for _, r in hospital.shared_items(charts)]
    out = []
    for c in charts:
        by: dict[str, list[dict]] = {}
        for system, r in hospital.patient_items(c):
            base = hospital.ABSOLUTE_BASE.get(system, f"{hospital.SITE}/{system}")
            by.setdefault(hospital.BUNDLE_OF[system], []).append({"fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                                                                  "resource": r})
        docs = [(f"{name}/{c.pid}.json", {"resourceType": "Bundle", "type": "collection", "entry": entries})
                for name, entries in by.items()]
        docs += [(f"{system}/{name}", copy.deepcopy(doc)) for system, name, doc in c.documents]
        needed = {r["medicationReference"]["reference"] for _, r in hospital.patient_items(c) if "medicationReference" in r}
        mine = [e for e in shared if f"{e['resource']['resourceType']}/{e['resource']['id']}" in needed
                or e["resource"]["resourceType"] == "ResearchStudy"]
        if mine:
            docs.append(("pharmacy/shared.json", {"resourceType": "Bundle", "type": "collection", "entry": mine}))
        out.append(Case(f"hospital {c.scenario} {c.key}", c.key, docs, "hospital",
                        (f"{hospital.SITE}/sid/mrn", f"MRN{c.pid}"), f"{hospital.SITE}/his"))
    return out


def concept_maps(maps: str) -> list[Path]:
    """The ConceptMaps a case's definition loads: the samples' one, or the hospital corpus's (written once
    to a temporary file)."""
    if maps == "samples":
        return [SAMPLE_MAP]
    global _HOSPITAL_MAP
    if _HOSPITAL_MAP is None or not _HOSPITAL_MAP.exists():
        import tempfile

        fd, name = tempfile.mkstemp(prefix="fhir3t-hospital-map-", suffix=".json")
        with open(fd, "wb") as fh:
            fh.write(orjson.dumps(hospital.concept_map()))
        _HOSPITAL_MAP = Path(name)
    return [_HOSPITAL_MAP]


_HOSPITAL_MAP: Path | None = None


# ---- screening ---------------------------------------------------------------------------------
class Screens:
    """Screens cases with the definition of each (loaded once), through the Python API."""

    def __init__(self) -> None:
        from fhir3t.pipeline import Definition

        self.definitions = {m: Definition.load(None, concept_maps(m)) for m in ("samples", "hospital")}

    def statuses(self, case: Case, docs: list[tuple[str, dict]] | None = None) -> dict[str, Any]:
        import fhir3t
        from fhir3t.errors import Problems

        return {r.patient: r for r in fhir3t.screen([], as_of=AS_OF, definition=self.definitions[case.maps],
                                                    problems=Problems(), documents=docs or case.docs)}

    def prepare(self, case: Case) -> Case:
        """The original's status and its deciding records: the evidence of what keeps it from eligible
        (failing criteria, else unknown ones); for an eligible case, the records whose removal changes that."""
        r = self.statuses(case)[case.patient]
        case.status = r.status
        refs = {ref for _, _, res in records(case) for ref in [ref_of(res)] if ref}
        if r.status != "eligible":
            crits = r.failing if r.status == "ineligible" else r.unknown
            case.deciding = sorted({e for c in r.criteria if c.id in crits for e in c.evidence if e in refs
                                    and not e.startswith("Patient/")})
        else:
            case.deciding = [ref for ref in sorted({e for c in r.criteria for e in c.evidence if e in refs
                                                    and not e.startswith("Patient/")})
                             if self.statuses(case, without(case, ref)).get(case.patient, r).status != "eligible"]
        return case


# ---- reading a case ----------------------------------------------------------------------------
def ref_of(res: dict) -> str | None:
    return f"{res['resourceType']}/{res['id']}" if isinstance(res.get("id"), str) and isinstance(res.get("resourceType"), str) else None


def records(case: Case) -> Iterator[tuple[int, int, dict]]:
    return _all(case.docs)


def locate(docs: list[tuple[str, dict]], ref: str) -> tuple[int, int, dict]:
    for di, ei, res in _all(docs):
        if ref_of(res) == ref:
            return di, ei, res
    raise KeyError(ref)


def without(case: Case, ref: str) -> list[tuple[str, dict]]:
    docs = copy.deepcopy(case.docs)
    di, ei, _ = locate(docs, ref)
    del docs[di][1]["entry"][ei]
    return docs


def link_field(res: dict) -> str:
    return LINK.get(res["resourceType"], "subject")


def bundle(*resources: dict, kind: str = "collection") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


# ---- class 1: relocate the deciding concept ---------------------------------------------------
def relocations(res: dict) -> list[str]:
    rtype = res["resourceType"]
    main = MAIN.get(rtype, "code")
    if not isinstance(res.get(main), dict) and not (rtype in MED_TYPES and "medicationReference" in res):
        return []
    out = ["extension", "text-only", "display-only"]
    if rtype == "Condition":
        out += ["evidence"]
    elif rtype == "AllergyIntolerance":
        out += ["reaction-substance"]
    elif rtype in MED_TYPES:
        out += ["contained-code", "contained-ingredient", "referenced-code", "referenced-ingredient"]
    elif rtype == "Observation":
        out += ["component", "hasMember-contained", "report-contained"]
        if isinstance(res.get("valueCodeableConcept"), dict):
            out.append("report-conclusion")
    return out


def _concept(res: dict, docs: list[tuple[str, dict]]) -> dict:
    """The record's deciding concept (a referenced Medication's code for a drug record)."""
    rtype = res["resourceType"]
    main = MAIN.get(rtype, "code")
    if isinstance(res.get(main), dict):
        return copy.deepcopy(res[main])
    target = res.get("medicationReference", {}).get("reference", "")
    pool = res.get("contained", []) if target.startswith("#") else [r for _, _, r in _all(docs)]
    med = next((m for m in pool if m.get("id") == target.lstrip("#").split("/")[-1]), {})
    return copy.deepcopy(med.get("code") or {"text": "unknown drug"})


def _all(docs: list[tuple[str, dict]]) -> Iterator[tuple[int, int, dict]]:
    for di, (_, doc) in enumerate(docs):
        for ei, e in enumerate(doc.get("entry", ())):
            if isinstance(e.get("resource"), dict):  # a history Bundle's DELETE has none
                yield di, ei, e["resource"]


def _words(concept: dict) -> str:
    parts = [concept.get("text")] + [c.get("display") or c.get("code") for c in concept.get("coding", ()) if isinstance(c, dict)]
    return next((p for p in parts if isinstance(p, str) and p.strip()), "?")


def relocate(case: Case, ref: str, how: str) -> list[tuple[str, dict]]:
    docs = copy.deepcopy(case.docs)
    di, ei, res = locate(docs, ref)
    rtype = res["resourceType"]
    concept = _concept(res, docs)
    main = MAIN.get(rtype, "code")
    generic = copy.deepcopy(GENERIC["Medication" if rtype in MED_TYPES else rtype] if (rtype in GENERIC or rtype in MED_TYPES)
                            else cc(SCT, "404684003", "Clinical finding"))

    def set_main(value: dict) -> None:
        res.pop("medicationReference", None)
        res[main] = value

    if how == "extension":
        set_main(generic)
        res.setdefault("extension", []).append({"url": "https://hospital.example.org/fhir/original-code",
                                                "valueCodeableConcept": concept})
    elif how == "text-only":
        set_main({"text": _words(concept)})
    elif how == "display-only":
        set_main({"coding": [{"display": c.get("display") or c.get("code") or "?"} for c in concept.get("coding", ())
                             if isinstance(c, dict)] or [{"display": _words(concept)}], "text": _words(concept)})
    elif how == "evidence":  # added beside any evidence already there (which may be what decides)
        set_main(generic)
        res["evidence"] = [*res.get("evidence", []), {"code": [concept]}]
    elif how == "reaction-substance":
        set_main(generic)
        res["reaction"] = [*res.get("reaction", []), {"substance": concept, "manifestation": [{"text": "rash"}]}]
    elif how in ("contained-code", "contained-ingredient", "referenced-code", "referenced-ingredient"):
        med: dict[str, Any] = {"resourceType": "Medication", "id": f"m-{res['id']}"}
        if how.endswith("code"):
            med["code"] = concept
        else:
            med["ingredient"] = [{"itemCodeableConcept": concept, "isActive": True}]
        res.pop("medicationCodeableConcept", None)
        res.pop("contained", None)
        if how.startswith("contained"):
            res["contained"] = [{**med, "id": "m"}]
            res["medicationReference"] = {"reference": "#m"}
        else:
            res["medicationReference"] = {"reference": f"Medication/{med['id']}"}
            docs.append(("pharmacy-medications.json", bundle(med)))
    elif how == "component":
        value = {k: res.pop(k) for k in list(res) if k.startswith("value") or k in ("interpretation", "dataAbsentReason")}
        res["code"] = generic
        res["component"] = [{"code": concept, **value}, *res.get("component", [])]
    elif how == "hasMember-contained":
        child = {k: v for k, v in res.items() if k not in ("id", "subject", "hasMember", "contained")}
        child["id"] = "c1"
        for k in list(res):
            if k.startswith("value") or k in ("interpretation", "component", "dataAbsentReason"):
                res.pop(k)
        res["code"] = generic
        res["contained"] = [child]
        res["hasMember"] = [{"reference": "#c1"}]
    elif how in ("report-contained", "report-conclusion"):
        child = {k: v for k, v in res.items() if k not in ("id", "subject", "contained")}
        child["id"] = "c1"
        report: dict[str, Any] = {"resourceType": "DiagnosticReport", "id": f"dr-{res['id']}", "status": "final",
                                  "subject": res.get("subject"), "code": generic}
        for k in ("effectiveDateTime", "effectivePeriod", "issued"):
            if k in res:
                report[k] = res[k]
        if how == "report-contained":
            report["contained"] = [child]
            report["result"] = [{"reference": "#c1"}]
        else:
            report["code"] = concept
            report["conclusionCode"] = [res["valueCodeableConcept"]]
        docs[di][1]["entry"][ei] = {"resource": report}
    else:
        raise ValueError(how)
    return docs


# ---- class 2: versions ---------------------------------------------------------------------------
STYLES = ("versionId", "lastUpdated", "both", "history", "history-delete", "no-meta")
CONTENTS = ("recoded", "negated", "dated", "entered-in-error")


def _older_content(res: dict, how: str) -> dict:
    """A copy that, read instead of the record, would point the other way."""
    old = copy.deepcopy(res)
    rtype = old["resourceType"]
    if how == "recoded":
        kind = "Medication" if rtype in MED_TYPES else rtype
        old.pop("medicationReference", None)
        old[MAIN.get(rtype, "code")] = copy.deepcopy(OTHER.get(kind, cc(SCT, "38341003", "Hypertensive disorder")))
    elif how == "negated":
        if rtype == "Observation":
            for k in [k for k in old if k.startswith("value") or k == "interpretation"]:
                old.pop(k)
            old["valueCodeableConcept"] = cc(SCT, "260385009", "Negative")
        elif rtype in ("Condition", "AllergyIntolerance"):
            old["clinicalStatus"] = {"coding": [{"system": f"http://terminology.hl7.org/CodeSystem/"
                                                          f"{'condition' if rtype == 'Condition' else 'allergyintolerance'}-clinical",
                                                "code": "resolved"}]}
            old["abatementDateTime"] = "2001-01-01"
        elif rtype in MED_TYPES:
            old["status"] = "active"
            old.pop("statusReason", None)
        elif rtype == "QuestionnaireResponse":
            for item in old.get("item", ()):
                for a in item.get("answer", ()):
                    if "valueBoolean" in a:
                        a["valueBoolean"] = not a["valueBoolean"]
    elif how == "dated":
        for k in list(old):
            if k.endswith(("DateTime", "Date", "date", "issued", "authoredOn", "authored", "whenHandedOver")):
                old[k] = "2001-01-01"
            if k.endswith("Period") or k == "period":
                old[k] = {"start": "2000-01-01", "end": "2001-01-01"}
    elif how == "entered-in-error":
        field_, value = EIE.get(rtype, ("status", "entered-in-error"))
        old[field_] = copy.deepcopy(value)
        if rtype == "Condition":
            old.pop("clinicalStatus", None)  # con-5
    return old


def _meta(res: dict, version: int, style: str) -> dict:
    out = copy.deepcopy(res)
    # lastUpdated: version n at n o'clock UTC (+ n minutes), written in Hangzhou time for odd n and in UTC for
    # even n, so the later version may have the earlier-looking text; "both": versionId decides although
    # lastUpdated says the opposite
    meta = {"versionId": str(version)} if style in ("versionId", "history-delete") else \
        {"lastUpdated": f"2026-11-10T{version + 8:02d}:{version:02d}:00+08:00" if version % 2
         else f"2026-11-10T{version:02d}:{version:02d}:00Z"} if style == "lastUpdated" else \
        {"versionId": str(version), "lastUpdated": f"2026-0{9 - version}-01T00:00:00Z"} if style == "both" else {}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def version(case: Case, ref: str, style: str, content: str, newer_first: bool) -> list[tuple[str, dict]]:
    """The record as version 2 (or later), an older copy changed by `content` in another document."""
    docs = copy.deepcopy(case.docs)
    di, ei, res = locate(docs, ref)
    older = _older_content(res, content)
    if style == "no-meta":  # neither copy says which is newer: they must not be read as one or the other
        extra = [("other-export.json", bundle(_meta(older, 1, "versionId")))]
    elif style in ("history", "history-delete"):
        current = _meta(res, 3, "versionId")
        docs[di][1]["entry"][ei]["resource"] = current
        entries = [{"resource": current, "request": {"method": "PUT", "url": ref}}]
        if style == "history-delete":  # deleted at version 2, re-created as version 3
            entries.append({"request": {"method": "DELETE", "url": ref}, "response": {"status": "204", "etag": 'W/"2"'}})
        entries.append({"resource": _meta(older, 1, "versionId"), "request": {"method": "PUT", "url": ref}})
        extra = [("history.json", {"resourceType": "Bundle", "type": "history", "entry": entries})]
    else:
        docs[di][1]["entry"][ei]["resource"] = _meta(res, 2, style)
        extra = [("other-export.json", bundle(_meta(older, 1, style)))]
    return extra + docs if newer_first else docs + extra


def newer_note(case: Case, ref: str, newer_first: bool) -> list[tuple[str, dict]]:
    """A newer copy that differs only in a note: the record still decides."""
    docs = copy.deepcopy(case.docs)
    di, ei, res = locate(docs, ref)
    docs[di][1]["entry"][ei]["resource"] = _meta(res, 1, "versionId")
    newer = _meta(res, 2, "versionId")
    newer["note"] = [{"text": "reviewed"}]
    extra = [("later-export.json", bundle(newer))]
    return extra + docs if newer_first else docs + extra


def entered_in_error(case: Case, ref: str, style: str, newer_first: bool) -> list[tuple[str, dict]]:
    """For an eligible case: a newer entered-in-error version of a deciding record, in another document."""
    docs = copy.deepcopy(case.docs)
    di, ei, res = locate(docs, ref)
    eie = _older_content(res, "entered-in-error")
    if style == "history":
        docs[di][1]["entry"][ei]["resource"] = _meta(res, 1, "versionId")
        extra = [("history.json", {"resourceType": "Bundle", "type": "history", "entry": [
            {"resource": _meta(eie, 2, "versionId"), "request": {"method": "PUT", "url": ref}},
            {"resource": _meta(res, 1, "versionId"), "request": {"method": "POST", "url": res["resourceType"]}}]})]
    elif style == "history-order":  # no versionIds: the history Bundle's order alone says the EIE is newer
        extra = [("history.json", {"resourceType": "Bundle", "type": "history", "entry": [
            {"resource": eie, "request": {"method": "PUT", "url": ref}},
            {"resource": copy.deepcopy(res), "request": {"method": "POST", "url": res["resourceType"]}}]})]
        del docs[di][1]["entry"][ei]
    else:
        docs[di][1]["entry"][ei]["resource"] = _meta(res, 1, style)
        extra = [("later-export.json", bundle(_meta(eie, 2, style)))]
    return extra + docs if newer_first else docs + extra


EIE_STYLES = ("versionId", "lastUpdated", "both", "history", "history-order")


# ---- class 3: every legal way to name the patient --------------------------------------------
WAYS = ("absolute", "absolute-other", "history", "conditional", "conditional-encoded", "conditional-value",
        "conditional-id", "logical", "logical-no-system", "reference-and-identifier")


def _link(case: Case, way: str) -> dict | None:
    pid = case.patient.removeprefix("Patient/")
    if case.patient.startswith("urn:"):
        return {"reference": case.patient} if way == "absolute" else None
    system, value = case.identifier or (None, None)
    if way.startswith(("conditional", "logical", "reference-and")) and value is None:
        return None
    from urllib.parse import quote

    return {"absolute": {"reference": f"{case.base}/Patient/{pid}"},
            "absolute-other": {"reference": f"https://other.example.org/r4/Patient/{pid}"},
            "history": {"reference": f"{case.base}/Patient/{pid}/_history/2"},
            "conditional": {"reference": f"Patient?identifier={system}|{value}"},
            "conditional-encoded": {"reference": f"Patient?identifier={quote(f'{system}|{value}', safe='')}"},
            "conditional-value": {"reference": f"Patient?identifier={value}"},
            "conditional-id": {"reference": f"Patient?_id={pid}"},
            "logical": {"identifier": {"system": system, "value": value}},
            "logical-no-system": {"identifier": {"value": value}, "display": "the patient"},
            "reference-and-identifier": {"reference": f"Patient/{pid}", "identifier": {"system": system, "value": value}},
            }[way]


def reref(case: Case, ref: str | None, way: str, move: bool) -> list[tuple[str, dict]] | None:
    """`ref` (or every record, None) naming the patient `way`; `move`: into a document without the Patient."""
    link = _link(case, way)
    if link is None:
        return None
    docs = copy.deepcopy(case.docs)
    moved: list[dict] = []
    for _, doc in docs:
        keep = []
        for e in doc.get("entry", ()):
            r = e.get("resource")
            if not isinstance(r, dict) or r.get("resourceType") in ("Patient", "Medication", "ResearchStudy") or (ref is not None and ref_of(r) != ref):
                keep.append(e)
                continue
            f = link_field(r)
            if not _names(r.get(f), case.patient):  # another patient's record (a Bundle of several)
                keep.append(e)
                continue
            r[f] = copy.deepcopy(link)
            if move:
                moved.append(r)
            else:
                keep.append(e)
        doc["entry"] = keep
    if moved:
        docs.append(("other-system.json", bundle(*moved)))
    return docs


def _names(link: object, patient: str) -> bool:
    """Does a reference name the patient (`Patient/x`, an absolute URL ending in it, or the urn:uuid)?"""
    ref = link.get("reference") if isinstance(link, dict) else None
    return isinstance(ref, str) and (ref == patient or ref.endswith("/" + patient))


# ---- class 4: garbled records ------------------------------------------------------------------
GARBLE_TYPES = ("missing", "misspelt", "lower-case", "other-version")
GARBLE_LINKS = ("number", "plain-string", "missing", "other-id", "display-only", "spaced-id")


def garble(case: Case, ref: str, what: str) -> list[tuple[str, dict]]:
    docs = copy.deepcopy(case.docs)
    _, _, res = locate(docs, ref)
    kind, _, how = what.partition(":")
    if kind == "type":
        rtype = res["resourceType"]
        if how == "missing":
            res.pop("resourceType")
        elif how == "misspelt":
            res["resourceType"] = rtype[:-2] + rtype[-1] + rtype[-2]
        elif how == "lower-case":
            res["resourceType"] = rtype.lower()
        else:
            res["resourceType"] = {"MedicationStatement": "MedicationUsage"}.get(rtype, rtype + "2")
    else:
        f = link_field(res)
        pid = case.patient.removeprefix("Patient/")
        res[f] = {"number": 1234, "plain-string": case.patient, "missing": None, "other-id": {"reference": f"Patient/{pid}x"},
                  "display-only": {"display": "the patient"}, "spaced-id": {"reference": f"Patient/{pid[:1]} {pid[1:]}"}}[how]
        if res[f] is None:
            res.pop(f)
    return docs


# ---- every mutant of a case ---------------------------------------------------------------------
Mutant = tuple[str, str, Callable[[], "list[tuple[str, dict]] | None"]]  # (class, label, build)


def mutants(case: Case, every_record: bool = True) -> Iterator[Mutant]:
    """Every mutant of the four classes for a not-eligible case (and eie for an eligible one). Without
    `every_record`, records are re-referenced and garbled one at a time only where they decide (and all
    at once)."""
    if case.status == "eligible":
        for ref in case.deciding:
            for style in EIE_STYLES:
                for first in (False, True):
                    yield "eie", f"{ref} {style} {'newer first' if first else 'newer last'}", \
                        (lambda ref=ref, style=style, first=first: entered_in_error(case, ref, style, first))
        return
    copies = Counter(ref_of(r) for _, _, r in records(case))
    for ref in case.deciding:
        if copies[ref] > 1:
            continue  # the case's own versions of it (a corpus scenario): which copy decides is the case itself
        _, _, res = locate(case.docs, ref)
        for how in relocations(res):
            yield "relocate", f"{ref} {how}", (lambda ref=ref, how=how: relocate(case, ref, how))
        for style in STYLES:
            for content in CONTENTS:
                for first in (False, True):
                    yield "version", f"{ref} {style} older-{content} {'other first' if first else 'other last'}", \
                        (lambda ref=ref, style=style, content=content, first=first: version(case, ref, style, content, first))
        for first in (False, True):
            yield "version", f"{ref} newer-note {'first' if first else 'last'}", \
                (lambda ref=ref, first=first: newer_note(case, ref, first))
    targets = [None, *dict.fromkeys(ref_of(r) for _, _, r in records(case)
                                    if r.get("resourceType") not in ("Patient", "Medication", "ResearchStudy") and ref_of(r)
                                    and (every_record or ref_of(r) in case.deciding))]
    for ref in targets:
        for way in WAYS:
            for move in (False, True):
                yield "reref", f"{ref or 'every record'} {way}{' moved' if move else ''}", \
                    (lambda ref=ref, way=way, move=move: reref(case, ref, way, move))
        if ref is not None:
            for how in GARBLE_TYPES:
                yield "garble", f"{ref} type:{how}", (lambda ref=ref, how=how: garble(case, ref, f"type:{how}"))
            for how in GARBLE_LINKS:
                yield "garble", f"{ref} link:{how}", (lambda ref=ref, how=how: garble(case, ref, f"link:{how}"))


# ---- the CDS service on the same data -----------------------------------------------------------
def prefetch_of(docs: list[tuple[str, dict]], tpls: dict, patient: str, original: list[tuple[str, dict]]) -> dict:
    """The prefetch an EHR sends for the patient: every record of the documents in the search of its type.
    A garbled record stays in the search it came back from: the type its entry had in `original`."""
    types = {t.type for t in tpls.values()}
    pid = patient.removeprefix("Patient/")
    out: dict[str, Any] = {}
    by_type: dict[str, list[dict]] = {}
    for di, (_, doc) in enumerate(docs):
        # a history Bundle's versions go in as copies (the service orders them by their meta as files are;
        # its DELETEs have no place in a search answer)
        for ei, e in enumerate(doc.get("entry", ())):
            r = e.get("resource")
            if not isinstance(r, dict):
                continue
            rtype = r.get("resourceType")
            if rtype not in types:
                try:
                    rtype = original[di][1]["entry"][ei]["resource"].get("resourceType")
                except (IndexError, KeyError):  # moved into a document of its own: as it is
                    pass
            if rtype not in types:  # garbled at the source (a corpus scenario): the search of the type it is
                near = difflib.get_close_matches(str(rtype), sorted(types), n=1, cutoff=0.8)  # a misspelling of
                rtype = near[0] if near else rtype
            by_type.setdefault(str(rtype), []).append(r)
    # a search scoped to the patient returns no record of another patient of the input (a Bundle of
    # several patients); a garbled link (to no Patient of the input) stays in the answer it came in
    others = {f"Patient/{r['id']}" for r in by_type.get("Patient", ()) if isinstance(r.get("id"), str) and r["id"] != pid}
    for rtype, hits in by_type.items():
        by_type[rtype] = [r for r in hits if not _names_one_of(r, others)]
    # what the records point at but no patient-scoped search returns (a Medication, the study): in the
    # answer of the search that found the record, as `_include` puts it (search mode include)
    shared = {f"{r.get('resourceType')}/{r.get('id')}": r for _, _, r in _all(docs)
              if r.get("resourceType") in ("Medication", "ResearchStudy")}
    for key, tpl in tpls.items():
        if tpl.is_read:
            out[key] = next((r for r in by_type.get("Patient", ()) if r.get("id") == pid), None)
            continue
        hits = by_type.get(tpl.type, [])
        included = [shared[k] for k in dict.fromkeys(_references(hits)) if k in shared and shared[k] not in hits]
        out[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(hits),
                    "entry": [{"resource": r, "search": {"mode": "match"}} for r in hits]
                    + [{"resource": r, "search": {"mode": "include"}} for r in included]} if hits else None
    return out


def _names_one_of(res: dict, patients: set[str]) -> bool:
    link = res.get(LINK.get(str(res.get("resourceType")), "subject"))
    ref = link.get("reference") if isinstance(link, dict) else None
    return isinstance(ref, str) and any(ref == p or ref.endswith("/" + p) for p in patients)


def _references(node: object) -> Iterator[str]:
    """`Type/id` of every literal reference under `node` (absolute ones by their last two segments)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str) and "/" in v and not v.startswith("#"):
                yield "/".join(v.split("/")[-2:])
            else:
                yield from _references(v)
    elif isinstance(node, list):
        for x in node:
            yield from _references(x)


def cds_status(url: str, tpls: dict, case: Case, docs: list[tuple[str, dict]]) -> str:
    """'eligible', 'candidate' or 'no card' from a patient-view call over HTTP with the documents as prefetch."""
    from cds_helpers import card_status

    if not case.patient.startswith("Patient/"):
        return "no card"  # an id-less Patient (a transaction's urn:uuid) has no patientId for a hook
    return card_status(url, case.patient.removeprefix("Patient/"), prefetch_of(docs, tpls, case.patient, case.docs))


# ---- counting every mutant (the figures in the closing note) ------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", choices=["samples", "hospital", "all"], default="all")
    ap.add_argument("--cds", action="store_true", help="also call a CDS service over HTTP with each mutant as prefetch")
    ap.add_argument("--limit", type=int, default=0, help="at most N mutants per case (0: all)")
    ap.add_argument("--deciding-only", action="store_true",
                    help="re-reference and garble records one at a time only where they decide (the corpus is large)")
    args = ap.parse_args(argv)
    screens = Screens()
    cases = (sample_cases() if args.cases in ("samples", "all") else []) + \
            (hospital_cases() if args.cases in ("hospital", "all") else [])
    tried: Counter[str] = Counter()
    found: Counter[str] = Counter()
    cds_tried: Counter[str] = Counter()
    cds_found: Counter[str] = Counter()
    started = time.monotonic()
    services = _services(screens) if args.cds else None
    try:
        for case in cases:
            screens.prepare(case)
            for n, (cls, label, build) in enumerate(mutants(case, not args.deciding_only)):
                if args.limit and n >= args.limit:
                    break
                docs = build()
                if docs is None:
                    continue
                tried[cls] += 1
                got = screens.statuses(case, docs)
                bad = _violates(case, cls, got)
                if bad:
                    found[cls] += 1
                    print(f"{cls}: {case.name}: {label}: {bad}", flush=True)
                if services is not None:
                    url, tpls = services[case.maps]
                    cds_tried[cls] += 1
                    status = cds_status(url, tpls, case, docs)
                    if status == "eligible":
                        cds_found[cls] += 1
                        print(f"{cls} (CDS): {case.name}: {label}: card says eligible", flush=True)
    finally:
        if services is not None:
            for stack in _STACKS:
                stack.close()
    print(f"cases: {len(cases)} ({sum(c.status != 'eligible' for c in cases)} not eligible), "
          f"{time.monotonic() - started:.0f} s")
    for cls in (*CLASSES, "eie"):
        line = f"{cls:9s} mutants {tried[cls]:6d}  {'still eligible' if cls == 'eie' else 'eligible'}: screen {found[cls]}"
        if args.cds:
            line += f", CDS {cds_found[cls]} of {cds_tried[cls]}"
        print(line)
    return 1 if sum(found.values()) + sum(cds_found.values()) else 0


def _violates(case: Case, cls: str, got: dict[str, Any]) -> str | None:
    """What breaks the promise in a mutant's results, or None."""
    if cls == "eie":
        r = got.get(case.patient)
        return "still eligible" if r is not None and r.status == "eligible" else None
    for key, r in got.items():
        if r.status == "eligible":
            return f"{key} eligible"
    return None


_STACKS: list[Any] = []


def _services(screens: Screens) -> dict[str, tuple[str, dict]]:
    import contextlib
    import tempfile
    from datetime import date

    from cds_helpers import SERVICE, running
    from fhir3t.service.settings import ServeSettings

    out = {}
    for maps, definition in screens.definitions.items():
        stack = contextlib.ExitStack()
        _STACKS.append(stack)
        settings = ServeSettings(as_of=date(2026, 11, 16), state_dir=Path(tempfile.mkdtemp(prefix="promise-cds-")),
                                 show_again_after_days=0)
        url, service = stack.enter_context(running(settings, definition))
        out[maps] = (url, service.services[SERVICE].prefetch)
    return out


if __name__ == "__main__":
    sys.exit(main())
