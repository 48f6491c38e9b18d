"""Quotas and rate limits, all pure (time passed in):

* `AllocationQuota`  total allocations and allocations per user (486 / 508 when exceeded). The relay
  asks it through the small `QuotaBackend` interface so a multi-worker build can swap in a shared one.
* `TokenBucket`      bandwidth per allocation and direction (bytes per second).
* `SourceLimiter`    the reflection budget of one source IP: how many answers larger than their request
  (401, 438, Binding) it may get per second while it never proves it receives them. A request that
  carries a valid nonce for its source address proves exactly that and `refund`s one answer, so a
  crowd behind one NAT address that authenticates keeps its budget, while a flood that never does
  (spoofed or not) stays at `rate`. It is a fixed-size table of buckets indexed by a hash of the IP:
  memory does not grow with the number of sources, so it is not "per-source state" an attacker can
  inflate; a collision only makes the limit stricter for the two sources that share a slot.
"""

from __future__ import annotations

import os
from typing import Protocol

from relay.stun.constants import ErrorCode


class QuotaBackend(Protocol):
    def try_acquire(self, user: str) -> int | None:
        """Reserve one allocation for `user`; None on success, else the STUN error code to send."""

    def release(self, user: str) -> None:
        """Give back one allocation reserved by `try_acquire`."""


class AllocationQuota:
    """Process-local allocation counters (0 = unlimited)."""

    def __init__(self, total: int = 0, per_user: int = 0) -> None:
        self.total_limit = total
        self.user_limit = per_user
        self.total = 0
        self._per_user: dict[str, int] = {}

    def update(self, total: int, per_user: int) -> None:
        """New limits apply to new allocations; existing ones are never revoked by a reload."""
        self.total_limit = total
        self.user_limit = per_user

    def try_acquire(self, user: str) -> int | None:
        if self.total_limit and self.total >= self.total_limit:
            return int(ErrorCode.INSUFFICIENT_CAPACITY)
        count = self._per_user.get(user, 0)
        if self.user_limit and count >= self.user_limit:
            return int(ErrorCode.ALLOCATION_QUOTA_REACHED)
        self._per_user[user] = count + 1
        self.total += 1
        return None

    def release(self, user: str) -> None:
        count = self._per_user.get(user, 0)
        if count <= 0:
            raise ValueError(f"quota released for {user!r} more often than acquired")
        if count == 1:
            del self._per_user[user]
        else:
            self._per_user[user] = count - 1
        self.total -= 1

    def user_count(self, user: str) -> int:
        return self._per_user.get(user, 0)

    @property
    def users(self) -> int:
        return len(self._per_user)


class TokenBucket:
    """`rate` units per second with a burst of `burst` units; `consume` is the per-packet check."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def consume(self, amount: float, now: float) -> bool:
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        if tokens >= amount:
            self.tokens = tokens - amount
            return True
        self.tokens = tokens
        return False


class SourceLimiter:
    """A per-source-IP rate limit in constant memory (see the module docstring)."""

    __slots__ = ("_salt", "_stamps", "_tokens", "burst", "rate", "slots")

    def __init__(self, rate: float, burst: float, slots: int = 4096, *, salt: bytes | None = None) -> None:
        if rate <= 0 or burst <= 0 or slots <= 0:
            raise ValueError("rate, burst and slots must be positive")
        self.rate = float(rate)
        self.burst = float(burst)
        self.slots = slots
        self._tokens = [float(burst)] * slots
        self._stamps = [0.0] * slots
        # Keyed so an attacker cannot pick addresses that collide with a victim's slot.
        self._salt = salt if salt is not None else os.urandom(8)

    def _slot(self, source_ip: str) -> int:
        return hash((self._salt, source_ip)) % self.slots

    def allow(self, source_ip: str, now: float) -> bool:
        slot = self._slot(source_ip)
        tokens = self._tokens[slot] + (now - self._stamps[slot]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self._stamps[slot] = now
        if tokens >= 1.0:
            self._tokens[slot] = tokens - 1.0
            return True
        self._tokens[slot] = tokens
        return False

    def refund(self, source_ip: str) -> None:
        """Give back one answer: the source just proved, with a nonce, that an earlier one reached it."""
        slot = self._slot(source_ip)
        self._tokens[slot] = min(self.burst, self._tokens[slot] + 1.0)
