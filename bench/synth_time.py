#!/usr/bin/env python3
"""Times a full synth of every stack (`python app.py` in a fresh process, as an operator runs it) and
prints, per shape, the median wall time against the 15 s target, then each stack's resource count and
template size.

    .venv/bin/python bench/synth_time.py [--runs 3] [--shape scalable|single|both]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 15.0


def synth_once(shape: str, outdir: Path) -> float:
    env = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({"deployment.environment.type": shape}),
        # package.json's Node 22 LTS, as scripts/env.sh sets it.
        "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    start = time.perf_counter()
    subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def stack_table(outdir: Path) -> list[tuple[str, int, int]]:
    rows = []
    for path in sorted(outdir.glob("*.template.json")):
        template = json.loads(path.read_text())
        rows.append((path.name.removesuffix(".template.json"), len(template.get("Resources", {})), path.stat().st_size))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shape", choices=["scalable", "single", "both"], default="both")
    args = parser.parse_args()
    shapes = ["scalable", "single"] if args.shape == "both" else [args.shape]
    print(f"cores: {os.cpu_count()}, runs per shape: {args.runs}, target: <= {TARGET_SECONDS:.0f} s")
    worst = 0.0
    for shape in shapes:
        times = []
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                outdir = Path(tmp) / f"run{run}"
                times.append(synth_once(shape, outdir))
            rows = stack_table(outdir)
        median = statistics.median(times)
        worst = max(worst, median)
        verdict = "OK" if median <= TARGET_SECONDS else "OVER TARGET"
        print(f"\n{shape}: synth median {median:.1f} s ({', '.join(f'{t:.1f}' for t in times)}) {verdict}")
        print(f"  {'stack':<28} {'resources':>9} {'template KB':>12}")
        for name, resources, size in rows:
            print(f"  {name:<28} {resources:>9} {size / 1024:>12.1f}")
        print(f"  {'total':<28} {sum(r for _, r, _ in rows):>9} {sum(s for _, _, s in rows) / 1024:>12.1f}")
    return 0 if worst <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
