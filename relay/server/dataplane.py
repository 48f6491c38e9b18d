"""Readiness for the packet path: every UDP socket of one process in one epoll set.

An event loop pays a few microseconds per ready socket and wake-up (it re-enters epoll_wait, builds a
handle, runs it in a context). Relayed media is many sockets with a packet or two each, so that cost
would be paid per packet. Instead the listeners and relay sockets are registered in one private,
level-triggered epoll set whose own descriptor is the only thing the event loop watches: one loop
callback then serves every ready socket, in rounds of `epoll.poll(0)`, until none is ready or the
round budget is spent (timers, TCP and the admin endpoint get their turn; epoll stays readable, so
the loop calls back at once).

Handlers read ONE datagram per ready event (relay sockets) or one recvmmsg batch (listeners): a
socket that still holds data is simply reported again by the next round, so no `recvfrom` fails with
EAGAIN in steady state (a raised BlockingIOError costs about as much as the recvfrom itself).
Relayed peer-to-client packets are counted here, once per wake-up.

On platforms without epoll `LoopReaders` gives the same interface on `loop.add_reader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from collections.abc import Callable
from typing import Any

from relay.server.forwarding import report_internal_error

# A handler serves one ready socket and returns the payload bytes it relayed from a peer to a
# client (counted here, in one addition per wake-up), or -1 (nothing, or counted by the handler).
Handler = Callable[[], int]
ROUNDS = 16  # epoll rounds per loop callback before yielding to the event loop
MAX_EVENTS = 512


class EpollDataPlane:
    """The packet path's sockets in a private epoll set nested in the event loop (Linux)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stats: Any) -> None:
        self._loop = loop
        self._stats = stats
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        loop.add_reader(self._epoll.fileno(), self._on_ready)

    def add(self, fd: int, handler: Handler) -> None:
        self._handlers[fd] = handler
        self._epoll.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        """Call before closing the socket (its number may be reused at once)."""
        if self._handlers.pop(fd, None) is not None:
            with contextlib.suppress(OSError):  # already gone with its socket
                self._epoll.unregister(fd)

    def closing(self, fd: int) -> None:
        """The socket is about to be closed: forget its handler. Closing a descriptor removes it from
        the epoll set (relay sockets are never duplicated), which saves an epoll_ctl per allocation."""
        self._handlers.pop(fd, None)

    def __len__(self) -> int:
        return len(self._handlers)

    def close(self) -> None:
        if not self._epoll.closed:
            self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
        self._handlers.clear()

    def _on_ready(self) -> None:
        poll = self._epoll.poll
        handlers = self._handlers
        packets = 0
        payload_bytes = 0
        try:
            for _ in range(ROUNDS):
                events = poll(0, MAX_EVENTS)
                if not events:
                    break
                for fd, _ in events:
                    handler = handlers.get(fd)
                    if handler is not None:  # else removed by an earlier handler of this round
                        size = handler()
                        if size >= 0:
                            packets += 1
                            payload_bytes += size
        except Exception:  # a bug costs this round (epoll reports the rest again), never the data plane
            report_internal_error("ready socket")
        finally:
            if packets:
                stats = self._stats
                stats.packets_peer_to_client += packets
                stats.bytes_peer_to_client += payload_bytes


class LoopReaders:
    """The same interface on the event loop's own readers (portable, slower)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stats: Any) -> None:
        self._loop = loop
        self._stats = stats
        self._fds: set[int] = set()

    def add(self, fd: int, handler: Handler) -> None:
        self._fds.add(fd)
        self._loop.add_reader(fd, self._guarded(handler))

    def remove(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.discard(fd)
            self._loop.remove_reader(fd)

    def closing(self, fd: int) -> None:
        self.remove(fd)

    def __len__(self) -> int:
        return len(self._fds)

    def close(self) -> None:
        for fd in list(self._fds):
            self.remove(fd)

    def _guarded(self, handler: Handler) -> Callable[[], None]:
        stats = self._stats

        def run() -> None:
            try:
                size = handler()
            except Exception:
                report_internal_error("ready socket")
                return
            if size >= 0:
                stats.packets_peer_to_client += 1
                stats.bytes_peer_to_client += size

        return run


DataPlane = EpollDataPlane | LoopReaders


def data_plane(loop: asyncio.AbstractEventLoop, stats: Any, *, epoll: bool = True) -> DataPlane:
    """The fastest data plane here (`epoll=False` forces the portable one, for tests)."""
    if epoll and hasattr(select, "epoll"):
        return EpollDataPlane(loop, stats)
    return LoopReaders(loop, stats)
