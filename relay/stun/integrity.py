"""MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT checks on decoded messages, the long-term credential
key, and SASLprep for passwords (RFC 8489 sections 9.2.2, 14.5, 14.7; RFC 4013)."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import stringprep
import unicodedata

from relay.stun.constants import FINGERPRINT_XOR, HEADER_LENGTH
from relay.stun.message import Message


def integrity_input(message: Message) -> bytes | None:
    """The bytes MESSAGE-INTEGRITY covers: everything before it, with the header's length field set as if
    the message ended right after it. None when the message carries no MESSAGE-INTEGRITY."""
    offset = message.integrity_offset
    if offset < 0:
        return None
    raw = message.raw
    length = offset + 24 - HEADER_LENGTH
    return raw[:2] + length.to_bytes(2, "big") + raw[4:offset]


def received_integrity(message: Message) -> bytes | None:
    offset = message.integrity_offset
    if offset < 0 or len(message.raw) < offset + 24:
        return None
    return message.raw[offset + 4 : offset + 24]


def integrity_digest(key: bytes, covered: bytes) -> bytes:
    return hmac.digest(key, covered, "sha1")


def verify_integrity(message: Message, key: bytes) -> bool:
    covered = integrity_input(message)
    received = received_integrity(message)
    if covered is None or received is None:
        return False
    return hmac.compare_digest(integrity_digest(key, covered), received)


def verify_fingerprint(message: Message) -> bool | None:
    """True/False when a FINGERPRINT is present, None when there is none."""
    offset = message.fingerprint_offset
    if offset < 0:
        return None
    raw = message.raw
    length = offset + 8 - HEADER_LENGTH
    covered = raw[:2] + length.to_bytes(2, "big") + raw[4:offset]
    expected = (binascii.crc32(covered) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
    return raw[offset + 4 : offset + 8] == expected.to_bytes(4, "big")


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """RFC 8489 section 9.2.2: key = MD5(username ":" realm ":" SASLprep(password))."""
    text = f"{username}:{realm}:{saslprep(password)}"
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).digest()


def saslprep(text: str) -> str:
    """SASLprep (RFC 4013) for stored passwords: map, normalise (NFKC), prohibit, bidi check.

    Raises ValueError for a string SASLprep prohibits. Plain ASCII (every REST password is base64) passes
    through unchanged without the table walk."""
    if text.isascii() and text.isprintable():
        return text
    mapped = "".join(" " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch))
    normalised = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    for ch in normalised:
        if any(check(ch) for check in prohibited):
            raise ValueError(f"character U+{ord(ch):04X} is prohibited by SASLprep")
    if any(stringprep.in_table_d1(ch) for ch in normalised):
        if any(stringprep.in_table_d2(ch) for ch in normalised):
            raise ValueError("SASLprep: mixed right-to-left and left-to-right text")
        if not (stringprep.in_table_d1(normalised[0]) and stringprep.in_table_d1(normalised[-1])):
            raise ValueError("SASLprep: right-to-left text must start and end with a right-to-left character")
    return normalised
