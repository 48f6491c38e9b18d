"""Stateless nonces bound to the client's transport address (RFC 8489 section 9.2).

A nonce is `tttttttt` (issue time, 8 hex digits of unix seconds) followed by 16 base64url characters:
the first 12 bytes of HMAC-SHA256(K, "<time>|<ip>|<port>"). A nonce is issued or checked on every
request, so the HMAC starts from a copy of a prototype already keyed with K (1.0 us instead of 1.5).

The server stores nothing per client: a nonce proves that whoever sends it received our earlier answer
at that address (like a SYN cookie), so no state is created for a source until it echoes a valid
nonce. Every worker and instance that derives K from the same secret accepts the others' nonces.

Pure: the caller passes the time and the secret.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac

NONCE_LENGTH = 24
_MAC_BYTES = 12
_CLOCK_SKEW = 60.0  # seconds a nonce may come from "the future" (instances' clocks differ slightly)
_KEY_LABEL = b"bbb-turn-relay stateless nonce v1\x00"
_HEX_DIGITS = frozenset("0123456789abcdef")


class NonceStatus(enum.Enum):
    VALID = "valid"
    STALE = "stale"  # well-formed and ours, but too old: 438 so the client retries with a fresh one
    INVALID = "invalid"  # not ours, or bound to another address: also 438 (RFC 8489: "no longer valid")


def derive_key(secret: bytes) -> bytes:
    """K = SHA-256(label || secret): the shared secret is never used directly as the MAC key."""
    if not secret:
        raise ValueError("the nonce secret must not be empty")
    return hashlib.sha256(_KEY_LABEL + secret).digest()


class Nonces:
    """Issues and checks address-bound nonces. Share `secret` between workers and instances."""

    __slots__ = ("_key", "_mac_base", "lifetime")

    def __init__(self, secret: bytes, lifetime: float) -> None:
        if lifetime <= 0:
            raise ValueError("nonce lifetime must be positive")
        self._key = derive_key(secret)
        self._mac_base = hmac.new(self._key, digestmod=hashlib.sha256)  # keyed once, copied per use
        self.lifetime = float(lifetime)

    def _mac(self, issued: int, client: tuple[str, int]) -> str:
        message = f"{issued}|{client[0]}|{client[1]}".encode()
        mac = self._mac_base.copy()
        mac.update(message)
        return base64.urlsafe_b64encode(mac.digest()[:_MAC_BYTES]).decode("ascii")

    def issue(self, client: tuple[str, int], now: float) -> str:
        issued = int(now) & 0xFFFFFFFF
        return f"{issued:08x}{self._mac(issued, client)}"

    def check(self, nonce: str, client: tuple[str, int], now: float) -> NonceStatus:
        if len(nonce) != NONCE_LENGTH:
            return NonceStatus.INVALID
        stamp = nonce[:8]
        if not _HEX_DIGITS.issuperset(stamp):
            return NonceStatus.INVALID
        issued = int(stamp, 16)
        if not hmac.compare_digest(nonce[8:], self._mac(issued, client)):
            return NonceStatus.INVALID
        age = now - issued
        if age > self.lifetime or age < -_CLOCK_SKEW:
            return NonceStatus.STALE
        return NonceStatus.VALID
