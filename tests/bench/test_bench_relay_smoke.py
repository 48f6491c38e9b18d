"""bench/relay_vs_coturn.py end to end with a tiny load (`--smoke`): both servers start, carry
uclient's traffic, hold allocations, and the table has every column for both. No timing is asserted
(speed targets are printed by the benchmark, never tested)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["scenario", "clients", "nominal", "server", "sent/s", "msg/s", "Mbit/s", "loss %", "RTT avg", "RTT max",
           "CPU s", "us/pkt", "load CPU", "ratio msg/s", "ratio us/pkt"]  # fmt: skip


@pytest.mark.slow
def test_benchmark_smoke_run_prints_the_full_table_for_both_servers(tmp_path: Path) -> None:
    missing = [t for t in ("turnserver", "turnutils_uclient", "turnutils_peer", "taskset") if not shutil.which(t)]
    if missing:
        pytest.fail(f"the benchmark needs {', '.join(missing)} (apt-get install coturn)")
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "relay_vs_coturn.py"), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout
    header = next(line for line in text.splitlines() if line.startswith("scenario"))
    assert all(column in header for column in COLUMNS), header
    table = [line for line in text.splitlines() if line.startswith("UDP channels 120 B")]
    assert [line.split()[6] for line in table] == ["ours", "coturn"]
    sections = ("Highest nominal load sustained", "cycles/s", "RSS at      0", "RSS per live allocation", "Targets:")
    assert all(section in text for section in sections), text
    data = json.loads(out.read_text())
    rows = {row["server"]: row for row in data["rows"]}
    assert set(rows) == {"ours", "coturn"}
    for row in rows.values():
        assert row["error"] == "" and row["relayed"] > 0 and row["cpu"] >= 0
        assert all(not (isinstance(v, float) and math.isnan(v)) for v in row.values())
    for server in ("ours", "coturn"):
        allocation = data["allocations"][server]
        assert allocation["allocations_per_second"] > 0 and allocation["held_100"] == 100
        assert allocation["rss_0"] > 0 and allocation["rss_100"] > 0
