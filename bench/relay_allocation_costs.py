#!/usr/bin/env python3
"""Where an allocation cycle's CPU time goes, measured inside one process on real loopback sockets.

    .venv/bin/python bench/relay_allocation_costs.py [--cycles 3000]

A `RelayServer` is started on a private event loop (never run: this script calls the listener's entry
point itself). Every cycle comes from a new client address, as in bench/relay_vs_coturn.py's
allocation phase: Allocate without credentials (401 with a nonce), authenticated Allocate, Refresh with
LIFETIME 0. Requests are prepared up front, so the figures are the server's alone. The first table is
the CPU per cycle and per request (time.process_time, no probes). The second wraps the core's steps
in timers (this adds about 0.3 us per wrapped call) and prints each step's wall time per cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inprocess import credentials, loopback_config, request

from relay.ops.metrics import RelayStats
from relay.server import relays
from relay.server.app import RelayServer
from relay.stun import Attr, Method, decode
from relay.turn import handler

Cycle = tuple[tuple[str, int], bytes, bytes, bytes]


class Setup:
    def __init__(self) -> None:
        config = loopback_config()
        self.loop = asyncio.new_event_loop()
        self.server = RelayServer(config, stats=RelayStats())
        self.loop.run_until_complete(self.server.start())
        self.listener = self.server.udp[0]
        self.core = self.server.core
        self.username, self.key = credentials("costs")
        # Answers go to these ports on 127.0.0.1: bound, so loopback delivers them like to a client.
        self.sinks: list[socket.socket] = []

    def cycles(self, count: int) -> list[Cycle]:
        for sock in self.sinks:
            sock.close()
        self.sinks = []
        prepared = []
        for _ in range(count):
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sink.bind(("127.0.0.1", 0))
            sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            self.sinks.append(sink)
            client = sink.getsockname()
            first = request(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], None, self.username, self.key)
            nonce = decode(self.core.handle(first, self.listener, client, time.monotonic(), time.time())).get(
                Attr.NONCE
            )
            allocate = request(Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], nonce, self.username, self.key)
            refresh = request(Method.REFRESH, [(Attr.LIFETIME, 0)], nonce, self.username, self.key)
            prepared.append((client, first, allocate, refresh))
        return prepared

    def close(self) -> None:
        for sock in self.sinks:
            sock.close()
        self.loop.run_until_complete(self.server.close())
        self.loop.close()


def per_request(setup: Setup, count: int) -> dict[str, float]:
    """CPU microseconds per cycle and per request kind, no probes."""
    on_datagram = setup.listener.on_datagram
    spent = {"401": 0.0, "allocate": 0.0, "refresh 0": 0.0}
    clock = time.process_time
    cycles = setup.cycles(count)
    for client, first, allocate, refresh in cycles:
        t0 = clock()
        on_datagram(first, client)
        t1 = clock()
        on_datagram(allocate, client)
        t2 = clock()
        on_datagram(refresh, client)
        t3 = clock()
        spent["401"] += t1 - t0
        spent["allocate"] += t2 - t1
        spent["refresh 0"] += t3 - t2
    if len(setup.core.table):
        raise SystemExit(f"{len(setup.core.table)} allocations left: a request failed")
    result = {kind: seconds / count * 1e6 for kind, seconds in spent.items()}
    result["cycle"] = sum(result.values())
    return result


def per_step(setup: Setup, count: int) -> dict[str, tuple[float, float]]:
    """Wall microseconds per cycle and calls per cycle of each wrapped step."""
    spent: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original))

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                entry = spent[label]
                entry[0] += time.perf_counter() - began
                entry[1] += 1

        setattr(owner, name, timed)

    core = setup.core
    steps: list[tuple[Any, str, str]] = [
        (type(setup.listener), "on_datagram", "listener.on_datagram (all)"),
        (type(core), "handle", "core.handle"),
        (handler, "decode", "  STUN decode"),
        (type(core.nonces), "issue", "  nonce issue"),
        (type(core.nonces), "check", "  nonce check"),
        (type(core.auth), "authenticate", "  REST credential (incl. one integrity check)"),
        (handler, "verify_integrity", "  MESSAGE-INTEGRITY checks"),
        (type(core), "_encode", "  response encode"),
        (type(core), "_allocate", "  Allocate"),
        (relays.SocketBinder, "bind", "    relay socket open + bind"),
        (type(core.table), "add", "    allocation table add"),
        (relays.UdpRelayEndpoint, "attach", "    relay socket attach (epoll)"),
        (type(core), "delete", "  delete (Refresh 0)"),
        (relays.UdpRelayEndpoint, "close", "    relay socket close"),
    ]
    cycles = setup.cycles(count)  # prepared before the probes go in
    for owner, name, label in steps:
        wrap(owner, name, label)
    try:
        on_datagram = setup.listener.on_datagram
        for client, first, allocate, refresh in cycles:
            on_datagram(first, client)
            on_datagram(allocate, client)
            on_datagram(refresh, client)
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    return {label: (spent[label][0] / count * 1e6, spent[label][1] / count) for _, _, label in steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3000)
    args = parser.parse_args()
    setup = Setup()
    try:
        per_request(setup, min(500, args.cycles))  # warm-up: caches, allocator, port pool
        best = min((per_request(setup, args.cycles) for _ in range(3)), key=lambda result: result["cycle"])
        steps = per_step(setup, args.cycles)
    finally:
        setup.close()
    print(f"CPU microseconds per allocation cycle, in one process, best of 3 x {args.cycles} cycles")
    for kind in ("401", "allocate", "refresh 0", "cycle"):
        print(f"  {kind:<12} {best[kind]:8.1f}")
    print("\nwall microseconds per cycle by step (with timer probes; nested steps are part of their parent)")
    for label, (micros, calls) in steps.items():
        print(f"  {label:<48} {micros:8.1f}   ({calls:.0f} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
