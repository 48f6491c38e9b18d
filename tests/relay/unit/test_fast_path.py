"""The fast packet path's building blocks: the Send-indication parser against the reference one, the
recvmmsg receiver against what the sockets really carried, the listener's client index and the epoll
data plane."""

from __future__ import annotations

import asyncio
import binascii
import socket
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_fuzz_strategies import attribute_sections, tlv

from relay.ops.metrics import RelayStats
from relay.server.dataplane import EpollDataPlane, LoopReaders, data_plane
from relay.server.fastwire import MAX_CACHED_PEERS, parse_send
from relay.server.mmsg import BatchReceiver, address_key
from relay.server.udp import ClientIndex
from relay.stun import Attr
from relay.stun.attributes import encode_xor_address
from relay.stun.constants import FINGERPRINT_XOR, MAGIC_COOKIE_BYTES
from relay.turn.wire import parse_send_indication

PEERS = st.sampled_from(["52.1.2.3", "127.0.0.1", "::ffff:10.0.0.1", "2600::1", "0.0.0.0", "52.1.2.4"])


@st.composite
def send_indications(draw) -> bytes:
    """Send indications as clients build them (XOR-PEER-ADDRESS, DATA, DONT-FRAGMENT, FINGERPRINT in
    any order, duplicates), with random attribute sections mixed in and a right or lying header."""
    tid = draw(st.binary(min_size=12, max_size=12))
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            peer = (draw(PEERS), draw(st.integers(0, 65535)))
            parts.append(tlv(Attr.XOR_PEER_ADDRESS, encode_xor_address(peer, tid)))
        elif kind == 1:
            parts.append(tlv(Attr.DATA, draw(st.binary(max_size=40))))
        elif kind == 2:
            parts.append(tlv(Attr.DONT_FRAGMENT, b""))
        else:
            parts.append(draw(attribute_sections()))
    body = b"".join(parts)
    message_type = draw(st.sampled_from([b"\x00\x16", b"\x00\x16", b"\x00\x16", b"\x01\x16", b"\x00\x17"]))
    cookie = MAGIC_COOKIE_BYTES if draw(st.integers(0, 9)) else b"\x21\x12\xa4\x43"
    fingerprint = draw(st.integers(0, 2))  # none, right, wrong
    length = len(body) + (8 if fingerprint else 0)
    if draw(st.integers(0, 9)) == 0:
        length = draw(st.integers(0, 0xFFFF))
    wire = message_type + length.to_bytes(2, "big") + cookie + tid + body
    if fingerprint:
        crc = (binascii.crc32(wire) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
        wire += b"\x80\x28\x00\x04" + (crc ^ (fingerprint == 2)).to_bytes(4, "big")
    if draw(st.integers(0, 9)) == 0:
        wire = wire[: draw(st.integers(0, len(wire)))]
    return wire


_CACHE: dict = {}  # shared across examples on purpose: a cached address must never change an answer


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(wire=send_indications(), padding=st.binary(max_size=8))
def test_parse_send_agrees_with_the_reference_parser(wire: bytes, padding: bytes) -> None:
    expected = parse_send_indication(wire)
    slot = memoryview(wire + padding)  # a receive slot holds more bytes than the datagram
    got = parse_send(slot, len(wire), _CACHE)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got[0], got[1], bytes(got[2]), got[3]) == (expected[0], expected[1], bytes(expected[2]), expected[3])
    assert len(_CACHE) <= MAX_CACHED_PEERS


def _udp(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def test_batch_receiver_reports_what_the_sockets_sent() -> None:
    with _udp() as listener, _udp() as one, _udp() as two:
        listener.setblocking(False)
        receiver = BatchReceiver.create(listener)
        assert receiver is not None
        sent = [(one, b""), (two, b"x" * 1400), (one, bytes(range(256)) * 20)]
        for sock, payload in sent:
            sock.sendto(payload, listener.getsockname())
        count = 0
        for _ in range(100):  # loopback delivery is synchronous, but stay robust
            count = receiver.receive()
            if count:
                break
        assert count == len(sent)
        for i, (sock, payload) in enumerate(sent):
            size = receiver.words[receiver.length_index[i]]
            assert bytes(receiver.slots[i][:size]) == payload
            assert receiver.keys[2 * i] == address_key(sock.getsockname())
            assert receiver.address(i) == sock.getsockname()
        assert receiver.receive() == 0  # nothing left: no exception, just zero
        receiver.close()


def test_batch_receiver_is_only_for_ipv4_datagram_sockets() -> None:
    with _udp("::1") as v6, socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        assert BatchReceiver.create(v6) is None
        assert BatchReceiver.create(tcp) is None


def test_client_index_mirrors_ipv4_clients_by_raw_key() -> None:
    index = ClientIndex()
    first, second, v6 = (SimpleNamespace(seq=n) for n in (1, 2, 3))
    index[("198.51.100.7", 4000)] = first
    index[("198.51.100.7", 4001)] = second
    index[("2001:db8::1", 4000, 0, 0)] = v6
    assert index.raw == {address_key(("198.51.100.7", 4000)): first, address_key(("198.51.100.7", 4001)): second}
    index.peers[first.seq] = {b"raw": ("52.1.2.3", 1)}  # what the Send-indication reader caches
    assert index.pop(("198.51.100.7", 4000)) is first and index.pop(("198.51.100.7", 4000), None) is None
    del index[("198.51.100.7", 4001)]
    assert index.raw == {} and index.peers == {} and list(index) == [("2001:db8::1", 4000, 0, 0)]
    index[("198.51.100.8", 1)] = first
    index.clear()
    assert index.raw == {} and not index


@pytest.mark.parametrize("epoll", [True, False])
def test_data_plane_serves_one_datagram_per_event_and_counts_relayed_bytes(epoll: bool) -> None:
    loop = asyncio.new_event_loop()
    stats = RelayStats()
    plane = data_plane(loop, stats, epoll=epoll)
    assert isinstance(plane, EpollDataPlane if epoll else LoopReaders)
    received: list[bytes] = []
    with _udp() as relay_sock, _udp() as sender:
        relay_sock.setblocking(False)

        def handler() -> int:
            data = relay_sock.recv(2048)
            received.append(data)
            if data == b"bug":
                raise RuntimeError("simulated bug")
            return len(data) if data != b"not relayed" else -1

        plane.add(relay_sock.fileno(), handler)
        for payload in (b"abc", b"bug", b"not relayed", b"defgh"):
            sender.sendto(payload, relay_sock.getsockname())
        loop.run_until_complete(asyncio.sleep(0.05))
        assert received == [b"abc", b"bug", b"not relayed", b"defgh"]
        assert (stats.packets_peer_to_client, stats.bytes_peer_to_client) == (2, 8)
        assert len(plane) == 1
        plane.remove(relay_sock.fileno())
        plane.remove(relay_sock.fileno())  # idempotent
        sender.sendto(b"late", relay_sock.getsockname())
        loop.run_until_complete(asyncio.sleep(0.05))
        assert received[-1] == b"defgh" and len(plane) == 0
    plane.close()
    loop.close()


def test_closing_a_socket_leaves_the_epoll_set_clean_for_its_number() -> None:
    """Relay sockets skip epoll_ctl(DEL): closing the descriptor removes it from the set. A new socket
    that gets the same number must be served by its own handler only."""
    loop = asyncio.new_event_loop()
    plane = data_plane(loop, RelayStats())
    seen: list[str] = []
    first = _udp()
    first.setblocking(False)
    number = first.fileno()
    plane.add(number, lambda: seen.append("old") or -1)
    plane.closing(number)
    first.close()
    second = _udp()
    second.setblocking(False)
    assert second.fileno() == number  # the lowest free descriptor comes back
    plane.add(number, lambda: (second.recv(100), seen.append("new"))[1] or -1)
    with _udp() as sender:
        sender.sendto(b"x", second.getsockname())
        loop.run_until_complete(asyncio.sleep(0.05))
    assert seen == ["new"]
    second.close()
    plane.close()
    loop.close()
