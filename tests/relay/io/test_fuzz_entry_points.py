"""Fuzz the server's real packet entry points with hypothesis: `UdpListener.on_datagram` (where every
client datagram enters) and `StreamConnection.on_bytes` (where every TCP chunk enters; on the compiled path
the chunks go over the connection to the Engine's framing), on a started
`RelayServer` with real sockets. Responses are read back from real client sockets.

Properties: no exception escapes; answers to unauthenticated input are at most 5x its size; no
allocation, relay socket or connection state is created by unauthenticated input; the relay still
serves a real client afterwards. Input counts are recorded as `fuzz:<target>`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_fuzz_strategies import anything, stream_chunks
from relay_testkit import TEST_PORT_RANGE, RunningRelay, loopback_config

from relay.ops.metrics import RelayStats
from relay.server.app import RelayServer
from relay.server.cstream import CompiledStream
from relay.server.stream import StreamConnection
from tests.servers import until

ENTRY = settings(max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
STREAM = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))


class Harness:
    """A started RelayServer on a private (not running) loop: the test thread calls the entry points."""

    def __init__(self, packet_path: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.stats = RelayStats()
        self.server = RelayServer(loopback_config(), stats=self.stats, packet_path=packet_path)
        self.loop.run_until_complete(self.server.start())
        self.pools = self._pools()

    def _pools(self) -> dict[int, int]:
        return {family: len(pool) for family, pool in self.server.core.binder.pools.items()}

    def no_state(self) -> bool:
        core = self.server.core
        return len(core.table) == 0 and not core.reservations and self._pools() == self.pools

    def spin(self, seconds: float = 0.0) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def spin_until(self, condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
        """Run the loop until `condition` holds (tests.servers.until on this private loop)."""
        self.loop.run_until_complete(until(condition, what, timeout))

    def close(self) -> None:
        self.loop.run_until_complete(self.server.close())
        self.loop.close()


def _drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            data = sock.recv(70000)
        except (BlockingIOError, InterruptedError, ConnectionResetError):
            return out
        if not data and sock.type == socket.SOCK_STREAM:
            return out  # the relay closed the connection (garbage framing)
        out.append(data)


@pytest.mark.slow
def test_fuzz_udp_entry_point(record_property) -> None:
    harness = Harness()
    listener = harness.server.udp[0]
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setblocking(False)
    address = client.getsockname()
    counter = [0]

    @ENTRY
    @given(data=anything, as_view=st.booleans())
    def run(data: bytes, as_view: bool) -> None:
        counter[0] += 1
        listener.on_datagram(memoryview(data) if as_view else data, address)
        for answer in _drain(client):
            assert len(answer) <= 5 * len(data), (data, answer)
        assert harness.no_state()

    try:
        run()
        assert sum(v for k, v in harness.stats.snapshot().items() if k.endswith("server_error")) == 0
    finally:
        client.close()
        harness.close()
    record_property("fuzz:udp_entry", counter[0])
    assert counter[0] >= ENTRY.max_examples  # the whole budget ran (draws that overran count here too)


def _open(connection: StreamConnection | CompiledStream) -> bool:
    if isinstance(connection, CompiledStream):
        return connection.fd >= 0
    return connection._transport is not None


@pytest.mark.slow
@pytest.mark.parametrize("packet_path", ["python", "compiled"])
def test_fuzz_tcp_entry_point(record_property, packet_path: str) -> None:
    """Python path: chunks go straight into `StreamConnection.on_bytes`. Compiled path: the Engine frames the
    byte stream itself (relay.server._fastpath_stream.h), so the chunks are sent over the connection."""
    if packet_path == "compiled":
        pytest.importorskip("relay.server._fastpath", reason="tests/relay/conftest.py builds it in place")
    harness = Harness(packet_path)
    server_address = harness.server.address("tcp")
    counter = [0]
    state: dict = {}

    def connection():
        if state.get("conn") is None or not _open(state["conn"]):
            if state.get("sock"):
                state["sock"].close()
            sock = socket.create_connection(server_address)
            sock.setblocking(False)
            harness.spin_until(lambda: harness.server.connections - state.get("seen", set()), "the connection accepted")
            new = (harness.server.connections - state.get("seen", set())).pop()
            state.update(sock=sock, conn=new, seen=state.get("seen", set()) | {new}, sent=0, received=0)
        return state["conn"], state["sock"]

    def feed(conn: StreamConnection | CompiledStream, sock: socket.socket, chunk: bytes) -> None:
        if isinstance(conn, StreamConnection):
            conn.on_bytes(chunk)
            return
        try:
            sock.send(chunk)  # small chunks: the socket buffer takes them whole
        except OSError:  # the relay closed this connection on an earlier chunk
            return
        harness.spin()

    @STREAM
    @given(chunks=stream_chunks)
    def run(chunks: list[bytes]) -> None:
        counter[0] += 1
        conn, sock = connection()
        for chunk in chunks:
            state["sent"] = state.get("sent", 0) + len(chunk)
            feed(conn, sock, chunk)
        harness.spin()
        state["received"] = state.get("received", 0) + sum(len(b) for b in _drain(sock))
        # Frames may span examples on one connection, so compare the connection's totals.
        assert state["received"] <= 5 * max(state["sent"], 1)
        assert harness.no_state()

    try:
        run()
        # Garbage closed some connections; none of them leaked into the server's set (at most the open one).
        harness.spin_until(lambda: len(harness.server.connections) <= 1, "closed connections to leave the set")
        assert sum(v for k, v in harness.stats.snapshot().items() if k.endswith("server_error")) == 0
        assert any(isinstance(c, CompiledStream) for c in state["seen"]) == (packet_path == "compiled")
    finally:
        if state.get("sock"):
            state["sock"].close()
        harness.close()
    record_property("fuzz:tcp_entry", counter[0])
    assert counter[0] >= STREAM.max_examples


def test_relay_serves_after_hostile_traffic() -> None:
    with RunningRelay(loopback_config()) as relay, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(2000):
            sock.sendto(bytes([i % 256]) * (i % 300), relay.address("udp"))
        with relay.client() as client:
            relayed = client.relayed(client.allocate())
            assert relayed[0] == "127.0.0.1" and TEST_PORT_RANGE[0] <= relayed[1] <= TEST_PORT_RANGE[1]
