"""Issue 15, cases 1-5: memory the relay holds per client stays bounded under abuse and is given back at
once. Each test attacks a real relay over loopback sockets and measures the structure the attack used
to inflate (and the process RSS where the structure is not directly visible)."""

from __future__ import annotations

import gc
import socket
import time

from relay_testkit import RunningRelay, loopback_config, rss_bytes

from relay.stun import Attr, MessageClass
from relay.turn.allocation import Allocation
from relay.turn.table import COMPACT_FACTOR, COMPACT_FLOOR


def _live_allocation_objects() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Allocation)


def test_1_deleted_allocations_leave_the_timer_heap_at_once() -> None:
    """Allocate (LIFETIME 3600) + Refresh(0) in a loop under user-quota=1: the old heap kept every deleted
    allocation until its original expiry (one entry and ~2.4 KB per cycle for an hour)."""
    cycles = 1500
    with RunningRelay(loopback_config(user_quota=1)) as relay, relay.client() as client:
        before_objects = _live_allocation_objects()
        for _ in range(cycles):
            assert client.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600)).message_class == (
                MessageClass.SUCCESS
            )
            assert client.refresh(0).message_class == MessageClass.SUCCESS
        heap = relay.call(lambda: relay.server.core.table.heap_size)
        live = relay.allocations
        retained = _live_allocation_objects() - before_objects
    assert live == 0
    bound = COMPACT_FACTOR * live + COMPACT_FLOOR
    assert heap <= bound, f"{heap} heap entries after {cycles} deleted allocations (bound {bound})"
    assert retained <= bound, f"{retained} deleted Allocation objects still in memory"
