"""Repeated runs of the namespace benchmark (bench/relay_netns.py --repeat, bench/netns_report.medians): each
server's row is its median run by CPU per packet, the spread of all runs is printed beside it, a failed run
never becomes the median, and the targets are judged on the medians, not on the luckiest or unluckiest run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # the benchmark and its sibling modules import one another by name
import netns_report  # noqa: E402
import relay_netns  # noqa: E402
from relay_uclient import Scenario  # noqa: E402

TCP = Scenario("tcp", "channel", 120, 250, 10, 600)


def _run(server: str, cpu: float, loss: float = 0.0, error: str = "") -> netns_report.Row:
    row = netns_report.Row(TCP, server, 25000, 25000 * (1 - loss / 100), loss)
    row.soak_us, row.proc_us, row.host_us = cpu, cpu / 2, cpu / 2
    row.relayed_total, row.error = 1_000_000, error
    return row


def _cpu_target(rows: list[netns_report.Row]) -> str:
    [line] = [line for line in netns_report.targets(rows) if "user space, every row: CPU/packet" in line]
    return line


def test_each_server_is_shown_by_its_median_run_with_the_spread_beside_it() -> None:
    rows = [_run("ours-off", cpu) for cpu in (10.0, 30.0, 14.0)] + [_run("coturn", cpu) for cpu in (12.0, 12.5, 40.0)]
    table = netns_report.report(rows, {}, "t", "").splitlines()
    [ours] = [line for line in table if line.startswith("TCP ") and " ours-off " in line]
    [coturn] = [line for line in table if line.startswith("TCP ") and " coturn " in line]
    assert " 14.00 " in ours and "median of 3 runs: cpu 10.00-30.00 us/pkt" in ours, ours
    assert " 12.50 " in coturn and "median of 3 runs: cpu 12.00-40.00 us/pkt" in coturn, coturn
    # the target is the ratio of the medians (14 / 12.5), not of any one pairing of runs
    assert "1.12x  MISSED" in _cpu_target(rows)


def test_a_failed_run_is_never_the_median() -> None:
    rows = [_run("ours-off", float("nan"), error="uclient exited 1"), _run("ours-off", 20.0), _run("ours-off", 9.0)]
    rows += [_run("coturn", 10.0)]
    [ours] = [r for r in netns_report.medians(rows) if r.server == "ours-off"]
    assert not ours.error and ours.cpu_us == 9.0  # the lower middle of the two that measured
    assert ours.runs == 3
    assert "median of 3 runs: cpu 9.00-20.00 us/pkt, loss 0.000-0.000 %, 1 failed or measured nothing" in ours.notes
    assert "0.90x  met" in _cpu_target(rows)


def test_a_single_run_is_shown_as_it_was() -> None:
    rows = [_run("ours-off", 11.0), _run("coturn", 10.0)]
    medians = netns_report.medians(rows)
    assert medians == rows and all(r.runs == 1 and not r.notes for r in medians)
    assert "1.10x  MISSED" in _cpu_target(rows)


def test_repeat_below_one_is_refused_with_the_option_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        relay_netns.main(["--repeat", "0", "--quick"])
    assert exit_.value.code == 2
    assert "--repeat 0: give 1 or more runs per row" in capsys.readouterr().err


def test_loss_and_memory_are_each_their_own_median_not_the_median_cpu_runs() -> None:
    # coturn at a load's edge: one run of three lost 8 % on its own host; that run had the median CPU
    runs = [_run("coturn", 10.0, loss=0.0), _run("coturn", 11.0, loss=8.0), _run("coturn", 12.0, loss=0.0)]
    runs[1].host_drops = 40_000
    runs[1].notes.append("load drops: peer 12")  # the median-CPU run's, whose drops are not the ones shown
    for run, kib in zip(runs, (30.0, 20.0, 25.0), strict=True):
        run.rss_per_allocation_kib = kib
    [row] = netns_report.medians(runs)
    assert row.cpu_us == 11.0  # the CPU columns: the median CPU run's
    assert row.loss == 0.0 and row.host_drops == 0  # the loss columns: the run with the median loss
    assert row.rss_per_allocation_kib == 25.0
    assert not any(note.startswith("load drops") for note in row.notes), row.notes
    # and the other way round: a lossy majority is lossy whichever run has the median CPU
    runs = [_run("coturn", 10.0, loss=5.0), _run("coturn", 11.0, loss=0.0), _run("coturn", 12.0, loss=3.0)]
    [row] = netns_report.medians(runs)
    assert row.cpu_us == 11.0 and row.loss == 3.0
