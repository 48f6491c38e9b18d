"""bench/relay_allocation_memory.py for real, small: every row (ChannelBind / CreatePermission, kernel mirror
off / on over UDP, and over a real TCP connection) prints bytes per allocation in a range an allocation can
take, and --trace names relay source lines.
No figure is asserted against a target (memory targets are printed by bench/relay_netns.py against coturn)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_row_prints_its_bytes_per_allocation_and_the_lines_that_hold_them() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "relay_allocation_memory.py"), "--allocations", "300", "--trace", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    pattern = r"^  (ChannelBind|CreatePermission), (kernel mirror on|kernel mirror off|TCP) +(-?\d+) +(-?\d+)$"
    rows = re.findall(pattern, run.stdout, re.M)
    assert [(request, how) for request, how, _, _ in rows] == [
        ("ChannelBind", "kernel mirror off"),
        ("ChannelBind", "kernel mirror on"),
        ("CreatePermission", "kernel mirror off"),
        ("CreatePermission", "kernel mirror on"),
        ("ChannelBind", "TCP"),
        ("CreatePermission", "TCP"),
    ], run.stdout
    for _, _, rss, _ in rows:
        assert 500 < int(rss) < 64_000, run.stdout  # an allocation is a few KB: not nothing, not a leak
    traced = re.findall(r"^ +(\d+) B  (\S+\.py):\d+$", run.stdout, re.M)
    assert len(traced) == 6 * 3 and all(int(size) > 0 for size, _ in traced), run.stdout
    assert any(path.startswith(("turn/", "server/", "stun/")) for _, path in traced), run.stdout
