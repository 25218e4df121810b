"""The embedded-definition floor (issue 11): DuckDB computing I1, I2 and I3 for every patient, one thread.

    python benchmarks/duckdb_i123.py FHIR_DIR [--as-of 2026-11-16] [--out RESULTS.ndjson] [--truth truth.ndjson]
                                     [--fhir3t RESULTS.ndjson] [--repeat 1]

FHIR_DIR is a type-split Bulk export (e.g. OUT/fhir from benchmarks/population.py; sub-folders and
.gz are read). In separate processes (so each peak RSS is its own) it times:
  - orjson: plain `orjson.loads` of every line of every file, and of the Patient, Condition and
    Observation files alone (what the query reads);
  - duckdb: `read_json` (newline-delimited, declared columns) + SQL computing, per patient,
    I1 (age >= 18 at as_of; partial birth dates decided only if the whole span agrees),
    I2 (an active, not provisional DM Condition: ICD-10 M33.1*, SNOMED 396230008) and
    I3 (the most recent anti-MDA5 82424-3 grade in [as_of - 28 d, as_of]; same-day conflicts
    that times cannot order are unknown), written to --out as NDJSON.
Then compares the three criteria with the truth sidecar and/or a fhir3t results file. Prints
figures only (no assertions). No ConceptMap translation: local codes are not read, so compare on
spec-coded populations (no --hospital-fraction).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

PATIENT_KEY = r"regexp_extract({col}, '(?:^|/)Patient/([^/?#]+)', 1)"
STATUS_CODES = "STRUCT(coding STRUCT(system VARCHAR, code VARCHAR)[])"


def query(root: Path, as_of: date) -> str:
    """The SQL: three CTEs read only the columns the criteria need."""
    def files(rtype: str) -> str:
        return f"'{root.as_posix()}/**/{rtype}*.ndjson*'"

    lo = (as_of - timedelta(days=28)).isoformat()
    a = as_of.isoformat()
    read = "format='newline_delimited', ignore_errors=true, maximum_object_size=33554432, union_by_name=false"
    return f"""
WITH patients AS (
  SELECT DISTINCT id, birthDate FROM read_json({files('Patient')}, {read},
         columns={{'id': 'VARCHAR', 'birthDate': 'VARCHAR'}})
  WHERE id IS NOT NULL
),
births AS (
  SELECT id,
    CASE WHEN length(birthDate) >= 10 THEN try_cast(substr(birthDate, 1, 10) AS DATE)
         WHEN length(birthDate) = 7 THEN try_cast(birthDate || '-01' AS DATE)
         WHEN length(birthDate) = 4 THEN try_cast(birthDate || '-01-01' AS DATE) END AS lo,
    CASE WHEN length(birthDate) >= 10 THEN try_cast(substr(birthDate, 1, 10) AS DATE)
         WHEN length(birthDate) = 7 THEN last_day(try_cast(birthDate || '-01' AS DATE))
         WHEN length(birthDate) = 4 THEN try_cast(birthDate || '-12-31' AS DATE) END AS hi
  FROM patients
),
i1 AS (
  SELECT id,
    CASE WHEN hi IS NULL THEN 'unknown'
         WHEN (year(DATE '{a}') - year(hi) - CASE WHEN (month(DATE '{a}'), day(DATE '{a}')) < (month(hi), day(hi)) THEN 1 ELSE 0 END) >= 18 THEN 'met'
         WHEN (year(DATE '{a}') - year(lo) - CASE WHEN (month(DATE '{a}'), day(DATE '{a}')) < (month(lo), day(lo)) THEN 1 ELSE 0 END) < 18 THEN 'not-met'
         ELSE 'unknown' END AS i1
  FROM births
),
conds AS (
  SELECT {PATIENT_KEY.format(col='subject.reference')} AS pid,
         list_transform(coalesce(code.coding, []), lambda c: upper(trim(c.code))) AS codes,
         list_transform(coalesce(code.coding, []), lambda c: c.system) AS systems,
         (SELECT min(c.code) FROM unnest(coalesce(clinicalStatus.coding, [])) AS t(c)) AS clinical,
         (SELECT min(c.code) FROM unnest(coalesce(verificationStatus.coding, [])) AS t(c)) AS verification,
         substr(coalesce(onsetDateTime, onsetPeriod.start, recordedDate), 1, 10) AS day
  FROM read_json({files('Condition')}, {read},
       columns={{'subject': 'STRUCT(reference VARCHAR)', 'code': '{STATUS_CODES}', 'clinicalStatus': '{STATUS_CODES}',
                 'verificationStatus': '{STATUS_CODES}', 'onsetDateTime': 'VARCHAR', 'onsetPeriod': 'STRUCT(start VARCHAR)',
                 'recordedDate': 'VARCHAR'}})
),
dm AS (
  SELECT pid,
    CASE WHEN bool_or(verification IS NULL OR verification = 'confirmed') THEN 'met' ELSE 'unknown' END AS i2
  FROM (SELECT pid, verification, clinical, day, unnest(codes) AS code, unnest(systems) AS system FROM conds)
  WHERE ((system IN ('http://hl7.org/fhir/sid/icd-10', 'http://hl7.org/fhir/sid/icd-10-cm') AND code LIKE 'M33.1%')
         OR (system = 'http://snomed.info/sct' AND code = '396230008'))
    AND (clinical IS NULL OR clinical IN ('active', 'recurrence', 'relapse'))
    AND (verification IS NULL OR verification IN ('confirmed', 'provisional', 'differential', 'unconfirmed'))
    AND (day IS NULL OR day <= '{a}')
  GROUP BY pid
),
mda5 AS (
  SELECT {PATIENT_KEY.format(col='subject.reference')} AS pid,
         coalesce(effectiveDateTime, effectivePeriod.start, effectiveInstant, issued) AS dt,
         replace(replace(lower(trim(coalesce(valueString, valueCodeableConcept.text,
                 valueCodeableConcept.coding[1].display, interpretation[1].text))), '＋', '+'), '－', '-') AS g
  FROM read_json({files('Observation')}, {read},
       columns={{'subject': 'STRUCT(reference VARCHAR)', 'status': 'VARCHAR', 'code': '{STATUS_CODES}',
                 'effectiveDateTime': 'VARCHAR', 'effectivePeriod': 'STRUCT(start VARCHAR)', 'effectiveInstant': 'VARCHAR',
                 'issued': 'VARCHAR', 'valueString': 'VARCHAR',
                 'valueCodeableConcept': 'STRUCT(text VARCHAR, coding STRUCT(display VARCHAR)[])',
                 'interpretation': 'STRUCT(text VARCHAR)[]'}})
  WHERE status IN ('final', 'amended', 'corrected', 'preliminary')
    AND list_contains(list_transform(coalesce(code.coding, []), lambda c: c.system || '|' || c.code), 'http://loinc.org|82424-3')
),
graded AS (
  SELECT pid, substr(dt, 1, 10) AS day,
         CASE WHEN length(dt) > 10 THEN try_cast(dt AS TIMESTAMPTZ) END AS ts,
         CASE WHEN g IN ('++', '+++', '++++', '2+', '3+', '4+') THEN 'met'
              WHEN g IN ('-', '±', '+/-', '(+)', '+', '1+', '0+', 'negative', 'neg', '阴性') THEN 'not-met'
              ELSE 'unknown' END AS r
  FROM mda5 WHERE substr(dt, 1, 10) BETWEEN '{lo}' AND '{a}'
),
last_day AS (
  SELECT g.* FROM graded g JOIN (SELECT pid, max(day) AS day FROM graded GROUP BY pid) m USING (pid, day)
),
i3 AS (
  -- on the most recent day: one answer decides; else the latest instant if every result there is timed
  SELECT pid,
    CASE WHEN count(DISTINCT r) = 1 THEN min(r)
         WHEN bool_and(ts IS NOT NULL) AND count(DISTINCT r) FILTER (WHERE ts = max_ts) = 1 THEN min(r) FILTER (WHERE ts = max_ts)
         ELSE 'unknown' END AS i3
  FROM (SELECT *, max(ts) OVER (PARTITION BY pid) AS max_ts FROM last_day)
  GROUP BY pid
)
SELECT 'Patient/' || i1.id AS patient, i1.i1, coalesce(dm.i2, 'not-met') AS i2, coalesce(i3.i3, 'unknown') AS i3
FROM i1 LEFT JOIN dm ON dm.pid = i1.id LEFT JOIN i3 ON i3.pid = i1.id
"""


def phase_duckdb(root: Path, as_of: date, out: Path) -> dict:
    import duckdb

    con = duckdb.connect(config={"threads": 1})
    t0 = time.perf_counter()
    con.execute(f"COPY ({query(root, as_of)}) TO '{out.as_posix()}' (FORMAT JSON)")
    wall = time.perf_counter() - t0
    n = con.execute(f"SELECT count(*) FROM read_json('{out.as_posix()}', format='newline_delimited')").fetchone()[0]  # type: ignore[index]
    return {"seconds": wall, "patients": n, "version": duckdb.__version__}


def _open(path: Path):
    import gzip

    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def phase_orjson(root: Path, types: list[str] | None) -> dict:
    import orjson

    files = sorted(p for p in root.rglob("*.ndjson*") if p.is_file() and (types is None or p.name.split(".")[0] in types))
    t0 = time.perf_counter()
    lines = size = 0
    for f in files:
        with _open(f) as fh:
            for line in fh:
                orjson.loads(line)
                lines += 1
                size += len(line)
    return {"seconds": time.perf_counter() - t0, "lines": lines, "bytes": size, "files": len(files)}


def run_phase(root: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, root, "--phase", *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"phase {args[0]} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def load_results(path: Path) -> dict[str, dict[str, str]]:
    """patient -> {criterion: result} from DuckDB output, a fhir3t NDJSON file or a truth sidecar."""
    got: dict[str, dict[str, str]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = json.loads(line)
            if "i1" in r:
                got[r["patient"]] = {"I1-age": r["i1"], "I2-dm": r["i2"], "I3-mda5": r["i3"]}
            elif isinstance(r.get("criteria"), dict):
                got[r["patient"]] = r["criteria"]
            else:
                got[r["patient"]] = {c["id"]: c["result"] for c in r["criteria"]}
    return got


def agreement(ours: dict[str, dict[str, str]], other: dict[str, dict[str, str]]) -> str:
    counts: dict[str, Counter] = {c: Counter() for c in ("I1-age", "I2-dm", "I3-mda5")}
    for pid, res in other.items():
        mine = ours.get(pid)
        for c in counts:
            if c in res:
                counts[c]["same" if mine and mine[c] == res[c] else "different"] += 1
    return "; ".join(f"{c} {n['same']}/{n['same'] + n['different']} same" for c, n in counts.items())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--as-of", default="2026-11-16")
    ap.add_argument("--out", type=Path, help="per-patient results (NDJSON); default: a temporary file")
    ap.add_argument("--truth", type=Path, help="truth sidecar to compare with")
    ap.add_argument("--fhir3t", type=Path, help="fhir3t screen --format ndjson results to compare with")
    ap.add_argument("--repeat", type=int, default=1, help="time each phase this many times (min and median printed)")
    ap.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    as_of = date.fromisoformat(args.as_of)
    if args.phase:
        kind = args.phase[0]
        r = phase_duckdb(args.root, as_of, Path(args.phase[1])) if kind == "duckdb" else \
            phase_orjson(args.root, args.phase[1].split(",") if len(args.phase) > 1 else None)
        r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(r))
        return
    out = args.out or Path(tempfile.mkdtemp()) / "duckdb-i123.ndjson"

    def timed(*phase: str) -> tuple[dict, list[float]]:
        runs = [run_phase(str(args.root), *phase) for _ in range(args.repeat)]
        return runs[-1], sorted(r["seconds"] for r in runs)

    orj_all, t_all = timed("orjson")
    orj_3, t_3 = timed("orjson", "Patient,Condition,Observation")
    duck, t_duck = timed("duckdb", str(out))

    def fmt(ts: list[float]) -> str:
        return f"{ts[0]:.2f} / {ts[len(ts) // 2]:.2f} s"

    print(f"input: {orj_all['files']} files, {orj_all['lines']} resources, {orj_all['bytes'] / 1e6:.0f} MB ({args.root})")
    print(f"{'phase':<44} {'min / median':>18} {'peak RSS':>10}")
    print(f"{'orjson.loads, every line of every file':<44} {fmt(t_all):>18} {orj_all['peak_rss_mb']:>8.0f} MB")
    print(f"{'orjson.loads, Patient+Condition+Observation':<44} {fmt(t_3):>18} {orj_3['peak_rss_mb']:>8.0f} MB")
    print(f"{'duckdb ' + duck['version'] + ' I1+I2+I3 (1 thread)':<44} {fmt(t_duck):>18} {duck['peak_rss_mb']:>8.0f} MB"
          f"   {duck['patients']} patients, {duck['patients'] / t_duck[0]:.0f} patients/s")
    print(f"ratios: duckdb / orjson(all) {t_duck[0] / t_all[0]:.2f}; duckdb / orjson(3 types) {t_duck[0] / t_3[0]:.2f}")
    ours = load_results(out)
    counts = Counter(f"{c}={r}" for res in ours.values() for c, r in res.items())
    print("results:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), f"-> {out}")
    if args.truth:
        print("vs truth: ", agreement(ours, load_results(args.truth)))
    if args.fhir3t:
        print("vs fhir3t:", agreement(ours, load_results(args.fhir3t)))


if __name__ == "__main__":
    main()
