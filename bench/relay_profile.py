#!/usr/bin/env python3
"""Profile our relay under uclient load with py-spy and summarise where its CPU time goes.

    .venv/bin/python bench/relay_profile.py [--clients 400] [--method channel|send] [--payload 120]

The relay runs pinned to the upper half of the CPUs (workers = that many), turnutils_uclient and
turnutils_peer on the lower half, as in bench/relay_vs_coturn.py. py-spy samples the worker(s)
without stopping them (--nonblocking) while the load runs; idle samples (waiting in epoll) are left
out, so the shares are of the relay's busy time. Each sample's innermost Python line is put in a
category: a system call made from Python (the source line calls sendto, recvfrom_into, recvmmsg or
epoll), event-loop code outside Python (uvloop, reported as its caller), or Python work. Prints the
CPU microseconds per relayed packet over the run, the category shares and the top lines.
"""

from __future__ import annotations

import argparse
import collections
import linecache
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relay_servers import OurRelay
from relay_uclient import Scenario
from relay_vs_coturn import PEER_PORT, REALM, RELAY_RANGE, SECRET, free_port, measure, split_cores

ROOT = Path(__file__).resolve().parent.parent
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]+):(?P<line>\d+)\)$")
_SYSCALLS = ("sendto(", "recvfrom_into(", "_recv(", ".receive()", "poll(", "_client_sendto(", "target[0](")


def categorise(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return "other"
    path = match["file"]
    if "uvloop" in path or path.endswith("runners.py"):
        return "event loop (uvloop, C)"
    source = linecache.getline(str(ROOT / path) if not Path(path).is_absolute() else path, int(match["line"]))
    if any(call in source for call in _SYSCALLS):
        return "system calls made from Python"
    return "Python work"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=400)
    parser.add_argument("--method", choices=("channel", "send"), default="channel")
    parser.add_argument("--payload", type=int, default=120)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed (pip install -r requirements-dev.txt)", file=sys.stderr)
        return 2
    server_cores, load_cores = split_cores()
    workdir = Path(tempfile.mkdtemp(prefix="relay-profile-"))
    taskset = ["taskset", "-c", ",".join(map(str, load_cores))]
    peer = subprocess.Popen([*taskset, "turnutils_peer", "-L", "127.0.0.1", "-p", str(PEER_PORT)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    server = OurRelay(server_cores, free_port(), workers=len(server_cores), admin_port=free_port(),
                      relay_range=RELAY_RANGE, secret=SECRET, realm=REALM, workdir=workdir)  # fmt: skip
    scenario = Scenario("udp", args.method, args.payload, args.clients, 10, args.messages)
    server.start()
    samples = collections.Counter()
    try:
        workers = server.pids()[1:] or server.pids()
        spies = []
        for pid in workers:
            output = workdir / f"profile-{pid}.txt"
            spies.append((output, subprocess.Popen(
                [*taskset, py_spy, "record", "--nonblocking", "-r", "250", "-f", "raw", "-p", str(pid),
                 "-o", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))  # fmt: skip
        time.sleep(1.0)
        row = measure(server, scenario, load_cores, peer.pid)
        for _, spy in spies:
            spy.send_signal(2)  # py-spy writes its output on SIGINT
            spy.wait(30)
        for output, _ in spies:
            for line in output.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                samples[stack.split(";")[-1]] += int(count)
    finally:
        server.stop()
        peer.terminate()
        peer.wait(5)
    total = sum(samples.values())
    print(f"{scenario.family}, {args.clients} clients x 100 msg/s: {row.delivered:.0f} msg/s delivered, "
          f"loss {row.loss:.3f} %, {row.us_per_packet:.2f} CPU us per relayed packet, "
          f"{total} busy samples at 250 Hz")  # fmt: skip
    categories: collections.Counter[str] = collections.Counter()
    for frame, count in samples.items():
        categories[categorise(frame)] += count
    print("\nshare of busy time by category:")
    for category, count in categories.most_common():
        print(f"  {count / total:6.1%}  {category}")
    print(f"\ntop {args.top} innermost lines:")
    for frame, count in samples.most_common(args.top):
        print(f"  {count / total:6.1%}  {frame}  [{categorise(frame)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
