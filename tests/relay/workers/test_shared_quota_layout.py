"""The shared quota table as its docstring lays it out, read back from the memory itself: header, per-worker totals
(int64) and per-worker user rows (int32). The parent, the workers and a relay restarted after an upgrade all
depend on these offsets; test_workers_parts.py has the counting behaviour."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import pytest

from relay.policy.shared_quotas import USER_SLOTS, SharedQuota

HEADER = 64  # the documented header size: magic, version, workers, slots, salt, then zeros


def _read(fd: int, fmt: str, offset: int) -> int:
    return struct.unpack_from(fmt, os.pread(fd, struct.calcsize(fmt), offset))[0]


@pytest.fixture
def three_workers() -> Iterator[SharedQuota]:
    parent = SharedQuota.create(3, slots=5)
    yield parent
    parent.close()
    os.close(parent.fd)


def test_the_header_and_size_follow_the_documented_layout(three_workers: SharedQuota) -> None:
    fd = three_workers.fd
    magic, version, workers, slots = struct.unpack_from("<8sIII", os.pread(fd, 20, 0))
    assert (magic, version, workers, slots) == (b"bbbturnq", 1, 3, 5)
    assert os.pread(fd, HEADER - 36, 36) == bytes(HEADER - 36)  # after the 16-byte salt: nothing
    assert os.fstat(fd).st_size == HEADER + 8 * 3 + 4 * 3 * 5


@pytest.mark.parametrize("workers", [3, 8, 9])
def test_counts_land_in_the_workers_own_total_and_user_row(workers: int) -> None:
    """The last row of tables up to and past 8 workers (where the totals reach the 64-byte boundary), with a user
    whose slot shares bits with the row's start (5 slots: offsets are not powers of two, so `|` is not `+`)."""
    parent = SharedQuota.create(workers, slots=5)
    last = workers - 1
    worker = SharedQuota(parent.fd, last, total=10, per_user=10)
    try:
        # A user whose slot shares bits with the row's start, where any slot can (not for 40 = 0b101000 and 0..4).
        user = next((f"user{i}" for i in range(1000) if (last * 5) & worker._slot(f"user{i}")), "alice")
        slot = worker._slot(user)
        assert worker.try_acquire(user) is None and worker.try_acquire(user) is None
        totals = [_read(parent.fd, "<q", HEADER + 8 * row) for row in range(workers)]
        start = HEADER + 8 * workers
        users = [_read(parent.fd, "<i", start + 4 * (row * 5 + s)) for row in range(workers) for s in range(5)]
        assert totals == [0] * last + [2]
        assert users == [2 if (row, s) == (last, slot) else 0 for row in range(workers) for s in range(5)]
        assert (parent.total, parent.user_count(user)) == (2, 2)
        parent.reset_worker(last)  # the parent forgets a dead worker's row, and only that row
        assert (parent.total, parent.user_count(user)) == (0, 0)
        assert os.pread(parent.fd, os.fstat(parent.fd).st_size - HEADER, HEADER) == bytes(
            os.fstat(parent.fd).st_size - HEADER
        )
    finally:
        worker.close()
        parent.close()
        os.close(parent.fd)


def test_reset_worker_zeroes_its_own_row_in_the_middle_of_the_table(three_workers: SharedQuota) -> None:
    rows = [SharedQuota(three_workers.fd, row, total=10, per_user=10) for row in range(3)]
    try:
        for quota in rows:
            assert quota.try_acquire("alice") is None
        three_workers.reset_worker(1)
        assert (three_workers.total, three_workers.user_count("alice")) == (2, 2)
        slot = rows[0]._slot("alice")
        assert [_read(three_workers.fd, "<i", HEADER + 24 + 4 * (row * 5 + slot)) for row in range(3)] == [1, 0, 1]
    finally:
        for quota in rows:
            quota.close()


def test_a_lowered_limit_refuses_even_when_the_table_already_holds_more(three_workers: SharedQuota) -> None:
    """A reload may lower the limits below what is held (existing allocations are never revoked)."""
    worker = SharedQuota(three_workers.fd, 0, total=10, per_user=10)
    try:
        for _ in range(3):
            assert worker.try_acquire("alice") is None
        worker.update(total=2, per_user=10)
        assert worker.try_acquire("bob") == 508
        worker.update(total=10, per_user=2)
        assert worker.try_acquire("alice") == 486 and three_workers.total == 3
    finally:
        worker.close()


def test_the_default_table_has_user_slots_per_worker() -> None:
    assert USER_SLOTS == 131_072  # the docstring's collision figures are computed for this size
    parent = SharedQuota.create(2)
    try:
        assert (parent.workers, parent.slots) == (2, USER_SLOTS)
        assert os.fstat(parent.fd).st_size == HEADER + 8 * 2 + 4 * 2 * USER_SLOTS
    finally:
        parent.close()
        os.close(parent.fd)


@pytest.mark.parametrize(("magic", "version"), [(b"bbbturnq", 2), (b"bbbturnQ", 1), (b"bbbturnz", 1), (b"bbbturnq", 0)])
def test_a_table_of_another_version_or_kind_is_refused(magic: bytes, version: int) -> None:
    fd = os.memfd_create("not-ours", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, 4096)
        os.pwrite(fd, struct.pack("<8sIII16s", magic, version, 1, 4, bytes(16)), 0)
        with pytest.raises(ValueError, match="not one this relay version created"):
            SharedQuota(fd, 0)
    finally:
        os.close(fd)


@pytest.mark.parametrize("worker", [-1, 3, 4])
def test_a_row_outside_the_table_is_refused(three_workers: SharedQuota, worker: int) -> None:
    with pytest.raises(ValueError, match=f"worker {worker} is outside the quota table's 3 rows"):
        SharedQuota(three_workers.fd, worker)


def test_the_smallest_table_is_one_worker_and_one_slot() -> None:
    parent = SharedQuota.create(1, slots=1, total=0, per_user=2)
    try:
        assert parent.try_acquire("alice") is None and parent.try_acquire("bob") is None  # one slot: shared
        assert parent.try_acquire("carol") == 486
    finally:
        parent.close()
        os.close(parent.fd)
    with pytest.raises(ValueError, match="at least one worker and one slot"):
        SharedQuota.create(1, slots=0)


def test_each_release_gives_back_exactly_one(three_workers: SharedQuota) -> None:
    worker = SharedQuota(three_workers.fd, 1)
    try:
        for _ in range(3):
            assert worker.try_acquire("alice") is None
        counts = []
        for _ in range(3):
            worker.release("alice")
            counts.append((three_workers.total, three_workers.user_count("alice")))
        assert counts == [(2, 2), (1, 1), (0, 0)]
        with pytest.raises(ValueError, match="quota released for 'alice' more often than acquired"):
            worker.release("alice")
        assert worker._held == {}  # nothing kept per user who once allocated: a long-lived worker must not grow
    finally:
        worker.close()


def test_a_release_comes_off_the_releasing_workers_own_row(three_workers: SharedQuota) -> None:
    """Taken off another row, the sum would still look right until that row's worker died and was reset."""
    worker = SharedQuota(three_workers.fd, 1, total=10, per_user=10)
    try:
        assert worker.try_acquire("alice") is None and worker.try_acquire("alice") is None
        worker.release("alice")
        slot = worker._slot("alice")
        assert [_read(three_workers.fd, "<i", HEADER + 24 + 4 * (row * 5 + slot)) for row in range(3)] == [0, 1, 0]
        three_workers.reset_worker(0)  # worker 0 died: alice's count is worker 1's one allocation
        assert three_workers.user_count("alice") == 1
    finally:
        worker.close()
