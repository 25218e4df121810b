"""Validation throughput of `fhir3t.validate` vs plain fhir.resources R4B parsing, same resources; and of
`fhir3t validate` on files (JSON Bundle, NDJSON, FHIR XML Bundle) as a ratio to only parsing the same file.

Generates seeded Synthea-like data in memory (~100 resources per patient: Patient, Encounters,
Observations with LOINC codes and valueQuantity, Conditions, MedicationRequests, Procedures,
Immunizations) and times everything over the same resources, in one run. The XML Bundle is written by
fhir.resources (needs lxml: the test extra), read back by fhir3t.fhirxml (parse) and validate_issues.

    python benchmarks/bench_validate.py [N_RESOURCES] [--seed S]
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

try:
    from fhir.resources.R4B import get_fhir_model_class
except ImportError:  # the parsing baseline lives in the bench extra
    sys.exit("bench_validate.py needs fhir.resources: pip install -e \".[bench]\"")

from fhir3t import fhirxml
from fhir3t.validate import validate_issues, validate_resource

LOINC = [("1742-6", "ALT", "U/L", 5, 60), ("1920-8", "AST", "U/L", 5, 60), ("2160-0", "Creatinine", "mg/dL", 0.5, 1.4),
         ("718-7", "Hemoglobin", "g/dL", 9, 17), ("6690-2", "WBC", "10*3/uL", 3, 12), ("777-3", "Platelets", "10*3/uL", 100, 400),
         ("2532-0", "LDH", "U/L", 100, 400), ("2157-6", "CK", "U/L", 20, 300), ("8867-4", "Heart rate", "/min", 50, 110),
         ("8310-5", "Body temperature", "Cel", 36, 39)]
SNOMED = [("38341003", "Hypertension"), ("44054006", "Diabetes type 2"), ("396230008", "Dermatomyositis"),
          ("233604007", "Pneumonia"), ("195662009", "Acute viral pharyngitis")]
RXNORM = [("1049221", "tofacitinib"), ("312615", "prednisone"), ("197361", "amlodipine")]


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def patient_resources(rng: random.Random) -> list[dict]:
    pid = _uid(rng)
    subj = {"reference": f"Patient/{pid}"}
    out: list[dict] = [{
        "resourceType": "Patient", "id": pid,
        "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": pid}],
        "name": [{"use": "official", "family": rng.choice(["Li", "Wang", "Smith"]), "given": ["Ann"]}],
        "gender": rng.choice(["male", "female"]), "birthDate": f"{rng.randint(1940, 2005)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        "address": [{"city": "Hangzhou", "country": "CN"}],
    }]
    for _ in range(10):
        eid = _uid(rng)
        day = f"20{rng.randint(10, 25)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        out.append({"resourceType": "Encounter", "id": eid, "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003"}]}],
                    "subject": subj, "period": {"start": f"{day}T09:00:00+08:00", "end": f"{day}T09:30:00+08:00"}})
        for _ in range(7):
            code, name, unit, lo, hi = rng.choice(LOINC)
            out.append({"resourceType": "Observation", "id": _uid(rng), "status": "final",
                        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                                  "code": "laboratory"}]}],
                        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}], "text": name},
                        "subject": subj, "encounter": {"reference": f"Encounter/{eid}"},
                        "effectiveDateTime": f"{day}T09:10:00+08:00", "issued": f"{day}T10:00:00.000+08:00",
                        "valueQuantity": {"value": round(rng.uniform(lo, hi), 1), "unit": unit,
                                          "system": "http://unitsofmeasure.org", "code": unit}})
        kind = rng.random()
        if kind < 0.3:
            code, name = rng.choice(SNOMED)
            out.append({"resourceType": "Condition", "id": _uid(rng),
                        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
                        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": name}]},
                        "subject": subj, "encounter": {"reference": f"Encounter/{eid}"}, "onsetDateTime": f"{day}T09:00:00+08:00"})
        elif kind < 0.6:
            code, name = rng.choice(RXNORM)
            out.append({"resourceType": "MedicationRequest", "id": _uid(rng), "status": "active", "intent": "order",
                        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": name}]},
                        "subject": subj, "encounter": {"reference": f"Encounter/{eid}"}, "authoredOn": day,
                        "dosageInstruction": [{"text": "1 tablet daily", "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}]})
        elif kind < 0.8:
            out.append({"resourceType": "Procedure", "id": _uid(rng), "status": "completed",
                        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "430193006"}]},
                        "subject": subj, "performedPeriod": {"start": f"{day}T09:05:00+08:00", "end": f"{day}T09:15:00+08:00"}})
        else:
            out.append({"resourceType": "Immunization", "id": _uid(rng), "status": "completed",
                        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
                        "patient": subj, "occurrenceDateTime": f"{day}T09:00:00+08:00", "primarySource": True})
    return out


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < n:
        out.extend(patient_resources(rng))
    return out[:n]


def bench(resources: list[dict]) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    for r in resources:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_issues = sum(len(validate_resource(r)) for r in resources)
    validate_s = time.perf_counter() - t0
    return parse_s, validate_s, n_issues


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    resources = generate(args.n, args.seed)
    validate_resource(resources[0])  # warm caches (schemas, bindings, compiled FHIRPath)
    parse_s, validate_s, n_issues = bench(resources)
    n = len(resources)
    print(f"resources:                 {n}")
    print(f"fhir.resources R4B parse:  {n / parse_s:10,.0f} resources/s ({parse_s:.2f} s)")
    print(f"fhir3t validate:           {n / validate_s:10,.0f} resources/s ({validate_s:.2f} s, {n_issues} issues)")
    print(f"ratio validate/parse:      {parse_s / validate_s:.2f}x the parse throughput")
    files(resources)


def _timed(fn) -> float:
    gc.collect()  # a full collection of the generated resources must not land inside one timing
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def files(resources: list[dict]) -> None:
    """`fhir3t validate` on files, each against parsing the same file (orjson; fhirxml for XML)."""
    n = len(resources)
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]}
    with tempfile.TemporaryDirectory() as tmp:
        js, nd, xml = Path(tmp) / "b.json", Path(tmp) / "r.ndjson", Path(tmp) / "b.xml"
        js.write_bytes(orjson.dumps(bundle))
        nd.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
        xml.write_bytes(get_fhir_model_class("Bundle").model_validate(json.loads(js.read_bytes())).model_dump_xml())
        rows = [
            ("JSON Bundle", js, lambda: orjson.loads(js.read_bytes())),
            ("NDJSON", nd, lambda: [orjson.loads(line) for line in nd.read_bytes().splitlines()]),
            ("XML Bundle", xml, lambda: fhirxml.parse(xml.read_bytes())),
        ]
        for label, path, parse in rows:
            parse_s = _timed(parse)
            gc.collect()
            t0 = time.perf_counter()
            issues, tally = validate_issues([path])
            validate_s = time.perf_counter() - t0
            print(f"{label + ' (' + f'{path.stat().st_size / 1e6:.1f} MB' + ')':<26} parse {n / parse_s:10,.0f} resources/s, "
                  f"validate {tally.resources / validate_s:8,.0f} resources/s ({validate_s:.2f} s, {len(issues)} issues): "
                  f"validate takes {validate_s / parse_s:.0f}x the parse time")


if __name__ == "__main__":
    main()
