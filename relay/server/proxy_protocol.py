"""PROXY protocol (v2 binary and v1 text) header parser for TCP listeners behind a load balancer.

An AWS NLB (or haproxy) that forwards plain TCP prepends one PROXY header carrying the real client
address. The relay must use that address, not the balancer's, for nonces, quotas and logs; and it must
refuse a connection whose first bytes are not a valid header (otherwise anyone reaching the port
directly could claim any source address, so such a port must only be reachable from the balancer).

The parser is pure and incremental: call `parse_proxy_header(buffer)` with everything received so far.

* `NeedMore`     - the buffer is a valid prefix; read more bytes (at most `max_header_bytes` in total).
* `ProxyHeader`  - `header_length` bytes are the header; the stream payload starts right after it.
                   `source` / `destination` are `(ip, port)` tuples, or `None` for a LOCAL command
                   (NLB health checks), `UNKNOWN` (v1) or an unsupported family: then use the socket peer.
* `ProxyProtocolError` (raised) - not a PROXY header, malformed, or longer than the limit: close the
                   connection. The message says what was wrong and never echoes more than a few bytes.

Usage from a `asyncio.Protocol` (what the TCP server does):

    buf = ProxyHeaderBuffer()
    def data_received(self, data):
        if not self.header_done:
            header = buf.feed(data)          # raises ProxyProtocolError -> close transport
            if header is None:
                return                       # need more
            client = header.source or transport.get_extra_info("peername")
            data = buf.remainder             # bytes after the header belong to the STUN stream
            ...

TLVs (v2) are walked to check they are well formed and then skipped; AWS sends PP2_TYPE_AWS (0xEA)
with the VPC endpoint id, which the relay does not need. Reference: haproxy's proxy-protocol.txt.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Literal

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # including the CRLF (spec section 2.1)
DEFAULT_MAX_HEADER_BYTES = 4096  # v2 allows 64 KiB; nothing legitimate (NLB, haproxy) comes close

_V2_FIXED = 16
_ADDRESS_LENGTHS = {0x1: 12, 0x2: 36, 0x3: 216}  # INET, INET6, UNIX (section 2.2)

Address = tuple[str, int]


class ProxyProtocolError(ValueError):
    """The stream does not start with a valid PROXY header; the connection must be closed."""


@dataclass(frozen=True)
class NeedMore:
    """The buffer is a valid but incomplete header prefix."""

    at_least: int  # total buffer length needed before the next attempt can make progress


@dataclass(frozen=True)
class ProxyHeader:
    header_length: int
    source: Address | None  # None: use the socket's own peer address (LOCAL / UNKNOWN / AF_UNSPEC)
    destination: Address | None
    version: Literal[1, 2]
    command: Literal["proxy", "local"]
    transport: Literal["tcp", "udp", "unspec"] = "tcp"


ParseResult = NeedMore | ProxyHeader


def parse_proxy_header(data: bytes, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> ParseResult:
    """Parse the PROXY header at the start of `data` (see the module docstring for the outcomes)."""
    if not data:
        return NeedMore(1)
    if data[0] == V2_SIGNATURE[0]:
        return _parse_v2(data, max_header_bytes)
    if data[0] == V1_PREFIX[0]:
        return _parse_v1(data)
    raise ProxyProtocolError(f"stream does not start with a PROXY protocol header (first byte 0x{data[0]:02x})")


class ProxyHeaderBuffer:
    """Accumulates stream bytes until a header is complete (convenience wrapper for protocols)."""

    def __init__(self, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> None:
        self._buffer = b""
        self._max = max_header_bytes
        self.header: ProxyHeader | None = None
        self.remainder = b""

    def feed(self, data: bytes) -> ProxyHeader | None:
        """Add bytes; return the header once complete (then `remainder` holds the bytes after it)."""
        if self.header is not None:
            raise RuntimeError("PROXY header already parsed; pass further bytes to the stream handler")
        self._buffer += data
        result = parse_proxy_header(self._buffer, self._max)
        if isinstance(result, NeedMore):
            return None
        self.header = result
        self.remainder = self._buffer[result.header_length :]
        self._buffer = b""
        return result


def _parse_v2(data: bytes, max_header_bytes: int) -> ParseResult:
    prefix = data[: len(V2_SIGNATURE)]
    if not V2_SIGNATURE.startswith(prefix):
        raise ProxyProtocolError("bad PROXY v2 signature")
    if len(data) < _V2_FIXED:
        return NeedMore(_V2_FIXED)
    ver_cmd, fam, length = struct.unpack_from("!BBH", data, 12)
    version, command = ver_cmd >> 4, ver_cmd & 0x0F
    if version != 2:
        raise ProxyProtocolError(f"unsupported PROXY protocol version {version} (expected 2)")
    if command not in (0x0, 0x1):
        raise ProxyProtocolError(f"unknown PROXY v2 command 0x{command:x} (expected LOCAL or PROXY)")
    total = _V2_FIXED + length
    if total > max_header_bytes:
        raise ProxyProtocolError(f"PROXY v2 header of {total} bytes exceeds the {max_header_bytes}-byte limit")
    family, proto = fam >> 4, fam & 0x0F
    if family > 0x3 or proto > 0x2:
        raise ProxyProtocolError(f"unknown PROXY v2 address family/transport byte 0x{fam:02x}")
    address_length = _ADDRESS_LENGTHS.get(family, 0)
    if length < address_length:
        raise ProxyProtocolError(
            f"PROXY v2 length {length} is shorter than the {address_length} address bytes of its family"
        )
    if len(data) < total:
        return NeedMore(total)
    block = data[_V2_FIXED:total]
    _check_tlvs(block[address_length:])
    transport: Literal["tcp", "udp", "unspec"] = ("unspec", "tcp", "udp")[proto]
    if command == 0x0:  # LOCAL: health check or balancer-originated; addresses must be ignored
        return ProxyHeader(total, None, None, 2, "local", transport)
    source = destination = None
    if family == 0x1:
        src, dst, sport, dport = struct.unpack_from("!4s4sHH", block)
        source = (str(ipaddress.IPv4Address(src)), sport)
        destination = (str(ipaddress.IPv4Address(dst)), dport)
    elif family == 0x2:
        src, dst, sport, dport = struct.unpack_from("!16s16sHH", block)
        source = (str(ipaddress.IPv6Address(src)), sport)
        destination = (str(ipaddress.IPv6Address(dst)), dport)
    # AF_UNSPEC and AF_UNIX carry no usable IP address: the receiver uses the real connection endpoints.
    return ProxyHeader(total, source, destination, 2, "proxy", transport)


def _check_tlvs(tlvs: bytes) -> None:
    offset = 0
    while offset < len(tlvs):
        if len(tlvs) - offset < 3:
            raise ProxyProtocolError("truncated TLV header in PROXY v2 header")
        (value_length,) = struct.unpack_from("!H", tlvs, offset + 1)
        offset += 3 + value_length
        if offset > len(tlvs):
            raise ProxyProtocolError("TLV value overruns the PROXY v2 header")


def _parse_v1(data: bytes) -> ParseResult:
    prefix = data[: len(V1_PREFIX)]
    if not V1_PREFIX.startswith(prefix):
        raise ProxyProtocolError("stream does not start with a PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(f"PROXY v1 line longer than {V1_MAX_LENGTH} bytes or without CRLF")
        if b"\n" in data or (b"\r" in data[:-1]):
            raise ProxyProtocolError("PROXY v1 line has a stray CR or LF")
        return NeedMore(len(data) + 1)
    header_length = end + 2
    try:
        line = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("PROXY v1 line is not ASCII") from None
    parts = line.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(header_length, None, None, 1, "proxy", "unspec")
    if len(parts) != 6:
        raise ProxyProtocolError("PROXY v1 line must be 'PROXY TCP4|TCP6 src dst sport dport'")
    _, proto, src, dst, sport, dport = parts
    if proto == "TCP4":
        family: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] = ipaddress.IPv4Address
    elif proto == "TCP6":
        family = ipaddress.IPv6Address
    else:
        raise ProxyProtocolError("PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN")
    try:
        src_ip, dst_ip = family(src), family(dst)
    except ValueError:
        raise ProxyProtocolError(f"PROXY v1 addresses are not valid {proto} addresses") from None
    return ProxyHeader(
        header_length,
        (str(src_ip), _v1_port(sport)),
        (str(dst_ip), _v1_port(dport)),
        1,
        "proxy",
        "tcp",
    )


def _v1_port(text: str) -> int:
    # Strict decimal: no sign, no leading zeros, no spaces (int() alone would accept "+1" or " 1").
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
        raise ProxyProtocolError("PROXY v1 port must be a decimal number 0-65535")
    return int(text)
