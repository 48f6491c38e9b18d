"""Packets for the kernel-path tests, built and checked independently of the BPF program: plain
Python byte arithmetic for IPv4, UDP (RFC 768 checksum), ChannelData and STUN indications."""

from __future__ import annotations

import binascii
import random
import socket
import struct
from collections.abc import Callable

ETH_TO_HOST = bytes(6) + bytes.fromhex("02aabbccddee") + b"\x08\x00"  # BPF_PROG_TEST_RUN's device is lo (MAC 0)
COOKIE = 0x2112A442
TC_ACT_OK = 0
TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7

CLIENT = ("198.51.100.7", 50123)
SERVER = ("10.0.0.5", 3478)
RELAY = ("10.0.0.5", 49170)
PEER = ("203.0.113.9", 40000)
CHANNEL = 0x4001


def ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ip_checksum(header: bytes) -> int:
    return ~ones_complement_sum(header) & 0xFFFF


def udp_checksum(src: str, dst: str, segment: bytes) -> int:
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, len(segment))
    value = ~ones_complement_sum(pseudo + segment) & 0xFFFF
    return value or 0xFFFF


def ipv4_udp(
    src: tuple[str, int],
    dst: tuple[str, int],
    payload: bytes,
    *,
    ident: int = 0x1234,
    flags_fragment: int = 0x4000,
    ttl: int = 57,
    tos: int = 0,
    options: bytes = b"",
    checksum: int | None = None,
    protocol: int = 17,
) -> bytes:
    """An IPv4 packet carrying one UDP datagram; `checksum` overrides the UDP checksum (0: none)."""
    segment = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    value = udp_checksum(src[0], dst[0], segment) if checksum is None else checksum
    segment = segment[:6] + struct.pack("!H", value) + segment[8:]
    ihl = 5 + len(options) // 4
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,
            tos,
            ihl * 4 + len(segment),
            ident,
            flags_fragment,
            ttl,
            protocol,
            0,
            socket.inet_aton(src[0]),
            socket.inet_aton(dst[0]),
        )
        + options
    )
    header = header[:10] + struct.pack("!H", ip_checksum(header)) + header[12:]
    return header + segment


def frame(packet: bytes, eth: bytes = ETH_TO_HOST) -> bytes:
    return eth + packet


def forwarded(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    """What the program must send: a fresh IPv4 header (id 0, DF, TTL 64, TOS 0) and a full UDP checksum."""
    return ipv4_udp(src, dst, payload, ident=0, flags_fragment=0x4000, ttl=64)


def channel_data(channel: int, payload: bytes, declared: int | None = None) -> bytes:
    return struct.pack("!HH", channel, len(payload) if declared is None else declared) + payload


def xor_peer_address(peer: tuple[str, int]) -> bytes:
    address = struct.unpack("!I", socket.inet_aton(peer[0]))[0] ^ COOKIE
    return struct.pack("!HHBBHI", 0x0012, 8, 0, 1, peer[1] ^ (COOKIE >> 16), address)


def attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + bytes(-len(value) % 4)


def stun(message_type: int, attributes: bytes, tid: bytes = bytes(range(12)), length: int | None = None) -> bytes:
    declared = len(attributes) if length is None else length
    return struct.pack("!HHI", message_type, declared, COOKIE) + tid + attributes


def send_indication(peer: tuple[str, int], payload: bytes, extra: bytes = b"") -> bytes:
    return stun(0x0016, xor_peer_address(peer) + attribute(0x0013, payload) + extra)


def data_indication(peer: tuple[str, int], payload: bytes, tid: bytes) -> bytes:
    return stun(0x0017, xor_peer_address(peer) + attribute(0x0013, payload), tid)


def udp_checksum_valid(packet: bytes) -> bool:
    """The IPv4 header checksum and the UDP checksum of `packet` (no Ethernet header) both verify."""
    ihl = (packet[0] & 0x0F) * 4
    if ones_complement_sum(packet[:ihl]) != 0xFFFF:
        return False
    segment = packet[ihl:]
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 17, len(segment))
    return ones_complement_sum(pseudo + segment) == 0xFFFF


# --- IPv6 ----------------------------------------------------------------------------------------------

ETH6_TO_HOST = bytes(6) + bytes.fromhex("02aabbccddee") + b"\x86\xdd"
CLIENT6 = ("2001:db8:c::7", 50123)
SERVER6 = ("2001:db8:5::5", 3478)
RELAY6 = ("2001:db8:5::5", 49170)
PEER6 = ("2001:db8:e::9", 40000)


def udp6_checksum(src: str, dst: str, segment: bytes) -> int:
    pseudo = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    pseudo += struct.pack("!IxxxB", len(segment), 17)
    value = ~ones_complement_sum(pseudo + segment) & 0xFFFF
    return value or 0xFFFF


def ipv6_udp(
    src: tuple[str, int],
    dst: tuple[str, int],
    payload: bytes,
    *,
    hop_limit: int = 57,
    checksum: int | None = None,
    next_header: int = 17,
    extension: bytes = b"",
) -> bytes:
    """An IPv6 packet carrying one UDP datagram (after `extension`, whose own next header is UDP)."""
    segment = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    value = udp6_checksum(src[0], dst[0], segment) if checksum is None else checksum
    segment = segment[:6] + struct.pack("!H", value) + segment[8:]
    header = struct.pack("!IHBB", 6 << 28, len(extension) + len(segment), next_header, hop_limit)
    header += socket.inet_pton(socket.AF_INET6, src[0]) + socket.inet_pton(socket.AF_INET6, dst[0])
    return header + extension + segment


def frame6(packet: bytes) -> bytes:
    return ETH6_TO_HOST + packet


def forwarded6(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    """What the program must send over IPv6: traffic class and flow label 0, hop limit 64."""
    return ipv6_udp(src, dst, payload, hop_limit=64)


def xor_peer_address6(peer: tuple[str, int], tid: bytes) -> bytes:
    mask = struct.pack("!I", COOKIE) + tid
    raw = bytes(a ^ b for a, b in zip(socket.inet_pton(socket.AF_INET6, peer[0]), mask, strict=True))
    return struct.pack("!HHBBH", 0x0012, 20, 0, 2, peer[1] ^ (COOKIE >> 16)) + raw


def send_indication6(peer: tuple[str, int], payload: bytes, tid: bytes = bytes(range(12)), extra: bytes = b"") -> bytes:
    return stun(0x0016, xor_peer_address6(peer, tid) + attribute(0x0013, payload) + extra, tid)


def data_indication6(peer: tuple[str, int], payload: bytes, tid: bytes) -> bytes:
    return stun(0x0017, xor_peer_address6(peer, tid) + attribute(0x0013, payload), tid)


def udp6_checksum_valid(packet: bytes) -> bool:
    segment = packet[40:]
    pseudo = packet[8:40] + struct.pack("!IxxxB", len(segment), 17)
    return struct.unpack_from("!H", segment, 6)[0] != 0 and ones_complement_sum(pseudo + segment) == 0xFFFF


def mutate(rng: random.Random, packet: bytes, reseal: Callable[[bytes, bool], bytes], min_length: int = 34) -> bytes:
    """One to three kinds of damage to a frame past its Ethernet header: a byte replaced or a bit flipped,
    the frame cut short (never below `min_length`: BPF_PROG_TEST_RUN refuses frames shorter than an IP
    header), bytes inserted, zero bytes appended; then half the time `reseal(frame, fix_lengths)`
    recomputes checksums (and, half of those times, the length fields) so later checks are reached."""
    data = bytearray(packet)
    for _ in range(rng.choice((1, 1, 2, 3))):
        roll = rng.random()
        position = rng.randrange(14, len(data))
        if roll < 0.6:
            data[position] = rng.randrange(256)
        elif roll < 0.8:
            data[position] ^= 1 << rng.randrange(8)
        elif roll < 0.9 and position >= min_length:
            del data[position:]
        elif roll < 0.95:
            data[position:position] = bytes(rng.randrange(1, 5))
        else:  # zero bytes after the message: padding, or more than padding
            data += bytes(rng.randrange(1, 6))
    mutated = bytes(data)
    return reseal(mutated, rng.random() < 0.5) if rng.random() < 0.5 else mutated


def with_fingerprint(message: bytes, damage: int = 0) -> bytes:
    """`message` with a FINGERPRINT attribute appended (RFC 8489 section 14.7): the header's length
    covers it, the CRC-32 covers everything before it; `damage` is XORed into the CRC."""
    length = struct.unpack_from("!H", message, 2)[0] + 8
    covered = message[:2] + struct.pack("!H", length) + message[4:]
    crc = (binascii.crc32(covered) ^ 0x5354554E ^ damage) & 0xFFFFFFFF
    return covered + struct.pack("!HHI", 0x8028, 4, crc)
