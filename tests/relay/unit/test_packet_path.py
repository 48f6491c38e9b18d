"""The lean packet path: Send/Data indications and ChannelData, with fake relay sockets."""

from __future__ import annotations

import pytest
from relay_testkit import CLIENT, PEER, REALM, SECRET, CoreHarness, FakeOrigin, indication, request

from relay.config import RelayConfig
from relay.server.forwarding import Forwarder
from relay.stun import Attr, Message, MessageClass, Method, decode, encode
from relay.stun.constants import FAMILY_IPV4, FAMILY_IPV6
from relay.turn.wire import (
    channel_data,
    data_indication,
    data_indication_head,
    parse_send_indication,
    stream_frame_length,
)


def send_indication(peer, data: bytes, *extra, fingerprint: bool = False) -> bytes:
    message = indication(Method.SEND, (Attr.XOR_PEER_ADDRESS, peer), (Attr.DATA, data), *extra)
    return encode(message, fingerprint=fingerprint)


# --- wire helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("peer", [("52.1.2.3", 6000), ("2600:1f18::5", 7), ("0.0.0.0", 1)])
@pytest.mark.parametrize("payload", [b"", b"x", b"hello", b"1234"])
def test_parse_send_indication_agrees_with_the_codec(peer, payload: bytes) -> None:
    for fingerprint in (False, True):
        wire = send_indication(peer, payload, fingerprint=fingerprint)
        host, port, data, df = parse_send_indication(memoryview(wire))
        assert ((host, port), bytes(data), df) == (peer, payload, False)


def test_parse_send_indication_normalises_v4_mapped_and_reads_dont_fragment() -> None:
    wire = send_indication(("::ffff:127.0.0.1", 80), b"x", (Attr.DONT_FRAGMENT, True))
    assert parse_send_indication(wire)[0] == "127.0.0.1"
    assert parse_send_indication(wire)[3] is True


def _with_extra(wire: bytes, extra: bytes) -> bytes:
    return wire[:2] + (len(wire) - 20 + len(extra)).to_bytes(2, "big") + wire[4:] + extra


def test_parse_send_indication_discards_what_the_rfc_says_to_discard() -> None:
    good = send_indication(PEER, b"data")
    assert parse_send_indication(good) is not None
    only_data = encode(indication(Method.SEND, (Attr.DATA, b"x")))
    only_peer = encode(indication(Method.SEND, (Attr.XOR_PEER_ADDRESS, PEER)))
    request_type = encode(Message(Method.SEND, MessageClass.REQUEST, b"x" * 12, [(Attr.DATA, b"")]))
    bad_fp = bytearray(send_indication(PEER, b"data", fingerprint=True))
    bad_fp[-1] ^= 1
    cases = [
        only_data,
        only_peer,
        request_type,
        bytes(bad_fp),
        _with_extra(good, b"\x00\x31\x00\x00"),  # unknown comprehension-required
        # found by atheris: a zero-length XOR-PEER-ADDRESS at the very end must not read past it
        bytes.fromhex("0016 0004 2112a442 f7ffff59 592112a4 18000000 00120000"),
        good[:-1],
        good[:19],
        b"\x00\x16" + good[2:4] + b"\x00\x00\x00\x00" + good[8:],  # no magic cookie
        _with_extra(good, b"\x00\x12\x00\x08\x00\x03\x00\x00\x00\x00\x00\x00"),  # ignored duplicate, fine
    ]
    results = [parse_send_indication(c) for c in cases]
    assert results[:-1] == [None] * (len(cases) - 1)
    assert results[-1] is not None  # a second XOR-PEER-ADDRESS is ignored, not fatal
    assert parse_send_indication(_with_extra(good, b"\xc0\x01\x00\x00")) is not None  # unknown optional


@pytest.mark.parametrize("peer", [("52.1.2.3", 6000), ("2600:1f18::5", 7)])
@pytest.mark.parametrize("payload", [b"", b"abc", b"abcd", bytes(range(256)) * 5])
def test_data_indication_is_a_valid_stun_message(peer, payload: bytes) -> None:
    tid = b"t" * 12
    message = decode(data_indication(data_indication_head(peer, tid), payload))
    assert (message.method, message.message_class, message.transaction_id) == (
        Method.DATA,
        MessageClass.INDICATION,
        tid,
    )
    assert message.get(Attr.XOR_PEER_ADDRESS) == peer and message.get(Attr.DATA) == payload


def test_data_indication_refuses_oversized_payloads() -> None:
    assert data_indication(data_indication_head(PEER, b"t" * 12), b"x" * 65516) is not None
    assert data_indication(data_indication_head(PEER, b"t" * 12), b"x" * 65520) is None


def test_channel_data_framing_and_stream_lengths() -> None:
    assert channel_data(b"\x40\x01", b"abcde", stream=False) == b"\x40\x01\x00\x05abcde"
    framed = channel_data(b"\x40\x01", b"abcde", stream=True)
    assert framed == b"\x40\x01\x00\x05abcde\x00\x00\x00"
    assert stream_frame_length(framed) == 12
    stun = encode(request(Method.BINDING))
    assert stream_frame_length(stun) == 20
    assert stream_frame_length(b"\x00\x01\x00") is None
    assert stream_frame_length(b"xx" + framed, 2) == 12
    with pytest.raises(ValueError, match="neither"):
        stream_frame_length(b"\x80\x00\x00\x00")


# --- forwarding --------------------------------------------------------------------------------


@pytest.fixture
def h() -> CoreHarness:
    harness = CoreHarness()
    harness.allocate()
    return harness


def _grant(h: CoreHarness, *peers) -> None:
    response = h.send(request(Method.CREATE_PERMISSION, *((Attr.XOR_PEER_ADDRESS, p) for p in peers)))
    assert response.message_class == MessageClass.SUCCESS


def test_send_indication_needs_a_permission(h: CoreHarness) -> None:
    forwarder = Forwarder(h.stats)
    allocation = h.allocation()
    endpoint = allocation.relays[FAMILY_IPV4]
    assert not forwarder.client_send_indication(allocation, send_indication(PEER, b"one"))
    _grant(h, PEER)
    assert forwarder.client_send_indication(allocation, memoryview(send_indication(PEER, b"two")))
    assert [(bytes(d), a) for d, a in endpoint.sent] == [(b"two", PEER)]
    assert (h.stats.packets_client_to_peer, h.stats.bytes_client_to_peer) == (1, 3)
    # The permission is per IP: another port on the same host is fine, another host is not.
    assert forwarder.client_send_indication(allocation, send_indication((PEER[0], 9), b"x"))
    assert not forwarder.client_send_indication(allocation, send_indication(("52.1.2.4", 9), b"x"))
    assert not forwarder.client_send_indication(allocation, send_indication((PEER[0], 0), b"x"))


def test_send_indication_to_a_denied_address_is_dropped_even_in_mapped_form(h: CoreHarness) -> None:
    forwarder = Forwarder(h.stats)
    allocation = h.allocation()
    for peer in [("127.0.0.1", 80), ("::ffff:127.0.0.1", 80), ("169.254.169.254", 80), ("::", 80), ("0.0.0.0", 1)]:
        assert not forwarder.client_send_indication(allocation, send_indication(peer, b"x"))
    assert allocation.relays[FAMILY_IPV4].sent == []


def test_send_indication_dont_fragment_sets_df_once(h: CoreHarness) -> None:
    forwarder = Forwarder(h.stats)
    allocation = h.allocation()
    _grant(h, PEER)
    assert forwarder.client_send_indication(allocation, send_indication(PEER, b"x", (Attr.DONT_FRAGMENT, True)))
    assert allocation.dont_fragment and allocation.relays[FAMILY_IPV4].dont_fragment


def test_channel_data_both_ways(h: CoreHarness) -> None:
    forwarder = Forwarder(h.stats)
    allocation = h.allocation()
    endpoint = allocation.relays[FAMILY_IPV4]
    frame = b"\x40\x00\x00\x03abc\x00"  # padding after the payload is allowed and ignored
    assert not forwarder.client_channel_data(allocation, frame)  # not bound yet
    h.send(request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, PEER)))
    assert forwarder.client_channel_data(allocation, memoryview(frame))
    assert [(bytes(d), a) for d, a in endpoint.sent] == [(b"abc", PEER)]
    assert not forwarder.client_channel_data(allocation, b"\x40\x00\x00\x09abc")  # claims more than it has
    assert not forwarder.client_channel_data(allocation, b"\x40\x01\x00\x01a")  # other channel
    # Peer -> client becomes ChannelData because a channel is bound to that peer.
    assert forwarder.peer_datagram(allocation, b"reply", PEER)
    assert h.origin.to_clients[-1] == (CLIENT, b"\x40\x00\x00\x05reply")
    assert (h.stats.packets_peer_to_client, h.stats.bytes_peer_to_client) == (1, 5)


def test_peer_datagrams_need_a_permission_and_become_data_indications(h: CoreHarness) -> None:
    forwarder = Forwarder(h.stats)
    allocation = h.allocation()
    assert not forwarder.peer_datagram(allocation, b"x", PEER)
    _grant(h, PEER)
    other_port = (PEER[0], 7777)
    assert forwarder.peer_datagram(allocation, memoryview(b"hello"), other_port)
    client, packet = h.origin.to_clients[-1]
    message = decode(packet)
    assert client == CLIENT and message.method == Method.DATA
    assert message.get(Attr.XOR_PEER_ADDRESS) == other_port and message.get(Attr.DATA) == b"hello"
    assert not forwarder.peer_datagram(allocation, b"x", ("52.9.9.9", 1))


def test_stream_clients_get_padded_channel_data() -> None:
    h = CoreHarness()
    h.origin = FakeOrigin(transport="tcp", stream=True)
    h.allocate()
    allocation = h.allocation()
    h.send(request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, 0x4123), (Attr.XOR_PEER_ADDRESS, PEER)))
    assert Forwarder(h.stats).peer_datagram(allocation, b"abcde", PEER)
    assert h.origin.to_clients[-1][1] == b"\x41\x23\x00\x05abcde\x00\x00\x00"


def test_ipv6_allocation_forwards_with_four_tuple_addresses() -> None:
    h = CoreHarness()
    h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, FAMILY_IPV6))
    allocation = h.allocation()
    peer6 = ("2600:1f18::5", 5000)
    h.send(request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, peer6)))
    forwarder = Forwarder(h.stats)
    assert forwarder.peer_datagram(allocation, b"v6", (*peer6, 0, 0))
    assert h.origin.to_clients[-1][1] == b"\x40\x00\x00\x02v6"
    assert forwarder.client_channel_data(allocation, b"\x40\x00\x00\x02up")
    assert allocation.relays[FAMILY_IPV6].sent == [(b"up", peer6)]


def test_bandwidth_quota_drops_excess() -> None:
    h = CoreHarness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), max_bps=1000))
    h.allocate()
    allocation = h.allocation()
    _grant(h, PEER)
    now = [0.0]
    forwarder = Forwarder(h.stats, clock=lambda: now[0])
    allocation.bucket_from_client.stamp = allocation.bucket_to_client.stamp = 0.0
    sent = sum(forwarder.client_send_indication(allocation, send_indication(PEER, b"x" * 400)) for _ in range(5))
    assert sent == 2 and h.stats.quota_rejections_bandwidth == 3
    now[0] = 1.0
    assert forwarder.client_send_indication(allocation, send_indication(PEER, b"x" * 400))
    received = sum(forwarder.peer_datagram(allocation, b"y" * 600, PEER) for _ in range(3))
    assert received == 1
