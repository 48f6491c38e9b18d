"""The byte layouts of the TC program's maps (`tc_relay.bpf.c`), the one place the Python side defines them.

Addresses and ports are kept in network order, as the program reads them from packet headers; a channel
number is in host order. Each entry has an IPv4 map and an IPv6 one ("channels", "channels6", ...): the
builders below pick the map from the addresses and refuse a key that mixes families. `struct` with `=`
(native order, no alignment) mirrors the C structs exactly because every C field sits at its natural
alignment; the loader checks each map's key and value sizes against the compiled object, so a layout
change on one side only fails loudly.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

CONFIG = struct.Struct("=IIII")  # enabled, egress ifindex (0: the ingress one), mtu, pad
INDEX = struct.Struct("=I")
COUNTER = struct.Struct("=QQ")  # packets, bytes (one per CPU in `stats`)
# IPv4 maps (4-byte addresses)
CHANNEL_KEY = struct.Struct("=4s4s2s2sH2x")  # client ip, server ip, client port, server port, channel
PERMISSION_KEY = struct.Struct("=4s4s2s2s4s")  # client ip, server ip, client port, server port, peer ip
OUT_VALUE = struct.Struct("=4s4s2s2s4xQQ")  # relay ip, peer ip, relay port, peer port, packets, bytes
PEER_KEY = struct.Struct("=4s4s2s2s")  # relay ip, peer ip, relay port, peer port (0: any port)
PEER_VALUE = struct.Struct("=4s4s2s2sH2xQQ")  # client ip, server ip, client port, server port, channel, packets, bytes
# IPv6 maps: the same fields with 16-byte addresses (tc_relay6.h)
CHANNEL_KEY6 = struct.Struct("=16s16s2s2sH2x")
PERMISSION_KEY6 = struct.Struct("=16s16s2s2s16s")
OUT_VALUE6 = struct.Struct("=16s16s2s2s4xQQ")
PEER_KEY6 = struct.Struct("=16s16s2s2s")
PEER_VALUE6 = struct.Struct("=16s16s2s2sH2xQQ")

# `stats` slots (enum stat_index in the C source)
STAT_CHANNEL_TO_PEER = 0
STAT_SEND_TO_PEER = 1
STAT_CHANNEL_TO_CLIENT = 2
STAT_DATA_TO_CLIENT = 3
STAT_ERRORS = 4
STAT_NAMES = ("channel_to_peer", "send_to_peer", "channel_to_client", "data_to_client", "errors")
CHUNK = 256  # the checksum's scratch buffer (CHUNK in the C source)

MAP_LAYOUTS: dict[str, tuple[int, int]] = {  # map name -> (key size, value size)
    "config": (INDEX.size, CONFIG.size),
    "stats": (INDEX.size, COUNTER.size),
    "scratch": (INDEX.size, CHUNK + 4),  # the buffer and a cursor
    "crc32": (INDEX.size, 4 * 256 * 4),
    "channels": (CHANNEL_KEY.size, OUT_VALUE.size),
    "permissions": (PERMISSION_KEY.size, OUT_VALUE.size),
    "peers": (PEER_KEY.size, PEER_VALUE.size),
    "channels6": (CHANNEL_KEY6.size, OUT_VALUE6.size),
    "permissions6": (PERMISSION_KEY6.size, OUT_VALUE6.size),
    "peers6": (PEER_KEY6.size, PEER_VALUE6.size),
}
ENTRY_MAPS = ("channels", "permissions", "peers", "channels6", "permissions6", "peers6")

Endpoint = tuple[str, int]  # address text, port
Slot = tuple[str, bytes]  # (map name, key): where one entry lives


def address(host: str) -> bytes:
    """4 or 16 bytes in network order; ValueError names the value when it is not an IP address."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_pton(family, host)
        except OSError:
            continue
    raise ValueError(f"{host!r} is not an IP address")


def _same_family(*hosts: str) -> tuple[bytes, ...]:
    packed = tuple(address(host) for host in hosts)
    if len({len(raw) for raw in packed}) != 1:
        raise ValueError(f"{', '.join(hosts)} are not all of one address family (the kernel path does not translate)")
    return packed


def _suffix(raw: bytes) -> str:
    return "" if len(raw) == 4 else "6"


def port(number: int) -> bytes:
    if not 0 <= number <= 0xFFFF:
        raise ValueError(f"port {number} is not within 0-65535")
    return number.to_bytes(2, "big")


def _channel_number(channel: int) -> int:
    # 0x4000-0x4FFF (RFC 8656 section 12), up to 0x7FFF when the relay accepts RFC 5766 numbers
    # (legacy-channel-numbers): TurnCore decides which it binds, the program checks the outer bounds.
    if not 0x4000 <= channel <= 0x7FFF:
        raise ValueError(f"channel number {channel:#x} is not within 0x4000-0x7FFF (RFC 8656 / RFC 5766)")
    return channel


def channel_key(client: Endpoint, server: Endpoint, channel: int) -> Slot:
    c, s = _same_family(client[0], server[0])
    layout = CHANNEL_KEY if len(c) == 4 else CHANNEL_KEY6
    return "channels" + _suffix(c), layout.pack(c, s, port(client[1]), port(server[1]), _channel_number(channel))


def permission_key(client: Endpoint, server: Endpoint, peer_host: str) -> Slot:
    c, s, p = _same_family(client[0], server[0], peer_host)
    layout = PERMISSION_KEY if len(c) == 4 else PERMISSION_KEY6
    return "permissions" + _suffix(c), layout.pack(c, s, port(client[1]), port(server[1]), p)


def out_value(relay: Endpoint, peer: Endpoint | None = None) -> bytes:
    """Where a client's data leaves: from `relay` to `peer` (a channel) or to the indication's peer."""
    r = address(relay[0])
    p, peer_port = (_same_family(relay[0], peer[0])[1], port(peer[1])) if peer else (bytes(len(r)), b"\0\0")
    return (OUT_VALUE if len(r) == 4 else OUT_VALUE6).pack(r, p, port(relay[1]), peer_port, 0, 0)


def peer_key(relay: Endpoint, peer_host: str, peer_port: int = 0) -> Slot:
    """A peer's datagrams to `relay`: from exactly (host, port) for a channel, from any port (0) for a
    permission without a channel."""
    r, p = _same_family(relay[0], peer_host)
    layout = PEER_KEY if len(r) == 4 else PEER_KEY6
    return "peers" + _suffix(r), layout.pack(r, p, port(relay[1]), port(peer_port))


def peer_value(client: Endpoint, server: Endpoint, channel: int = 0) -> bytes:
    """Peer data goes to `client` from `server` as ChannelData on `channel`, or as Data indications (0)."""
    c, s = _same_family(client[0], server[0])
    number = _channel_number(channel) if channel else 0
    layout = PEER_VALUE if len(c) == 4 else PEER_VALUE6
    return layout.pack(c, s, port(client[1]), port(server[1]), number, 0, 0)


@dataclass(frozen=True)
class Counters:
    packets: int
    bytes: int


def crc32_tables() -> bytes:
    """The `crc32` map's value: CRC-32 (IEEE, reflected, as zlib) lookup tables for slice-by-4, t[k * 256 + n]
    with t[0..255] the byte table and each next table one byte further. The program's FINGERPRINT check
    reads them; tests compare its result with zlib's."""
    tables = [[0] * 256 for _ in range(4)]
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
        tables[0][n] = crc
    for k in range(1, 4):
        for n in range(256):
            previous = tables[k - 1][n]
            tables[k][n] = (previous >> 8) ^ tables[0][previous & 0xFF]
    return struct.pack("=1024I", *(value for table in tables for value in table))


def relay_port_of_peer_key(key: bytes) -> int:
    layout = PEER_KEY if len(key) == PEER_KEY.size else PEER_KEY6
    return int.from_bytes(layout.unpack(key)[2], "big")


def relay_port_of_out_value(value: bytes) -> int:
    layout = OUT_VALUE if len(value) == OUT_VALUE.size else OUT_VALUE6
    return int.from_bytes(layout.unpack(value)[2], "big")


def counters(value: bytes) -> Counters:
    """The packet and byte counters every entry value ends with."""
    packets, octets = COUNTER.unpack_from(value, len(value) - COUNTER.size)
    return Counters(packets, octets)
