"""Population scale (issue 11): fhir3t against orjson and DuckDB on the same Bulk export, in one run.

    python benchmarks/bench_population.py 10000 100000 1000000 --work /big/disk [--jobs 1 2]
                                          [--repeat 1] [--json figures.json]

For each N, generates N patients with benchmarks/population.py into WORK/pN (reused when it is
already there with the same N and seed), then times, each in a fresh process tree:
  - orjson: plain `orjson.loads` of every line of every file (the decode every Python reader pays);
  - duckdb: benchmarks/duckdb_i123.py's query computing I1, I2 and I3 for every patient, 1 thread;
  - fhir3t: `fhir3t screen WORK/pN/fhir --format ndjson --native off` (all 22 criteria, evidence and
    reasons), once per --jobs value, and with --native: `--jobs 1 --native on` (the DuckDB first pass).
Peak RSS is sampled every 0.2 s over the whole process tree (the sum of every process alive at
that moment: a --jobs 2 run is charged for both workers and the parent), and the largest single
process is read from the kernel (ru_maxrss) when the tree ends. Then every fhir3t result is
checked against the generator's truth (exact, acceptable, wrong, false eligible), the --jobs runs
against each other, and DuckDB's three criteria against fhir3t's. Figures only: no assertion.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 0


def _tree(root: int) -> list[int]:
    """The process and its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_tree(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run `cmd`; wall seconds, peak RSS of the whole tree (sampled) and of its largest process
    (the kernel's figure from wait4, which covers the descendants the process waited for)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], sum(_rss_kb(p) for p in _tree(proc.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode not in (0, 1):  # screen exits 1 when it met input problems worth reading
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"seconds": wall, "tree_peak_mb": peak[0] / 1024, "largest_process_mb": usage.ru_maxrss / 1024,
            "stdout": stdout, "stderr": stderr}


def generate(n: int, work: Path, gz: bool = False) -> Path:
    folder = work / (f"p{n}gz" if gz else f"p{n}")
    marker = folder / "generated.json"
    want = {"n": n, "seed": SEED, **({"gz": True} if gz else {})}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return folder
    print(f"generating {n} patients in {folder} ...", flush=True)
    subprocess.run([sys.executable, str(HERE / "population.py"), str(n), str(folder), "--seed", str(SEED),
                    "--jobs", str(os.cpu_count() or 1), *(["--gz"] if gz else [])], check=True, stdout=subprocess.DEVNULL)
    marker.write_text(json.dumps(want))
    return folder


def _results(path: Path) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """patient -> (status, ((criterion, result), ...)), compact enough for a million patients."""
    intern = sys.intern
    got: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                r = json.loads(line)
                got[r["patient"]] = (intern(r["status"]),
                                     tuple((intern(c["id"]), intern(c["result"])) for c in r["criteria"]))
    return got


def check_truth(results: dict[str, tuple[str, tuple[tuple[str, str], ...]]], truth: Path) -> dict:
    status: Counter[str] = Counter()
    crit: Counter[str] = Counter()
    false_eligible = missing = 0
    with truth.open(encoding="utf-8") as fh:
        for line in fh:
            t = json.loads(line)
            got = results.get(t["patient"])
            if got is None:
                missing += 1
                continue
            ok = set(t.get("acceptable_status") or [t["status"]])
            status["exact" if got[0] == t["status"] else "acceptable" if got[0] in ok else "wrong"] += 1
            if got[0] == "eligible" and "eligible" not in ok:
                false_eligible += 1
            for cid, res in got[1]:
                exp = t["criteria"].get(cid)
                if exp is not None:
                    crit["exact" if res == exp else "acceptable" if res in t.get("acceptable", {}).get(cid, ()) else "wrong"] += 1
    return {"status": dict(status), "criteria": dict(crit), "false_eligible": false_eligible, "missing": missing}


def duck_agreement(duck: Path, ours: dict[str, tuple[str, tuple[tuple[str, str], ...]]]) -> dict[str, str]:
    same: Counter[str] = Counter()
    total = 0
    with duck.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            total += 1
            mine = dict(ours.get(r["patient"], ("", ()))[1])
            for cid, key in (("I1-age", "i1"), ("I2-dm", "i2"), ("I3-mda5", "i3")):
                same[cid] += mine.get(cid) == r[key]
    return {cid: f"{same[cid]}/{total}" for cid in ("I1-age", "I2-dm", "I3-mda5")}


def bench(n: int, work: Path, jobs: list[int], repeat: int, as_of: str, native: bool = False, gz: bool = False) -> dict:
    folder = generate(n, work, gz)
    fhir = folder / "fhir"
    tmp = Path(tempfile.mkdtemp(prefix=f"bench{n}-", dir=work))
    fig: dict = {"n": n, "input": {}, "orjson": [], "duckdb": [], "fhir3t": {}}
    duck_out = tmp / "duckdb.ndjson"
    for _ in range(repeat):
        o = run_tree([sys.executable, str(HERE / "duckdb_i123.py"), str(fhir), "--phase", "orjson"])
        info = json.loads(o["stdout"])
        fig["input"] = {"files": info["files"], "resources": info["lines"], "bytes": info["bytes"]}
        fig["orjson"].append({"seconds": info["seconds"], "tree_peak_mb": o["tree_peak_mb"]})
        d = run_tree([sys.executable, str(HERE / "duckdb_i123.py"), str(fhir), "--as-of", as_of,
                      "--phase", "duckdb", str(duck_out)])
        dinfo = json.loads(d["stdout"])
        fig["duckdb"].append({"seconds": dinfo["seconds"], "tree_peak_mb": d["tree_peak_mb"], "version": dinfo["version"]})
        for j in runs_of(jobs, native):
            out = tmp / f"fhir3t-j{j}.ndjson"
            r = run_tree([sys.executable, "-m", "fhir3t", "screen", str(fhir), "--as-of", as_of, "--format", "ndjson",
                          "--out", str(out), "--no-progress", *options(j)])
            fig["fhir3t"].setdefault(j, []).append({"seconds": r["seconds"], "tree_peak_mb": r["tree_peak_mb"],
                                                     "largest_process_mb": r["largest_process_mb"]})
    first = None
    for j in runs_of(jobs, native):
        got = _results(tmp / f"fhir3t-j{j}.ndjson")
        fig.setdefault("truth", {})[j] = check_truth(got, folder / "truth.ndjson")
        if first is None:
            first = got
            fig["duckdb_vs_fhir3t"] = duck_agreement(duck_out, got)
        else:
            fig.setdefault("same_as_first_jobs", {})[j] = got == first
        del got
    return fig


def runs_of(jobs: list[int], native: bool) -> list[str]:
    """The fhir3t runs to time: each --jobs value, and --jobs 1 with the native first pass (--native)."""
    return [str(j) for j in jobs] + (["1 --native on"] if native else [])


def options(run: str) -> list[str]:
    j, *rest = run.split()
    return ["--jobs", j, *rest] if rest else ["--jobs", j, "--native", "off"]


def _med(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def report(fig: dict) -> None:
    n = fig["n"]
    orj = min(r["seconds"] for r in fig["orjson"])
    duck = min(r["seconds"] for r in fig["duckdb"])
    inp = fig["input"]
    print(f"\nN = {n:,}: {inp['files']} files, {inp['resources']:,} resources, {inp['bytes'] / 1e9:.2f} GB")
    print(f"  {'run':<28} {'wall min/med s':>16} {'patients/s':>11} {'tree peak MB':>13} {'largest proc MB':>16} "
          f"{'/orjson':>8} {'/duckdb':>8}")
    print(f"  {'orjson decode':<28} {orj:>7.1f}/{_med([r['seconds'] for r in fig['orjson']]):<8.1f} {n / orj:>11,.0f} "
          f"{max(r['tree_peak_mb'] for r in fig['orjson']):>13.0f} {'':>16} {1:>8.2f} {orj / duck:>8.2f}")
    print(f"  {'duckdb I1-I3 (1 thr)':<28} {duck:>7.1f}/{_med([r['seconds'] for r in fig['duckdb']]):<8.1f} "
          f"{n / duck:>11,.0f} {max(r['tree_peak_mb'] for r in fig['duckdb']):>13.0f} {'':>16} {duck / orj:>8.2f} {1:>8.2f}")
    for j, runs in fig["fhir3t"].items():
        w = min(r["seconds"] for r in runs)
        largest = max((r["largest_process_mb"] or 0) for r in runs)
        print(f"  {f'fhir3t --jobs {j}':<28} {w:>7.1f}/{_med([r['seconds'] for r in runs]):<8.1f} {n / w:>11,.0f} "
              f"{max(r['tree_peak_mb'] for r in runs):>13.0f} {largest:>16.0f} {w / orj:>8.2f} {w / duck:>8.2f}")
    for j, t in fig["truth"].items():
        print(f"  truth, --jobs {j}: status {t['status']}, criteria {t['criteria']}, "
              f"false eligible {t['false_eligible']}, missing {t['missing']}")
    for j, same in fig.get("same_as_first_jobs", {}).items():
        print(f"  --jobs {j} results identical to the first run's: {same}")
    print(f"  DuckDB vs fhir3t on I1/I2/I3 (same result): {fig['duckdb_vs_fhir3t']}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int, nargs="+", help="population sizes")
    ap.add_argument("--work", type=Path, required=True, help="folder for the populations and results (needs ~50 GB per million)")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="fhir3t --jobs values to time (default: 1 2)")
    ap.add_argument("--repeat", type=int, default=1, help="time every phase this many times (min and median)")
    ap.add_argument("--as-of", default="2026-11-16")
    ap.add_argument("--native", action="store_true",
                    help="also time fhir3t --jobs 1 --native on (sources/native.py; needs the native extra)")
    ap.add_argument("--gz", action="store_true",
                    help="the population gzip-compressed (2.2 GB for a million instead of 50; DuckDB and fhir3t read "
                         ".ndjson.gz, fhir3t's native first pass leaves such files to Python)")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    figures = []
    for n in args.n:
        fig = bench(n, args.work, args.jobs, args.repeat, args.as_of, args.native, args.gz)
        figures.append(fig)
        report(fig)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
