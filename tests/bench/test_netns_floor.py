"""bench/netns_floor.py for real (root, namespaces, the reflect program, the soaker): the relay interface
reflects what a plain UDP sender offers, and the server core's cost per reflected packet is printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_floor_reflects_the_offered_packets_and_prints_their_cost() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "netns_floor.py"), "--rate", "5000", "--seconds", "1"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    [row] = [line.split() for line in run.stdout.splitlines() if line.split() and line.split()[0] == "5000"]
    offered, reflected, busy, us = int(row[0]), float(row[1]), float(row[2].rstrip("%")), float(row[3])
    assert 0.9 * offered <= reflected <= 1.1 * offered, row  # every packet came back out of the relay interface
    assert 0 <= busy <= 100 and us == us, row
