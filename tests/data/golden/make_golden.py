"""Regenerate the golden screening snapshot (run from the project folder). See tests/test_golden.py."""
from __future__ import annotations

import pathlib
import random
import sys
import tempfile

import orjson

sys.path.insert(0, "benchmarks")

import fhir3t
from bench_screen import make_patient
from fhir3t.errors import Problems

OUT = pathlib.Path("tests/data/golden")
AS_OF = "2026-11-16"


def dump(name: str, results) -> None:
    rows = sorted((r.to_dict() for r in results), key=lambda d: d["patient"])
    (OUT / f"{name}.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    print(name, len(rows))


def main() -> None:
    dump("samples-screening", fhir3t.screen(["samples/screening"], as_of=AS_OF, problems=Problems()))
    dump("samples-screening-nomaps", fhir3t.screen(["samples/screening"], as_of=AS_OF, problems=Problems(),
                                                   discover_maps=False))
    dump("samples-screening-d1", fhir3t.screen(["samples/screening"], as_of=AS_OF, d1="2026-12-20", problems=Problems()))
    dump("ndjson", fhir3t.screen(["tests/data/ndjson"], as_of=AS_OF, problems=Problems()))
    dump("samples-safety", fhir3t.screen(["samples/safety"], as_of=AS_OF, problems=Problems()))
    with tempfile.TemporaryDirectory() as d:
        rng = random.Random(7)
        for i in range(120):
            pathlib.Path(d, f"p{i:04d}.json").write_bytes(orjson.dumps(make_patient(i, rng)))
        dump("synthetic-120", fhir3t.screen([d], as_of=AS_OF, problems=Problems()))
    bulk = pathlib.Path("../shared/data/bulk/smart-sample-bulk-10-patients")
    if bulk.is_dir():
        dump("shared-bulk", fhir3t.screen([bulk], as_of=AS_OF, problems=Problems()))


if __name__ == "__main__":
    main()
