"""PROXY protocol v1/v2 parser: valid headers, every truncation point, malformed input, fuzzing."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.server.proxy_protocol import (
    V2_SIGNATURE,
    NeedMore,
    ProxyHeader,
    ProxyHeaderBuffer,
    ProxyProtocolError,
    parse_proxy_header,
)


def v2(
    command: int = 1,
    family: int = 1,
    proto: int = 1,
    addresses: bytes | None = None,
    tlvs: bytes = b"",
    version: int = 2,
    length: int | None = None,
) -> bytes:
    if addresses is None:
        addresses = (
            ipaddress.IPv4Address("203.0.113.7").packed
            + ipaddress.IPv4Address("10.0.1.20").packed
            + struct.pack("!HH", 51234, 3478)
        )
    body = addresses + tlvs
    return (
        V2_SIGNATURE
        + bytes([(version << 4) | command, (family << 4) | proto])
        + struct.pack("!H", len(body) if length is None else length)
        + body
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


# An NLB header: PP2_TYPE_AWS (0xEA) with subtype 0x01 + VPC endpoint id, plus a CRC32C TLV slot.
AWS_TLVS = tlv(0xEA, b"\x01vpce-0123456789abcdef0") + tlv(0x03, b"\x00\x00\x00\x00") + tlv(0x04, b"")


def test_v2_ipv4_with_aws_tlvs_and_payload():
    header = v2(tlvs=AWS_TLVS)
    result = parse_proxy_header(header + b"\x00\x01payload")
    assert result == ProxyHeader(len(header), ("203.0.113.7", 51234), ("10.0.1.20", 3478), 2, "proxy", "tcp")


def test_v2_ipv6():
    addresses = (
        ipaddress.IPv6Address("2001:db8::1").packed
        + ipaddress.IPv6Address("2001:db8::2").packed
        + struct.pack("!HH", 1, 65535)
    )
    result = parse_proxy_header(v2(family=2, addresses=addresses))
    assert isinstance(result, ProxyHeader)
    assert result.source == ("2001:db8::1", 1)
    assert result.destination == ("2001:db8::2", 65535)
    assert result.header_length == 16 + 36


def test_v2_local_command_is_a_health_check_without_addresses():
    header = v2(command=0, family=0, proto=0, addresses=b"")
    assert parse_proxy_header(header) == ProxyHeader(16, None, None, 2, "local", "unspec")


def test_v2_local_with_addresses_still_ignores_them():
    result = parse_proxy_header(v2(command=0))
    assert isinstance(result, ProxyHeader)
    assert (result.command, result.source, result.header_length) == ("local", None, 28)


@pytest.mark.parametrize("family", [0, 3])
def test_v2_unspec_and_unix_families_give_no_address(family):
    addresses = b"\x00" * (216 if family == 3 else 0)
    result = parse_proxy_header(v2(family=family, addresses=addresses))
    assert isinstance(result, ProxyHeader)
    assert result.source is None and result.command == "proxy"


def test_v2_udp_transport_is_reported():
    result = parse_proxy_header(v2(proto=2))
    assert isinstance(result, ProxyHeader) and result.transport == "udp"


@pytest.mark.parametrize("header", [v2(), v2(tlvs=AWS_TLVS), b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"])
def test_every_truncation_asks_for_more(header):
    for cut in range(len(header)):
        result = parse_proxy_header(header[:cut])
        assert isinstance(result, NeedMore), cut
        assert cut < result.at_least <= len(header)
    assert isinstance(parse_proxy_header(header), ProxyHeader)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01\x00\x08", "does not start with a PROXY"),
        (b"GET / HTTP/1.1\r\n\r\n", "does not start with a PROXY"),
        (b"\r\n\r\n\x00\r\nQUIX\n", "signature"),
        (v2(version=1), "version 1"),
        (v2(command=2), "command"),
        (v2(family=4), "family"),
        (v2(proto=3), "family/transport"),
        (v2(length=11), "shorter than the 12 address bytes"),
        (v2(family=2), "shorter than the 36"),
        (v2(tlvs=b"\xea\x00"), "truncated TLV"),
        (v2(tlvs=b"\xea\x00\x05abc"), "overruns"),
        (v2(length=5000, addresses=b"\x00" * 5000), "exceeds the 4096-byte limit"),
    ],
)
def test_v2_malformed(data, message):
    with pytest.raises(ProxyProtocolError, match=message):
        parse_proxy_header(data)


def test_v2_oversized_length_is_rejected_before_the_body_arrives():
    # Only the 16-byte fixed part: the announced 65535-byte length alone must be refused.
    with pytest.raises(ProxyProtocolError, match="limit"):
        parse_proxy_header(v2(length=65535)[:16])


def test_v1_tcp4_and_tcp6():
    line = b"PROXY TCP4 198.51.100.22 10.0.0.5 35646 443\r\n"
    assert parse_proxy_header(line + b"rest") == ProxyHeader(
        len(line), ("198.51.100.22", 35646), ("10.0.0.5", 443), 1, "proxy", "tcp"
    )
    result = parse_proxy_header(b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n")
    assert isinstance(result, ProxyHeader)
    assert result.source == ("2001:db8::1", 0)


def test_v1_unknown_uses_socket_peer():
    result = parse_proxy_header(b"PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n")
    assert isinstance(result, ProxyHeader)
    assert result.source is None


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 \xd9\xa1 2\r\n",
        b"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
        b"PROXZ TCP4",
        b"PROXY " + b"A" * 120,
    ],
)
def test_v1_malformed(line):
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(line)


def test_buffer_feeds_byte_by_byte_and_keeps_the_remainder():
    stream = v2(tlvs=AWS_TLVS) + b"STUN-BYTES"
    buffer = ProxyHeaderBuffer()
    results = [buffer.feed(stream[i : i + 1]) for i in range(len(stream) - 10)]
    assert all(r is None for r in results[:-1])
    assert results[-1] is not None and results[-1].source == ("203.0.113.7", 51234)
    assert buffer.remainder == b""
    buffer2 = ProxyHeaderBuffer()
    header = buffer2.feed(stream)
    assert header is not None and buffer2.remainder == b"STUN-BYTES"
    with pytest.raises(RuntimeError):
        buffer2.feed(b"more")


def test_buffer_applies_its_limit():
    buffer = ProxyHeaderBuffer(max_header_bytes=64)
    with pytest.raises(ProxyProtocolError, match="64-byte limit"):
        buffer.feed(v2(tlvs=tlv(0xEA, b"x" * 100)))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_never_crash(data):
    try:
        result = parse_proxy_header(data)
    except ProxyProtocolError:
        return
    if isinstance(result, ProxyHeader):
        assert 0 < result.header_length <= len(data)
    else:
        assert result.at_least > len(data)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=60),
    st.integers(0, 0xFF),
    st.integers(0, 0xFF),
    st.integers(0, 0xFFFF),
)
def test_fuzz_v2_shaped_input(body, ver_cmd, fam, length):
    data = V2_SIGNATURE + bytes([ver_cmd, fam]) + struct.pack("!H", length) + body
    try:
        result = parse_proxy_header(data)
    except ProxyProtocolError:
        return
    if isinstance(result, ProxyHeader):
        assert result.header_length == 16 + length <= len(data)
        assert ver_cmd >> 4 == 2
    else:
        assert result.at_least == 16 + length > len(data)


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(v=4), st.ip_addresses(v=4), st.integers(0, 65535), st.integers(0, 65535), st.binary(max_size=40))
def test_fuzz_v2_roundtrip_ipv4(src, dst, sport, dport, tail):
    header = v2(addresses=src.packed + dst.packed + struct.pack("!HH", sport, dport))
    result = parse_proxy_header(header + tail)
    assert result == ProxyHeader(len(header), (str(src), sport), (str(dst), dport), 2, "proxy", "tcp")


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(v=6), st.ip_addresses(v=6), st.integers(0, 65535), st.integers(0, 65535))
def test_fuzz_v1_roundtrip_ipv6(src, dst, sport, dport):
    line = f"PROXY TCP6 {src} {dst} {sport} {dport}\r\n".encode()
    result = parse_proxy_header(line)
    assert isinstance(result, ProxyHeader)
    assert (result.source, result.destination) == ((str(src), sport), (str(dst), dport))
