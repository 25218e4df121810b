"""CDS Hooks latency: every way the data can arrive, over real HTTP against a real FHIR server.

Starts sekmet-fhir (the integration tests' cached virtualenv and launcher) unless --server is given, loads
the sample patients and a copy of p01 with 5,000 more Observations (vital signs: a sick inpatient), serves
fhir3t's CDS service with uvicorn on a loopback port with the default budget (2,000 ms), and times real HTTP
calls (requests, keep-alive). Baseline, measured in the same run: the screening alone (the same documents
through screen_documents, no HTTP). Every call renders a card or decides on none (show_again_after_days = 0,
so the how-often rule does not short-cut anything); the cards each scenario gave are printed, so a faster
scenario that gives another card shows.

Scenarios, per patient (eligible p01, candidate p03, ineligible p07, local codes p22):
- full prefetch; by-code prefetch (Observation filtered by the criteria's codes, [serve] prefetch = "by-code");
  paged prefetch (the first page of each search, `_count=2`, read on from its next links by the service);
  Patient + Condition prefetched and the rest fetched; nothing prefetched, everything fetched;
- order-select with full prefetch (baricitinib: the patient screened twice);
- the 5,000-Observation patient with nothing prefetched: everything fetched within the default budget.

Usage: python benchmarks/bench_cds.py [--calls 30] [--big-calls 10] [--server URL]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cds_helpers import CONCEPT_MAP, SERVICE, hook_request, running  # noqa: E402
from fhir3t.pipeline import Definition, Run, screen_documents  # noqa: E402
from fhir3t.service.prefetch import read_prefetch, templates  # noqa: E402
from fhir3t.service.settings import ServeSettings  # noqa: E402

AS_OF = date(2026, 11, 16)
PATIENTS = ("p01", "p03", "p07", "p22")  # eligible, candidate, ineligible, local codes (eligible with the map)
BIG = "p01big"
BIG_OBSERVATIONS = 5000
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def prefetch_from(base: str, definition: Definition, pid: str, mode: str = "all", keys: set[str] | None = None,
                  count: int | None = None) -> dict:
    """What an EHR sends: each template run against its server (null when empty); `count`: first pages only."""
    out: dict = {}
    for key, tpl in templates(definition, mode).items():
        if keys is not None and key not in keys:
            continue
        query = tpl.expand(pid)
        if count and not tpl.is_read:
            query += f"&_count={count}"
        body = requests.get(f"{base}/{query}", headers={"Accept": "application/fhir+json"}, timeout=60).json()
        out[key] = None if body.get("resourceType") == "Bundle" and not body.get("entry") else body
    return out


def load_big_patient(base: str) -> None:
    text = (ROOT / "samples" / "screening" / "01-eligible-classic.json").read_text(encoding="utf-8").replace("p01", BIG)
    from integration.conftest import as_transaction

    requests.post(base, json=as_transaction(json.loads(text)), timeout=60).raise_for_status()
    for start in range(0, BIG_OBSERVATIONS, 1000):
        entries = []
        for i in range(start, min(start + 1000, BIG_OBSERVATIONS)):
            obs = {"resourceType": "Observation", "id": f"{BIG}-v{i}", "status": "final",
                   "subject": {"reference": f"Patient/{BIG}"},
                   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                             "code": "vital-signs"}]}],
                   "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
                   "effectiveDateTime": f"2026-{1 + i % 10:02d}-{1 + i % 28:02d}T08:{i % 60:02d}:00+08:00",
                   "valueQuantity": {"value": 60 + i % 40, "unit": "/min"}}
            entries.append({"resource": obs, "request": {"method": "PUT", "url": f"Observation/{obs['id']}"}})
        requests.post(base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                      timeout=300).raise_for_status()


def order_body(pid: str, prefetch: dict) -> dict:
    body = hook_request(pid, prefetch)
    body["hook"] = "order-select"
    order = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
             "subject": {"reference": f"Patient/{pid}"},
             "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "2047232", "display": "baricitinib"}]}}
    body["context"].update(selections=["MedicationRequest/draft-1"],
                           draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]})
    return body


def stats(ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms"


def shown(cards: list[dict]) -> str:
    return cards[0]["summary"].split(" for ")[0].split(" the patient")[0] if cards else "no card"


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--calls", type=int, default=30, help="calls per patient and scenario (default 30)")
    ap.add_argument("--big-calls", type=int, default=10, help="calls for the 5,000-Observation patient (default 10)")
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
        load_big_patient(base)
        definition = Definition.load(concept_maps=[CONCEPT_MAP])
        tpls = templates(definition)
        full = {pid: prefetch_from(base, definition, pid) for pid in PATIENTS}
        by_code = {pid: prefetch_from(base, definition, pid, "by-code") for pid in PATIENTS}
        paged = {pid: prefetch_from(base, definition, pid, count=2) for pid in PATIENTS}
        partial = {pid: prefetch_from(base, definition, pid, keys={"patient", "condition"}) for pid in PATIENTS}
        state = Path(tempfile.mkdtemp(prefix="bench-cds-state-"))
        settings = ServeSettings(state_dir=state / "all", as_of=AS_OF, fhir_servers=(base,), show_again_after_days=0)
        code_settings = ServeSettings(**{**settings.__dict__, "state_dir": state / "by-code", "prefetch": "by-code"})
        scenarios: dict[str, list[float]] = {}
        outcomes: dict[str, set[str]] = {}
        with running(settings, definition) as (url, _cds), running(code_settings, definition) as (code_url, _c2):
            http = requests.Session()
            view, order = f"{url}/cds-services/{SERVICE}", f"{url}/cds-services/nct06438679-order-select"
            calls: dict[str, Callable[[str], tuple[str, dict]]] = {
                "full prefetch": lambda pid: (view, hook_request(pid, full[pid])),
                "by-code prefetch": lambda pid: (f"{code_url}/cds-services/{SERVICE}", hook_request(pid, by_code[pid])),
                "paged prefetch, read on from next links": lambda pid: (view, hook_request(pid, paged[pid])),
                "prefetch Patient+Condition, fetch the rest": lambda pid: (view, hook_request(pid, partial[pid],
                                                                                              fhirServer=base)),
                "no prefetch, fetch all": lambda pid: (view, hook_request(pid, fhirServer=base)),
                "order-select, full prefetch": lambda pid: (order, order_body(pid, full[pid])),
            }
            for make in calls.values():  # warm-up: connections, caches
                for pid in PATIENTS:
                    endpoint, body = make(pid)
                    http.post(endpoint, json=body, timeout=60)
            for _ in range(args.calls):
                for pid in PATIENTS:
                    docs = read_prefetch(full[pid], tpls, pid).documents
                    t = time.perf_counter()
                    r = screen_documents(definition, Run.start(definition, as_of=AS_OF), docs, f"Patient/{pid}")
                    scenarios.setdefault("screening only (baseline)", []).append((time.perf_counter() - t) * 1000)
                    outcomes.setdefault("screening only (baseline)", set()).add(f"{pid}:{r.status if r else None}")
                    for name, make in calls.items():
                        endpoint, body = make(pid)
                        t = time.perf_counter()
                        resp = http.post(endpoint, json=body, timeout=60)
                        scenarios.setdefault(name, []).append((time.perf_counter() - t) * 1000)
                        outcomes.setdefault(name, set()).add(f"{pid}:{shown(resp.json()['cards'])}")
            big = f"{BIG_OBSERVATIONS} Observations, no prefetch, fetch all"
            for _ in range(args.big_calls):
                t = time.perf_counter()
                resp = http.post(view, json=hook_request(BIG, fhirServer=base), timeout=60)
                scenarios.setdefault(big, []).append((time.perf_counter() - t) * 1000)
                outcomes.setdefault(big, set()).add(f"{BIG}:{shown(resp.json()['cards'])}")
        base_median = statistics.median(scenarios["screening only (baseline)"])
        print(f"fhir3t CDS Hooks latency, {args.calls} calls x {len(PATIENTS)} patients per scenario, {args.big_calls} "
              f"calls for {BIG} (server {base}, budget {settings.budget_ms} ms)")
        for name, ms in scenarios.items():
            print(f"  {name:45s} {stats(ms)}   x{statistics.median(ms) / base_median:6.1f} baseline")
        for name, seen in outcomes.items():
            print(f"  {name:45s} {', '.join(sorted(seen))}")
    finally:
        if srv is not None:
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
