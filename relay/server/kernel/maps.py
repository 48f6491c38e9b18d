"""The byte layouts of the TC program's maps (`tc_relay.bpf.c`), the one place the Python side defines them.

Addresses and ports are kept in network order, as the program reads them from packet headers; a channel
number is in host order. `struct` with `=` (native order, no alignment) mirrors the C structs exactly
because every C field sits at its natural alignment; the loader checks each map's key and value sizes
against the compiled object, so a layout change on one side only fails loudly.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

CONFIG = struct.Struct("=IIII")  # enabled, egress ifindex (0: the ingress one), mtu, pad
CHANNEL_KEY = struct.Struct("=4s4s2s2sH2x")  # client ip, server ip, client port, server port, channel
PERMISSION_KEY = struct.Struct("=4s4s2s2s4s")  # client ip, server ip, client port, server port, peer ip
OUT_VALUE = struct.Struct("=4s4s2s2s4xQQ")  # relay ip, peer ip, relay port, peer port, packets, bytes
PEER_KEY = struct.Struct("=4s4s2s2s")  # relay ip, peer ip, relay port, peer port (0: any port)
PEER_VALUE = struct.Struct("=4s4s2s2sH2xQQ")  # client ip, server ip, client port, server port, channel, packets, bytes
COUNTER = struct.Struct("=QQ")  # packets, bytes (one per CPU in `stats`)
INDEX = struct.Struct("=I")

# `stats` slots (enum stat_index in the C source)
STAT_CHANNEL_TO_PEER = 0
STAT_SEND_TO_PEER = 1
STAT_CHANNEL_TO_CLIENT = 2
STAT_DATA_TO_CLIENT = 3
STAT_ERRORS = 4
STAT_NAMES = ("channel_to_peer", "send_to_peer", "channel_to_client", "data_to_client", "errors")

MAP_LAYOUTS: dict[str, tuple[int, int]] = {  # map name -> (key size, value size)
    "config": (INDEX.size, CONFIG.size),
    "channels": (CHANNEL_KEY.size, OUT_VALUE.size),
    "permissions": (PERMISSION_KEY.size, OUT_VALUE.size),
    "peers": (PEER_KEY.size, PEER_VALUE.size),
    "stats": (INDEX.size, COUNTER.size),
}

Endpoint = tuple[str, int]  # IPv4 address text, port


def ip4(host: str) -> bytes:
    """4 bytes in network order; ValueError names the value when it is not an IPv4 address."""
    try:
        return socket.inet_pton(socket.AF_INET, host)
    except OSError:
        raise ValueError(f"{host!r} is not an IPv4 address (the in-kernel path is IPv4 only)") from None


def port(number: int) -> bytes:
    if not 0 <= number <= 0xFFFF:
        raise ValueError(f"port {number} is not within 0-65535")
    return number.to_bytes(2, "big")


def channel_key(client: Endpoint, server: Endpoint, channel: int) -> bytes:
    if not 0x4000 <= channel <= 0x4FFF:
        raise ValueError(f"channel number {channel:#x} is not within 0x4000-0x4FFF (RFC 8656 section 12)")
    return CHANNEL_KEY.pack(ip4(client[0]), ip4(server[0]), port(client[1]), port(server[1]), channel)


def permission_key(client: Endpoint, server: Endpoint, peer_host: str) -> bytes:
    return PERMISSION_KEY.pack(ip4(client[0]), ip4(server[0]), port(client[1]), port(server[1]), ip4(peer_host))


def out_value(relay: Endpoint, peer: Endpoint | None = None) -> bytes:
    """Where a client's data leaves: from `relay` to `peer` (a channel) or to the indication's peer."""
    peer_ip, peer_port = (ip4(peer[0]), port(peer[1])) if peer else (b"\0" * 4, b"\0\0")
    return OUT_VALUE.pack(ip4(relay[0]), peer_ip, port(relay[1]), peer_port, 0, 0)


def peer_key(relay: Endpoint, peer_host: str, peer_port: int = 0) -> bytes:
    """A peer's datagrams to `relay`: from exactly (host, port) for a channel, from any port (0) for a
    permission without a channel."""
    return PEER_KEY.pack(ip4(relay[0]), ip4(peer_host), port(relay[1]), port(peer_port))


def peer_value(client: Endpoint, server: Endpoint, channel: int = 0) -> bytes:
    """Peer data goes to `client` from `server` as ChannelData on `channel`, or as Data indications (0)."""
    if channel and not 0x4000 <= channel <= 0x4FFF:
        raise ValueError(f"channel number {channel:#x} is not within 0x4000-0x4FFF (RFC 8656 section 12)")
    return PEER_VALUE.pack(ip4(client[0]), ip4(server[0]), port(client[1]), port(server[1]), channel, 0, 0)


@dataclass(frozen=True)
class Counters:
    packets: int
    bytes: int


def out_counters(value: bytes) -> Counters:
    fields = OUT_VALUE.unpack(value)
    return Counters(fields[4], fields[5])


def peer_counters(value: bytes) -> Counters:
    fields = PEER_VALUE.unpack(value)
    return Counters(fields[5], fields[6])
