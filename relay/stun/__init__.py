"""STUN (RFC 8489) codec: constants, the attribute table, message encode/decode, integrity and
fingerprint. Pure functions over bytes; no sockets, no clocks."""

from __future__ import annotations

from relay.stun.attributes import ATTRIBUTES, Address, AttributeFormatError, attribute_name
from relay.stun.constants import (
    CHANNEL_MAX,
    CHANNEL_MIN,
    FAMILY_IPV4,
    FAMILY_IPV6,
    HEADER_LENGTH,
    MAGIC_COOKIE,
    REASONS,
    TRANSPORT_UDP,
    Attr,
    ErrorCode,
    MessageClass,
    Method,
)
from relay.stun.integrity import (
    long_term_key,
    saslprep,
    verify_fingerprint,
    verify_integrity,
)
from relay.stun.message import Message, StunDecodeError, decode, encode, looks_like_stun

__all__ = [
    "ATTRIBUTES",
    "CHANNEL_MAX",
    "CHANNEL_MIN",
    "FAMILY_IPV4",
    "FAMILY_IPV6",
    "HEADER_LENGTH",
    "MAGIC_COOKIE",
    "REASONS",
    "TRANSPORT_UDP",
    "Address",
    "Attr",
    "AttributeFormatError",
    "ErrorCode",
    "Message",
    "MessageClass",
    "Method",
    "StunDecodeError",
    "attribute_name",
    "decode",
    "encode",
    "long_term_key",
    "looks_like_stun",
    "saslprep",
    "verify_fingerprint",
    "verify_integrity",
]
