"""How busy a core is, measured by what it leaves to a soaker (Andrew Morton's cyclesoak method): one process
per server core, pinned there at SCHED_IDLE, counts loop rounds; whatever else runs on the core (the server,
its system calls, softirq: the in-kernel path's TC program and the transmit after it) takes rounds away. Busy
share = 1 - (rounds per second during the row) / (rounds per second measured idle: relay_netns takes the
mean of before and after the row).

Why not /proc/stat alone: this kernel has tick accounting without IRQ_TIME_ACCOUNTING and stops the tick on
an idle core (NO_HZ). Softirq work in short bursts between idle periods (the in-kernel path at moderate load)
is then mostly never sampled: rows of the namespace benchmark showed 0.00 us of softirq per packet at 39,000
forwarded messages a second, where the program alone runs ~0.7 us per packet (bpftool). The soaker keeps the
core from idling and sees every stolen cycle, whoever it went to. Its SCHED_IDLE weight (3 against a nice-0
task's 1024) costs the server ~0.3 % of the core at most.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterable
from multiprocessing.sharedctypes import SynchronizedArray

ROUND = 20_000  # loop iterations between two updates of the shared counter


def _soak(core: int, counters: SynchronizedArray, index: int) -> None:
    os.sched_setaffinity(0, {core})
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    rounds = 0
    while True:
        for _ in range(ROUND):
            pass
        rounds += 1
        counters[index] = rounds


class Soaker:
    """`start()` one soaker per core; `read()` their round counts (one snapshot); `stop()`."""

    def __init__(self, cores: Iterable[int]) -> None:
        self.cores = list(cores)
        context = multiprocessing.get_context("fork")  # started before the benchmark's threads
        self.counters = context.Array("Q", len(self.cores), lock=False)
        self.processes = [
            context.Process(target=_soak, args=(core, self.counters, i), daemon=True)
            for i, core in enumerate(self.cores)
        ]

    def start(self) -> None:
        for process in self.processes:
            process.start()
        time.sleep(0.2)  # running and pinned before the first reading

    def read(self) -> tuple[float, int]:
        """(monotonic time, rounds summed over the cores)."""
        return time.monotonic(), sum(self.counters)

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.join(5)


def rate(before: tuple[float, int], after: tuple[float, int]) -> float:
    """Rounds per second between two readings (0 when no time passed)."""
    seconds = after[0] - before[0]
    return (after[1] - before[1]) / seconds if seconds > 0 else 0.0


def busy_share(idle_rate: float, before: tuple[float, int], after: tuple[float, int]) -> float:
    """The share of the soaked cores that other work took between two readings (0 when idle_rate is 0)."""
    if idle_rate <= 0 or after[0] <= before[0]:
        return 0.0
    return max(0.0, 1.0 - rate(before, after) / idle_rate)
