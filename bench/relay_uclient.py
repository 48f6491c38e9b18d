"""Runs coturn's `turnutils_uclient` against a server and reads what it printed.

uclient starts every client at a random moment 1-6 s after the allocations, each sends `messages`
messages every `interval_ms`, and the echo peer (`turnutils_peer`) sends each one back. Once a second
it prints cumulative counts ("N: : start_mclient: msz=.., tot_send_msgs=S, tot_recv_msgs=R, ...", N =
seconds since start), and at the end totals, loss and round-trip times (in whole milliseconds: its
clock ticks every millisecond). The delivered rate is taken over the seconds in which the offered load
was at its peak (every client sending), so the ramp-up and the tail do not dilute it.
"""

from __future__ import annotations

import itertools
import re
import resource
import subprocess
from dataclasses import dataclass, field

_SAMPLE = re.compile(r"^(\d+): : start_mclient: msz=\d+, tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", re.MULTILINE)
# The final totals line, not a per-second one (those carry msz= and byte counts, and may be cut under load).
_TOTALS = re.compile(r"^\d+: : start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)$", re.MULTILINE)
_LOST = re.compile(r"Total lost packets (\d+) \(([\d.]+)%\)")
_RTT = re.compile(r"Average round trip delay ([\d.]+) ms; min = (\d+) ms, max = (\d+) ms")


@dataclass(frozen=True)
class Scenario:
    transport: str  # "udp" | "tcp"
    method: str  # "channel" | "send"
    payload: int  # bytes per message
    clients: int
    interval_ms: int
    messages: int  # per client

    @property
    def offered(self) -> float:
        """Messages per second when every client sends."""
        return self.clients * 1000.0 / self.interval_ms

    @property
    def family(self) -> str:
        return f"{self.transport.upper()} {'channels' if self.method == 'channel' else 'Send ind.'} {self.payload} B"

    def arguments(self) -> list[str]:
        args = ["-l", str(self.payload), "-c", "-m", str(self.clients), "-n", str(self.messages)]
        args += ["-z", str(self.interval_ms)]
        if self.method == "send":
            args.append("-s")
        if self.transport == "tcp":
            args.append("-t")
        return args


@dataclass
class UclientResult:
    sent: int = 0
    received: int = 0
    lost: int = 0
    loss_percent: float = 0.0
    rtt_avg_ms: float = 0.0
    rtt_max_ms: float = 0.0
    delivered_per_second: float = 0.0
    sent_per_second: float = 0.0  # over the same seconds: the load actually applied
    load_cpu_seconds: float = 0.0  # uclient's own CPU time
    samples: list[tuple[int, int, int]] = field(default_factory=list)
    error: str = ""


def parse(output: str) -> UclientResult:
    result = UclientResult()
    totals = _TOTALS.findall(output)
    if not totals:
        result.error = "no totals in turnutils_uclient's output: " + output.strip().splitlines()[-1:][0][:200]
        return result
    result.sent, result.received = map(int, totals[-1])
    lost = _LOST.findall(output)
    if lost:
        result.lost, result.loss_percent = int(lost[-1][0]), float(lost[-1][1])
    rtt = _RTT.findall(output)
    if rtt:
        result.rtt_avg_ms, result.rtt_max_ms = float(rtt[-1][0]), float(rtt[-1][2])
    result.samples = [(int(t), int(s), int(r)) for t, s, r in _SAMPLE.findall(output)]
    result.sent_per_second, result.delivered_per_second = peak_rates(result.samples)
    return result


def peak_rates(samples: list[tuple[int, int, int]]) -> tuple[float, float]:
    """(sent, received) messages per second over the intervals where the send rate was within 10 % of
    its peak."""
    intervals = []
    for (t0, s0, r0), (t1, s1, r1) in itertools.pairwise(samples):
        if t1 > t0:
            intervals.append(((s1 - s0) / (t1 - t0), (r1 - r0) / (t1 - t0), t1 - t0))
    if not intervals:
        return 0.0, 0.0
    peak = max(sent for sent, _, _ in intervals)
    steady = [(sent, received, span) for sent, received, span in intervals if sent >= 0.9 * peak]
    seconds = sum(span for _, _, span in steady)
    return sum(s * span for s, _, span in steady) / seconds, sum(r * span for _, r, span in steady) / seconds


def run(
    scenario: Scenario,
    *,
    port: int,
    secret: str,
    peer_port: int,
    cores: list[int],
    processes: int = 1,
    timeout: float = 300.0,
    server_ip: str = "127.0.0.1",
    peer_ip: str = "127.0.0.1",
    netns: str = "",
) -> UclientResult:
    """Run `processes` uclients in parallel (the clients split between them) and add their results; in
    network namespace `netns` when given (`ip netns exec` execs, so uclient stays our child)."""
    shares = [scenario.clients // processes + (1 if i < scenario.clients % processes else 0) for i in range(processes)]
    taskset = ["taskset", "-c", ",".join(map(str, cores))]
    if netns:
        taskset += ["ip", "netns", "exec", netns]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    running = []
    for share in shares:
        args = Scenario(scenario.transport, scenario.method, scenario.payload, share, scenario.interval_ms,
                        scenario.messages).arguments()  # fmt: skip
        command = [*taskset, "turnutils_uclient", "-W", secret, "-u", "bench", "-e", peer_ip]
        command += ["-r", str(peer_port), "-p", str(port), *args, server_ip]
        running.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for process in running:
            try:
                outputs.append(process.communicate(timeout=timeout)[0])
            except subprocess.TimeoutExpired:
                process.kill()
                outputs.append(process.communicate()[0] + "\n(killed: timeout)")
    finally:  # interrupted (SIGTERM, Ctrl-C): no uclient outlives the benchmark
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    results = [parse(output) for output in outputs]
    total = UclientResult()
    for result in results:
        total.sent += result.sent
        total.received += result.received
        total.lost += result.lost
        total.delivered_per_second += result.delivered_per_second
        total.sent_per_second += result.sent_per_second
        total.rtt_max_ms = max(total.rtt_max_ms, result.rtt_max_ms)
        total.error = total.error or result.error
    if total.received:
        total.rtt_avg_ms = sum(r.rtt_avg_ms * r.received for r in results) / total.received
    total.loss_percent = 100.0 * total.lost / total.sent if total.sent else 0.0
    total.load_cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return total
