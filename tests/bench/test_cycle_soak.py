"""bench/cycle_soak.py for real: a soaker pinned to a core at SCHED_IDLE loses its rounds to a normal busy process
on the same core, and keeps them when that core is left alone (the measure the namespace benchmark's `soak`
column and CPU targets rest on)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # the benchmark and its sibling modules import one another by name
import cycle_soak  # noqa: E402

BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def _rate(soaker: cycle_soak.Soaker, seconds: float) -> float:
    before = soaker.read()
    time.sleep(seconds)
    after = soaker.read()
    return (after[1] - before[1]) / (after[0] - before[0])


def test_a_busy_process_on_the_soaked_core_takes_nearly_all_of_its_rounds() -> None:
    core = max(os.sched_getaffinity(0))
    soaker = cycle_soak.Soaker([core])
    soaker.start()
    try:
        idle = _rate(soaker, 1.0)
        assert idle > 0
        busy = subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-c", BUSY.format(seconds=1.5)])
        time.sleep(0.25)  # started and running
        start = soaker.read()
        time.sleep(1.0)
        end = soaker.read()
        busy.wait(5)
        share = cycle_soak.busy_share(idle, start, end)
        assert share > 0.8, (share, idle)  # SCHED_IDLE yields to a nice-0 process (weight 3 against 1024)
        after = _rate(soaker, 1.0)  # and gets its rounds back when the core is free again
        assert after > 0.5 * idle, (after, idle)  # (other work on a shared machine moves it a little)
    finally:
        soaker.stop()
