"""The enrolment workflow's state file at scale: a nightly run kept in it, the log, the coordinator page's worklist
(all records + what changed), and one step, for N screened patients with R runs each; against the floor of
reading the same rows out of SQLite and decoding them (orjson), measured in the same run.

    python benchmarks/bench_enrolment.py 1000 10000 --runs 3

The patients are the 25 screening samples' results copied under new ids (the same criteria results, so the
same work per patient as a real run's).
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fhir3t.emit.enrolment import Who  # noqa: E402
from fhir3t.enrolment import Action  # noqa: E402
from fhir3t.pipeline import Definition, FileInputs, Run, screen_files  # noqa: E402
from fhir3t.pipeline.enrolment import Step, act, all_records, changed_since_last, log_rows, record_screening  # noqa: E402
from fhir3t.state import StateFile  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def floor(path: Path) -> int:
    """Every screening row and resource read out of SQLite and decoded: what any reader of the file must do."""
    db = sqlite3.connect(path)
    k = 0
    for sql in ("SELECT result FROM screenings", "SELECT json FROM resources"):
        for (blob,) in db.execute(sql):
            orjson.loads(blob)
            k += 1
    db.close()
    return k


def measure(definition: Definition, run: Run, base: list, n: int, runs: int) -> None:
    results = [replace(base[i % len(base)], patient=f"Patient/b{i}") for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.state.sqlite"
        state = StateFile(path)
        record = sum(timed(lambda: record_screening(definition, run, state, results))[0] for _ in range(runs))
        eligible = next(r.patient for r in results if r.status == "eligible")
        step = Step(eligible, Action.CONSENT, date(2026, 11, 16), Who("bench"))
        t_step, _ = timed(lambda: act(definition, run, state, step))
        t_log, (rows, flow) = timed(lambda: log_rows(definition, run, state))
        t_page, _ = timed(lambda: changed_since_last(all_records(definition, run, state)))
        state.close()
        t_floor, _ = timed(lambda: floor(path))
        assert len(rows) == n and flow["screened"] == n
        print(f"{n:>9} {runs:>4} {record / runs:>12.2f} {t_log:>7.2f} {t_page:>7.2f} {t_step * 1000:>8.1f} "
              f"{t_floor:>8.2f} {t_log / t_floor:>9.1f} {path.stat().st_size / 1e6:>8.1f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="+", type=int)
    ap.add_argument("--runs", type=int, default=3, help="screening runs kept per patient")
    args = ap.parse_args()
    samples = ROOT / "samples"
    definition = Definition.load(None, [samples / "conceptmaps" / "hospital-local.json"])
    run = Run.start(definition, as_of="2026-11-16")
    base = [r for r in screen_files(definition, run, FileInputs((samples / "screening",))) if r.patient.startswith("Patient/")]
    print(f"{'patients':>9} {'runs':>4} {'record run s':>12} {'log s':>7} {'page s':>7} {'step ms':>8} "
          f"{'floor s':>8} {'log/floor':>9} {'file MB':>8}")
    for n in args.sizes:
        measure(definition, run, base, n, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
