"""Pull benchmark: HTTP requests per candidate and wall time, fhir3t vs a naive per-type loop.

Starts sekmet-fhir (same cached virtualenv and launcher as the integration tests), loads N synthetic
patients (Patient + dermatomyositis Condition + a few screening labs + irrelevant Observations),
then in one run:
  - fhir3t: RestSource (candidate search + Patient/$everything), parallel 1 and 4
  - naive: the same candidates, one search per resource type the criteria read, per patient
Usage: python benchmarks/bench_pull.py [--patients 1000] [--server URL]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fhir3t.dates import parse_day  # noqa: E402
from fhir3t.errors import Problems  # noqa: E402
from fhir3t.pipeline import Definition, Run, screen_records  # noqa: E402
from fhir3t.r4facts import r4_facts  # noqa: E402
from fhir3t.sources.grouping import SharedIndex  # noqa: E402
from fhir3t.sources.rest import RestSource  # noqa: E402
from fhir3t.transport.http import FhirClient  # noqa: E402

LOINC = "http://loinc.org"


def patient_entries(i: int) -> list[dict]:
    pid = f"bench-{i:05d}"
    ref = {"reference": f"Patient/{pid}"}
    res: list[dict] = [
        {"resourceType": "Patient", "id": pid, "gender": "female" if i % 2 else "male", "birthDate": f"{1950 + i % 50}-03-01"},
        {"resourceType": "Condition", "id": f"{pid}-dm", "subject": ref,
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M33.10"}]}, "onsetDateTime": "2026-08-01"},
    ]
    labs = [("82424-3", "++"), ("5196-1", "Negative"), ("13955-0", "Negative")]
    for k, (code, value) in enumerate(labs):
        res.append({"resourceType": "Observation", "id": f"{pid}-lab{k}", "status": "final", "subject": ref,
                    "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": "2026-11-01",
                    "valueString": value})
    for k in range(6):  # vitals nobody reads
        res.append({"resourceType": "Observation", "id": f"{pid}-hr{k}", "status": "final", "subject": ref,
                    "code": {"coding": [{"system": LOINC, "code": "8867-4"}]}, "effectiveDateTime": f"2026-10-0{k + 1}",
                    "valueQuantity": {"value": 70 + k, "unit": "/min"}})
    return [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in res]


def load(base: str, n: int) -> None:
    for start in range(0, n, 100):
        entries = [e for i in range(start, min(n, start + 100)) for e in patient_entries(i)]
        r = requests.post(base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                          headers={"Content-Type": "application/fhir+json"}, timeout=300)
        r.raise_for_status()


def fhir3t_pull(base: str, definition: Definition, parallel: int) -> tuple[int, int, float]:
    client = FhirClient(base, parallel=parallel)
    shared = SharedIndex()
    src = RestSource(client, definition.tx, sorted(definition.screener.types), Problems(), shared)
    t0 = time.perf_counter()
    run = Run.start(definition, as_of=parse_day("2026-11-16"))
    n = sum(1 for _ in screen_records(definition, run, src, shared))
    return n, client.stats.requests, time.perf_counter() - t0


def naive_pull(base: str, definition: Definition, ids: list[str]) -> tuple[int, float]:
    client = FhirClient(base, parallel=1)
    types = sorted(t for t in definition.screener.types if t not in r4_facts().shared_types)
    params = {"ResearchSubject": "individual", "AdverseEvent": "subject"}
    t0 = time.perf_counter()
    for pid in ids:
        client.get(f"Patient/{pid}")
        for t in types:
            for _ in client.search(t, [(params.get(t, "patient"), pid)]):
                pass
    return client.stats.requests, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--server")
    args = ap.parse_args()
    definition = Definition.load()
    srv = None
    if args.server:
        base = args.server.rstrip("/")
    else:
        import pytest  # noqa: F401  (conftest's Server reports failures through pytest.fail)

        from integration.conftest import Server

        srv = Server(Path(tempfile.mkdtemp(prefix="bench-pull-")))
        base = srv.base
    try:
        t0 = time.perf_counter()
        load(base, args.patients)
        print(f"loaded {args.patients} patients ({len(patient_entries(0))} resources each) in {time.perf_counter() - t0:.1f} s")
        rows = []
        for parallel in (1, 4):
            n, req, wall = fhir3t_pull(base, definition, parallel)
            rows.append((f"fhir3t ($everything, parallel {parallel})", n, req, wall))
        client = FhirClient(base)
        src = RestSource(client, definition.tx, sorted(definition.screener.types), Problems())
        ids = src.candidates()
        req, wall = naive_pull(base, definition, ids)
        rows.append(("naive (1 search per type per patient)", len(ids), req, wall))
        print(f"{'method':42} {'patients':>8} {'requests':>9} {'req/cand':>9} {'wall s':>8}")
        for name, n, req, wall in rows:
            print(f"{name:42} {n:>8} {req:>9} {req / max(n, 1):>9.2f} {wall:>8.2f}")
        naive = rows[-1]
        for name, _n, req, wall in rows[:-1]:
            print(f"{name}: {naive[2] / req:.1f}x fewer requests, {naive[3] / wall:.1f}x faster than naive")
    finally:
        if srv is not None:
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
