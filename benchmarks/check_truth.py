"""Compare screening results with a generated corpus's ground truth.

    python benchmarks/check_truth.py RESULTS.ndjson truth.ndjson [--list N] [--json]

RESULTS is `fhir3t screen ... --format ndjson` (or the Spark runner's output, a folder of part
files); truth is the sidecar written by tests/hospital.py or benchmarks/population.py. Prints, per
criterion, how many results equal the expected one, how many are another acceptable answer (a
reading the spec leaves open, always on the safe side), and how many are wrong; then the statuses;
then every FALSE ELIGIBLE (a patient the truth says is not eligible, reported eligible): the number
that must be 0. Exit code 1 if there is any false eligible, 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path


def read_ndjson(path: Path) -> Iterator[dict]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))) if path.is_dir() else [path]
    for f in files:
        with f.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def compare(results: list[dict], truth: list[dict]) -> dict:
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_patient[r["patient"]].append(r)
    per_crit: dict[str, Counter] = defaultdict(Counter)
    confusion: dict[str, Counter] = defaultdict(Counter)  # criterion -> (expected, got) counts for wrong answers
    status = Counter()
    false_eligible: list[dict] = []
    missing: list[str] = []
    duplicated: list[str] = []
    wrong: list[dict] = []
    for t in truth:
        got_all = by_patient.get(t["patient"], [])
        if not got_all:
            missing.append(t["patient"])
            continue
        if len(got_all) > 1:
            duplicated.append(t["patient"])
        ok_status = set(t.get("acceptable_status") or [t["status"]])
        for got in got_all:  # a patient screened twice (split input) is judged on every result
            if got["status"] == "eligible" and "eligible" not in ok_status:
                false_eligible.append({"patient": t["patient"], "scenario": t.get("scenario"), "expected": t["status"],
                                       "why": [c["id"] for c in got["criteria"]
                                               if c["result"] != t["criteria"].get(c["id"], c["result"])]})
        got = got_all[0]
        status["exact" if got["status"] == t["status"] else "acceptable" if got["status"] in ok_status else "wrong"] += 1
        for c in got["criteria"]:
            exp = t["criteria"].get(c["id"])
            if exp is None:
                continue
            ok = set(t.get("acceptable", {}).get(c["id"], [exp]))
            if c["result"] == exp:
                per_crit[c["id"]]["exact"] += 1
            elif c["result"] in ok:
                per_crit[c["id"]]["acceptable"] += 1
            else:
                per_crit[c["id"]]["wrong"] += 1
                confusion[c["id"]][(exp, c["result"])] += 1
                wrong.append({"patient": t["patient"], "scenario": t.get("scenario"), "criterion": c["id"],
                              "expected": exp, "got": c["result"], "reason": c.get("reason", "")})
    extra = sorted(set(by_patient) - {t["patient"] for t in truth})
    return {"patients": len(truth), "results": len(results), "per_criterion": per_crit, "confusion": confusion,
            "status": status, "false_eligible": false_eligible, "missing": missing, "duplicated": duplicated,
            "not_in_truth": extra, "wrong": wrong}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("truth", type=Path)
    ap.add_argument("--list", type=int, default=20, help="list up to N wrong criterion results (default 20; 0: none)")
    ap.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = ap.parse_args(argv)
    out = compare(list(read_ndjson(args.results)), list(read_ndjson(args.truth)))
    if args.json:
        print(json.dumps({**out, "confusion": {k: {f"{e}->{g}": n for (e, g), n in v.items()} for k, v in out["confusion"].items()}},
                         ensure_ascii=False, indent=1))
        return 1 if out["false_eligible"] else 0
    print(f"{out['patients']} patients in the truth, {out['results']} results; missing {len(out['missing'])}, "
          f"screened more than once {len(out['duplicated'])}, not in the truth {len(out['not_in_truth'])}")
    print(f"\n{'criterion':<28} {'exact':>7} {'accept':>7} {'wrong':>7} {'agree %':>8}   wrong answers (expected->got)")
    for crit, n in out["per_criterion"].items():
        total = sum(n.values())
        conf = ", ".join(f"{e}->{g} {k}" for (e, g), k in out["confusion"][crit].most_common())
        print(f"{crit:<28} {n['exact']:>7} {n['acceptable']:>7} {n['wrong']:>7} {100 * (n['exact'] + n['acceptable']) / total:>7.1f}%   {conf}")
    s = out["status"]
    print(f"\nstatus: exact {s['exact']}, acceptable {s['acceptable']}, wrong {s['wrong']}")
    for w in out["wrong"][: args.list]:
        print(f"  {w['patient']} [{w['scenario']}] {w['criterion']}: expected {w['expected']}, got {w['got']} ({w['reason'][:140]})")
    if len(out["wrong"]) > args.list > 0:
        print(f"  ... {len(out['wrong']) - args.list} more (--list N)")
    fe = out["false_eligible"]
    print(f"\nFALSE ELIGIBLE: {len(fe)}")
    for f in fe:
        print(f"  {f['patient']} [{f['scenario']}] expected {f['expected']}; differs on {', '.join(f['why']) or '-'}")
    return 1 if fe else 0


if __name__ == "__main__":
    sys.exit(main())
