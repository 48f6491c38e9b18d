"""The IPv6 half of the program with BPF_PROG_TEST_RUN: the same byte-for-byte checks as the IPv4 tests
for the four paths, the checksum never left at 0, and what must stay in user space (extension headers,
fragments, a zero or wrong checksum, IPv4 peers in IPv6 indications, other families)."""

from __future__ import annotations

import struct

import pytest
from kernel_kit import (
    CHANNEL,
    CLIENT6,
    ETH6_TO_HOST,
    PEER6,
    RELAY6,
    SERVER6,
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    attribute,
    channel_data,
    data_indication6,
    forwarded6,
    frame6,
    ipv6_udp,
    ones_complement_sum,
    send_indication,
    send_indication6,
    stun,
    udp6_checksum_valid,
    with_fingerprint,
    xor_peer_address6,
)

from relay.server.kernel import maps
from relay.server.kernel.loader import TcRelay

PAYLOAD = bytes(range(9, 129))
TID = bytes(range(100, 112))


def bind6(relay: TcRelay) -> None:
    relay.add_permission(CLIENT6, SERVER6, RELAY6, PEER6[0])
    relay.add_channel(CLIENT6, SERVER6, CHANNEL, RELAY6, PEER6)


def passes_untouched(relay: TcRelay, packet: bytes) -> None:
    assert relay.test_run(packet) == (TC_ACT_OK, packet)


@pytest.mark.parametrize("size", [0, 1, 3, 120, 1000])
def test_channel_data_over_ipv6(relay: TcRelay, size: int) -> None:
    bind6(relay)
    payload = bytes((i * 7) & 0xFF for i in range(size))
    action, out = relay.test_run(frame6(ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, payload))))
    assert (action, out) == (TC_ACT_REDIRECT, frame6(forwarded6(RELAY6, PEER6, payload)))
    assert udp6_checksum_valid(out[14:])
    action, out = relay.test_run(frame6(ipv6_udp(PEER6, RELAY6, payload)))
    assert (action, out) == (TC_ACT_REDIRECT, frame6(forwarded6(SERVER6, CLIENT6, channel_data(CHANNEL, payload))))
    assert relay.totals()["channel_to_peer"] == relay.totals()["channel_to_client"] == maps.Counters(1, size)
    assert relay.channel_counters(CLIENT6, SERVER6, CHANNEL) == maps.Counters(1, size)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 120])
def test_indications_over_ipv6(relay: TcRelay, size: int) -> None:
    relay.add_permission(CLIENT6, SERVER6, RELAY6, PEER6[0])
    payload = bytes((i * 5 + 3) & 0xFF for i in range(size))
    action, out = relay.test_run(frame6(ipv6_udp(CLIENT6, SERVER6, send_indication6(PEER6, payload, TID))))
    assert (action, out) == (TC_ACT_REDIRECT, frame6(forwarded6(RELAY6, PEER6, payload)))
    action, out = relay.test_run(frame6(ipv6_udp(PEER6, RELAY6, payload)))
    assert action == TC_ACT_REDIRECT
    tid = out[14 + 48 + 8 : 14 + 48 + 20]  # random per packet; the XOR-PEER-ADDRESS depends on it
    assert out == frame6(forwarded6(SERVER6, CLIENT6, data_indication6(PEER6, payload, tid)))
    assert udp6_checksum_valid(out[14:])
    assert relay.permission_counters(CLIENT6, SERVER6, PEER6[0]) == maps.Counters(1, size)


@pytest.mark.parametrize("size", [0, 3, 120])
def test_a_fingerprinted_send_indication_over_ipv6(relay: TcRelay, size: int) -> None:
    relay.add_permission(CLIENT6, SERVER6, RELAY6, PEER6[0])
    payload = bytes((i * 3) & 0xFF for i in range(size))
    message = with_fingerprint(send_indication6(PEER6, payload, TID))
    action, out = relay.test_run(frame6(ipv6_udp(CLIENT6, SERVER6, message)))
    assert (action, out) == (TC_ACT_REDIRECT, frame6(forwarded6(RELAY6, PEER6, payload)))
    assert udp6_checksum_valid(out[14:])
    damaged = frame6(ipv6_udp(CLIENT6, SERVER6, with_fingerprint(send_indication6(PEER6, payload, TID), damage=4)))
    passes_untouched(relay, damaged)


def test_a_checksum_that_comes_out_zero_is_sent_as_ffff(relay: TcRelay) -> None:
    bind6(relay)
    # Two payload bytes chosen so that the forwarded datagram's sum is 0xFFFF: its checksum computes to 0.
    payload = bytearray(PAYLOAD[:40])
    payload[10:12] = b"\0\0"
    expected = forwarded6(RELAY6, PEER6, bytes(payload))
    segment = bytearray(expected[40:])
    segment[6:8] = b"\0\0"
    pseudo = expected[8:40] + struct.pack("!IxxxB", len(segment), 17)
    payload[10:12] = struct.pack("!H", 0xFFFF - ones_complement_sum(pseudo + segment))
    action, out = relay.test_run(frame6(ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, bytes(payload)))))
    assert action == TC_ACT_REDIRECT and out[14 + 46 : 14 + 48] == b"\xff\xff"
    assert out == frame6(forwarded6(RELAY6, PEER6, bytes(payload))) and udp6_checksum_valid(out[14:])


HOP_BY_HOP = bytes([17, 0, 1, 4, 0, 0, 0, 0])  # next header UDP, PadN
FRAGMENT = bytes([17, 0, 0, 0, 0, 0, 0, 1])  # offset 0, more fragments, id 1


@pytest.mark.parametrize(
    "packet",
    [
        ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, PAYLOAD), next_header=0, extension=HOP_BY_HOP),
        ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, PAYLOAD), next_header=44, extension=FRAGMENT),
        ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, PAYLOAD), checksum=0),  # forbidden over IPv6
        ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, PAYLOAD), checksum=0x4242),
        ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, PAYLOAD, declared=len(PAYLOAD) + 4)),
        ipv6_udp(CLIENT6, SERVER6, channel_data(0x5000, PAYLOAD)),
        ipv6_udp(CLIENT6, SERVER6, send_indication(("203.0.113.9", 40000), PAYLOAD)),  # IPv4 peer
        ipv6_udp(CLIENT6, SERVER6, send_indication6(PEER6, PAYLOAD, TID, attribute(0x001A, b""))),  # DF
        ipv6_udp(CLIENT6, SERVER6, stun(0x0016, xor_peer_address6(PEER6, bytes(12)) + attribute(0x0013, PAYLOAD), TID)),
        ipv6_udp(("2001:db8:c::8", CLIENT6[1]), SERVER6, channel_data(CHANNEL, PAYLOAD)),  # another client
        ipv6_udp(("2001:db8:e::a", PEER6[1]), RELAY6, PAYLOAD),  # a peer without permission
        ipv6_udp(PEER6, RELAY6, bytes(1500 - 48 - 4 + 1)),  # over the MTU as ChannelData
    ],
    ids=[
        "hop-by-hop",
        "fragment",
        "no-checksum",
        "bad-checksum",
        "long-length",
        "channel-range",
        "ipv4-peer",
        "dont-fragment",
        "xor-with-another-tid",
        "other-client",
        "unpermitted-peer",
        "mtu",
    ],
)
def test_ipv6_packets_that_stay_in_user_space(relay: TcRelay, packet: bytes) -> None:
    bind6(relay)
    passes_untouched(relay, frame6(packet))


def test_ipv6_entries_never_match_ipv4_packets_or_the_reverse(relay: TcRelay) -> None:
    bind6(relay)
    assert [len(list(relay.keys(name))) for name in maps.ENTRY_MAPS] == [0, 0, 0, 1, 1, 2]
    passes_untouched(
        relay, ETH6_TO_HOST[:12] + b"\x08\x00" + ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, PAYLOAD))
    )


def test_keys_that_mix_families_are_refused() -> None:
    with pytest.raises(ValueError, match="are not all of one address family"):
        maps.channel_key(CLIENT6, ("10.0.0.5", 3478), CHANNEL)
    with pytest.raises(ValueError, match="are not all of one address family"):
        maps.out_value(RELAY6, ("203.0.113.9", 1))
    with pytest.raises(ValueError, match=r"'relay\.example' is not an IP address"):
        maps.peer_key(("relay.example", 1), PEER6[0])
