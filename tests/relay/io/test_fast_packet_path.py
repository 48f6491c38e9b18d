"""The packet path over real sockets, compiled (relay.server._fastpath: the C loop), fast (epoll data plane,
recvmmsg, in-place headers) and portable (loop readers, recvfrom_into, Forwarder) side by side: same bytes
out, same counters."""

from __future__ import annotations

import ipaddress
import time

import pytest
from relay_testkit import Peer, RunningRelay, indication, loopback_config, request

from relay.config import RelayConfig
from relay.stun import Attr, MessageClass, Method, decode, encode
from relay.stun.constants import FAMILY_IPV6

SIZES = [0, 1, 2, 3, 4, 5, 120, 1000, 1472]
# (fast, packet_path): the compiled C loop, the pure-Python fast path, the portable path
PATHS = {"compiled": (True, "compiled"), "python": (True, "python"), "portable": (False, "python")}


def _config(**overrides: object) -> RelayConfig:
    allowed = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    return loopback_config(allowed_peers=allowed, **overrides)


def _counters(relay: RunningRelay) -> tuple[int, int, int, int]:
    snapshot = relay.call(relay.stats.snapshot)
    return (
        snapshot["packets_client_to_peer"],
        snapshot["bytes_client_to_peer"],
        snapshot["packets_peer_to_client"],
        snapshot["bytes_peer_to_client"],
    )


def _exchange(relay: RunningRelay, transport: str = "udp", sizes: list[int] = SIZES) -> list[object]:
    """One client, two peers: Send/Data indications with one, a channel with the other, every payload
    size (padding), FINGERPRINT and DONT-FRAGMENT variants, and a peer without a permission. Returns
    what arrived where (payloads, channels, "from the expected peer") and the relay's counters."""
    seen: list[object] = []
    with (
        relay.client(transport) as client,
        Peer() as by_indication,
        Peer() as by_channel,
        Peer("127.0.0.2") as stranger,
    ):
        relayed = client.relayed(client.allocate())
        assert client.create_permission(by_indication.address).message_class == MessageClass.SUCCESS
        assert client.channel_bind(0x4001, by_channel.address).message_class == MessageClass.SUCCESS

        def at(peer: Peer) -> bytes:
            data, source = peer.recv()
            assert source == relayed
            return data

        def to_client(peer: Peer) -> tuple[object, ...]:
            source, channel, data = client.receive_data()
            return (source == peer.address if source else None), channel, data

        for size in sizes:
            payload = (bytes(range(256)) * (1 + size // 256))[:size]
            client.send_indication(by_indication.address, payload)
            seen.append(at(by_indication))
            extras = ((Attr.DONT_FRAGMENT, True),) if size % 2 else ()
            message = indication(
                Method.SEND, (Attr.XOR_PEER_ADDRESS, by_indication.address), (Attr.DATA, payload), *extras
            )
            client.send_raw(encode(message, fingerprint=True))
            seen.append(at(by_indication))
            client.channel_data(0x4001, payload)
            seen.append(at(by_channel))
            by_indication.send(payload, relayed)
            seen.append(to_client(by_indication))
            by_channel.send(payload, relayed)
            seen.append(to_client(by_channel))
        stranger.send(b"no permission", relayed)
        client.send_indication(stranger.address, b"no permission either")
        assert stranger.nothing_received(0.2)
        by_indication.send(b"last", relayed)
        assert client.receive_data()[2] == b"last"  # the stranger's datagram was dropped, not queued
        seen.append(_counters(relay))
    return seen


def _relay(path: str, config: RelayConfig | None = None, **kwargs: object) -> RunningRelay:
    fast, packet_path = PATHS[path]
    return RunningRelay(config or _config(), fast=fast, packet_path=packet_path, **kwargs)  # type: ignore[arg-type]


def test_compiled_fast_and_portable_paths_relay_the_same_bytes() -> None:
    results = []
    for path in PATHS:
        with _relay(path) as relay:
            listener = relay.server.udp[0]
            assert (listener.compiled, listener.receiver is not None) == {
                "compiled": (True, False),
                "python": (False, True),
                "portable": (False, False),
            }[path]
            results.append(_exchange(relay))
    compiled_result, fast_result, portable_result = results
    assert compiled_result == fast_result == portable_result
    assert (None, 0x4001, b"") in fast_result and (True, None, b"\x00") in fast_result
    packets_up, bytes_up, packets_down, bytes_down = fast_result[-1]  # type: ignore[misc]
    assert packets_up == 3 * len(SIZES) and packets_down == 2 * len(SIZES) + 1
    assert bytes_up == 3 * sum(SIZES) and bytes_down == 2 * sum(SIZES) + 4


def test_datagrams_longer_than_the_compiled_paths_dense_slots_arrive_whole() -> None:
    """The C loop receives into 1,536-byte slots and only a longer datagram's tail into a 64 KiB one, joined
    before use: sizes around that edge and far past it, both directions, channels and indications."""
    sizes = [1531, 1532, 1533, 1536, 1537, 1540, 4000, 9000, 60000]
    with _relay("compiled") as relay:
        compiled_result = _exchange(relay, sizes=sizes)
    with _relay("portable") as relay:
        assert compiled_result == _exchange(relay, sizes=sizes)
    assert (True, None, (bytes(range(256)) * 235)[:60000]) in compiled_result


def test_a_tcp_clients_packets_are_the_same_on_every_path_and_as_over_udp() -> None:
    """A TCP client's relay socket is read by the in-place handler on the fast paths (Forwarder on the
    portable one); what arrives, and the counters, are what a UDP client gets."""
    results = []
    for path in PATHS:
        with _relay(path) as relay:
            results.append(_exchange(relay, "tcp"))
    with _relay("python") as relay:
        over_udp = _exchange(relay)
    assert results[0] == results[1] == results[2] == over_udp


@pytest.mark.parametrize("path", list(PATHS))
def test_channel_data_to_a_tcp_client_is_padded_on_the_wire(path: str) -> None:
    """RFC 8656 section 12.5: over TCP, ChannelData is padded to a multiple of 4 bytes. Checked on the raw
    stream (the test client's framing would skip padding whatever it was)."""
    with _relay(path) as relay, relay.client("tcp") as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        client.channel_bind(0x4003, peer.address)
        if path != "portable":
            endpoint = relay.call(lambda: next(iter(relay.server.core.table)).relays[1])
            assert endpoint._client_sendto is not None  # the in-place handler serves this client
        expected = b""
        for size in (0, 1, 2, 3, 4, 5, 6, 7, 121):
            payload = bytes(range(7, 7 + size))
            peer.send(payload, relayed)
            expected += b"\x40\x03" + size.to_bytes(2, "big") + payload + b"\x00" * (-size % 4)
        received = client._buffer
        client.sock.settimeout(2)
        while len(received) < len(expected):
            chunk = client.sock.recv(65535)
            assert chunk, "the relay closed the connection"
            received += chunk
        assert received == expected


@pytest.mark.parametrize("path", ["compiled", "python"])
def test_data_indication_layout_from_the_in_place_path(path: str) -> None:
    """The fast paths write the Data indication around the received payload: check the real bytes."""
    with _relay(path) as relay, relay.client() as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        client.create_permission(peer.address)
        for size in (0, 1, 2, 3, 5):
            peer.send(b"z" * size, relayed)
            frame = client.recv_frame()
            message = decode(frame)
            assert (message.method, message.message_class) == (Method.DATA, MessageClass.INDICATION)
            assert message.get(Attr.XOR_PEER_ADDRESS) == peer.address
            assert message.get(Attr.DATA) == b"z" * size
            padding = -size % 4
            assert len(frame) % 4 == 0 and frame[len(frame) - padding :] == b"\x00" * padding


@pytest.mark.parametrize("path", ["compiled", "python"])
def test_ipv6_relay_of_an_ipv4_client_takes_the_general_path(path: str) -> None:
    with _relay(path) as relay, relay.client() as client, Peer("::1") as peer6:
        response = client.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, FAMILY_IPV6))
        relayed = client.relayed(response)
        client.channel_bind(0x4002, peer6.address)
        peer6.send(b"from v6", relayed)
        assert client.receive_data() == (None, 0x4002, b"from v6")
        client.channel_data(0x4002, b"to v6")
        assert peer6.recv()[0] == b"to v6"


def _pause(relay: RunningRelay) -> None:
    """Stop reading the listener so that datagrams queue up (the next read takes them in one batch)."""
    listener = relay.server.udp[0]
    relay.call(lambda: relay.server.plane.remove(listener.sock.fileno()))


def _resume(relay: RunningRelay) -> None:
    listener = relay.server.udp[0]
    plane = relay.server.plane
    if listener.compiled:
        relay.call(lambda: plane.add_listener(listener.sock.fileno(), listener._handed_back))
    else:
        relay.call(lambda: plane.add(listener.sock.fileno(), listener._on_readable_batched))


@pytest.mark.parametrize("path", ["compiled", "python"])
def test_one_batch_mixing_channel_data_requests_and_indications(path: str) -> None:
    """Datagrams that arrive together are read by one recvmmsg: each kind must still be handled."""
    with _relay(path) as relay, relay.client() as client, Peer() as peer:
        client.allocate()
        client.channel_bind(0x4003, peer.address)
        _pause(relay)
        client.channel_data(0x4003, b"one")
        client.send_raw(encode(request(Method.BINDING, tid=b"b" * 12)))
        client.send_indication(peer.address, b"two")
        client.send_raw(b"\xff\xff\xff\xff")  # garbage: counted as malformed
        client.channel_data(0x4003, b"three")
        time.sleep(0.05)
        _resume(relay)
        assert [peer.recv()[0] for _ in range(3)] == [b"one", b"two", b"three"]
        response = decode(client.recv_frame())
        assert response.transaction_id == b"b" * 12 and response.message_class == MessageClass.SUCCESS
        assert relay.call(lambda: relay.stats.malformed_udp) == 1


@pytest.mark.parametrize("path", list(PATHS))
def test_bandwidth_limit_applies_on_every_path(path: str) -> None:
    """max-bps keeps an allocation on the Python path even where the compiled one runs."""
    with _relay(path, _config(max_bps=2000)) as relay, relay.client() as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        client.channel_bind(0x4004, peer.address)
        if path == "compiled":
            assert relay.call(lambda: relay.server.plane.engine.sizes()[1]) == 0  # nothing installed
        for _ in range(5):
            client.channel_data(0x4004, b"u" * 900)
        up = 0
        while not peer.nothing_received(0.2):
            up += 1
        for _ in range(5):
            peer.send(b"d" * 900, relayed)
        down = 0
        while True:
            try:
                client.receive_data(timeout=0.2)
            except TimeoutError:
                break
            down += 1
        assert up == down == 2  # a 2000-byte burst holds two 900-byte datagrams per direction
        assert relay.call(lambda: relay.stats.quota_rejections_bandwidth) == 6


@pytest.mark.slow
@pytest.mark.parametrize("path", ["compiled", "python"])
def test_fuzz_batched_reader_with_a_live_allocation(record_property, path: str) -> None:
    """Arbitrary datagrams from a client that holds an allocation with a channel and a permission
    (so the inline ChannelData and Send-indication code is reached), in batches: nothing escapes,
    nothing is relayed that should not be, and the relay keeps serving."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from relay_fuzz_strategies import anything, channel_data_like

    counter = [0]
    with _relay(path) as relay, relay.client() as client, Peer() as peer:
        client.allocate()
        client.channel_bind(0x4005, peer.address)
        listener = relay.server.udp[0]
        peer.sock.setblocking(False)

        @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(batch=st.lists(st.one_of(anything, channel_data_like()), min_size=1, max_size=8))
        def run(batch: list[bytes]) -> None:
            counter[0] += 1
            _pause(relay)
            for datagram in batch:
                client.send_raw(datagram)
            if not listener.compiled:
                relay.call(listener._on_readable_batched)  # all of them, in one recvmmsg
            _resume(relay)  # the compiled loop takes them in one recvmmsg as soon as it is back in the set
            # Two round trips through the relay's loop, not a sleep: the listener was readable when it went back
            # into the set, so the loop has served it by the time a callback scheduled after a first one runs.
            relay.call(lambda: None)
            relay.call(lambda: None)
            channel = [d for d in batch if d[:2] == b"\x40\x05" and int.from_bytes(d[2:4], "big") <= len(d) - 4]
            relayed = []
            while True:
                try:
                    relayed.append(peer.sock.recv(70000))
                except BlockingIOError:
                    break
            assert relayed == [d[4 : 4 + int.from_bytes(d[2:4], "big")] for d in channel]

        run()
        errors = relay.call(lambda: relay.stats.snapshot())
        assert sum(v for k, v in errors.items() if k.endswith("server_error")) == 0
        client.channel_data(0x4005, b"still relaying")
        peer.sock.setblocking(True)
        assert peer.recv()[0] == b"still relaying"
    record_property(f"fuzz:udp_batched_{path}", counter[0])


def test_tcp_clients_on_uvloop() -> None:
    """uvloop's TCP transports are not asyncio.Transport instances: the stream path must not care."""
    with RunningRelay(_config(), use_uvloop=True) as relay, relay.client("tcp") as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        client.channel_bind(0x4006, peer.address)
        client.channel_data(0x4006, b"over tcp")
        assert peer.recv() == (b"over tcp", relayed)
        peer.send(b"back over tcp", relayed)
        assert client.receive_data() == (None, 0x4006, b"back over tcp")


def _stream_of_frames(peer: tuple[str, int]) -> tuple[bytes, list[bytes]]:
    """ChannelData of every padding, a Send indication and a Binding request in one TCP byte stream, and
    the payloads the peer must get from it, in order."""
    payloads = [b"a", b"bb", b"ccc", b"dddd", b"", b"e" * 121]
    stream = b""
    for payload in payloads[:3]:
        stream += b"\x40\x01" + len(payload).to_bytes(2, "big") + payload + b"\x00" * (-len(payload) % 4)
    stream += encode(indication(Method.SEND, (Attr.XOR_PEER_ADDRESS, peer), (Attr.DATA, payloads[3])))
    stream += encode(request(Method.BINDING))
    for payload in payloads[4:]:
        stream += b"\x40\x01" + len(payload).to_bytes(2, "big") + payload + b"\x00" * (-len(payload) % 4)
    return stream, payloads


@pytest.mark.parametrize("step", [0, 1, 3, 5, 7, 64])
def test_a_tcp_stream_is_relayed_the_same_however_it_is_chunked(step: int) -> None:
    """Chunks end anywhere: inside a header, a payload or its padding, between frames. ChannelData taken
    straight from a chunk, frames held back for the next one and STUN in between come out in order."""
    with _relay("python") as relay, relay.client("tcp") as client, Peer() as peer:
        client.relayed(client.allocate())
        client.channel_bind(0x4001, peer.address)
        client.create_permission(peer.address)
        connection = relay.call(lambda: next(iter(relay.server.connections)))
        stream, payloads = _stream_of_frames(peer.address)
        chunks = [stream] if step == 0 else [stream[i : i + step] for i in range(0, len(stream), step)]
        for chunk in chunks:
            relay.call(lambda chunk=chunk: connection.on_bytes(chunk))
        assert [peer.recv()[0] for _ in payloads] == payloads
        response = decode(client.recv_frame())
        assert (response.method, response.message_class) == (Method.BINDING, MessageClass.SUCCESS)
        assert relay.call(lambda: len(connection._buffer)) == 0
        assert peer.nothing_received(0.05)
