#!/usr/bin/env python3
"""What one allocation costs in memory, measured inside one process on real loopback sockets.

    .venv/bin/python bench/relay_allocation_memory.py [--allocations 2000] [--trace 25]

A `RelayServer` on the compiled packet path is started on a private event loop (uvloop's when installed, as
`relay.process.cli` runs it). Each allocation comes from its own client socket, as a uclient client's:
Allocate (401, then authenticated), then ChannelBind or CreatePermission to one peer. UDP rows call the
listener's entry point themselves (the loop never runs); TCP rows connect a real TCP socket to a TCP
listener and turn the loop until each answer is back, so the connection's transport and `StreamConnection`
are counted. After 50 allocations of warm-up (first-use pages, caches), the process's RSS and anonymous
memory before and after the measured ones give the bytes per allocation (the client sockets' Python objects,
~100 B, included); rows with the kernel mirror use the real
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
import contextlib
import gc
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inprocess import credentials, loopback_config, request

from relay.ops.metrics import RelayStats
from relay.server.app import RelayServer
from relay.server.kernel.mirror import KernelMirror
from relay.stun import Attr, MessageClass, Method, decode

PEER = ("127.0.0.2", 3480)
ALLOCATE = ((Attr.REQUESTED_TRANSPORT, 17),)  # UDP relaying, as uclient asks
WARM_UP = 50
ANSWER_SECONDS = 5.0  # a TCP answer not back by then fails the row (the relay's log says why)


def new_loop() -> asyncio.AbstractEventLoop:
    """The event loop the relay runs on in production: uvloop's when installed (relay.process.cli)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


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
    def __init__(self, method: str, mirror: bool, transport: str = "udp") -> None:
        config = loopback_config(transport, allow_loopback_peers=True, total_quota=0, user_quota=0)
        self.method, self.transport = method, transport
        self.loop = new_loop()
        self.server = RelayServer(
            config, stats=RelayStats(), mirror=KernelMirror(AcceptingProgram()) if mirror else None, packet_path="auto"
        )
        self.loop.run_until_complete(self.server.start())
        if transport == "udp":
            self.listener = self.server.udp[0]
            # the compiled path hands what it does not forward to this callback; the Python path reads it itself
            self.entry = self.listener._handed_back if self.listener.compiled else self.listener.on_datagram
        else:
            self.address = self.server.stream_servers[0][1].sockets[0].getsockname()[:2]
        self.username, self.key = credentials("memory")
        self.sockets: list[socket.socket] = []

    def one(self, index: int) -> None:
        if self.transport != "udp":
            self._over_tcp(index)
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self.sockets.append(sock)
        client = sock.getsockname()[:2]
        challenge = self._request(Method.ALLOCATE, ALLOCATE, None)
        nonce = decode(self.server.core.handle(challenge, self.listener, client, time.monotonic(), time.time())).get(
            Attr.NONCE
        )
        for message in self._signed(index, nonce):
            self.entry(message, client)
        try:
            while sock.recv(2048):  # the responses: the client's receive buffer is not the relay's memory
                pass
        except BlockingIOError:
            pass

    def _request(self, method: int, attributes: Sequence[tuple[int, Any]], nonce: str | None) -> bytes:
        return request(method, attributes, nonce, self.username, self.key)

    def _signed(self, index: int, nonce: str) -> list[bytes]:
        """The authenticated Allocate and the ChannelBind or CreatePermission after it."""
        if self.method == "channel":
            then = [(Attr.CHANNEL_NUMBER, 0x4000 + index % 0x1000), (Attr.XOR_PEER_ADDRESS, PEER)]
            second = self._request(Method.CHANNEL_BIND, then, nonce)
        else:
            second = self._request(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, PEER)], nonce)
        return [self._request(Method.ALLOCATE, ALLOCATE, nonce), second]

    def _over_tcp(self, index: int) -> None:
        sock = socket.create_connection(self.address)
        sock.setblocking(False)
        self.sockets.append(sock)
        answer = self._ask(sock, self._request(Method.ALLOCATE, ALLOCATE, None))
        nonce = decode(answer).get(Attr.NONCE)
        for message in self._signed(index, nonce):
            answer = self._ask(sock, message)
            if decode(answer).message_class != MessageClass.SUCCESS:
                raise RuntimeError(f"allocation {index} over TCP was refused: {decode(answer)}")

    def _ask(self, sock: socket.socket, message: bytes) -> bytes:
        """Send one request over the TCP connection and turn the loop until its answer is back."""
        sock.sendall(message)
        answer = b""
        deadline = time.monotonic() + ANSWER_SECONDS
        while len(answer) < 20 or len(answer) < 20 + int.from_bytes(answer[2:4], "big"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer over TCP within {ANSWER_SECONDS} s: see the relay's log")
            self.loop.run_until_complete(asyncio.sleep(0))
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(4096)
        return answer

    def close(self) -> None:
        self.loop.run_until_complete(self.server.close())
        self.loop.close()
        for sock in self.sockets:
            sock.close()


def measure(method: str, mirror: bool, transport: str, count: int, trace: int) -> list[str]:
    allocations = Allocations(method, mirror, transport)
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
        label = f"{request}, kernel mirror {'on' if mirror else 'off'}" if transport == "udp" else f"{request}, TCP"
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


ROWS = (
    ("channel", False, "udp"),
    ("channel", True, "udp"),
    ("send", False, "udp"),
    ("send", True, "udp"),
    ("channel", False, "tcp"),  # a TCP client's allocation is never mirrored (user space by design)
    ("send", False, "tcp"),
)


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
