"""CDS Hooks latency: a patient-view call answered from prefetch, from prefetch plus fetches, from fetches only.

Starts sekmet-fhir (the integration tests' cached virtualenv and launcher) unless --server is given, loads
the sample patients, serves fhir3t's CDS service with uvicorn on a loopback port, and times real HTTP
calls (requests, keep-alive) for each way the data can arrive. Baseline, measured in the same run: the
screening alone (the same documents through screen_documents, no HTTP). Every call renders a card or
decides on none (show_again_after_days = 0, so the how-often rule does not short-cut anything).

Usage: python benchmarks/bench_cds.py [--calls 30] [--server URL]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cds_helpers import CONCEPT_MAP, SERVICE, hook_request, running  # noqa: E402
from fhir3t.pipeline import (  # noqa: E402
    Definition,
    Run,
    screen_documents,
)
from fhir3t.service.prefetch import read_prefetch, templates  # noqa: E402
from fhir3t.service.settings import ServeSettings  # noqa: E402

AS_OF = date(2026, 11, 16)
PATIENTS = ("p01", "p03", "p07", "p22")  # eligible, candidate, ineligible, local codes (eligible with the map)


def server_prefetch(base: str, definition: Definition, pid: str, keys: set[str] | None = None) -> dict:
    out: dict = {}
    for key, tpl in templates(definition).items():
        if keys is None or key in keys:
            body = requests.get(f"{base}/{tpl.expand(pid)}", headers={"Accept": "application/fhir+json"}, timeout=30).json()
            out[key] = None if body.get("resourceType") == "Bundle" and not body.get("entry") else body
    return out


def stats(ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=30, help="calls per patient and scenario (default 30)")
    ap.add_argument("--server", help="a FHIR server with the samples loaded (default: start sekmet and load them)")
    args = ap.parse_args()
    srv = None
    base = args.server
    if base is None:
        import pytest  # noqa: F401  (conftest's Server reports failures through pytest.fail)

        from integration.conftest import Server, load_samples

        srv = Server(Path(tempfile.mkdtemp(prefix="bench-cds-")))
        base = srv.base
        load_samples(base)
    try:
        definition = Definition.load(concept_maps=[CONCEPT_MAP])
        tpls = templates(definition)
        pre = {pid: server_prefetch(base, definition, pid) for pid in PATIENTS}
        partial = {pid: server_prefetch(base, definition, pid, {"patient", "condition"}) for pid in PATIENTS}
        settings = ServeSettings(state_dir=Path(tempfile.mkdtemp(prefix="bench-cds-state-")), as_of=AS_OF,
                                 fhir_servers=(base,), show_again_after_days=0, budget_ms=5000)
        scenarios: dict[str, list[float]] = {"screening only (baseline)": [], "full prefetch": [],
                                             "prefetch Patient+Condition, fetch the rest": [], "no prefetch, fetch all": []}
        outcomes: dict[str, set[str]] = {k: set() for k in scenarios}
        with running(settings, definition) as (url, cds):
            http = requests.Session()
            endpoint = f"{url}/cds-services/{SERVICE}"
            for pid in PATIENTS:  # warm-up: connections, caches
                http.post(endpoint, json=hook_request(pid, pre[pid]), timeout=30)
                http.post(endpoint, json=hook_request(pid, fhirServer=base), timeout=30)
            for _ in range(args.calls):
                for pid in PATIENTS:
                    docs = read_prefetch(pre[pid], tpls, pid).documents
                    t = time.perf_counter()
                    with cds._screen_lock:
                        r = screen_documents(definition, Run.start(definition, as_of=AS_OF), docs, f"Patient/{pid}")
                    scenarios["screening only (baseline)"].append((time.perf_counter() - t) * 1000)
                    outcomes["screening only (baseline)"].add(f"{pid}:{r.status if r else None}")
                    for name, body in (("full prefetch", hook_request(pid, pre[pid])),
                                       ("prefetch Patient+Condition, fetch the rest",
                                        hook_request(pid, partial[pid], fhirServer=base)),
                                       ("no prefetch, fetch all", hook_request(pid, fhirServer=base))):
                        t = time.perf_counter()
                        resp = http.post(endpoint, json=body, timeout=30)
                        scenarios[name].append((time.perf_counter() - t) * 1000)
                        cards = resp.json()["cards"]
                        outcomes[name].add(f"{pid}:{cards[0]['summary'].split(' for ')[0] if cards else 'no card'}")
        base_median = statistics.median(scenarios["screening only (baseline)"])
        print(f"fhir3t CDS Hooks latency, {args.calls} calls x {len(PATIENTS)} patients per scenario "
              f"(server {base}, budget {settings.budget_ms} ms)")
        for name, ms in scenarios.items():
            print(f"  {name:45s} {stats(ms)}   x{statistics.median(ms) / base_median:5.1f} baseline")
        for name, seen in outcomes.items():
            print(f"  {name:45s} {', '.join(sorted(seen))}")
    finally:
        if srv is not None:
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
