"""A simulated month of nightly incremental runs (issue 28), timed against full re-screens in the same run.

    python benchmarks/bench_nightly.py N --work DIR [--nights 30] [--touch 0.01] [--moving-as-of]
                                       [--check-every 1] [--json figures.json]

Generates N patients with benchmarks/population.py (DIR/pN, reused), loads them into a store
(fhir3t.sources.statestore) with a first full screen, then for each night makes a delta with
benchmarks/nightly.py (about --touch of the patients changed: new labs and diagnoses, corrections, stale
resends, deletions, new patients) and times:
  - incremental: screen_update(store, delta) (merge + screening whom it can change), written as
    `fhir3t screen --store-dir S --format ndjson --out F DELTA` writes it (pipeline.deliver);
  - full: screen_files over the data as it stands (what a run without a store does), written the same
    way, every --check-every nights, and checks every patient's line is the same (JSON contract).
The as-of stays at the population's date unless --moving-as-of (then it moves a day a night and the
rule in pipeline/incremental.py screens everyone again from the store). Figures only: no assertion.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import nightly  # noqa: E402
import population  # noqa: E402
from fhir3t.errors import Problems  # noqa: E402
from fhir3t.formats import RunInfo  # noqa: E402
from fhir3t.pipeline import Definition, Run  # noqa: E402
from fhir3t.pipeline.base import FileInputs  # noqa: E402
from fhir3t.pipeline.incremental import UpdateStats, screen_update  # noqa: E402
from fhir3t.pipeline.screening import Output, deliver, screen_files  # noqa: E402
from fhir3t.sources.statestore import PatientState  # noqa: E402

START = population.AS_OF


def written(results, definition, as_of: date, out: Path) -> Path:
    """Deliver the results as `--format ndjson --out OUT` does."""
    deliver(results, definition, RunInfo(as_of=as_of, d1=as_of), [Output("ndjson", str(out))], stdout=sys.stdout)
    return out


def lines(out: Path) -> dict[str, bytes]:
    """Each patient's line of an output (outside the timings)."""
    return {json.loads(line)["patient"]: line for line in out.read_bytes().splitlines()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--touch", type=float, default=0.01)
    ap.add_argument("--moving-as-of", action="store_true")
    ap.add_argument("--check-every", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    pop = args.work / f"p{args.n}"
    if not (pop / "truth.ndjson").exists():
        population.generate(args.n, pop, seed=0, jobs=1)
    definition = Definition.load()
    state_dir = args.work / f"state{args.n}"
    for f in state_dir.glob("fhir3t-state.sqlite*"):
        f.unlink()
    state = PatientState(state_dir)
    t0 = time.perf_counter()
    stats = UpdateStats()
    n0 = len(lines(written(screen_update(definition, Run.start(definition, as_of=START, problems=Problems()), state,
                                   [pop / "fhir"], stats), definition, START, args.work / "inc.ndjson")))
    load = time.perf_counter() - t0
    print(f"N={args.n}: store loaded and screened {n0} patients from {stats.merge.lines} resources in {load:.1f} s")
    month = nightly.Month(pop / "fhir", seed=1, touch=args.touch)
    rows = []
    for k in range(1, args.nights + 1):
        day = START + timedelta(days=k)
        as_of: date = day if args.moving_as_of else START
        delta = args.work / "delta.ndjson"
        nightly.write_lines(delta, month.night(k, day))
        stats = UpdateStats()
        t0 = time.perf_counter()
        written(screen_update(definition, Run.start(definition, as_of=as_of, problems=Problems()), state, [delta], stats),
                definition, as_of, args.work / "inc.ndjson")
        t_inc = time.perf_counter() - t0
        inc = lines(args.work / "inc.ndjson")
        row = {"night": k, "incremental_s": round(t_inc, 3), "delta_lines": stats.merge.lines,
               "patients_screened": stats.screened, "resources_screened": stats.lines_screened,
               "patients": len(inc), "everyone": stats.everyone}
        if k % args.check_every == 0:
            current = args.work / "current.ndjson"
            resources = month.write_current(current)
            t0 = time.perf_counter()
            written(screen_files(definition, Run.start(definition, as_of=as_of, problems=Problems()),
                                 FileInputs((current,))), definition, as_of, args.work / "full.ndjson")
            t_full = time.perf_counter() - t0
            full = lines(args.work / "full.ndjson")
            row.update(full_s=round(t_full, 3), resources=resources, ratio=round(t_inc / t_full, 4),
                       equal=full == inc)
        rows.append(row)
        print(json.dumps(row))
    state.close()
    checked = [r for r in rows if "ratio" in r]
    summary = {"n": args.n, "nights": args.nights, "touch": args.touch, "moving_as_of": args.moving_as_of,
               "load_s": round(load, 1), "all_equal": all(r["equal"] for r in checked),
               "mean_incremental_s": round(sum(r["incremental_s"] for r in rows) / len(rows), 3),
               "mean_full_s": round(sum(r["full_s"] for r in checked) / len(checked), 3) if checked else None,
               "mean_ratio": round(sum(r["ratio"] for r in checked) / len(checked), 4) if checked else None,
               "mean_delta_lines": round(sum(r["delta_lines"] for r in rows) / len(rows), 1),
               "mean_resources_screened": round(sum(r["resources_screened"] for r in rows) / len(rows), 1)}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "nights": rows}, indent=1))


if __name__ == "__main__":
    main()
