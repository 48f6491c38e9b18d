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


def test_counts_land_in_the_workers_own_total_and_user_row(three_workers: SharedQuota) -> None:
    fd = three_workers.fd
    worker = SharedQuota(fd, 2, total=10, per_user=10)
    try:
        slot = worker._slot("alice")
        assert worker.try_acquire("alice") is None and worker.try_acquire("alice") is None
        totals = [_read(fd, "<q", HEADER + 8 * row) for row in range(3)]
        users = [_read(fd, "<i", HEADER + 8 * 3 + 4 * (row * 5 + s)) for row in range(3) for s in range(5)]
        assert totals == [0, 0, 2]
        assert users == [2 if (row, s) == (2, slot) else 0 for row in range(3) for s in range(5)]
        assert (three_workers.total, three_workers.user_count("alice")) == (2, 2)
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


@pytest.mark.parametrize(("magic", "version"), [(b"bbbturnq", 2), (b"bbbturnQ", 1), (b"bbbturnq", 0)])
def test_a_table_of_another_version_or_kind_is_refused(magic: bytes, version: int) -> None:
    fd = os.memfd_create("not-ours", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, 4096)
        os.pwrite(fd, struct.pack("<8sIII16s", magic, version, 1, 4, bytes(16)), 0)
        with pytest.raises(ValueError, match="not one this relay version created"):
            SharedQuota(fd, 0)
    finally:
        os.close(fd)


@pytest.mark.parametrize("worker", [-1, 3])
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
    finally:
        worker.close()
