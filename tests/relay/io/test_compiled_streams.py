"""TCP clients on the compiled packet path (relay.server.cstream, relay/server/_fastpath_stream.h) over real
sockets: installed ChannelData and Send indications cross without Python in either direction, padded as RFC 8656
section 12.5 asks; what is not installed is handed to Python whole; entries follow permissions, expiry and
Refresh(0); framing errors, oversized frames, PROXY headers and bandwidth limits behave as on the Python path."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from relay_testkit import (
    Peer,
    RunningRelay,
    TurnClient,
    indication,
    loopback_config,
    proxy_v2_header,
    request,
    rest_credentials,
    wait_until,
)

from relay.config import Listener
from relay.server import stream
from relay.server.cstream import CompiledStream
from relay.stun import Attr, MessageClass, Method, encode

fastpath = pytest.importorskip("relay.server._fastpath", reason="tests/relay/conftest.py builds it in place")


def _entries(relay: RunningRelay) -> int:
    return int(relay.call(lambda: relay.server.plane.engine.sizes()[1]))


def _stats(relay: RunningRelay, *names: str) -> tuple[int, ...]:
    snapshot = relay.call(relay.stats.snapshot)
    return tuple(snapshot[name] for name in names)


class PythonCalls:
    """Counts the frames a compiled stream hands to Python and the datagrams its relay socket hands back."""

    def __init__(self, relay: RunningRelay, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames: list[bytes] = []
        self.datagrams = 0
        frame = CompiledStream._frame

        def counting(connection: CompiledStream, data: bytes) -> None:
            self.frames.append(data)
            frame(connection, data)

        monkeypatch.setattr(CompiledStream, "_frame", counting)
        (allocation,) = relay.call(lambda: list(relay.server.core.table))
        endpoint = allocation.relays[1]
        deliver = endpoint._deliver

        def delivered(*args: Any) -> Any:
            self.datagrams += 1
            return deliver(*args)

        relay.call(lambda: setattr(endpoint, "_deliver", delivered))


@pytest.fixture()
def session() -> Iterator[tuple[RunningRelay, TurnClient, Peer, Peer, Any]]:
    """A compiled relay, a TCP client with a permission for one peer and a channel to another."""
    relay, by_indication, by_channel = RunningRelay(loopback_config(), packet_path="compiled"), Peer(), Peer()
    with relay, relay.client("tcp") as client, by_indication, by_channel:
        assert relay.call(lambda: [type(c) for c in relay.server.connections]) == [CompiledStream]
        relayed = client.relayed(client.allocate())
        assert client.create_permission(by_indication.address).message_class == MessageClass.SUCCESS
        assert _entries(relay) == 2
        assert client.channel_bind(0x4001, by_channel.address).message_class == MessageClass.SUCCESS
        assert _entries(relay) == 4
        yield relay, client, by_indication, by_channel, relayed


def test_installed_tcp_traffic_never_runs_python(
    session: tuple[RunningRelay, TurnClient, Peer, Peer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, client, by_indication, by_channel, relayed = session
    calls = PythonCalls(relay, monkeypatch)
    names = ("packets_client_to_peer", "bytes_client_to_peer", "packets_peer_to_client", "bytes_peer_to_client")
    before = _stats(relay, *names)
    payloads = [b"", b"x", b"ab", b"abc", b"a" * 120, b"b" * 1000]
    for payload in payloads:
        client.channel_data(0x4001, payload)
        assert by_channel.recv() == (payload, relayed)
        client.send_indication(by_indication.address, payload)
        assert by_indication.recv() == (payload, relayed)
        by_channel.send(payload, relayed)
        assert client.receive_data() == (None, 0x4001, payload)
        by_indication.send(payload, relayed)
        assert client.receive_data() == (by_indication.address, None, payload)
    assert (calls.frames, calls.datagrams) == ([], 0)
    total = sum(map(len, payloads))
    after = _stats(relay, *names)
    assert [a - b for a, b in zip(after, before, strict=True)] == [2 * len(payloads), 2 * total] * 2


def test_channel_data_to_a_tcp_client_is_padded_to_four_bytes(
    session: tuple[RunningRelay, TurnClient, Peer, Peer, Any],
) -> None:
    _, client, _, by_channel, relayed = session
    payloads = (b"a", b"ab", b"abc", b"abcd", b"abcde")
    for payload in payloads:
        by_channel.send(payload, relayed)
    expected = b"".join(b"\x40\x01" + len(p).to_bytes(2, "big") + p + b"\x00" * (-len(p) % 4) for p in payloads)
    assert client._buffer == b""
    wire = b""
    while len(wire) < len(expected):  # the bytes as they arrive, not TurnClient's framing (it drops padding)
        wire += client.sock.recv(65536)
    assert wire == expected


def test_what_is_not_installed_is_handed_to_python_whole(
    session: tuple[RunningRelay, TurnClient, Peer, Peer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, client, by_indication, _, relayed = session
    calls = PythonCalls(relay, monkeypatch)
    client.channel_data(0x4002, b"unknown channel")  # handed to Python, dropped there
    dont_fragment = indication(
        Method.SEND, (Attr.XOR_PEER_ADDRESS, by_indication.address), (Attr.DATA, b"df"), (Attr.DONT_FRAGMENT, True)
    )
    client.send_raw(encode(dont_fragment))  # Python decides about DF: it sets it and relays
    assert by_indication.recv() == (b"df", relayed)
    client.handled()
    assert [frame[:2] for frame in calls.frames] == [b"\x40\x02", b"\x00\x16", b"\x00\x01"]
    assert calls.frames[0] == b"\x40\x02\x00\x0funknown channel\x00"  # whole, padding included
    with Peer("127.0.0.2") as stranger:  # no permission: handed back and dropped by Python
        stranger.send(b"no", relayed)
        wait_until(lambda: calls.datagrams == 1, "the stranger's datagram handed back")
    client.handled()
    assert client.pending == []


def test_refresh_zero_and_expiry_remove_a_tcp_clients_entries(
    session: tuple[RunningRelay, TurnClient, Peer, Peer, Any],
) -> None:
    relay, client, by_indication, by_channel, relayed = session
    relay.call(lambda: relay.server.core.tick(time.monotonic() + 301))  # the permissions expire (300 s)
    assert _entries(relay) == 0 and relay.allocations == 1
    client.channel_data(0x4001, b"after expiry")
    client.send_indication(by_indication.address, b"after expiry")
    by_channel.send(b"after expiry", relayed)
    client.handled()
    assert by_channel.nothing_received(0.2) and by_indication.nothing_received(0.1)
    assert client.pending == []
    assert client.create_permission(by_channel.address).message_class == MessageClass.SUCCESS
    assert _entries(relay) == 4  # the permission, and the channel (bound for 600 s) whose host it covers again
    assert client.refresh(0).message_class == MessageClass.SUCCESS
    assert _entries(relay) == 0 and relay.allocations == 0


def test_closing_the_connection_forgets_its_entries_and_allocation(
    session: tuple[RunningRelay, TurnClient, Peer, Peer, Any],
) -> None:
    relay, client, *_ = session
    client.close()
    wait_until(lambda: relay.allocations == 0, "the allocation of the closed connection to go")
    assert _entries(relay) == 0
    assert relay.call(lambda: (len(relay.server.connections), relay.stats.connections_tcp)) == (0, 0)
    assert relay.call(lambda: relay.server.plane.engine.sizes()[0]) == 1  # the UDP listener alone


@pytest.mark.parametrize(
    ("garbage", "counter"),
    [
        (b"\x80\x00\x00\x00", "malformed_tcp"),  # neither STUN nor ChannelData
        (b"\x00\x01" + (stream.PREAUTH_MAX_FRAME).to_bytes(2, "big"), "stream_closes_frame_too_large"),
        (b"\x40\x01" + (stream.PREAUTH_MAX_FRAME).to_bytes(2, "big"), "stream_closes_frame_too_large"),
    ],
    ids=["garbage", "long-stun", "long-channel-data"],
)
def test_framing_errors_close_the_connection(garbage: bytes, counter: str) -> None:
    with RunningRelay(loopback_config(), packet_path="compiled") as relay, relay.client("tcp") as client:
        client.handled()
        client.send_raw(garbage)
        with pytest.raises((ConnectionError, OSError)):
            client.recv_frame(2.0)
        wait_until(lambda: relay.call(lambda: len(relay.server.connections)) == 0, "the connection closed")
        assert _stats(relay, counter, "connections_tcp") == (1, 0)


def test_a_long_frame_is_accepted_once_the_connection_holds_an_allocation() -> None:
    relay = RunningRelay(loopback_config(), packet_path="compiled")
    with relay, relay.client("tcp") as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        assert client.channel_bind(0x4001, peer.address).message_class == MessageClass.SUCCESS
        payload = bytes(range(256)) * 16  # 4 KiB: above PREAUTH_MAX_FRAME
        client.channel_data(0x4001, payload)
        assert peer.recv() == (payload, relayed)


def test_a_proxy_header_gives_the_client_address_and_what_follows_it_is_served() -> None:
    listeners = (Listener("udp", "127.0.0.1", 0), Listener("tcp", "127.0.0.1", 0, proxy_protocol=True))
    config = loopback_config(listeners=listeners)
    with RunningRelay(config, packet_path="compiled") as relay, Peer() as peer:
        address = relay.address("tcp")
        source = ("127.0.0.1", 4242)  # what a load balancer would say the client is
        binding = encode(indication(Method.BINDING), fingerprint=True)  # the header and a frame in one segment
        with socket.create_connection(address) as raw:
            raw.sendall(proxy_v2_header(source, address) + binding)
            clients = lambda: relay.call(lambda: [c.client for c in relay.server.connections])  # noqa: E731
            wait_until(lambda: clients() == [source], "the client from the header")
        wait_until(lambda: relay.call(lambda: len(relay.server.connections)) == 0, "the connection closed")
        header = proxy_v2_header(source, address)
        with TurnClient(address, *rest_credentials(), transport="tcp", proxy_header=header) as client:
            relayed = client.relayed(client.allocate())
            assert client.channel_bind(0x4001, peer.address).message_class == MessageClass.SUCCESS
            assert _entries(relay) == 4  # channel and permission both ways, keyed by the header's client address
            client.channel_data(0x4001, b"through the balancer")
            assert peer.recv() == (b"through the balancer", relayed)
        with socket.create_connection(address) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no header
            assert raw.recv(10) == b""
        wait_until(lambda: _stats(relay, "stream_closes_proxy_header") == (1,), "the refused header counted")


def test_garbage_in_the_segment_of_the_proxy_header_ends_the_connection_at_the_hand_over() -> None:
    """The bytes after the header are the Engine's first input (add_stream's `initial`): garbage there ends the
    connection inside the hand-over itself, which must neither crash nor leave the connection counted."""
    listeners = (Listener("udp", "127.0.0.1", 0), Listener("tcp", "127.0.0.1", 0, proxy_protocol=True))
    with RunningRelay(loopback_config(listeners=listeners), packet_path="compiled") as relay:
        address = relay.address("tcp")
        with socket.create_connection(address) as raw:
            raw.sendall(proxy_v2_header(("127.0.0.1", 4242), address) + b"\x80\x00\x00\x00")
            assert raw.recv(10) == b""
        wait_until(lambda: relay.call(lambda: len(relay.server.connections)) == 0, "the connection closed")
        assert _stats(relay, "malformed_tcp", "connections_tcp") == (1, 0)
        assert relay.call(lambda: relay.server.plane.engine.sizes()[0]) == 1  # the UDP listener alone


def test_a_bandwidth_limited_tcp_allocation_stays_on_python_and_is_policed() -> None:
    config = loopback_config(max_bps=8000)
    with RunningRelay(config, packet_path="compiled") as relay, relay.client("tcp") as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        assert client.channel_bind(0x4001, peer.address).message_class == MessageClass.SUCCESS
        assert _entries(relay) == 0  # the token buckets are Python's
        for _ in range(40):
            client.channel_data(0x4001, b"z" * 1000)
        client.handled()
        received = 0
        while not peer.nothing_received(0.1):
            received += 1
        assert 0 < received < 40
        peer.send(b"back", relayed)
        assert client.receive_data() == (None, 0x4001, b"back")


def test_relayed_data_is_dropped_while_a_client_does_not_read_and_answers_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "WRITE_STALL_TIMEOUT", 60.0)
    with RunningRelay(loopback_config(), packet_path="compiled") as relay, Peer() as peer:
        client = relay.client("tcp", receive_buffer=4096)
        relayed = client.relayed(client.allocate())
        assert client.channel_bind(0x4001, peer.address).message_class == MessageClass.SUCCESS
        connection = relay.call(lambda: next(iter(relay.server.connections)))
        paused: Callable[[], bool] = lambda: relay.call(lambda: connection.paused)  # noqa: E731
        deadline = time.monotonic() + 10
        while not paused() and time.monotonic() < deadline:
            for _ in range(50):
                peer.send(b"p" * 1200, relayed)
        assert paused(), "the client's output never reached the high-water mark"
        held = relay.call(lambda: connection.buffered)
        for _ in range(200):
            peer.send(b"p" * 1200, relayed)
        time.sleep(0.2)
        assert relay.call(lambda: connection.buffered) == held  # dropped, not queued
        client.sock.settimeout(5)
        drained = 0
        client.sock.setblocking(True)
        while not relay.call(lambda: not connection.paused):
            drained += len(client.sock.recv(65536))
        assert drained > 0
        client.close()


SIZE = 333  # the relayed datagrams' size: odd, so every ChannelData frame carries padding


def _small_window(relay: RunningRelay, peer: Peer) -> tuple[TurnClient, Any]:
    """A TCP client with a 4 KiB receive window and a channel (0x4001) to `peer`, the relay's send buffer
    for it shrunk to 4 KiB (a round's writev will not fit). Returns the client and its relayed address."""
    client = relay.client("tcp", receive_buffer=4096)
    relayed = client.relayed(client.allocate())
    assert client.channel_bind(0x4001, peer.address).message_class == MessageClass.SUCCESS
    connection = relay.call(lambda: next(iter(relay.server.connections)))
    with socket.socket(fileno=os.dup(connection.fd)) as server_side:  # the relay's end of the connection
        server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return client, relayed


def _send_numbered(peer: Peer, relayed: Any, count: int) -> None:
    for number in range(count):
        peer.send(number.to_bytes(4, "big") + bytes([number % 251]) * (SIZE - 4), relayed)


def _numbers(frames: list[bytes]) -> list[int]:
    """The numbers of `_send_numbered`'s datagrams in the order they arrived, each frame checked whole."""
    numbers = []
    for frame in frames:
        assert frame[:4] == b"\x40\x01" + SIZE.to_bytes(2, "big"), frame[:8]
        number = int.from_bytes(frame[4:8], "big")
        assert frame[8:] == bytes([number % 251]) * (SIZE - 4)
        numbers.append(number)
    return numbers


def test_partial_writes_keep_every_frame_whole_and_in_order() -> None:
    """A client with a small receive window: the socket takes part of a round's writev, the rest is queued and
    written later, before anything newer; every frame arrives whole (the framing never desynchronises), in
    order, and what is dropped is dropped whole while the client is not reading."""
    with RunningRelay(loopback_config(), packet_path="compiled") as relay, Peer() as peer:
        client, relayed = _small_window(relay, peer)
        _send_numbered(peer, relayed, 3000)
        client.handled()  # the answer queues behind everything relayed before it
        numbers = _numbers(client.pending)
        assert numbers == sorted(set(numbers)) and len(numbers) > 100, numbers[:10]
        client.close()


@pytest.fixture()
def failing_growth() -> Iterator[Callable[[int], None]]:
    """Make the n-th next stream buffer growth fail as if memory ran out; always reset afterwards."""
    try:
        yield fastpath._fail_growth
    finally:
        fastpath._fail_growth(-1)


def _read_until_closed(client: TurnClient) -> list[bytes]:
    frames = []
    while True:
        try:
            frames.append(client.recv_frame(timeout=5))
        except ConnectionError:  # the relay's FIN (a frame cut short by it is discarded)
            return frames


def test_relayed_output_that_cannot_be_queued_ends_the_connection_without_a_gap(
    failing_growth: Callable[[int], None],
) -> None:
    """Out of memory for the rest of a partly written round: a client must never receive a stream with a gap
    in it, so the connection is shut down (after what was written) and counted, and its allocation ends."""
    with RunningRelay(loopback_config(), packet_path="compiled") as relay, Peer() as peer:
        client, relayed = _small_window(relay, peer)
        failing_growth(0)  # the first remainder to queue cannot be
        count = 2000
        _send_numbered(peer, relayed, count)
        numbers = _numbers(_read_until_closed(client))
        assert numbers == list(range(len(numbers))) and 0 < len(numbers) < count, numbers[:5]
        wait_until(lambda: _stats(relay, "stream_closes_out_of_memory") == (1,), "the close counted")
        wait_until(lambda: relay.allocations == 0, "the allocation of the closed connection to go")
        assert _entries(relay) == 0
        client.close()


def test_an_answer_that_cannot_be_queued_ends_the_connection(failing_growth: Callable[[int], None]) -> None:
    with RunningRelay(loopback_config(), packet_path="compiled") as relay:
        client = relay.client("tcp")
        client.handled()  # an answer queues and is written
        failing_growth(0)
        client.send_raw(encode(request(Method.BINDING)))
        assert _read_until_closed(client) == []
        wait_until(lambda: _stats(relay, "stream_closes_out_of_memory") == (1,), "the close counted")
        wait_until(lambda: relay.call(lambda: len(relay.server.connections)) == 0, "the connection closed")
        client.close()
