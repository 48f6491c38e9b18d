"""STUN codec: the RFC 5769 test vectors, round trips, and every structural rejection."""

from __future__ import annotations

import hashlib

import pytest

from relay.stun import (
    Attr,
    ErrorCode,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    decode,
    encode,
    long_term_key,
    looks_like_stun,
    saslprep,
    verify_fingerprint,
    verify_integrity,
)
from relay.stun.message import message_type, split_message_type


def hexbytes(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


TID = hexbytes("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae")
SHORT_TERM_PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"

# RFC 5769 section 2.1
SAMPLE_REQUEST = hexbytes("""
    00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
    00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36
    00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
    00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
    80 28 00 04 e5 7a 3b cf""")
# RFC 5769 section 2.2
SAMPLE_IPV4_RESPONSE = hexbytes("""
    01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
    80 28 00 04 c0 7d 4c 96""")
# RFC 5769 section 2.3
SAMPLE_IPV6_RESPONSE = hexbytes("""
    01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
    00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
    80 28 00 04 c8 fb 0b 4c""")
# RFC 5769 section 2.4
SAMPLE_LONG_TERM_REQUEST = hexbytes("""
    00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
    00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
    00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
    00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
    00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66""")


def test_rfc5769_sample_request() -> None:
    message = decode(SAMPLE_REQUEST)
    assert (message.method, message.message_class) == (Method.BINDING, MessageClass.REQUEST)
    assert message.transaction_id == TID
    assert message.get(Attr.SOFTWARE) == "STUN test client"
    assert message.get(Attr.PRIORITY) == 0x6E0001FF
    assert message.get(Attr.ICE_CONTROLLED) == 0x932FF9B151263B36
    assert message.get(Attr.USERNAME) == "evtj:h6vY"
    assert verify_integrity(message, SHORT_TERM_PASSWORD)
    assert not verify_integrity(message, b"wrong password")
    assert verify_fingerprint(message) is True


def test_rfc5769_ipv4_response() -> None:
    message = decode(SAMPLE_IPV4_RESPONSE)
    assert message.message_class == MessageClass.SUCCESS
    assert message.get(Attr.SOFTWARE) == "test vector"
    assert message.get(Attr.XOR_MAPPED_ADDRESS) == ("192.0.2.1", 32853)
    assert verify_integrity(message, SHORT_TERM_PASSWORD)
    assert verify_fingerprint(message) is True


def test_rfc5769_ipv6_response() -> None:
    message = decode(SAMPLE_IPV6_RESPONSE)
    assert message.get(Attr.XOR_MAPPED_ADDRESS) == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert verify_integrity(message, SHORT_TERM_PASSWORD)
    assert verify_fingerprint(message) is True


def test_rfc5769_long_term_request() -> None:
    message = decode(SAMPLE_LONG_TERM_REQUEST)
    username = message.get(Attr.USERNAME)
    assert username == "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert message.get(Attr.NONCE) == "f//499k954d6OL34oL9FSTvy64sA"
    assert message.get(Attr.REALM) == "example.org"
    assert verify_fingerprint(message) is None
    # The password as the RFC gives it, before SASLprep: soft hyphen, feminine ordinal, roman numeral nine.
    key = long_term_key(username, "example.org", "The\u00adM\u00aatr\u2168")
    assert key == hashlib.md5(f"{username}:example.org:TheMatrIX".encode()).digest()
    assert verify_integrity(message, key)


def test_long_term_vector_reencodes_byte_for_byte() -> None:
    """Section 2.4 pads with zeros, as our encoder does, so re-encoding must give the RFC's bytes."""
    original = decode(SAMPLE_LONG_TERM_REQUEST)
    rebuilt = Message(Method.BINDING, MessageClass.REQUEST, original.transaction_id)
    for attr in (Attr.USERNAME, Attr.NONCE, Attr.REALM):
        rebuilt.add(attr, original.get(attr))
    key = long_term_key(original.get(Attr.USERNAME), "example.org", "TheMatrIX")
    assert encode(rebuilt, integrity_key=key) == SAMPLE_LONG_TERM_REQUEST


def test_responses_reencode_with_same_integrity_and_fingerprint_semantics() -> None:
    """Sections 2.2/2.3 pad SOFTWARE with spaces; our re-encoding differs only in those pad bytes."""
    for vector in (SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE):
        original = decode(vector)
        rebuilt = Message(Method.BINDING, MessageClass.SUCCESS, original.transaction_id)
        rebuilt.add(Attr.SOFTWARE, original.get(Attr.SOFTWARE))
        rebuilt.add(Attr.XOR_MAPPED_ADDRESS, original.get(Attr.XOR_MAPPED_ADDRESS))
        wire = encode(rebuilt, integrity_key=SHORT_TERM_PASSWORD, fingerprint=True)
        assert len(wire) == len(vector)
        differing = [i for i, (a, b) in enumerate(zip(wire, vector, strict=True)) if a != b]
        # Only the padding byte after "test vector" and the MI/FINGERPRINT values that cover it differ.
        assert 35 in differing and all(i == 35 or i >= len(vector) - 32 for i in differing)
        again = decode(wire)
        assert verify_integrity(again, SHORT_TERM_PASSWORD) and verify_fingerprint(again)
        assert again.get(Attr.XOR_MAPPED_ADDRESS) == original.get(Attr.XOR_MAPPED_ADDRESS)


def test_saslprep_rules() -> None:
    assert saslprep("user") == "user"
    assert saslprep("I\u00adX") == "IX"  # soft hyphen maps to nothing
    assert saslprep("a\u00a0b") == "a b"  # non-ASCII space maps to space
    with pytest.raises(ValueError, match="prohibited"):
        saslprep("a\u0007b")
    with pytest.raises(ValueError, match="right-to-left"):
        saslprep("\u0627\u0031")


@pytest.mark.parametrize("method", [0x001, 0x003, 0x009, 0xFFF, 0xABC])
@pytest.mark.parametrize("message_class", list(MessageClass))
def test_message_type_interleaving_round_trips(method: int, message_class: MessageClass) -> None:
    assert split_message_type(message_type(method, message_class)) == (method, message_class)


def test_known_message_types() -> None:
    assert message_type(Method.BINDING, MessageClass.REQUEST) == 0x0001
    assert message_type(Method.BINDING, MessageClass.SUCCESS) == 0x0101
    assert message_type(Method.ALLOCATE, MessageClass.ERROR) == 0x0113
    assert message_type(Method.SEND, MessageClass.INDICATION) == 0x0016
    assert message_type(Method.DATA, MessageClass.INDICATION) == 0x0017


def _request(*attributes: tuple[int, object], method: int = Method.ALLOCATE) -> Message:
    message = Message(method, MessageClass.REQUEST, b"\x01" * 12)
    for attr, value in attributes:
        message.add(attr, value)
    return message


def test_turn_attributes_round_trip() -> None:
    message = _request(
        (Attr.REQUESTED_TRANSPORT, 17),
        (Attr.LIFETIME, 600),
        (Attr.EVEN_PORT, True),
        (Attr.DONT_FRAGMENT, True),
        (Attr.RESERVATION_TOKEN, b"12345678"),
        (Attr.REQUESTED_ADDRESS_FAMILY, 2),
        (Attr.ADDITIONAL_ADDRESS_FAMILY, 2),
        (Attr.CHANNEL_NUMBER, 0x4001),
        (Attr.XOR_PEER_ADDRESS, ("2001:db8::7", 5000)),
        (Attr.XOR_PEER_ADDRESS, ("198.51.100.9", 6000)),
        (Attr.DATA, b"hello"),
        (Attr.ERROR_CODE, (438, "Stale Nonce")),
        (Attr.UNKNOWN_ATTRIBUTES, (0x7777, 0x0030)),
        (Attr.ADDRESS_ERROR_CODE, (2, 440, "no")),
    )
    decoded = decode(encode(message, fingerprint=True))
    assert decoded.attributes[:-1] == message.attributes
    assert decoded.attributes[-1][0] == Attr.FINGERPRINT and verify_fingerprint(decoded)
    assert decoded.get_all(Attr.XOR_PEER_ADDRESS) == [("2001:db8::7", 5000), ("198.51.100.9", 6000)]
    assert decoded.malformed == () and decoded.unknown_required == ()


def test_unknown_and_malformed_attributes_are_reported_not_fatal() -> None:
    good = encode(_request((Attr.LIFETIME, 5)))
    # Append: unknown comprehension-required 0x7777, unknown optional 0xC001, malformed LIFETIME (2 bytes).
    extra = b"\x77\x77\x00\x00" + b"\xc0\x01\x00\x01x\x00\x00\x00" + b"\x00\x0d\x00\x02\x00\x01\x00\x00"
    raw = good[:2] + (len(good) - 20 + len(extra)).to_bytes(2, "big") + good[4:] + extra
    message = decode(raw)
    assert message.unknown_required == (0x7777,)
    assert message.malformed == (Attr.LIFETIME,)
    assert message.get(Attr.LIFETIME) == 5


def test_attributes_after_integrity_are_ignored_but_fingerprint_is_read() -> None:
    key = b"k" * 16
    wire = encode(_request((Attr.USERNAME, "u")), integrity_key=key)
    trailer = b"\x00\x0d\x00\x04\x00\x00\x00\x09"  # LIFETIME after MI must be ignored
    raw = wire[:2] + (len(wire) - 20 + 8).to_bytes(2, "big") + wire[4:] + trailer
    message = decode(raw)
    assert message.get(Attr.LIFETIME) is None
    assert verify_integrity(message, key)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00\x01\x00", "shorter"),
        (b"\x80\x01\x00\x00\x21\x12\xa4\x42" + b"\x00" * 12, "first two bits"),
        (b"\x00\x01\x00\x00\x21\x12\xa4\x43" + b"\x00" * 12, "magic cookie"),
        (b"\x00\x01\x00\x02\x21\x12\xa4\x42" + b"\x00" * 14, "multiple of 4"),
        (b"\x00\x01\x00\x08\x21\x12\xa4\x42" + b"\x00" * 12 + b"\x00\x06\x00\x08abcd", "past the end"),
        (b"\x00\x01\x00\x04\x21\x12\xa4\x42" + b"\x00" * 12 + b"\x00\x06\x00\x00" + b"xx", "does not match"),
        (b"\x00\x01\x00\x04\x21\x12\xa4\x42" + b"\x00" * 12 + b"\x00\x06\x00\x03", "past the end"),
    ],
)
def test_structural_errors_raise(raw: bytes, reason: str) -> None:
    with pytest.raises(StunDecodeError, match=reason):
        decode(raw)


def test_attribute_after_fingerprint_is_rejected() -> None:
    wire = encode(_request((Attr.LIFETIME, 1)), fingerprint=True)
    raw = wire[:2] + (len(wire) - 20 + 8).to_bytes(2, "big") + wire[4:] + b"\x00\x0d\x00\x04\x00\x00\x00\x01"
    with pytest.raises(StunDecodeError, match="after FINGERPRINT"):
        decode(raw)


def test_corrupted_fingerprint_is_detected() -> None:
    wire = bytearray(encode(_request((Attr.LIFETIME, 1)), fingerprint=True))
    wire[-1] ^= 0xFF
    assert verify_fingerprint(decode(bytes(wire))) is False


@pytest.mark.parametrize("raw", [b"\x00\x00\x07\x64", b"\x00\x00\x02\x00", b"\x00\x00\x04\x64", b"\x00\x00"])
def test_error_codes_outside_300_699_are_malformed(raw: bytes) -> None:
    for attr in (Attr.ERROR_CODE, Attr.ADDRESS_ERROR_CODE):
        value = raw + b"\x00" * (-len(raw) % 4)
        header = b"\x01\x13" + (4 + len(value)).to_bytes(2, "big") + b"\x21\x12\xa4\x42" + TID
        wire = header + attr.to_bytes(2, "big") + len(raw).to_bytes(2, "big") + value
        assert decode(wire).malformed == (attr,)


def test_looks_like_stun() -> None:
    assert looks_like_stun(SAMPLE_REQUEST)
    assert not looks_like_stun(b"\x40\x00\x00\x04abcd" + b"\x00" * 16)
    assert not looks_like_stun(b"\x00\x01")


def test_error_code_encoding_matches_rfc_layout() -> None:
    wire = encode(Message(Method.ALLOCATE, MessageClass.ERROR, TID, [(Attr.ERROR_CODE, (ErrorCode.STALE_NONCE, "x"))]))
    # class 4, number 38, after two zero bytes
    assert wire[20:28] == b"\x00\x09\x00\x05\x00\x00\x04\x26"
