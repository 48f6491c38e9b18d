#!/usr/bin/env python3
"""Where one relayed packet's CPU time goes, measured inside one process on real loopback sockets.

    .venv/bin/python bench/relay_packet_costs.py [--payload 120] [--rounds 40]

A `RelayServer` is started on a private event loop (never run: this script calls the packet entry
points itself), one client allocates and binds a channel to one peer, then each line times one path
over batches of datagrams already waiting in the socket, as CPU time per datagram (median of the
rounds). The kernel's share is the first line: a bare `recvfrom_into` + `sendto` pair, which every
relayed packet needs. What the table cannot show: the event loop's wake-ups (amortised over the
datagrams of one wake-up) and the wake-up of the receiving process, which loopback charges to the
sender (bench/relay_vs_coturn.py measures both, end to end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inprocess import credentials, loopback_config, request

from relay.ops.metrics import RelayStats
from relay.server.app import RelayServer
from relay.server.fastwire import parse_send
from relay.stun import Attr, Message, MessageClass, Method, decode
from relay.turn.wire import parse_send_indication

BATCH = 200  # datagrams waiting per round (a relay socket's default buffer holds a few hundred)


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(70000)
        except BlockingIOError:
            return count
        count += 1


class Setup:
    def __init__(self, payload: int, *, fast: bool, packet_path: str = "python", tcp: bool = False) -> None:
        config = loopback_config("tcp" if tcp else "udp", allow_loopback_peers=True)
        self.loop = asyncio.new_event_loop()
        self.stats = RelayStats()
        self.server = RelayServer(config, stats=self.stats, fast=fast, packet_path=packet_path)
        self.loop.run_until_complete(self.server.start())
        self.peer = _socket()
        self.connection: Any = None
        if tcp:
            address = self.server.stream_servers[0][1].sockets[0].getsockname()
            self.client = socket.create_connection(address)
            self.client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self._run_loop()
            self.connection = next(iter(self.server.connections))
        else:
            self.listener = self.server.udp[0]
            self.client = _socket()
            self.client.connect(self.listener.local)
        self.payload = b"m" * payload
        self.relayed = self._allocate_and_bind()
        self.endpoint = next(iter(self.server.core.table)).relays[1]

    def _run_loop(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0.05))

    def _request(self, method: int, attributes: list, nonce: str, username: str, key: bytes) -> Message:
        wire = request(method, attributes, nonce or None, username, key)
        if self.connection is not None:
            self.client.sendall(wire)
            self._run_loop()
            return decode(self.client.recv(2048))
        self.listener.on_datagram(wire, self.client.getsockname())
        return decode(self.client.recv(2048))

    def _allocate_and_bind(self) -> tuple[str, int]:
        username, key = credentials("costs")
        allocate = [(Attr.REQUESTED_TRANSPORT, 17)]
        nonce = self._request(Method.ALLOCATE, allocate, "", username, key).get(Attr.NONCE)
        relayed = self._request(Method.ALLOCATE, allocate, nonce, username, key).get(Attr.XOR_RELAYED_ADDRESS)
        bind = [(Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, self.peer.getsockname())]
        assert self._request(Method.CHANNEL_BIND, bind, nonce, username, key).message_class == MessageClass.SUCCESS
        return relayed

    def close(self) -> None:
        self.loop.run_until_complete(self.server.close())
        self.loop.close()
        self.client.close()
        self.peer.close()


def _time(fill: Callable[[], None], consume: Callable[[], None], drain: Callable[[], None], rounds: int) -> float:
    """Median CPU microseconds per datagram of `consume` (which must take BATCH datagrams)."""
    samples = []
    for _ in range(rounds):
        fill()
        started = time.process_time()
        consume()
        samples.append((time.process_time() - started) / BATCH * 1e6)
        drain()
    return statistics.median(samples)


def _relay_paths(setup: Setup, frame: bytes, fast: bool, rounds: int) -> list[tuple[str, float]]:
    label = "fast" if fast else "portable"
    listener, endpoint = setup.listener, setup.endpoint

    def client_to_peer() -> None:
        left = BATCH
        while left > 0:
            if fast:
                before = setup.stats.packets_client_to_peer
                listener._on_readable_batched()
                left -= setup.stats.packets_client_to_peer - before
            else:
                listener._on_readable()
                left -= 64

    handler = endpoint._on_readable if fast else endpoint._on_readable_any

    def peer_to_client() -> None:
        for _ in range(BATCH):
            handler()

    return [
        (
            f"client->peer ChannelData, {label} listener ({'recvmmsg' if fast else 'recvfrom_into'})",
            _time(
                lambda: [setup.client.send(frame) for _ in range(BATCH)],
                client_to_peer,
                lambda: _drain(setup.peer),
                rounds,
            ),
        ),
        (
            f"peer->client ChannelData, {label} relay socket ({'in place' if fast else 'Forwarder'})",
            _time(
                lambda: [setup.peer.sendto(setup.payload, setup.relayed) for _ in range(BATCH)],
                peer_to_client,
                lambda: _drain(setup.client),
                rounds,
            ),
        ),
    ]


def _drain_stream(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while sock.recv(1 << 20):
            pass
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)


def _stream_paths(setup: Setup, frame: bytes, rounds: int) -> list[tuple[str, float]]:
    """A TCP client's packets, one frame per read as at low load (each chunk the event loop hands over
    holds one ChannelData frame; the relay socket holds one datagram per readiness event)."""
    connection, endpoint = setup.connection, setup.endpoint
    handler = setup.server.plane._handlers[endpoint.sock.fileno()]

    def client_to_peer() -> None:
        for _ in range(BATCH):
            connection.data_received(frame)

    def peer_to_client() -> None:
        for _ in range(BATCH):
            handler()

    return [
        (
            "client->peer ChannelData, TCP connection (one frame per chunk)",
            _time(lambda: None, client_to_peer, lambda: _drain(setup.peer), rounds),
        ),
        (
            "peer->client ChannelData, TCP client's relay socket",
            _time(
                lambda: [setup.peer.sendto(setup.payload, setup.relayed) for _ in range(BATCH)],
                peer_to_client,
                lambda: _drain_stream(setup.client),
                rounds,
            ),
        ),
    ]


def _compiled_paths(setup: Setup, frame: bytes, rounds: int) -> list[tuple[str, float]]:
    """The compiled path (relay.server._fastpath): its Engine's poll serves the listener and relay socket."""
    poll = setup.server.plane.engine.poll

    def drain(direction: int) -> Callable[[], None]:
        def run() -> None:
            left = BATCH
            while left > 0:
                left -= poll(16)[direction]

        return run

    if setup.connection is not None:  # a TCP client: its BATCH frames arrive in one or a few reads
        return [
            (
                "client->peer ChannelData, compiled TCP connection (frames of one read)",
                _time(lambda: setup.client.sendall(frame * BATCH), drain(0), lambda: _drain(setup.peer), rounds),
            ),
            (
                "peer->client ChannelData, compiled TCP client (recvmmsg + one writev)",
                _time(
                    lambda: [setup.peer.sendto(setup.payload, setup.relayed) for _ in range(BATCH)],
                    drain(2),
                    lambda: _drain_stream(setup.client),
                    rounds,
                ),
            ),
        ]
    return [
        (
            "client->peer ChannelData, compiled path (recvmmsg + sendto in C)",
            _time(
                lambda: [setup.client.send(frame) for _ in range(BATCH)], drain(0), lambda: _drain(setup.peer), rounds
            ),
        ),
        (
            "peer->client ChannelData, compiled path (recvmmsg + sendmmsg in C)",
            _time(
                lambda: [setup.peer.sendto(setup.payload, setup.relayed) for _ in range(BATCH)],
                drain(2),
                lambda: _drain(setup.client),
                rounds,
            ),
        ),
    ]


def measure(payload: int, rounds: int) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = []
    frame = b"\x40\x00" + len(b"m" * payload).to_bytes(2, "big") + b"m" * payload

    # The kernel's share: recvfrom_into + sendto, no relaying logic at all.
    a, b, c = _socket(), _socket(), _socket()
    buffer = bytearray(65536)
    view = memoryview(buffer)

    def bare() -> None:
        for _ in range(BATCH):
            size, _ = a.recvfrom_into(buffer)
            b.sendto(view[:size], c.getsockname())

    results.append(
        (
            "kernel floor: recvfrom_into + sendto",
            _time(lambda: [c.sendto(frame, a.getsockname()) for _ in range(BATCH)], bare, lambda: _drain(c), rounds),
        )
    )
    for sock in (a, b, c):
        sock.close()

    setup = Setup(payload, fast=True, packet_path="compiled")
    results += _compiled_paths(setup, frame, rounds)
    setup.close()
    for fast in (True, False):
        setup = Setup(payload, fast=fast)
        results += _relay_paths(setup, frame, fast, rounds)
        setup.close()
    setup = Setup(payload, fast=True, tcp=True)
    results += _stream_paths(setup, frame + bytes(-payload % 4), rounds)
    setup.close()
    setup = Setup(payload, fast=True, tcp=True, packet_path="compiled")
    results += _compiled_paths(setup, frame + bytes(-payload % 4), rounds)
    setup.close()

    from relay.stun.attributes import encode_xor_address

    tid = os.urandom(12)
    send = (
        b"\x00\x16"
        + (4 + payload + (-payload % 4) + 12).to_bytes(2, "big")
        + b"\x21\x12\xa4\x42"
        + tid
        + b"\x00\x13"
        + payload.to_bytes(2, "big")
        + b"m" * payload
        + b"\x00" * (-payload % 4)
        + b"\x00\x12\x00\x08"
        + encode_xor_address(("127.0.0.1", 3480), tid)
    )
    wire = memoryview(send)
    cache: dict = {}
    for label, parse in (
        ("Send indication parse (fast path)", lambda: parse_send(wire, len(wire), cache)),
        ("Send indication parse (reference parser)", lambda: parse_send_indication(wire)),
    ):
        started = time.process_time()
        for _ in range(20000):
            parse()
        results.append((label, (time.process_time() - started) / 20000 * 1e6))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payload", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    print(f"CPU microseconds per datagram, {args.payload}-byte payload, median of {args.rounds} x {BATCH}")
    for label, value in measure(args.payload, args.rounds):
        print(f"  {label:<62} {value:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
