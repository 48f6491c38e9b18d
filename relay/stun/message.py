"""STUN message codec (RFC 8489 sections 5, 6 and 14), driven by the attribute table.

`decode` turns one complete message into a `Message`; it raises `StunDecodeError` only for structural
problems (header, lengths, attribute layout), which make the packet "not STUN" and get it discarded.
A known attribute whose *value* is malformed is reported in `Message.malformed` instead, so a request
can be answered with 400 rather than silently dropped. Comprehension-required attributes the table does
not know are listed in `Message.unknown_required` (answered with 420 by the server).

`encode` builds the wire form and appends MESSAGE-INTEGRITY and FINGERPRINT when asked.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from relay.stun.attributes import ATTRIBUTES, AttributeFormatError
from relay.stun.constants import (
    FINGERPRINT_XOR,
    HEADER_LENGTH,
    MAGIC_COOKIE_BYTES,
    Attr,
    MessageClass,
    comprehension_required,
)

MAX_MESSAGE_LENGTH = 0xFFFF + HEADER_LENGTH


class StunDecodeError(ValueError):
    """The bytes are not a well-formed STUN message (discard them)."""


def message_type(method: int, message_class: int) -> int:
    """Interleave the 12 method bits with the 2 class bits (RFC 8489 figure 3)."""
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((message_class & 0b01) << 4)
        | ((message_class & 0b10) << 7)
    )


def split_message_type(value: int) -> tuple[int, MessageClass]:
    method = (value & 0x000F) | ((value & 0x00E0) >> 1) | ((value & 0x3E00) >> 2)
    message_class = ((value & 0x0010) >> 4) | ((value & 0x0100) >> 7)
    return method, MessageClass(message_class)


@dataclass
class Message:
    method: int
    message_class: MessageClass
    transaction_id: bytes
    attributes: list[tuple[int, Any]] = field(default_factory=list)
    # Filled in by `decode`:
    raw: bytes = b""
    integrity_offset: int = -1  # offset in `raw` of the MESSAGE-INTEGRITY attribute header
    fingerprint_offset: int = -1  # offset in `raw` of the FINGERPRINT attribute header
    unknown_required: tuple[int, ...] = ()
    malformed: tuple[int, ...] = ()

    def get(self, attr_type: int, default: Any = None) -> Any:
        """The first occurrence's value (RFC 8489: only the first one needs processing)."""
        for t, value in self.attributes:
            if t == attr_type:
                return value
        return default

    def get_all(self, attr_type: int) -> list[Any]:
        return [value for t, value in self.attributes if t == attr_type]

    def has(self, attr_type: int) -> bool:
        return any(t == attr_type for t, _ in self.attributes)

    def add(self, attr_type: int, value: Any) -> Message:
        self.attributes.append((attr_type, value))
        return self


def decode(data: bytes) -> Message:
    """Decode exactly one STUN message occupying all of `data`."""
    if len(data) < HEADER_LENGTH:
        raise StunDecodeError("shorter than a STUN header")
    if data[0] & 0xC0:
        raise StunDecodeError("first two bits are not zero")
    if data[4:8] != MAGIC_COOKIE_BYTES:
        raise StunDecodeError("magic cookie missing (RFC 3489 messages are not accepted)")
    length = int.from_bytes(data[2:4], "big")
    if length % 4:
        raise StunDecodeError("message length is not a multiple of 4")
    if HEADER_LENGTH + length != len(data):
        raise StunDecodeError("message length does not match the packet")
    method, message_class = split_message_type(int.from_bytes(data[0:2], "big"))
    transaction_id = bytes(data[8:20])
    message = Message(method, message_class, transaction_id, raw=bytes(data))

    attributes: list[tuple[int, Any]] = []
    unknown: list[int] = []
    malformed: list[int] = []
    offset = HEADER_LENGTH
    end = len(data)
    after_integrity = False
    while offset < end:
        if end - offset < 4:
            raise StunDecodeError("truncated attribute header")
        attr_type = int.from_bytes(data[offset : offset + 2], "big")
        attr_length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        value_start = offset + 4
        value_end = value_start + attr_length
        if value_end > end:
            raise StunDecodeError("attribute runs past the end of the message")
        if message.fingerprint_offset >= 0:
            raise StunDecodeError("attribute after FINGERPRINT")
        if attr_type == Attr.FINGERPRINT:
            message.fingerprint_offset = offset
        elif after_integrity:
            # RFC 8489 section 14.5: everything after MESSAGE-INTEGRITY but FINGERPRINT is ignored.
            offset = value_start + ((attr_length + 3) & ~3)
            continue
        elif attr_type == Attr.MESSAGE_INTEGRITY:
            message.integrity_offset = offset
            after_integrity = True
        value = bytes(data[value_start:value_end])
        spec = ATTRIBUTES.get(attr_type)
        if spec is None:
            if comprehension_required(attr_type):
                unknown.append(attr_type)
        else:
            try:
                attributes.append((attr_type, spec.decode(value, transaction_id)))
            except (AttributeFormatError, ValueError):
                malformed.append(attr_type)
        offset = value_start + ((attr_length + 3) & ~3)
    if offset != end:
        raise StunDecodeError("attribute padding runs past the end of the message")
    message.attributes = attributes
    message.unknown_required = tuple(unknown)
    message.malformed = tuple(malformed)
    return message


def _pad(value: bytes) -> bytes:
    return value + b"\x00" * (-len(value) % 4)


def encode(message: Message, *, integrity_key: bytes | None = None, fingerprint: bool = False) -> bytes:
    """Encode `message`; MESSAGE-INTEGRITY (HMAC-SHA1 with `integrity_key`) and FINGERPRINT are computed
    here and appended in the order RFC 8489 requires, whatever `message.attributes` holds for them."""
    tid = message.transaction_id
    parts: list[bytes] = []
    for attr_type, value in message.attributes:
        if attr_type in (Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT):
            continue
        spec = ATTRIBUTES.get(attr_type)
        raw = spec.encode(value, tid) if spec is not None else bytes(value)
        parts.append(attr_type.to_bytes(2, "big") + len(raw).to_bytes(2, "big") + _pad(raw))
    body = b"".join(parts)
    type_bytes = message_type(message.method, message.message_class).to_bytes(2, "big")
    if integrity_key is not None:
        header = type_bytes + (len(body) + 24).to_bytes(2, "big") + MAGIC_COOKIE_BYTES + tid
        digest = hmac.new(integrity_key, header + body, hashlib.sha1).digest()
        body += b"\x00\x08\x00\x14" + digest
    if fingerprint:
        header = type_bytes + (len(body) + 8).to_bytes(2, "big") + MAGIC_COOKIE_BYTES + tid
        crc = (binascii.crc32(header + body) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
        body += b"\x80\x28\x00\x04" + crc.to_bytes(4, "big")
    return type_bytes + len(body).to_bytes(2, "big") + MAGIC_COOKIE_BYTES + tid + body


def looks_like_stun(data: bytes) -> bool:
    """Cheap demultiplexing test (RFC 8489 section 7 / RFC 7983): zero top bits and the magic cookie."""
    return len(data) >= HEADER_LENGTH and not data[0] & 0xC0 and data[4:8] == MAGIC_COOKIE_BYTES
