"""Hypothesis strategies shared by the relay fuzz tests: STUN-shaped messages with fuzzed attribute
sections, mostly-valid TURN requests (so fuzzing reaches success paths), and ChannelData-shaped frames."""

from __future__ import annotations

import os

from hypothesis import strategies as st

from relay.stun import Attr, Message, MessageClass, Method, encode
from relay.stun.attributes import ATTRIBUTES, encode_xor_address
from relay.stun.constants import MAGIC_COOKIE_BYTES

KNOWN_TYPES = sorted(ATTRIBUTES)
METHODS = [Method.BINDING, Method.ALLOCATE, Method.REFRESH, Method.CREATE_PERMISSION, Method.CHANNEL_BIND,
           Method.SEND, Method.DATA, 0x00A, 0x00B, 0xFFF]  # fmt: skip


def tlv(attr_type: int, value: bytes) -> bytes:
    return attr_type.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value + b"\x00" * (-len(value) % 4)


well_formed_values = {
    Attr.REQUESTED_TRANSPORT: st.sampled_from([b"\x11\x00\x00\x00", b"\x06\x00\x00\x00"]),
    Attr.LIFETIME: st.integers(0, 2**32 - 1).map(lambda v: v.to_bytes(4, "big")),
    Attr.CHANNEL_NUMBER: st.integers(0, 0xFFFF).map(lambda v: v.to_bytes(2, "big") + b"\x00\x00"),
    Attr.REQUESTED_ADDRESS_FAMILY: st.sampled_from([b"\x01\x00\x00\x00", b"\x02\x00\x00\x00", b"\x03\x00\x00\x00"]),
    Attr.ADDITIONAL_ADDRESS_FAMILY: st.sampled_from([b"\x01\x00\x00\x00", b"\x02\x00\x00\x00"]),
    Attr.EVEN_PORT: st.sampled_from([b"\x80", b"\x00"]),
    Attr.DONT_FRAGMENT: st.just(b""),
    Attr.RESERVATION_TOKEN: st.binary(min_size=8, max_size=8),
}
peer_hosts = st.sampled_from(["52.1.2.3", "127.0.0.1", "::ffff:127.0.0.1", "0.0.0.0", "::", "2600::1", "10.0.0.1"])
# Templates lean towards allowed peers so that successes are common, refusals still present.
template_peers = st.sampled_from(["52.1.2.3"] * 4 + ["52.1.2.4", "2600::1", "127.0.0.1", "::ffff:127.0.0.1", "::"])


@st.composite
def attribute_sections(draw) -> bytes:
    """A list of TLVs: known types with valid or random values, XOR addresses, unknown types, junk."""
    tid = draw(st.binary(min_size=12, max_size=12))
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            attr = draw(st.sampled_from(list(well_formed_values)))
            parts.append(tlv(attr, draw(well_formed_values[attr])))
        elif kind == 1:
            peer = (draw(peer_hosts), draw(st.integers(0, 65535)))
            parts.append(tlv(Attr.XOR_PEER_ADDRESS, encode_xor_address(peer, tid)))
        elif kind == 2:
            parts.append(tlv(draw(st.sampled_from(KNOWN_TYPES)), draw(st.binary(max_size=40))))
        elif kind == 3:
            parts.append(tlv(draw(st.integers(0, 0xFFFF)), draw(st.binary(max_size=24))))
        else:
            parts.append(draw(st.binary(max_size=12)))  # misaligned junk
    return b"".join(parts)


@st.composite
def stun_like(draw) -> bytes:
    """Header-valid STUN messages with a fuzzed attribute section and a consistent or lying length."""
    method = draw(st.sampled_from(METHODS))
    message_class = draw(st.sampled_from(list(MessageClass)))
    body = draw(attribute_sections())
    header_type = encode(Message(method, message_class, b"\x00" * 12))[:2]
    length = len(body) if draw(st.booleans()) else draw(st.integers(0, 0xFFFF))
    return header_type + length.to_bytes(2, "big") + MAGIC_COOKIE_BYTES + os.urandom(12) + body


anything = st.one_of(st.binary(max_size=200), stun_like())


@st.composite
def templated_sections(draw, method: int) -> bytes:
    """Mostly-valid attributes for `method`, so the fuzz reaches success paths as well as refusals."""
    parts: list[tuple[int, object]] = []
    if method == Method.ALLOCATE:
        parts.append((Attr.REQUESTED_TRANSPORT, 17))
        if draw(st.booleans()):
            parts.append((Attr.LIFETIME, draw(st.integers(0, 10_000))))
        for attr in (Attr.EVEN_PORT, Attr.DONT_FRAGMENT, Attr.REQUESTED_ADDRESS_FAMILY, Attr.ADDITIONAL_ADDRESS_FAMILY):
            if draw(st.integers(0, 3)) == 0:
                value = {Attr.EVEN_PORT: draw(st.booleans()), Attr.DONT_FRAGMENT: True}.get(
                    attr, draw(st.sampled_from([1, 2]))
                )
                parts.append((attr, value))
    elif method == Method.REFRESH:
        if draw(st.booleans()):
            parts.append((Attr.LIFETIME, draw(st.sampled_from([0, 1, 600, 99999]))))
    elif method == Method.CREATE_PERMISSION:
        for _ in range(draw(st.integers(1, 3))):
            parts.append((Attr.XOR_PEER_ADDRESS, (draw(template_peers), draw(st.integers(0, 65535)))))
    else:
        parts.append((Attr.CHANNEL_NUMBER, draw(st.integers(0x3FF0, 0x5010))))
        parts.append((Attr.XOR_PEER_ADDRESS, (draw(template_peers), draw(st.integers(0, 65535)))))
    return parts


@st.composite
def channel_data_like(draw) -> bytes:
    number = draw(st.integers(0x4000, 0x7FFF))
    payload = draw(st.binary(max_size=64))
    length = len(payload) if draw(st.booleans()) else draw(st.integers(0, 0xFFFF))
    return number.to_bytes(2, "big") + length.to_bytes(2, "big") + payload + b"\x00" * draw(st.integers(0, 3))


stream_chunks = st.lists(st.one_of(anything, channel_data_like()), max_size=6)
