"""The TC program in the running kernel: loading it is the verifier test, and BPF_PROG_TEST_RUN runs it on
crafted frames. A forwarded frame is compared byte for byte with one built independently in Python
(kernel_kit); everything else must come back TC_ACT_OK and unchanged, or be dropped, never forwarded."""

from __future__ import annotations

import struct

import pytest
from kernel_kit import (
    CHANNEL,
    CLIENT,
    ETH_TO_HOST,
    PEER,
    RELAY,
    SERVER,
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    attribute,
    channel_data,
    data_indication,
    forwarded,
    frame,
    ipv4_udp,
    send_indication,
    stun,
    udp_checksum_valid,
    with_fingerprint,
    xor_peer_address,
)

from relay.server.kernel import maps
from relay.server.kernel.loader import KernelOffloadUnavailable, TcRelay

PAYLOAD = bytes(range(7, 127))  # 120 bytes, the benchmark's message size


def passes_untouched(relay: TcRelay, packet: bytes) -> None:
    action, out = relay.test_run(packet)
    assert (action, out) == (TC_ACT_OK, packet)


def bind(relay: TcRelay, channel: int = CHANNEL, peer: tuple[str, int] = PEER) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, peer[0])
    relay.add_channel(CLIENT, SERVER, channel, RELAY, peer)


# --- loading ---------------------------------------------------------------------------------------


def test_the_program_passes_the_verifier_and_its_maps_match_maps_py(relay: TcRelay) -> None:
    assert relay.program_fd > 0
    assert set(relay.map_fds) == set(maps.MAP_LAYOUTS)
    assert all(fd > 0 for fd in relay.map_fds.values())


def test_a_damaged_object_is_refused_with_a_reason(bpf_object: bytes) -> None:
    with pytest.raises(KernelOffloadUnavailable, match=r"could not open the BPF object \(BPF object format invalid\)"):
        TcRelay(bpf_object[:200])


def test_nothing_is_forwarded_until_the_program_is_enabled(relay: TcRelay) -> None:
    bind(relay)
    relay.configure(enabled=False, mtu=1500)
    passes_untouched(relay, frame(ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD))))


# --- client -> peer: ChannelData ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 120, 1000, 1472 - 4])
def test_channel_data_becomes_udp_from_the_relayed_address(relay: TcRelay, size: int) -> None:
    bind(relay)
    payload = bytes((i * 7) & 0xFF for i in range(size))
    action, out = relay.test_run(frame(ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, payload))))
    assert action == TC_ACT_REDIRECT
    assert out == frame(forwarded(RELAY, PEER, payload))
    assert udp_checksum_valid(out[14:])
    assert relay.channel_counters(CLIENT, SERVER, CHANNEL) == maps.Counters(1, size)
    assert relay.totals()["channel_to_peer"] == maps.Counters(1, size)


@pytest.mark.parametrize("padding", [1, 2, 3])
def test_zero_padding_after_channel_data_is_dropped(relay: TcRelay, padding: int) -> None:
    bind(relay)
    payload = PAYLOAD[: 121 - padding]
    action, out = relay.test_run(frame(ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, payload) + bytes(padding))))
    assert (action, out) == (TC_ACT_REDIRECT, frame(forwarded(RELAY, PEER, payload)))


@pytest.mark.parametrize(
    "message",
    [
        channel_data(CHANNEL, PAYLOAD, declared=len(PAYLOAD) + 1),  # longer than the datagram
        channel_data(CHANNEL, PAYLOAD, declared=0xFFFF),
        channel_data(CHANNEL, PAYLOAD) + b"\0\0\0\0",  # more than padding after it
        channel_data(CHANNEL, PAYLOAD[:119]) + b"\x01",  # non-zero padding: user space decides
        channel_data(0x4002, PAYLOAD),  # not bound
        b"\x40\x01\x00",  # shorter than a ChannelData header
    ],
)
def test_malformed_or_unknown_channel_data_passes_untouched(relay: TcRelay, message: bytes) -> None:
    bind(relay)
    passes_untouched(relay, frame(ipv4_udp(CLIENT, SERVER, message)))


@pytest.mark.parametrize("channel", [0x3FFF, 0x8000, 0xBFFF, 0x8001, 0x0000])
def test_channel_numbers_outside_the_range_are_never_forwarded(relay: TcRelay, channel: int) -> None:
    # Install the out-of-range number behind maps.py's back: the program must check the range itself.
    key = maps.CHANNEL_KEY.pack(
        maps.address(CLIENT[0]), maps.address(SERVER[0]), maps.port(CLIENT[1]), maps.port(SERVER[1]), channel
    )
    relay.update("channels", key, maps.out_value(RELAY, PEER))
    passes_untouched(relay, frame(ipv4_udp(CLIENT, SERVER, channel_data(channel, PAYLOAD))))


@pytest.mark.parametrize("channel", [0x5000, 0x7FFF])
def test_rfc5766_channel_numbers_are_forwarded_only_when_bound(relay: TcRelay, channel: int) -> None:
    """RFC 5766 clients (coturn's turnutils_uclient) pick numbers up to 0x7FFF; with legacy-channel-numbers
    user space binds them and installs an entry, which the program then serves. Without one: user space."""
    message = frame(ipv4_udp(CLIENT, SERVER, channel_data(channel, PAYLOAD)))
    passes_untouched(relay, message)
    bind(relay, channel)
    assert relay.test_run(message) == (TC_ACT_REDIRECT, frame(forwarded(RELAY, PEER, PAYLOAD)))
    assert relay.channel_counters(CLIENT, SERVER, channel) == maps.Counters(1, len(PAYLOAD))
    with pytest.raises(ValueError, match="0x8000 is not within 0x4000-0x7FFF"):
        maps.channel_key(CLIENT, SERVER, 0x8000)


@pytest.mark.parametrize(
    "who",
    [
        {"src": (CLIENT[0], CLIENT[1] + 1)},  # another client port
        {"src": ("198.51.100.8", CLIENT[1])},  # another client address
        {"dst": (SERVER[0], 3479)},  # another listening port
        {"dst": ("10.0.0.6", 3478)},  # another server address
    ],
)
def test_channel_data_outside_the_bound_5_tuple_passes(relay: TcRelay, who: dict) -> None:
    bind(relay)
    src, dst = who.get("src", CLIENT), who.get("dst", SERVER)
    passes_untouched(relay, frame(ipv4_udp(src, dst, channel_data(CHANNEL, PAYLOAD))))


def test_a_removed_channel_forwards_nothing_more(relay: TcRelay) -> None:
    bind(relay)
    packet = frame(ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD)))
    assert relay.test_run(packet)[0] == TC_ACT_REDIRECT
    relay.remove_channel(CLIENT, SERVER, CHANNEL, RELAY, PEER)
    passes_untouched(relay, packet)
    assert relay.channel_counters(CLIENT, SERVER, CHANNEL) is None


# --- what the IP and UDP layers must look like -------------------------------------------------------


@pytest.mark.parametrize(
    "packet",
    [
        ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD), options=b"\x01\x01\x01\x00"),  # IP options
        ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD), flags_fragment=0x2000),  # first fragment
        ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD), flags_fragment=0x0010),  # a later fragment
        ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD), checksum=0),  # no UDP checksum
        ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD), checksum=0x1234),  # a wrong one
        ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD), protocol=6),  # TCP
        ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD))[:40],  # truncated
        ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD)) + b"\0" * 4,  # bytes after the IP packet
    ],
    ids=["options", "first-fragment", "later-fragment", "no-checksum", "bad-checksum", "tcp", "truncated", "trailer"],
)
def test_packets_the_program_must_not_touch(relay: TcRelay, packet: bytes) -> None:
    bind(relay)
    passes_untouched(relay, frame(packet))


def test_frames_for_another_host_or_not_ipv4_pass(relay: TcRelay) -> None:
    bind(relay)
    packet = ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD))
    passes_untouched(relay, bytes.fromhex("02aabbccdd01") + ETH_TO_HOST[6:] + packet)  # another MAC
    passes_untouched(relay, ETH_TO_HOST[:12] + b"\x86\xdd" + packet)  # says IPv6
    passes_untouched(relay, ETH_TO_HOST + packet[:20])  # an IP header and nothing after it
    passes_untouched(relay, ETH_TO_HOST + packet[:30])  # the UDP header cut short


def test_a_fragmented_datagram_is_never_forwarded_even_when_its_first_bytes_match(relay: TcRelay) -> None:
    bind(relay)
    whole = ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD), flags_fragment=0x2000)
    passes_untouched(relay, frame(whole[: 20 + 8 + 48]))


# --- client -> peer: Send indications ----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 120, 1001])
def test_send_indication_becomes_udp_to_the_peer(relay: TcRelay, size: int) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    payload = bytes((i * 13 + 5) & 0xFF for i in range(size))
    action, out = relay.test_run(frame(ipv4_udp(CLIENT, SERVER, send_indication(PEER, payload))))
    assert action == TC_ACT_REDIRECT
    assert out == frame(forwarded(RELAY, PEER, payload))
    assert udp_checksum_valid(out[14:])
    assert relay.permission_counters(CLIENT, SERVER, PEER[0]) == maps.Counters(1, size)
    assert relay.totals()["send_to_peer"] == maps.Counters(1, size)


@pytest.mark.parametrize("size", [0, 1, 3, 120, 1001])
def test_a_send_indication_with_a_fingerprint_is_checked_and_forwarded(relay: TcRelay, size: int) -> None:
    """What Firefox sends: XOR-PEER-ADDRESS, DATA, FINGERPRINT (nICEr adds one to every message)."""
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    payload = bytes((i * 17 + 1) & 0xFF for i in range(size))
    action, out = relay.test_run(frame(ipv4_udp(CLIENT, SERVER, with_fingerprint(send_indication(PEER, payload)))))
    assert (action, out) == (TC_ACT_REDIRECT, frame(forwarded(RELAY, PEER, payload)))
    assert udp_checksum_valid(out[14:])


@pytest.mark.parametrize(
    "message",
    [
        with_fingerprint(send_indication(PEER, PAYLOAD), damage=1),  # a wrong CRC: discarded by user space
        with_fingerprint(send_indication(PEER, PAYLOAD), damage=0x80000000),
        with_fingerprint(send_indication(PEER, PAYLOAD[:7]), damage=0x100),
        with_fingerprint(send_indication(PEER, PAYLOAD)) + attribute(0x8022, b"late"),  # not the last attribute
    ],
)
def test_a_send_indication_with_a_bad_fingerprint_goes_to_user_space(relay: TcRelay, message: bytes) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    passes_untouched(relay, frame(ipv4_udp(CLIENT, SERVER, message)))


def test_without_its_crc_tables_the_program_sends_every_fingerprint_to_user_space(relay: TcRelay) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    packet = frame(ipv4_udp(CLIENT, SERVER, with_fingerprint(send_indication(PEER, PAYLOAD))))
    relay.update("crc32", maps.INDEX.pack(0), bytes(len(maps.crc32_tables())))
    try:
        passes_untouched(relay, packet)
    finally:
        relay.update("crc32", maps.INDEX.pack(0), maps.crc32_tables())
    assert relay.test_run(packet)[0] == TC_ACT_REDIRECT


def data_first(peer: tuple[str, int], payload: bytes, extra: bytes = b"") -> bytes:
    """A Send indication with DATA before XOR-PEER-ADDRESS, as coturn's turnutils_uclient sends it."""
    return stun(0x0016, attribute(0x0013, payload) + xor_peer_address(peer) + extra)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 120, 1001])
@pytest.mark.parametrize("fingerprint", [False, True])
def test_a_send_indication_with_data_first_is_forwarded_the_same(relay: TcRelay, size: int, fingerprint: bool) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    payload = bytes((i * 11 + 3) & 0xFF for i in range(size))
    message = with_fingerprint(data_first(PEER, payload)) if fingerprint else data_first(PEER, payload)
    action, out = relay.test_run(frame(ipv4_udp(CLIENT, SERVER, message)))
    assert (action, out) == (TC_ACT_REDIRECT, frame(forwarded(RELAY, PEER, payload)))
    assert udp_checksum_valid(out[14:])
    assert relay.permission_counters(CLIENT, SERVER, PEER[0]) == maps.Counters(1, size)


@pytest.mark.parametrize(
    "message",
    [
        data_first(PEER, PAYLOAD, attribute(0x001A, b"")),  # DONT-FRAGMENT after XOR-PEER-ADDRESS
        data_first(PEER, PAYLOAD, attribute(0x8022, b"x")),  # SOFTWARE
        with_fingerprint(data_first(PEER, PAYLOAD), damage=1),  # a wrong CRC
        with_fingerprint(data_first(PEER, PAYLOAD[:7]), damage=0x100),
        data_first(("203.0.113.10", PEER[1]), PAYLOAD),  # not permitted
        data_first((PEER[0], 0), PAYLOAD),  # port 0
        stun(0x0016, attribute(0x0013, PAYLOAD) + struct.pack("!HHBBH", 0x0012, 20, 0, 2, 1) + bytes(16)),  # IPv6
        stun(0x0016, attribute(0x0013, PAYLOAD) + struct.pack("!HHBBHI", 0x0012, 8, 0, 2, 1, 0)),  # family 2
        stun(0x0016, attribute(0x0013, PAYLOAD[:5]))[:-3] + b"\x01\x02\x03" + xor_peer_address(PEER),  # junk pad
        stun(0x0016, attribute(0x0013, PAYLOAD) + xor_peer_address(PEER), length=len(PAYLOAD) + 12),  # short
        stun(0x0016, attribute(0x0013, PAYLOAD) + xor_peer_address(PEER)[:8]),  # XOR-PEER-ADDRESS cut
        stun(0x0016, attribute(0x0013, PAYLOAD)),  # no XOR-PEER-ADDRESS
        stun(0x0016, attribute(0x0013, PAYLOAD) + attribute(0x0013, b"more") + xor_peer_address(PEER)),  # two DATA
    ],
    ids=["dont-fragment", "software", "bad-crc", "bad-crc-short", "not-permitted", "port-0", "ipv6-peer",
         "family-2", "junk-padding", "length-short", "xpa-cut", "no-xpa", "two-data"],
)
def test_unusual_data_first_indications_go_to_user_space(relay: TcRelay, message: bytes) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    passes_untouched(relay, frame(ipv4_udp(CLIENT, SERVER, message)))


def test_send_indication_to_any_port_of_a_permitted_peer(relay: TcRelay) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    other = (PEER[0], 9)
    action, out = relay.test_run(frame(ipv4_udp(CLIENT, SERVER, send_indication(other, PAYLOAD))))
    assert (action, out) == (TC_ACT_REDIRECT, frame(forwarded(RELAY, other, PAYLOAD)))


@pytest.mark.parametrize(
    "message",
    [
        send_indication(PEER, PAYLOAD, attribute(0x001A, b"")),  # DONT-FRAGMENT
        send_indication(PEER, PAYLOAD, attribute(0x8028, b"\0\0\0\0")),  # FINGERPRINT: user space checks it
        send_indication(PEER, PAYLOAD, attribute(0x8022, b"x")),  # SOFTWARE
        send_indication(PEER, PAYLOAD, attribute(0x0077, b"x")),  # unknown comprehension-required
        stun(0x0016, xor_peer_address(PEER)),  # no DATA
        stun(0x0016, xor_peer_address(PEER) + attribute(0x0013, PAYLOAD), length=len(PAYLOAD) + 12),  # short
        stun(0x0016, xor_peer_address(PEER) + attribute(0x0013, PAYLOAD), length=len(PAYLOAD) + 20),  # long
        stun(0x0016, xor_peer_address(PEER) + attribute(0x0013, PAYLOAD[:5]))[:-3] + b"\x01\x02\x03",  # junk pad
        stun(0x0016, xor_peer_address(PEER) + attribute(0x0013, PAYLOAD[:5]))[:-1],  # length not a multiple of 4
        stun(0x0016, xor_peer_address((PEER[0], 0)) + attribute(0x0013, PAYLOAD)),  # port 0
        stun(0x0016, xor_peer_address(("203.0.113.10", PEER[1])) + attribute(0x0013, PAYLOAD)),  # not permitted
        stun(0x0016, struct.pack("!HHBBH", 0x0012, 20, 0, 2, 1) + bytes(16) + attribute(0x0013, PAYLOAD)),  # IPv6
        stun(0x0016, struct.pack("!HHBBHI", 0x0012, 8, 0, 2, 1, 0) + attribute(0x0013, PAYLOAD)),  # family 2, len 8
        send_indication(PEER, PAYLOAD)[:4] + b"\x21\x12\xa4\x43" + send_indication(PEER, PAYLOAD)[8:],  # cookie
        b"\x00\x01" + send_indication(PEER, PAYLOAD)[2:],  # a Binding request
        b"\x00\x06" + send_indication(PEER, PAYLOAD)[2:],  # a Send *request*: class bits differ
        send_indication(PEER, PAYLOAD)[:30],
    ],
)
def test_unusual_send_indications_go_to_user_space(relay: TcRelay, message: bytes) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    passes_untouched(relay, frame(ipv4_udp(CLIENT, SERVER, message)))


def test_send_indication_from_another_5_tuple_passes(relay: TcRelay) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    passes_untouched(relay, frame(ipv4_udp((CLIENT[0], 1), SERVER, send_indication(PEER, PAYLOAD))))


# --- peer -> client ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 120, 1000])
def test_a_bound_peer_s_datagram_becomes_channel_data(relay: TcRelay, size: int) -> None:
    bind(relay)
    payload = bytes((i * 3 + 1) & 0xFF for i in range(size))
    action, out = relay.test_run(frame(ipv4_udp(PEER, RELAY, payload)))
    assert action == TC_ACT_REDIRECT
    assert out == frame(forwarded(SERVER, CLIENT, channel_data(CHANNEL, payload)))  # no padding over UDP
    assert udp_checksum_valid(out[14:])
    assert relay.peer_counters(RELAY, PEER[0], PEER[1]) == maps.Counters(1, size)
    assert relay.totals()["channel_to_client"] == maps.Counters(1, size)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 120, 1001])
def test_a_permitted_peer_without_a_channel_gets_a_data_indication(relay: TcRelay, size: int) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    payload = bytes((i * 11) & 0xFF for i in range(size))
    action, out = relay.test_run(frame(ipv4_udp(PEER, RELAY, payload)))
    assert action == TC_ACT_REDIRECT
    tid = out[14 + 28 + 8 : 14 + 28 + 20]  # random per packet: taken from the output, checked below
    assert out == frame(forwarded(SERVER, CLIENT, data_indication(PEER, payload, tid)))
    assert udp_checksum_valid(out[14:])
    assert relay.test_run(frame(ipv4_udp(PEER, RELAY, payload)))[1][14 + 28 + 8 : 14 + 28 + 20] != tid
    assert relay.totals()["data_to_client"] == maps.Counters(2, 2 * size)


def test_a_bound_peer_sending_from_another_port_gets_a_data_indication(relay: TcRelay) -> None:
    bind(relay)
    other = (PEER[0], PEER[1] + 1)
    action, out = relay.test_run(frame(ipv4_udp(other, RELAY, PAYLOAD)))
    assert action == TC_ACT_REDIRECT
    tid = out[14 + 28 + 8 : 14 + 28 + 20]
    assert out == frame(forwarded(SERVER, CLIENT, data_indication(other, PAYLOAD, tid)))


@pytest.mark.parametrize(
    "packet",
    [
        ipv4_udp(("203.0.113.10", PEER[1]), RELAY, PAYLOAD),  # no permission
        ipv4_udp(PEER, (RELAY[0], RELAY[1] + 1), PAYLOAD),  # another relayed port
        ipv4_udp(PEER, RELAY, PAYLOAD, checksum=0xBEEF),  # damaged
        ipv4_udp(PEER, RELAY, bytes(1500 - 28 - 4 + 1)),  # ChannelData would exceed the MTU
    ],
)
def test_peer_datagrams_that_must_stay_in_user_space(relay: TcRelay, packet: bytes) -> None:
    bind(relay)
    passes_untouched(relay, frame(packet))


def test_a_data_indication_beyond_the_mtu_stays_in_user_space(relay: TcRelay) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    passes_untouched(relay, frame(ipv4_udp(PEER, RELAY, bytes(1500 - 28 - 36 + 1))))
    assert relay.test_run(frame(ipv4_udp(PEER, RELAY, bytes(1500 - 28 - 36))))[0] == TC_ACT_REDIRECT


def test_a_peer_payload_that_looks_like_channel_data_or_stun_is_still_a_peer_datagram(relay: TcRelay) -> None:
    bind(relay)
    for payload in (channel_data(CHANNEL, PAYLOAD), send_indication(PEER, PAYLOAD)):
        action, out = relay.test_run(frame(ipv4_udp(PEER, RELAY, payload)))
        assert (action, out) == (TC_ACT_REDIRECT, frame(forwarded(SERVER, CLIENT, channel_data(CHANNEL, payload))))


def test_a_removed_permission_forwards_nothing_more(relay: TcRelay) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    to_client = frame(ipv4_udp(PEER, RELAY, PAYLOAD))
    to_peer = frame(ipv4_udp(CLIENT, SERVER, send_indication(PEER, PAYLOAD)))
    assert relay.test_run(to_client)[0] == relay.test_run(to_peer)[0] == TC_ACT_REDIRECT
    relay.remove_permission(CLIENT, SERVER, RELAY, PEER[0])
    passes_untouched(relay, to_client)
    passes_untouched(relay, to_peer)
    assert list(relay.keys("permissions")) == [] and list(relay.keys("peers")) == []
