"""The relay benchmark's target lines from given rows (no servers): a reference row with no measurable CPU (under
one clock tick: the smoke run's light load) leaves its ratio out instead of failing the whole report (seen once in
a full-suite run: `max()` of nothing)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # the benchmark and its sibling modules import one another by name
import relay_vs_coturn as bench  # noqa: E402

SCENARIO = bench.Scenario("udp", "channel", 120, 4, 100, 50)


def _row(server: str, us_per_packet: float) -> object:
    return bench.Row(SCENARIO, server, 40.0, 40.0, 0.04, 0.0, 0.2, 1.0, 0.01, 200, us_per_packet, 1.0)


def _cpu_line(rows: list[object]) -> str:
    lines = bench.targets(rows, {})
    [line] = [line for line in lines if "CPU per relayed packet" in line]
    return line


def test_a_reference_row_without_measurable_cpu_gives_no_ratio_and_no_crash() -> None:
    line = _cpu_line([_row("ours", 50.0), _row("coturn", 0.0)])
    assert line.endswith("not measured (coturn's CPU under one clock tick in every row)")


def test_the_worst_measured_row_decides_the_cpu_target() -> None:
    other = bench.Scenario("udp", "channel", 120, 8, 100, 50)
    rows = [_row("ours", 6.0), _row("coturn", 4.0), bench.Row(other, "ours", 80, 80, 0.1, 0, 0.2, 1, 0.01, 400, 3.0, 1),
            bench.Row(other, "coturn", 80, 80, 0.1, 0, 0.2, 1, 0.01, 400, 0.0, 1)]  # fmt: skip
    line = _cpu_line(rows)
    assert "1.50" in line and "MISSED" in line, line
