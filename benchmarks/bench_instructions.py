"""Screening cost in CPU instructions (valgrind callgrind): a figure that does not move with load.

Wall-clock ratios on a shared 2-core machine swing 2x from run to run; instruction counts are
repeatable. Counts three runs on the same N synthetic patients (see bench_screen.py): loading
fhir3t only, + plain orjson.loads of every file, + the full screen. Prints the parse and screen
costs above the load, and their ratio.

    python benchmarks/bench_instructions.py 150     # needs valgrind (apt-get install valgrind)
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_screen import generate

WORKER = """
import sys, orjson
from pathlib import Path
import fhir3t
from fhir3t.pipeline import Definition
mode, folder = sys.argv[1], Path(sys.argv[2])
definition = Definition.load()
files = sorted(folder.glob("*.json"))
if mode == "parse":
    for f in files:
        orjson.loads(f.read_bytes())
elif mode == "screen":
    sum(1 for _ in fhir3t.screen([folder], as_of="2026-11-16", definition=definition))
"""


def instructions(mode: str, folder: Path, tmp: Path) -> int:
    script = tmp / "worker.py"
    script.write_text(WORKER)
    out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp / (mode + '.cg')}",
                          sys.executable, str(script), mode, str(folder)], capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", nargs="?", type=int, default=150)
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        data = tmp / "data"
        data.mkdir()
        generate(args.n, data)
        load, parse, screen = (instructions(m, data, tmp) for m in ("load", "parse", "screen"))
    p, s = parse - load, screen - load
    print(f"N={args.n}: orjson.loads {p / 1e6:.0f} M instructions, screen {s / 1e6:.0f} M "
          f"({s / args.n / 1e3:.0f} k per patient); ratio {s / p:.2f} (target <= 3)")


if __name__ == "__main__":
    main()
