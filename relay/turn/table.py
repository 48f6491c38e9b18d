"""The allocations of one process, indexed for the control plane and for the packet path, plus the
timer heap that expires allocations, permissions, channels and port reservations.

Indexes:
  by_tuple[(origin key, client address)]   the 5-tuple (origin key stands for transport + server address)
  by_origin[origin key][client address]    the same allocations grouped per listener/connection, so the
                                           UDP packet path does one dict lookup with the address
                                           recvfrom returned
Each worker process owns one table; allocations never move between processes.

The heap deletes lazily (an entry whose allocation is closed, or whose deadline is no longer the
allocation's `scheduled`, is skipped when it surfaces), and is compacted in place as soon as its
entries outnumber the live allocations by COMPACT_FACTOR (plus a small floor): a deleted allocation
is never kept alive by the heap for longer than the next compaction, whatever its original expiry.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator

from relay.stun.attributes import Address
from relay.turn.allocation import Allocation

COMPACT_FACTOR = 2  # heap entries allowed per live allocation before the heap is rebuilt
COMPACT_FLOOR = 64  # never compact tiny heaps (rebuild cost over nothing)


class AllocationTable:
    def __init__(self) -> None:
        self.by_tuple: dict[tuple[Hashable, Address], Allocation] = {}
        self.by_origin: dict[Hashable, dict[Address, Allocation]] = {}
        self._heap: list[tuple[float, int, Allocation]] = []
        self._seq = 0
        self._pushes = 0  # heap tie-breaker: never compare Allocation objects

    def __len__(self) -> int:
        return len(self.by_tuple)

    def __iter__(self) -> Iterator[Allocation]:
        return iter(list(self.by_tuple.values()))

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def origin_index(self, origin_key: Hashable) -> dict[Address, Allocation]:
        """The per-origin dict the packet path keeps a reference to (created on first use)."""
        index = self.by_origin.get(origin_key)
        if index is None:
            index = self.by_origin[origin_key] = {}
        return index

    def forget_origin(self, origin_key: Hashable) -> None:
        self.by_origin.pop(origin_key, None)

    def get(self, origin_key: Hashable, client: Address) -> Allocation | None:
        return self.by_tuple.get((origin_key, client))

    def add(self, allocation: Allocation) -> None:
        key = allocation.origin.key
        self.by_tuple[(key, allocation.client)] = allocation
        self.origin_index(key)[allocation.client] = allocation
        self.schedule(allocation, allocation.next_deadline())

    def remove(self, allocation: Allocation) -> None:
        key = allocation.origin.key
        self.by_tuple.pop((key, allocation.client), None)
        index = self.by_origin.get(key)
        if index is not None:
            index.pop(allocation.client, None)
        self._maybe_compact()

    def schedule(self, allocation: Allocation, deadline: float) -> None:
        """Make sure the allocation is looked at no later than `deadline` (later deadlines are found when
        the earlier entry fires, so refreshes that extend lifetimes push nothing)."""
        if deadline < allocation.scheduled:
            allocation.scheduled = deadline
            self._pushes += 1
            heapq.heappush(self._heap, (deadline, self._pushes, allocation))
            self._maybe_compact()

    def _maybe_compact(self) -> None:
        """Drop dead and superseded entries once they dominate. Each live allocation has at most one
        current entry (pushes happen only for strictly earlier deadlines), so after a rebuild the heap
        holds at most len(self) entries: the amortised cost is O(1) per push or removal. In place,
        because `due` may be iterating over the same list."""
        heap = self._heap
        if len(heap) <= COMPACT_FACTOR * len(self.by_tuple) + COMPACT_FLOOR:
            return
        heap[:] = [entry for entry in heap if not entry[2].closed and entry[0] == entry[2].scheduled]
        heapq.heapify(heap)

    def due(self, now: float) -> Iterator[Allocation]:
        """Pop the allocations whose earliest deadline has passed (stale heap entries are skipped)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, allocation = heapq.heappop(heap)
            if allocation.closed or deadline != allocation.scheduled:
                continue
            allocation.scheduled = float("inf")
            yield allocation

    @property
    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    @property
    def heap_size(self) -> int:
        return len(self._heap)
