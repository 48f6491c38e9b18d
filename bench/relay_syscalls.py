#!/usr/bin/env python3
"""System calls and context switches per relayed packet, ours against coturn, under the same uclient load.

    .venv/bin/python bench/relay_syscalls.py [--clients 500] [--method channel|send] [--payload 120]

Needs `perf` (Debian: apt-get install linux-perf). Each server runs alone, pinned as in
bench/relay_vs_coturn.py (one core; one worker or one relay thread), while `perf stat` counts its
system calls by type, its context switches and its CPU time over one uclient row. Per-packet figures
divide by the packets the server relayed. This is where the per-packet costs differ: coturn reads each
datagram with its own recvmsg, we read the listener in recvmmsg batches and serve every ready socket
from one epoll wake-up (bench/PROFILE.md).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relay_servers import Coturn, OurRelay, Server
from relay_uclient import Scenario
from relay_vs_coturn import PEER_PORT, REALM, RELAY_RANGE, SECRET, free_port, measure, split_cores

SYSCALLS = ("sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg", "epoll_wait", "epoll_pwait")
EVENTS = ["raw_syscalls:sys_enter", *(f"syscalls:sys_enter_{name}" for name in SYSCALLS), "context-switches",
          "task-clock"]  # fmt: skip


def parse_perf(text: str) -> dict[str, float]:
    """`perf stat -o` output: '<count> <event> ...' lines ('<count> msec task-clock' for CPU time)."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].replace(",", "").replace(".", "", 1).isdigit():
            event = fields[2] if fields[1] == "msec" and len(fields) > 2 else fields[1]
            counts[event] = float(fields[0].replace(",", ""))
    return counts


def count(server: Server, scenario: Scenario, load_cores: list[int], peer_pid: int) -> tuple[float, dict[str, float]]:
    server.start()
    try:
        output = server.workdir / "perf.txt"
        perf = subprocess.Popen(["perf", "stat", "-e", ",".join(EVENTS), "-p", ",".join(map(str, server.pids())),
                                 "-o", str(output)])  # fmt: skip
        time.sleep(0.5)
        row = measure(server, scenario, load_cores, peer_pid)
        perf.send_signal(signal.SIGINT)
        perf.wait(10)
        print(f"{server.name:>6}: {row.delivered:.0f} msg/s delivered, loss {row.loss:.3f} %, "
              f"{row.relayed} packets relayed" + (f"  ERROR {row.error}" if row.error else ""))  # fmt: skip
        return row.relayed, parse_perf(output.read_text())
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--method", choices=("channel", "send"), default="channel")
    parser.add_argument("--payload", type=int, default=120)
    args = parser.parse_args()
    missing = [tool for tool in ("perf", "turnserver", "turnutils_uclient", "turnutils_peer") if not shutil.which(tool)]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install linux-perf coturn)", file=sys.stderr)
        return 2
    server_cores, load_cores = split_cores()
    scenario = Scenario("udp", args.method, args.payload, args.clients, 10, 800)
    taskset = ["taskset", "-c", ",".join(map(str, load_cores))]
    peer = subprocess.Popen([*taskset, "turnutils_peer", "-L", "127.0.0.1", "-p", str(PEER_PORT)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    common = {"relay_range": RELAY_RANGE, "secret": SECRET, "realm": REALM}
    servers: list[Server] = [
        OurRelay(
            server_cores,
            free_port(),
            workers=len(server_cores),
            admin_port=free_port(),
            workdir=Path(tempfile.mkdtemp(prefix="syscalls-ours-")),
            **common,
        ),
        Coturn(
            server_cores,
            free_port(),
            threads=len(server_cores),
            workdir=Path(tempfile.mkdtemp(prefix="syscalls-coturn-")),
            **common,
        ),
    ]
    results = {}
    try:
        for server in servers:
            results[server.name] = count(server, scenario, load_cores, peer.pid)
    finally:
        peer.terminate()
        peer.wait(5)
    cores = len(server_cores)
    print(f"\nper relayed packet, {scenario.family}, {args.clients} clients x 100 msg/s, {cores} server core(s):")
    print(f"  {'':<28}{'ours':>10}{'coturn':>10}")
    names = ["raw_syscalls:sys_enter", *(f"syscalls:sys_enter_{name}" for name in SYSCALLS), "context-switches"]
    for name in [*names, "task-clock"]:
        values = []
        for relayed, counts in results.values():
            value = counts.get(name, 0.0) / relayed if relayed else float("nan")
            values.append(value * 1000 if name == "task-clock" else value)  # msec -> us
        label = {"raw_syscalls:sys_enter": "all system calls", "task-clock": "CPU us"}.get(
            name, name.removeprefix("syscalls:sys_enter_")
        )
        print(f"  {label:<28}" + "".join(f"{value:>10.3f}" for value in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
