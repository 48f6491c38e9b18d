"""The attribute table: one entry per attribute type the relay understands, each with a decoder and an
encoder for its value. Adding an attribute is adding a row; the message codec never special-cases types.

Values in Python:
  addresses        (host, port) with host in inet_ntop text form ("192.0.2.1", "2001:db8::1")
  ERROR-CODE       (code, reason)
  UNKNOWN-ATTRIBUTES tuple of ints
  flags (DONT-FRAGMENT, USE-CANDIDATE)  True
  EVEN-PORT        bool (the R bit: reserve the next port)
  address families int (FAMILY_IPV4 / FAMILY_IPV6 or whatever the client sent)
  ADDRESS-ERROR-CODE (family, code, reason)
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.stun.constants import FAMILY_IPV4, FAMILY_IPV6, MAGIC_COOKIE, MAGIC_COOKIE_BYTES, Attr

Address = tuple[str, int]
_XOR_ADDRESS_V4 = struct.Struct("!BBHI")

# RFC 8489 section 14: limits on text attributes (in bytes, after UTF-8 encoding).
MAX_USERNAME = 513
MAX_REALM_OR_NONCE = 763
MAX_SOFTWARE = 763
MAX_REASON = 763


class AttributeFormatError(ValueError):
    """A known attribute's value does not have the format its RFC defines."""


def _need(value: bytes, length: int, name: str) -> None:
    if len(value) != length:
        raise AttributeFormatError(f"{name} must be {length} bytes, got {len(value)}")


# --- addresses ---------------------------------------------------------------------------------


def _xor(data: bytes, mask: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")).to_bytes(len(data), "big")


def _decode_address_bytes(value: bytes, mask: bytes | None) -> Address:
    if len(value) < 4:
        raise AttributeFormatError("address attribute shorter than 4 bytes")
    family = value[1]
    port = int.from_bytes(value[2:4], "big")
    raw = value[4:]
    if family == FAMILY_IPV4:
        _need(raw, 4, "IPv4 address")
        if mask is not None:
            port ^= 0x2112
            raw = _xor(raw, mask[:4])
        return socket.inet_ntop(socket.AF_INET, raw), port
    if family == FAMILY_IPV6:
        _need(raw, 16, "IPv6 address")
        if mask is not None:
            port ^= 0x2112
            raw = _xor(raw, mask)
        return socket.inet_ntop(socket.AF_INET6, raw), port
    raise AttributeFormatError(f"unknown address family {family:#04x}")


def _encode_address_bytes(address: Address, mask: bytes | None) -> bytes:
    host, port = address[0], address[1]
    if ":" in host:
        family, raw = FAMILY_IPV6, socket.inet_pton(socket.AF_INET6, host)
    else:
        family, raw = FAMILY_IPV4, socket.inet_pton(socket.AF_INET, host)
    if mask is not None:
        port ^= 0x2112
        raw = _xor(raw, mask[: len(raw)])
    return struct.pack("!BBH", 0, family, port) + raw


def decode_address(value: bytes, transaction_id: bytes) -> Address:
    return _decode_address_bytes(value, None)


def encode_address(address: Address, transaction_id: bytes) -> bytes:
    return _encode_address_bytes(address, None)


def decode_xor_address(value: bytes, transaction_id: bytes) -> Address:
    return _decode_address_bytes(value, MAGIC_COOKIE_BYTES + transaction_id)


def encode_xor_address(address: Address, transaction_id: bytes) -> bytes:
    host = address[0]
    if ":" not in host:  # IPv4, every response's XOR-MAPPED-ADDRESS: one pack, no byte-wise XOR
        packed = int.from_bytes(socket.inet_pton(socket.AF_INET, host), "big")
        return _XOR_ADDRESS_V4.pack(0, FAMILY_IPV4, address[1] ^ 0x2112, packed ^ MAGIC_COOKIE)
    return _encode_address_bytes(address, MAGIC_COOKIE_BYTES + transaction_id)


# --- scalars and text --------------------------------------------------------------------------


def _uint32_codec(name: str) -> tuple[Callable[[bytes, bytes], int], Callable[[int, bytes], bytes]]:
    def decode(value: bytes, transaction_id: bytes) -> int:
        _need(value, 4, name)
        return int.from_bytes(value, "big")

    def encode(number: int, transaction_id: bytes) -> bytes:
        return number.to_bytes(4, "big")

    return decode, encode


def _uint64_decode(value: bytes, transaction_id: bytes) -> int:
    _need(value, 8, "ICE tie-breaker")
    return int.from_bytes(value, "big")


def _uint64_encode(number: int, transaction_id: bytes) -> bytes:
    return number.to_bytes(8, "big")


def _text_codec(name: str, limit: int) -> tuple[Callable[[bytes, bytes], str], Callable[[str, bytes], bytes]]:
    def decode(value: bytes, transaction_id: bytes) -> str:
        if len(value) > limit:
            raise AttributeFormatError(f"{name} longer than {limit} bytes")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise AttributeFormatError(f"{name} is not UTF-8") from error

    def encode(text: str, transaction_id: bytes) -> bytes:
        return text.encode("utf-8")

    return decode, encode


def _bytes_decode(value: bytes, transaction_id: bytes) -> bytes:
    return value


def _bytes_encode(value: bytes, transaction_id: bytes) -> bytes:
    return bytes(value)


def _fixed_bytes_decode(length: int, name: str) -> Callable[[bytes, bytes], bytes]:
    def decode(value: bytes, transaction_id: bytes) -> bytes:
        _need(value, length, name)
        return value

    return decode


def _flag_decode(value: bytes, transaction_id: bytes) -> bool:
    if value:
        raise AttributeFormatError("flag attribute must be empty")
    return True


def _flag_encode(value: bool, transaction_id: bytes) -> bytes:
    return b""


def _error_number(value: bytes) -> int:
    """Class (3 bits) and number (0-99) as one code in 300-699 (RFC 8489 section 14.8)."""
    error_class, number = value[2] & 0x07, value[3]
    if not 3 <= error_class <= 6 or number > 99:
        raise AttributeFormatError(f"error code class {error_class} / number {number} is not a code in 300-699")
    return error_class * 100 + number


def _error_code_decode(value: bytes, transaction_id: bytes) -> tuple[int, str]:
    if len(value) < 4:
        raise AttributeFormatError("ERROR-CODE shorter than 4 bytes")
    code = _error_number(value)
    reason = value[4:]
    if len(reason) > MAX_REASON:
        raise AttributeFormatError("ERROR-CODE reason too long")
    return code, reason.decode("utf-8", errors="replace")


def _error_code_encode(value: tuple[int, str], transaction_id: bytes) -> bytes:
    code, reason = value
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode("utf-8")


def _unknown_attributes_decode(value: bytes, transaction_id: bytes) -> tuple[int, ...]:
    if len(value) % 2:
        raise AttributeFormatError("UNKNOWN-ATTRIBUTES length is odd")
    return tuple(int.from_bytes(value[i : i + 2], "big") for i in range(0, len(value), 2))


def _unknown_attributes_encode(value: tuple[int, ...], transaction_id: bytes) -> bytes:
    return b"".join(t.to_bytes(2, "big") for t in value)


def _channel_number_decode(value: bytes, transaction_id: bytes) -> int:
    _need(value, 4, "CHANNEL-NUMBER")
    return int.from_bytes(value[:2], "big")  # the 2 RFFU bytes are ignored on reception


def _channel_number_encode(number: int, transaction_id: bytes) -> bytes:
    return number.to_bytes(2, "big") + b"\x00\x00"


def _family_decode(value: bytes, transaction_id: bytes) -> int:
    _need(value, 4, "address family attribute")
    return value[0]


def _family_encode(family: int, transaction_id: bytes) -> bytes:
    return bytes((family, 0, 0, 0))


def _even_port_decode(value: bytes, transaction_id: bytes) -> bool:
    _need(value, 1, "EVEN-PORT")
    return bool(value[0] & 0x80)


def _even_port_encode(reserve: bool, transaction_id: bytes) -> bytes:
    return b"\x80" if reserve else b"\x00"


def _requested_transport_decode(value: bytes, transaction_id: bytes) -> int:
    _need(value, 4, "REQUESTED-TRANSPORT")
    return value[0]


def _requested_transport_encode(protocol: int, transaction_id: bytes) -> bytes:
    return bytes((protocol, 0, 0, 0))


def _address_error_decode(value: bytes, transaction_id: bytes) -> tuple[int, int, str]:
    if len(value) < 4:
        raise AttributeFormatError("ADDRESS-ERROR-CODE shorter than 4 bytes")
    code = _error_number(value)
    return value[0], code, value[4:].decode("utf-8", errors="replace")


def _address_error_encode(value: tuple[int, int, str], transaction_id: bytes) -> bytes:
    family, code, reason = value
    return struct.pack("!BBBB", family, 0, code // 100, code % 100) + reason.encode("utf-8")


@dataclass(frozen=True)
class AttributeSpec:
    name: str
    decode: Callable[[bytes, bytes], Any]
    encode: Callable[[Any, bytes], bytes]


_u32_lifetime = _uint32_codec("LIFETIME")
_u32_priority = _uint32_codec("PRIORITY")
_u32_fingerprint = _uint32_codec("FINGERPRINT")
_username = _text_codec("USERNAME", MAX_USERNAME)
_realm = _text_codec("REALM", MAX_REALM_OR_NONCE)
_nonce = _text_codec("NONCE", MAX_REALM_OR_NONCE)
_software = _text_codec("SOFTWARE", MAX_SOFTWARE)

ATTRIBUTES: dict[int, AttributeSpec] = {
    Attr.MAPPED_ADDRESS: AttributeSpec("MAPPED-ADDRESS", decode_address, encode_address),
    Attr.USERNAME: AttributeSpec("USERNAME", *_username),
    Attr.MESSAGE_INTEGRITY: AttributeSpec(
        "MESSAGE-INTEGRITY", _fixed_bytes_decode(20, "MESSAGE-INTEGRITY"), _bytes_encode
    ),
    Attr.ERROR_CODE: AttributeSpec("ERROR-CODE", _error_code_decode, _error_code_encode),
    Attr.UNKNOWN_ATTRIBUTES: AttributeSpec(
        "UNKNOWN-ATTRIBUTES", _unknown_attributes_decode, _unknown_attributes_encode
    ),
    Attr.REALM: AttributeSpec("REALM", *_realm),
    Attr.NONCE: AttributeSpec("NONCE", *_nonce),
    Attr.XOR_MAPPED_ADDRESS: AttributeSpec("XOR-MAPPED-ADDRESS", decode_xor_address, encode_xor_address),
    Attr.CHANNEL_NUMBER: AttributeSpec("CHANNEL-NUMBER", _channel_number_decode, _channel_number_encode),
    Attr.LIFETIME: AttributeSpec("LIFETIME", *_u32_lifetime),
    Attr.XOR_PEER_ADDRESS: AttributeSpec("XOR-PEER-ADDRESS", decode_xor_address, encode_xor_address),
    Attr.DATA: AttributeSpec("DATA", _bytes_decode, _bytes_encode),
    Attr.XOR_RELAYED_ADDRESS: AttributeSpec("XOR-RELAYED-ADDRESS", decode_xor_address, encode_xor_address),
    Attr.REQUESTED_ADDRESS_FAMILY: AttributeSpec("REQUESTED-ADDRESS-FAMILY", _family_decode, _family_encode),
    Attr.EVEN_PORT: AttributeSpec("EVEN-PORT", _even_port_decode, _even_port_encode),
    Attr.REQUESTED_TRANSPORT: AttributeSpec(
        "REQUESTED-TRANSPORT", _requested_transport_decode, _requested_transport_encode
    ),
    Attr.DONT_FRAGMENT: AttributeSpec("DONT-FRAGMENT", _flag_decode, _flag_encode),
    Attr.RESERVATION_TOKEN: AttributeSpec(
        "RESERVATION-TOKEN", _fixed_bytes_decode(8, "RESERVATION-TOKEN"), _bytes_encode
    ),
    Attr.PRIORITY: AttributeSpec("PRIORITY", *_u32_priority),
    Attr.USE_CANDIDATE: AttributeSpec("USE-CANDIDATE", _flag_decode, _flag_encode),
    Attr.ADDITIONAL_ADDRESS_FAMILY: AttributeSpec("ADDITIONAL-ADDRESS-FAMILY", _family_decode, _family_encode),
    Attr.ADDRESS_ERROR_CODE: AttributeSpec("ADDRESS-ERROR-CODE", _address_error_decode, _address_error_encode),
    Attr.SOFTWARE: AttributeSpec("SOFTWARE", *_software),
    Attr.ALTERNATE_SERVER: AttributeSpec("ALTERNATE-SERVER", decode_address, encode_address),
    Attr.FINGERPRINT: AttributeSpec("FINGERPRINT", *_u32_fingerprint),
    Attr.ICE_CONTROLLED: AttributeSpec("ICE-CONTROLLED", _uint64_decode, _uint64_encode),
    Attr.ICE_CONTROLLING: AttributeSpec("ICE-CONTROLLING", _uint64_decode, _uint64_encode),
}


def attribute_name(attr_type: int) -> str:
    spec = ATTRIBUTES.get(attr_type)
    return spec.name if spec else f"0x{attr_type:04X}"
