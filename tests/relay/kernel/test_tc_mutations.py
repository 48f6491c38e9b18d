"""Thousands of damaged variants of valid frames through the program, each compared with a reference
model written here from RFC 8656 and the program's stated rules: the program forwards exactly the frames
the model forwards, byte for byte, and returns every other frame untouched. Half the variants get their
IP and UDP checksums recomputed after the damage, so the checks behind the checksum are reached too."""

from __future__ import annotations

import binascii
import random
import socket
import struct

from kernel_kit import (
    CHANNEL,
    CLIENT,
    COOKIE,
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
    ip_checksum,
    ipv4_udp,
    mutate,
    ones_complement_sum,
    send_indication,
    stun,
    udp_checksum,
    with_fingerprint,
    xor_peer_address,
)

from relay.server.kernel.loader import TcRelay

MTU = 1500
CASES = 3000


def model(packet: bytes) -> bytes | None:
    """What the program must send for `packet` (an Ethernet frame) with kernel_kit's channel and
    permission installed, or None when it must pass it to user space. Data indications get a zero
    transaction id here: the caller copies the program's random one in."""
    if len(packet) < 14 + 28 or packet[:6] != bytes(6) or packet[12:14] != b"\x08\x00":
        return None
    ip = packet[14:]
    version_ihl, _, total, _, fragment, _, protocol = struct.unpack_from("!BBHHHBB", ip)
    if version_ihl != 0x45 or protocol != 17 or fragment & 0x3FFF:
        return None
    src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    sport, dport, udp_length, check = struct.unpack_from("!HHHH", ip, 20)
    if total != 20 + udp_length or len(ip) != total or not 8 <= udp_length <= 2048 or check == 0:
        return None
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, udp_length)
    if ones_complement_sum(pseudo + ip[20:]) != 0xFFFF:
        return None
    payload = ip[28:]
    client_5_tuple = ((src, sport), (dst, dport)) == (CLIENT, SERVER)
    if len(payload) >= 4 and payload[0] & 0xC0 == 0x40:
        channel, length = struct.unpack_from("!HH", payload)
        trailing = len(payload) - 4 - length
        if (
            0x4000 <= channel <= 0x7FFF
            and 0 <= trailing <= 3
            and payload[4 + length :] == bytes(trailing)
            and client_5_tuple
            and channel == CHANNEL
        ):
            return frame(forwarded(RELAY, PEER, payload[4 : 4 + length]))
    elif len(payload) >= 36 and payload[0] == 0:
        kind, stun_length, cookie = struct.unpack_from("!HHI", payload)
        if struct.unpack_from("!H", payload, 20)[0] == 0x0013:  # DATA first, XOR-PEER-ADDRESS after it
            data_type, length = struct.unpack_from("!HH", payload, 20)
            start = 24
            after = 24 + length + (-length % 4)
            xpa_bytes = payload[after : after + 12]
        else:
            data_type, length = struct.unpack_from("!HH", payload, 32)
            start = 36
            after = None
            xpa_bytes = payload[20:32]
        padding = -length % 4
        if len(xpa_bytes) == 12:
            xpa = struct.unpack("!HHBBHI", xpa_bytes)
            peer = (socket.inet_ntoa(struct.pack("!I", xpa[5] ^ COOKIE)), xpa[4] ^ (COOKIE >> 16))
            if (
                (kind, cookie) == (0x0016, COOKIE)
                and stun_length + 20 == len(payload)
                and stun_length % 4 == 0
                and (xpa[0], xpa[1], xpa[3]) == (0x0012, 8, 1)
                and data_type == 0x0013
                and _ends_well(payload, start + length, padding, skip=0 if after is None else 12)
                and peer[1] != 0
                and client_5_tuple
                and peer[0] == PEER[0]
            ):
                return frame(forwarded(RELAY, peer, payload[start : start + length]))
    if (dst, dport) != RELAY or src != PEER[0]:
        return None
    if sport == PEER[1]:
        return frame(forwarded(SERVER, CLIENT, channel_data(CHANNEL, payload))) if 32 + len(payload) <= MTU else None
    indication = data_indication((src, sport), payload, bytes(12))
    return frame(forwarded(SERVER, CLIENT, indication)) if 28 + len(indication) <= MTU else None


def _ends_well(payload: bytes, data_end: int, padding: int, skip: int = 0) -> bool:
    """DATA's zero padding (and, with DATA first, the `skip` bytes of XOR-PEER-ADDRESS after it) ends the
    message, or is followed by nothing but a correct FINGERPRINT."""
    if payload[data_end : data_end + padding] != bytes(padding):
        return False
    end = data_end + padding + skip
    if end == len(payload):
        return True
    crc = (binascii.crc32(payload[:end]) ^ 0x5354554E) & 0xFFFFFFFF
    return end + 8 == len(payload) and payload[end:] == struct.pack("!HHI", 0x8028, 4, crc)


def _reseal(packet: bytes, lengths: bool) -> bytes:
    """Recompute the IPv4 header checksum and (when the header allows) the UDP checksum; with `lengths`,
    first make the IP and UDP length fields match the frame."""
    ip = bytearray(packet[14:])
    if len(ip) < 28 or ip[0] != 0x45:
        return packet
    if lengths:
        ip[2:4] = struct.pack("!H", len(ip))
        ip[24:26] = struct.pack("!H", len(ip) - 20)
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack("!H", ip_checksum(bytes(ip[:20])))
    if ip[9] == 17 and struct.unpack_from("!H", ip, 24)[0] == len(ip) - 20:
        ip[26:28] = b"\0\0"
        value = udp_checksum(socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), bytes(ip[20:]))
        ip[26:28] = struct.pack("!H", value)
    return packet[:14] + bytes(ip)


def _seeds() -> list[bytes]:
    body = bytes(range(40, 140))
    data_first = stun(0x0016, attribute(0x0013, body[:6]) + xor_peer_address(PEER))  # coturn's uclient order
    return [
        frame(ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, body))),
        frame(ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, body[:7]) + b"\0")),
        frame(ipv4_udp(CLIENT, SERVER, send_indication(PEER, body))),
        frame(ipv4_udp(CLIENT, SERVER, send_indication((PEER[0], 7), body[:5]))),
        frame(ipv4_udp(CLIENT, SERVER, with_fingerprint(send_indication(PEER, body[:33])))),
        frame(ipv4_udp(CLIENT, SERVER, data_first)),
        frame(ipv4_udp(CLIENT, SERVER, with_fingerprint(data_first))),
        frame(ipv4_udp(PEER, RELAY, body)),
        frame(ipv4_udp((PEER[0], 9), RELAY, body[:3])),
    ]


def _mutate(rng: random.Random, packet: bytes) -> bytes:
    return mutate(rng, packet, _reseal)


def test_damaged_frames_are_forwarded_exactly_as_the_model_says_or_passed_untouched(relay: TcRelay) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    relay.add_channel(CLIENT, SERVER, CHANNEL, RELAY, PEER)
    rng = random.Random(12)
    seeds = _seeds()
    forwarded_count = 0
    for seed in seeds:  # the seeds themselves are all forwarded
        assert relay.test_run(seed)[0] == TC_ACT_REDIRECT and model(seed) is not None
    for case in range(CASES):
        packet = _mutate(rng, seeds[case % len(seeds)])
        expected = model(packet)
        action, out = relay.test_run(packet)
        if expected is None:
            assert (action, out) == (TC_ACT_OK, packet), f"case {case}: {packet.hex()}"
            continue
        assert action == TC_ACT_REDIRECT, f"case {case}: {packet.hex()}"
        if is_data_indication(packet):  # take the program's random transaction id into the model's frame
            expected = _with_tid(expected, out[14 + 36 : 14 + 48])
        assert out == expected, f"case {case}: {packet.hex()}"
        forwarded_count += 1
    assert relay.totals()["errors"].packets == 0
    # the damage leaves enough frames intact, or intact-but-different, that forwarding is really exercised
    assert CASES // 20 < forwarded_count < CASES // 2


def is_data_indication(packet: bytes) -> bool:
    """A frame the model forwards from a peer without a channel (its source port is not the bound one)."""
    return packet[14 + 12 : 14 + 16] == socket.inet_aton(PEER[0]) and packet[14 + 20 : 14 + 22] != struct.pack(
        "!H", PEER[1]
    )


def _with_tid(expected: bytes, tid: bytes) -> bytes:
    ip = bytearray(expected[14:])
    ip[36:48] = tid
    ip[26:28] = b"\0\0"
    ip[26:28] = struct.pack("!H", udp_checksum(SERVER[0], CLIENT[0], bytes(ip[20:])))
    return expected[:14] + bytes(ip)
