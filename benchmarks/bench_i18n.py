"""What the message catalog costs: compiling the zh-CN .po with Babel (a checkout's first use), loading a compiled
.mo (every later run), and rendering every reason of the samples in Chinese against English, measured in the same
run (English is the baseline: its templates are the declarations themselves, no catalog lookup).

Usage: python benchmarks/bench_i18n.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import gettext
import io
import statistics
import time
from datetime import date
from pathlib import Path

from fhir3t.messages import catalog
from fhir3t.messages.render import translations
from fhir3t.pipeline import Definition, FileInputs, Run, screen_files

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


def timed(fn, repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    po = catalog.po_path("zh_CN")
    mo = catalog.compile_po(po)
    compile_s = timed(lambda: catalog.compile_po(po), args.repeat)
    load_s = timed(lambda: gettext.GNUTranslations(io.BytesIO(mo)), args.repeat)
    print(f"catalog: {po.relative_to(ROOT)} ({po.stat().st_size // 1024} KB, {len(mo) // 1024} KB compiled)")
    print(f"  compile with Babel (first use in a checkout): {compile_s * 1000:.1f} ms")
    print(f"  load the compiled .mo (every later run):      {load_s * 1000:.2f} ms  ({compile_s / load_s:.0f}x less)")

    definition = Definition.load(concept_maps=[SAMPLES / "conceptmaps" / "hospital-local.json",
                                               SAMPLES / "hospital" / "ConceptMap-zj2h-local.json"])
    run = Run.start(definition, as_of=date(2026, 11, 16))
    results = list(screen_files(definition, run, FileInputs([SAMPLES])))
    criteria = [c for r in results for c in r.criteria]
    translations("zh-CN")  # the catalog loaded once, as a run does
    en = timed(lambda: [c.reason_in("en") for c in criteria], args.repeat)
    zh = timed(lambda: [c.reason_in("zh-CN") for c in criteria], args.repeat)
    print(f"reasons: {len(criteria)} criterion results of {len(results)} sample patients")
    print(f"  render in English (baseline): {en * 1000:.1f} ms ({en / len(criteria) * 1e6:.1f} us each)")
    print(f"  render in zh-CN:              {zh * 1000:.1f} ms ({zh / len(criteria) * 1e6:.1f} us each), "
          f"ratio zh/en {zh / en:.2f}")


if __name__ == "__main__":
    main()
