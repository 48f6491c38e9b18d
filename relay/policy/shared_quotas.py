"""Allocation quotas shared by the worker processes: a `QuotaBackend` over one shared-memory table.

Why shared memory and not a quota service in the parent: `TurnCore` asks the quota synchronously in
the middle of an Allocate, inside the worker's event loop. A round trip to another process would stall
that loop (and every packet behind it) for as long as the parent takes to be scheduled, which on a
busy relay is milliseconds. Here an Allocate takes a POSIX record lock (`lockf`, released by the kernel
if a worker dies holding it), reads and bumps a few integers, and unlocks: a few microseconds, no
other process involved.

Layout (one anonymous `memfd`, created by the parent, inherited by the workers, mapped by everyone):

    header      magic, version, workers, user slots, keyed-hash salt
    totals      int64[workers]          allocations held by each worker
    users       int32[workers][slots]   allocations per user slot, one row per worker

Counting per worker is what makes a crash harmless: the parent zeroes a dead worker's row
(`reset_worker`) and the totals are right again, because that worker's allocations died with it.

Per-user counts are kept in slots chosen by a keyed hash of the user name (the salt is random per
start, so nobody can aim at another user's slot). Two users whose hashes collide share one counter:
the limit gets stricter for the two of them, never looser, exactly like the 401 limiter in
relay.policy.quotas. With 131 072 slots and 5 000 concurrent users about 4 % of users share a slot with one
other user; a shared slot only refuses anything when the two together exceed `user-quota`.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct

from relay.stun.constants import ErrorCode

USER_SLOTS = 1 << 17
_MAGIC = b"bbbturnq"
_VERSION = 1
_HEADER = struct.Struct("<8sIII16s")  # magic, version, workers, slots, salt
_HEADER_SIZE = 64


def _layout(workers: int, slots: int) -> tuple[int, int, int]:
    totals = _HEADER_SIZE
    users = totals + 8 * workers
    size = users + 4 * workers * slots
    return totals, users, size


class SharedQuota:
    """The quota of one process (`worker` = its row; the parent uses it only to reset rows)."""

    def __init__(self, fd: int, worker: int, total: int = 0, per_user: int = 0) -> None:
        self.fd = fd
        self.total_limit = total
        self.user_limit = per_user
        header = os.pread(fd, _HEADER.size, 0)
        magic, version, workers, slots, salt = _HEADER.unpack(header)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError("the shared quota table is not one this relay version created")
        if not 0 <= worker < workers:
            raise ValueError(f"worker {worker} is outside the quota table's {workers} rows")
        self.workers, self.slots, self.worker = workers, slots, worker
        self._salt = salt
        totals, users, size = _layout(workers, slots)
        self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        view = memoryview(self._map)
        self._totals = view[totals:users].cast("q")
        self._users = view[users:size].cast("i")
        self._held: dict[str, int] = {}  # this worker's allocations per user, to catch double releases

    @classmethod
    def create(cls, workers: int, slots: int = USER_SLOTS, total: int = 0, per_user: int = 0) -> SharedQuota:
        """A new zeroed table (in the parent); workers attach to its `fd` with `SharedQuota(fd, i)`."""
        if workers < 1 or slots < 1:
            raise ValueError("the quota table needs at least one worker and one slot")
        fd = os.memfd_create("bbb-turn-relay-quotas", os.MFD_CLOEXEC)
        _, _, size = _layout(workers, slots)
        os.ftruncate(fd, size)  # zero-filled; pages are only allocated when written
        os.pwrite(fd, _HEADER.pack(_MAGIC, _VERSION, workers, slots, os.urandom(16)), 0)
        return cls(fd, 0, total, per_user)

    def update(self, total: int, per_user: int) -> None:
        """New limits apply to new allocations; existing ones are never revoked by a reload."""
        self.total_limit = total
        self.user_limit = per_user

    def _slot(self, user: str) -> int:
        digest = hashlib.blake2b(user.encode("utf-8", "surrogatepass"), digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "little") % self.slots

    def _lock(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)

    def _unlock(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def _user_total(self, slot: int) -> int:
        users, slots = self._users, self.slots
        return sum(users[row * slots + slot] for row in range(self.workers))

    # --- QuotaBackend ------------------------------------------------------------------------------

    def try_acquire(self, user: str) -> int | None:
        slot = self._slot(user)
        mine = self.worker * self.slots + slot
        self._lock()
        try:
            if self.total_limit and sum(self._totals) >= self.total_limit:
                return int(ErrorCode.INSUFFICIENT_CAPACITY)
            if self.user_limit and self._user_total(slot) >= self.user_limit:
                return int(ErrorCode.ALLOCATION_QUOTA_REACHED)
            self._users[mine] += 1
            self._totals[self.worker] += 1
        finally:
            self._unlock()
        self._held[user] = self._held.get(user, 0) + 1
        return None

    def release(self, user: str) -> None:
        count = self._held.get(user, 0)
        if count <= 0:
            raise ValueError(f"quota released for {user!r} more often than acquired")
        if count == 1:
            del self._held[user]
        else:
            self._held[user] = count - 1
        mine = self.worker * self.slots + self._slot(user)
        self._lock()
        try:
            self._users[mine] -= 1
            self._totals[self.worker] -= 1
        finally:
            self._unlock()

    # --- views and the parent's repair -------------------------------------------------------------

    @property
    def total(self) -> int:
        """Allocations held by all workers."""
        return sum(self._totals)

    def user_count(self, user: str) -> int:
        """Allocations counted against `user`'s slot by all workers."""
        return self._user_total(self._slot(user))

    def reset_worker(self, worker: int) -> None:
        """Forget what a dead worker held (its allocations died with it)."""
        self._lock()
        try:
            self._totals[worker] = 0
            start = worker * self.slots
            self._users[start : start + self.slots] = memoryview(bytes(4 * self.slots)).cast("i")
        finally:
            self._unlock()

    def close(self) -> None:
        self._totals.release()
        self._users.release()
        self._map.close()
