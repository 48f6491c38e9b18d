"""The IPv6 half against its own reference model, as test_tc_mutations does for IPv4: damaged variants of
valid IPv6 frames are forwarded exactly as the model says, byte for byte, or returned untouched."""

from __future__ import annotations

import binascii
import random
import socket
import struct

from kernel_kit import (
    CHANNEL,
    CLIENT6,
    COOKIE,
    PEER6,
    RELAY6,
    SERVER6,
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    channel_data,
    data_indication6,
    forwarded6,
    frame6,
    ipv6_udp,
    mutate,
    ones_complement_sum,
    send_indication6,
    udp6_checksum,
    with_fingerprint,
)

from relay.server.kernel.loader import TcRelay

MTU = 1500
CASES = 3000


def _ntop(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def model(packet: bytes) -> bytes | None:
    """What the program must send for `packet` with CLIENT6's channel to PEER6 and its permission
    installed, or None. Data indications get a zero transaction id (the caller takes the program's)."""
    if len(packet) < 14 + 48 or packet[:6] != bytes(6) or packet[12:14] != b"\x86\xdd":
        return None
    ip = packet[14:]
    vtc_flow, payload_length, next_header = struct.unpack_from("!IHB", ip)
    if vtc_flow >> 28 != 6 or next_header != 17:
        return None
    src, dst = _ntop(ip[8:24]), _ntop(ip[24:40])
    sport, dport, udp_length, check = struct.unpack_from("!HHHH", ip, 40)
    if payload_length != udp_length or len(ip) != 40 + udp_length or not 8 <= udp_length <= 2048 or check == 0:
        return None
    if ones_complement_sum(ip[8:40] + struct.pack("!IxxxB", udp_length, 17) + ip[40:]) != 0xFFFF:
        return None
    payload = ip[48:]
    client_5_tuple = ((src, sport), (dst, dport)) == (CLIENT6, SERVER6)
    if len(payload) >= 4 and payload[0] & 0xC0 == 0x40:
        channel, length = struct.unpack_from("!HH", payload)
        trailing = len(payload) - 4 - length
        if 0 <= trailing <= 3 and payload[4 + length :] == bytes(trailing) and client_5_tuple and channel == CHANNEL:
            return frame6(forwarded6(RELAY6, PEER6, payload[4 : 4 + length]))
    elif len(payload) >= 48 and payload[0] == 0:
        kind, stun_length, cookie = struct.unpack_from("!HHI", payload)
        xpa_type, xpa_length, _, family, xport = struct.unpack_from("!HHBBH", payload, 20)
        data_type, length = struct.unpack_from("!HH", payload, 44)
        padding = -length % 4
        mask = struct.pack("!I", COOKIE) + payload[8:20]
        peer = (_ntop(bytes(a ^ b for a, b in zip(payload[28:44], mask, strict=True))), xport ^ (COOKIE >> 16))
        if (
            (kind, cookie) == (0x0016, COOKIE)
            and stun_length + 20 == len(payload)
            and stun_length % 4 == 0
            and (xpa_type, xpa_length, family) == (0x0012, 20, 2)
            and data_type == 0x0013
            and _ends_well(payload, 48 + length, padding)
            and peer[1] != 0
            and client_5_tuple
            and peer[0] == PEER6[0]
        ):
            return frame6(forwarded6(RELAY6, peer, payload[48 : 48 + length]))
    if (dst, dport) != RELAY6 or src != PEER6[0]:
        return None
    if sport == PEER6[1]:
        return (
            frame6(forwarded6(SERVER6, CLIENT6, channel_data(CHANNEL, payload))) if 52 + len(payload) <= MTU else None
        )
    indication = data_indication6((src, sport), payload, bytes(12))
    return frame6(forwarded6(SERVER6, CLIENT6, indication)) if 48 + len(indication) <= MTU else None


def _ends_well(payload: bytes, data_end: int, padding: int) -> bool:
    """DATA's zero padding ends the message, or is followed by nothing but a correct FINGERPRINT."""
    end = data_end + padding
    if payload[data_end:end] != bytes(padding):
        return False
    if end == len(payload):
        return True
    crc = (binascii.crc32(payload[:end]) ^ 0x5354554E) & 0xFFFFFFFF
    return end + 8 == len(payload) and payload[end:] == struct.pack("!HHI", 0x8028, 4, crc)


def _reseal(packet: bytes, lengths: bool) -> bytes:
    ip = bytearray(packet[14:])
    if len(ip) < 48:
        return packet
    if lengths:
        ip[4:6] = struct.pack("!H", len(ip) - 40)
        ip[44:46] = struct.pack("!H", len(ip) - 40)
    if ip[6] == 17 and struct.unpack_from("!H", ip, 44)[0] == len(ip) - 40:
        ip[46:48] = b"\0\0"
        ip[46:48] = struct.pack("!H", udp6_checksum(_ntop(bytes(ip[8:24])), _ntop(bytes(ip[24:40])), bytes(ip[40:])))
    return packet[:14] + bytes(ip)


def _with_tid(expected: bytes, tid: bytes) -> bytes:
    """The model's Data indication with the program's transaction id, which the XOR-PEER-ADDRESS uses too."""
    ip = expected[14:]
    stun_start = 48
    peer_port = struct.unpack_from("!H", ip, stun_start + 26)[0] ^ (COOKIE >> 16)
    zero_mask = struct.pack("!I", COOKIE) + bytes(12)
    peer_host = _ntop(bytes(a ^ b for a, b in zip(ip[stun_start + 28 : stun_start + 44], zero_mask, strict=True)))
    length = struct.unpack_from("!H", ip, stun_start + 46)[0]
    payload = ip[stun_start + 48 : stun_start + 48 + length]
    return frame6(forwarded6(SERVER6, CLIENT6, data_indication6((peer_host, peer_port), payload, tid)))


def _seeds() -> list[bytes]:
    body = bytes(range(40, 140))
    return [
        frame6(ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, body))),
        frame6(ipv6_udp(CLIENT6, SERVER6, channel_data(CHANNEL, body[:7]) + b"\0")),
        frame6(ipv6_udp(CLIENT6, SERVER6, send_indication6(PEER6, body))),
        frame6(ipv6_udp(CLIENT6, SERVER6, send_indication6((PEER6[0], 7), body[:5]))),
        frame6(ipv6_udp(CLIENT6, SERVER6, with_fingerprint(send_indication6(PEER6, body[:33])))),
        frame6(ipv6_udp(PEER6, RELAY6, body)),
        frame6(ipv6_udp((PEER6[0], 9), RELAY6, body[:3])),
    ]


def test_damaged_ipv6_frames_are_forwarded_exactly_as_the_model_says_or_passed_untouched(relay: TcRelay) -> None:
    relay.add_permission(CLIENT6, SERVER6, RELAY6, PEER6[0])
    relay.add_channel(CLIENT6, SERVER6, CHANNEL, RELAY6, PEER6)
    rng = random.Random(6)
    seeds = _seeds()
    for seed in seeds:
        assert relay.test_run(seed)[0] == TC_ACT_REDIRECT and model(seed) is not None
    forwarded_count = 0
    for case in range(CASES):
        packet = mutate(rng, seeds[case % len(seeds)], _reseal, min_length=14 + 40)
        expected = model(packet)
        action, out = relay.test_run(packet)
        if expected is None:
            assert (action, out) == (TC_ACT_OK, packet), f"case {case}: {packet.hex()}"
            continue
        assert action == TC_ACT_REDIRECT, f"case {case}: {packet.hex()}"
        if expected[14 + 48 : 14 + 50] == b"\x00\x17" and expected[14 + 42 : 14 + 44] == struct.pack("!H", CLIENT6[1]):
            expected = _with_tid(expected, out[14 + 56 : 14 + 68])
        assert out == expected, f"case {case}: {packet.hex()}"
        forwarded_count += 1
    assert relay.totals()["errors"].packets == 0
    assert CASES // 20 < forwarded_count < CASES // 2
