"""Byte-level helpers for the packet path: no `Message` objects, no attribute table, no per-packet
allocation beyond the output bytes. Everything here is pure and safe on hostile input (returns None
rather than raising on anything malformed).

  parse_send_indication  Send indication -> (peer host, peer port, payload, dont_fragment)
  data_indication_head   precomputed per peer: cookie, transaction id, XOR-PEER-ADDRESS attribute
  data_indication        head + payload -> a complete Data indication
  channel_data           ChannelData framing (padded to 4 bytes on streams, RFC 8656 section 12.5)
  stream_frame_length    how long the next STUN/ChannelData frame on a TCP/TLS stream is
"""

from __future__ import annotations

import binascii
import socket

from relay.stun.attributes import ATTRIBUTES, Address, encode_xor_address
from relay.stun.constants import FINGERPRINT_XOR, MAGIC_COOKIE, MAGIC_COOKIE_BYTES

SEND_INDICATION_TYPE = b"\x00\x16"
DATA_INDICATION_TYPE = b"\x00\x17"
PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")  # indexed by length % 4
MAX_STUN_LENGTH = 0xFFFF  # the 16-bit length field bounds every frame
_V4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"
_KNOWN = frozenset(ATTRIBUTES)
_ATTR_XOR_PEER_ADDRESS = 0x0012
_ATTR_DATA = 0x0013
_ATTR_DONT_FRAGMENT = 0x001A
_ATTR_FINGERPRINT = 0x8028


def parse_send_indication(data: bytes | memoryview) -> tuple[str, int, bytes | memoryview, bool] | None:
    """Validate a Send indication (RFC 8656 section 10.2) and pull out what forwarding needs.

    IPv4-mapped peer addresses come back as the IPv4 address. None means "discard": not a Send
    indication, malformed, a missing XOR-PEER-ADDRESS or DATA, a bad FINGERPRINT, or an unknown
    comprehension-required attribute."""
    size = len(data)
    if size < 20 or data[0:2] != SEND_INDICATION_TYPE or data[4:8] != MAGIC_COOKIE_BYTES:
        return None
    length = (data[2] << 8) | data[3]
    if length + 20 != size or length & 3:
        return None
    host: str | None = None
    port = 0
    payload: bytes | memoryview | None = None
    dont_fragment = False
    offset = 20
    while offset < size:
        if size - offset < 4:
            return None
        attr_type = (data[offset] << 8) | data[offset + 1]
        attr_length = (data[offset + 2] << 8) | data[offset + 3]
        start = offset + 4
        end = start + attr_length
        if end > size:
            return None
        if attr_type == _ATTR_XOR_PEER_ADDRESS:
            if host is None:
                parsed = _xor_peer(data, start, attr_length)
                if parsed is None:
                    return None
                host, port = parsed
        elif attr_type == _ATTR_DATA:
            if payload is None:
                payload = data[start:end]
        elif attr_type == _ATTR_DONT_FRAGMENT:
            dont_fragment = True
        elif attr_type == _ATTR_FINGERPRINT:
            if attr_length != 4 or end != size:
                return None
            covered = bytes(data[0:2]) + (offset + 8 - 20).to_bytes(2, "big") + bytes(data[4:offset])
            expected = (binascii.crc32(covered) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
            if bytes(data[start:end]) != expected.to_bytes(4, "big"):
                return None
        elif attr_type < 0x8000 and attr_type not in _KNOWN:
            return None
        offset = start + ((attr_length + 3) & ~3)
    if host is None or payload is None or offset != size:
        return None
    return host, port, payload, dont_fragment


def _xor_peer(data: bytes | memoryview, start: int, length: int) -> tuple[str, int] | None:
    if length not in (8, 20):
        return None
    family = data[start + 1]
    port = ((data[start + 2] << 8) | data[start + 3]) ^ 0x2112
    if family == 0x01 and length == 8:
        raw = (int.from_bytes(data[start + 4 : start + 8], "big") ^ MAGIC_COOKIE).to_bytes(4, "big")
        return socket.inet_ntoa(raw), port
    if family == 0x02 and length == 20:
        mask = int.from_bytes(MAGIC_COOKIE_BYTES + bytes(data[8:20]), "big")
        raw = (int.from_bytes(data[start + 4 : start + 20], "big") ^ mask).to_bytes(16, "big")
        if raw[:12] == _V4_MAPPED_PREFIX:
            return socket.inet_ntoa(raw[12:]), port
        return socket.inet_ntop(socket.AF_INET6, raw), port
    return None


def data_indication_head(peer: Address, transaction_id: bytes) -> bytes:
    """Everything of a Data indication to `peer` that does not depend on the payload."""
    value = encode_xor_address(peer, transaction_id)
    return MAGIC_COOKIE_BYTES + transaction_id + b"\x00\x12" + len(value).to_bytes(2, "big") + value


def data_indication(head: bytes, payload: bytes | memoryview) -> bytes | None:
    """A complete Data indication, or None when the payload cannot fit the 16-bit length field."""
    size = len(payload)
    length = len(head) - 16 + 4 + size + (-size & 3)
    if length > MAX_STUN_LENGTH:
        return None
    return (
        DATA_INDICATION_TYPE
        + length.to_bytes(2, "big")
        + head
        + b"\x00\x13"
        + size.to_bytes(2, "big")
        + payload
        + PADDING[size & 3]
    )


def channel_data(header: bytes, payload: bytes | memoryview, stream: bool) -> bytes:
    size = len(payload)
    if stream:
        return header + size.to_bytes(2, "big") + payload + PADDING[size & 3]
    return header + size.to_bytes(2, "big") + payload


def stream_frame_length(buffer: bytes | bytearray | memoryview, offset: int = 0) -> int | None:
    """Total length of the frame starting at `offset` in a TCP/TLS byte stream: STUN messages are
    20 + length bytes; ChannelData is 4 + length rounded up to 4. None = need more bytes.
    Raises ValueError when the first two bits say neither (the stream is garbage: close it)."""
    if len(buffer) - offset < 4:
        return None
    top = buffer[offset] & 0xC0
    length = (buffer[offset + 2] << 8) | buffer[offset + 3]
    if top == 0x00:
        return 20 + length
    if top == 0x40:
        return 4 + length + (-length & 3)
    raise ValueError("stream is neither STUN nor ChannelData")
