"""Screening throughput and memory on synthetic Synthea-like patients.

Generates N patients (one Bundle file each, ~100 resources, most irrelevant to the trial as real
records are), then in one process measures plain `orjson.loads` of the same bytes (the baseline)
and the full screen (read, build records, evaluate 22 criteria). Each N runs in a fresh
subprocess so its peak RSS is its own.

    python benchmarks/bench_screen.py 1000 10000
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
IRRELEVANT_LABS = ["8302-2", "29463-7", "39156-5", "8867-4", "9279-1", "8480-6", "8462-4", "2093-3", "2571-8",
                   "18262-6", "2085-9", "4548-4", "2339-0", "6690-2", "789-8", "718-7", "4544-3", "787-2", "785-6",
                   "786-4", "21000-5", "777-3", "32207-3", "32623-1", "6298-4", "2947-0", "2069-3", "20565-8",
                   "38483-4", "49765-1", "33914-3", "1742-6", "1920-8", "1975-2"]


def _obs(pid: str, i: int, code: str, when: str, **value) -> dict:
    return {"resourceType": "Observation", "id": f"{pid}-o{i}", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": f"Test {code}"}], "text": f"Test {code}"},
            "subject": {"reference": f"Patient/{pid}"}, "encounter": {"reference": f"Encounter/{pid}-e{i % 10}"},
            "effectiveDateTime": when, "issued": when + "T10:00:00.000+08:00", **value}


def make_patient(n: int, rng: random.Random) -> dict:
    pid = f"bench{n}"
    res: list[dict] = [{"resourceType": "Patient", "id": pid, "gender": rng.choice(["male", "female"]),
                        "birthDate": f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                        "name": [{"family": f"Family{n}", "given": [f"Given{n}"]}],
                        "address": [{"city": "Hangzhou", "country": "CN"}]}]
    for e in range(10):
        res.append({"resourceType": "Encounter", "id": f"{pid}-e{e}", "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "subject": {"reference": f"Patient/{pid}"}, "period": {"start": f"2026-0{1 + e % 9}-10", "end": f"2026-0{1 + e % 9}-10"}})
    for i in range(60):
        res.append(_obs(pid, i, rng.choice(IRRELEVANT_LABS), f"2026-{1 + i % 10:02d}-{1 + i % 27:02d}",
                        valueQuantity={"value": round(rng.uniform(1, 200), 1), "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}))
    for c in range(8):
        res.append({"resourceType": "Condition", "id": f"{pid}-c{c}", "subject": {"reference": f"Patient/{pid}"},
                    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                    "code": {"coding": [{"system": SCT, "code": str(rng.choice([44054006, 38341003, 55822004, 195662009, 40055000, 15777000]))}]},
                    "onsetDateTime": "2015-01-01"})
    for m in range(10):
        res.append({"resourceType": "MedicationRequest", "id": f"{pid}-m{m}", "status": "completed", "intent": "order",
                    "subject": {"reference": f"Patient/{pid}"}, "authoredOn": "2025-03-01",
                    "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": str(rng.choice([197361, 310798, 314076, 849574]))}]}})
    for v in range(3):
        res.append({"resourceType": "Immunization", "id": f"{pid}-v{v}", "status": "completed", "patient": {"reference": f"Patient/{pid}"},
                    "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]}, "occurrenceDateTime": f"20{18 + v}-10-01"})
    for p in range(4):
        res.append({"resourceType": "Procedure", "id": f"{pid}-pr{p}", "status": "completed", "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": SCT, "code": "430193006"}]}, "performedDateTime": "2024-05-01"})
    # what the trial reads
    res.append({"resourceType": "Condition", "id": f"{pid}-dm", "subject": {"reference": f"Patient/{pid}"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M33.10"}]}, "onsetDateTime": "2026-05-01"})
    neg = {"valueCodeableConcept": {"coding": [{"system": SCT, "code": "260385009"}]}}
    for i, (code, value) in enumerate([("82424-3", {"valueString": rng.choice(["++", "+++", "+"])}),
                                       ("98130-8", {"valueQuantity": {"value": rng.randint(40, 95), "unit": "%", "code": "%"}}),
                                       ("24627-2", {"valueCodeableConcept": {"coding": [{"system": SCT, "code": "233703007"}]}}),
                                       ("5196-1", neg), ("16933-4", neg), ("13955-0", neg), ("56888-1", neg), ("71773-6", neg),
                                       ("2106-3", neg)], start=100):
        res.append(_obs(pid, i, code, "2026-11-03", **value))
    res.append({"resourceType": "QuestionnaireResponse", "id": f"{pid}-qr", "status": "completed",
                "questionnaire": "https://fhir3t.github.io/fhir/Questionnaire/3t-screening-checklist",
                "subject": {"reference": f"Patient/{pid}"}, "authored": "2026-11-05",
                "item": [{"linkId": k, "answer": [{"valueBoolean": True}]} for k in ("contraception", "compliance", "consent", "investigator-ok")]})
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"http://ehr.example.org/fhir/{r['resourceType']}/{r['id']}", "resource": r} for r in res]}


def generate(n: int, folder: Path) -> int:
    rng = random.Random(42)
    total = 0
    for i in range(n):
        data = orjson.dumps(make_patient(i, rng))
        total += len(data)
        (folder / f"p{i:06d}.json").write_bytes(data)
    return total


def worker(folder: Path) -> dict:
    import fhir3t
    from fhir3t.errors import Problems
    from fhir3t.pipeline import Definition

    files = sorted(folder.glob("*.json"))
    definition = Definition.load()
    t0 = time.perf_counter()
    resources = 0
    for f in files:
        resources += len(orjson.loads(f.read_bytes())["entry"])
    t_parse = time.perf_counter() - t0
    problems = Problems()
    t0 = time.perf_counter()
    statuses: dict[str, int] = {}
    for r in fhir3t.screen([folder], as_of="2026-11-16", definition=definition, problems=problems):
        statuses[r.status] = statuses.get(r.status, 0) + 1
    t_screen = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    jobs = os.cpu_count() or 1
    n_par = sum(1 for _ in fhir3t.screen([folder], as_of="2026-11-16", jobs=jobs))
    t_par = time.perf_counter() - t0
    assert n_par == len(files)
    return {"patients": len(files), "resources": resources, "parse_s": t_parse, "screen_s": t_screen,
            "parallel_s": t_par, "jobs": jobs,
            "peak_rss_mb": peak, "statuses": statuses,
            "problems": len(problems)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", nargs="*", type=int, default=[1000])
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    print(f"{'N':>7} {'resources':>10} {'MB':>7} {'parse s':>8} {'screen s':>9} {'patients/s':>11} {'ratio':>6} "
          f"{'peak RSS MB':>12} {'jobs':>5} {'par s':>7} {'par pat/s':>10} {'par ratio':>10}")
    for n in args.n:
        with tempfile.TemporaryDirectory() as tmp:
            size = generate(n, Path(tmp))
            out = subprocess.run([sys.executable, __file__, "--worker", tmp], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            print(f"{n:>7} {r['resources']:>10} {size / 1e6:>7.1f} {r['parse_s']:>8.2f} {r['screen_s']:>9.2f} "
                  f"{r['patients'] / r['screen_s']:>11.0f} {r['screen_s'] / r['parse_s']:>6.2f} {r['peak_rss_mb']:>12.1f} "
                  f"{r['jobs']:>5} {r['parallel_s']:>7.2f} {r['patients'] / r['parallel_s']:>10.0f} {r['parallel_s'] / r['parse_s']:>10.2f}"
                  f"   {r['statuses']} problems={r['problems']}")
    print("ratio = full screening time (one process) / plain orjson.loads of the same bytes in one process (file read "
          "included in both); par = the same screen with --jobs = CPU count. Peak RSS is measured before the parallel run.")


if __name__ == "__main__":
    main()
