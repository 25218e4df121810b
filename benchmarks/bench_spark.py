"""Spark local mode vs the single-machine path on the same generated population (issue 11).

    python benchmarks/bench_spark.py N [--dir DIR] [--seed S] [--master local[*]]

Generates N patients with benchmarks/population.py (unless DIR/fhir exists), then times
`fhir3t screen DIR/fhir --format ndjson` and `python -m fhir3t.spark DIR/fhir OUT`, each in its own
process tree (wall time, and the largest peak RSS among the processes the wrapper waited for (the JVM may not be among them);
the Python workers are separate processes, not summed), and says whether every patient's result is
identical. Figures only. Needs pyspark (pip install -e ".[spark]").
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


WRAP = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall time, and the largest peak RSS among the command's own process tree (a fresh wrapper each time)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAP, *cmd], check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, int(out.stdout.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--master", default="local[*]")
    ap.add_argument("--as-of", default="2026-11-16")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="fhir3t-bench-spark-"))
    if not (root / "fhir").exists():
        subprocess.run([sys.executable, str(HERE / "population.py"), str(args.n), str(root), "--seed", str(args.seed)], check=True)
    single = root / "single.ndjson"
    spark_out = Path(tempfile.mkdtemp(prefix="fhir3t-spark-out-")) / "out"
    t_single, rss_single = timed(["fhir3t", "screen", str(root / "fhir"), "--as-of", args.as_of, "--format", "ndjson", "--out", str(single)])
    t_spark, rss_spark = timed([sys.executable, "-m", "fhir3t.spark", str(root / "fhir"), str(spark_out), "--as-of", args.as_of,
                                "--master", args.master])
    a = {json.loads(x)["patient"]: json.loads(x) for x in single.read_text(encoding="utf-8").splitlines() if x.strip()}
    from fhir3t.spark import read_results

    b = {r["patient"]: r for r in read_results(spark_out)}
    same = sum(1 for k in a if b.get(k) == a[k])
    shutil.rmtree(spark_out.parent, ignore_errors=True)
    print(f"{len(a)} patients ({root / 'fhir'}), {os.cpu_count()} CPUs, master {args.master}")
    print(f"  fhir3t screen (all CPUs):   {t_single:8.1f} s  {len(a) / t_single:7.0f} patients/s  peak RSS {rss_single:6.0f} MB")
    print(f"  fhir3t.spark  (local mode):  {t_spark:8.1f} s  {len(b) / t_spark:7.0f} patients/s  largest process RSS {rss_spark:6.0f} MB")
    print(f"  identical results: {same}/{len(a)} patients" + ("" if len(a) == len(b) else f" (spark wrote {len(b)})"))


if __name__ == "__main__":
    main()
