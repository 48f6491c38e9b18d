#!/usr/bin/env python3
"""What one allocation costs in memory, measured inside one process on real loopback sockets.

    .venv/bin/python bench/relay_allocation_memory.py [--allocations 2000] [--trace 25]

A `RelayServer` on the compiled packet path is started on a private event loop (never run: this script
calls the listener's entry points itself). Each allocation comes from its own client socket, as a uclient
client's: Allocate (401, then authenticated), then ChannelBind or CreatePermission to one peer. After 50
allocations of warm-up (first-use pages, caches), the process's RSS and anonymous memory before and after
the measured ones give the bytes per allocation; rows with the kernel mirror use the real
`relay.server.kernel.mirror.KernelMirror` over a program that accepts every entry (its records, not the
kernel's maps, are what the process holds). `--trace N` adds the N source lines that allocated the most
(tracemalloc), per allocation. bench/relay_netns.py measures the same end to end against coturn; this
script says where the bytes are.

Allocations made one at a time take their memory from the top of the C heap: holes that a loaded relay
leaves between long-lived small objects (bench/PROFILE.md, 2026-12-07) do not show here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inprocess import credentials, loopback_config, request

from relay.ops.metrics import RelayStats
from relay.server.app import RelayServer
from relay.server.kernel.mirror import KernelMirror
from relay.stun import Attr, Method, decode

PEER = ("127.0.0.2", 3480)
WARM_UP = 50


class AcceptingProgram:
    """A program that takes every entry (the mirror's bookkeeping is measured, not the kernel's)."""

    def put(self, slot: Any, value: bytes) -> None:
        pass

    def remove(self, slot: Any) -> bool:
        return True


def _status(field: str, path: str = "/proc/self/status") -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in {path}")


class Allocations:
    def __init__(self, method: str, mirror: bool) -> None:
        config = loopback_config(allow_loopback_peers=True, total_quota=0, user_quota=0)
        self.method = method
        self.loop = asyncio.new_event_loop()
        self.server = RelayServer(
            config, stats=RelayStats(), mirror=KernelMirror(AcceptingProgram()) if mirror else None, packet_path="auto"
        )
        self.loop.run_until_complete(self.server.start())
        self.listener = self.server.udp[0]
        # the compiled path hands what it does not forward to this callback; the Python path reads it itself
        self.entry = self.listener._handed_back if self.listener.compiled else self.listener.on_datagram
        self.username, self.key = credentials("memory")
        self.sockets: list[socket.socket] = []

    def one(self, index: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self.sockets.append(sock)
        client = sock.getsockname()[:2]
        signed = {"username": self.username, "key": self.key}
        allocate = [(Attr.REQUESTED_TRANSPORT, 17)]
        challenge = request(Method.ALLOCATE, allocate, None, **signed)
        nonce = decode(self.server.core.handle(challenge, self.listener, client, time.monotonic(), time.time())).get(
            Attr.NONCE
        )
        self.entry(request(Method.ALLOCATE, allocate, nonce, **signed), client)
        if self.method == "channel":
            bind = [(Attr.CHANNEL_NUMBER, 0x4000 + index % 0x1000), (Attr.XOR_PEER_ADDRESS, PEER)]
            self.entry(request(Method.CHANNEL_BIND, bind, nonce, **signed), client)
        else:
            self.entry(request(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, PEER)], nonce, **signed), client)
        try:
            while sock.recv(2048):  # the responses: the client's receive buffer is not the relay's memory
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.loop.run_until_complete(self.server.close())
        self.loop.close()
        for sock in self.sockets:
            sock.close()


def measure(method: str, mirror: bool, count: int, trace: int) -> list[str]:
    allocations = Allocations(method, mirror)
    try:
        for index in range(WARM_UP):
            allocations.one(index)
        gc.collect()
        rss, anon = _status("VmRSS:"), _status("Anonymous:", "/proc/self/smaps_rollup")
        if trace:
            tracemalloc.start(1)
        for index in range(WARM_UP, WARM_UP + count):
            allocations.one(index)
        gc.collect()
        made = len(allocations.server.core.table) - WARM_UP
        if made != count:
            raise RuntimeError(f"{made} allocations were made, not {count}: see the relay's log")
        rss = (_status("VmRSS:") - rss) * 1024 / count
        anon = (_status("Anonymous:", "/proc/self/smaps_rollup") - anon) * 1024 / count
        request = "ChannelBind" if method == "channel" else "CreatePermission"
        label = f"{request}, kernel mirror {'on' if mirror else 'off'}"
        lines = [f"  {label:<40} {rss:8.0f} {anon:8.0f}"]
        if trace:
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            tracemalloc.stop()
            for stat in snapshot.statistics("lineno")[:trace]:
                frame = stat.traceback[0]
                lines.append(f"      {stat.size / count:7.0f} B  {frame.filename.split('/relay/')[-1]}:{frame.lineno}")
        return lines
    finally:
        allocations.close()


ROWS = (("channel", False), ("channel", True), ("send", False), ("send", True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocations", type=int, default=2000)
    parser.add_argument("--trace", type=int, default=0, metavar="N", help="also the N top allocating lines")
    parser.add_argument("--row", type=int, choices=range(len(ROWS)), help=argparse.SUPPRESS)  # one row, this process
    args = parser.parse_args()
    if args.row is not None:
        print("\n".join(measure(*ROWS[args.row], args.allocations, args.trace)))
        return 0
    print(f"Bytes per allocation, {args.allocations} allocations after {WARM_UP} of warm-up (a process per row)")
    print(f"  {'':<40} {'RSS':>8} {'anon':>8}")
    for row in range(len(ROWS)):  # each in a fresh process: memory freed by an earlier row would hide a later one's
        command = [sys.executable, __file__, "--row", str(row), "--allocations", str(args.allocations)]
        done = subprocess.run([*command, "--trace", str(args.trace)], capture_output=True, text=True, check=False)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        print(done.stdout, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
