"""The UDP listener (port 3478): one non-blocking socket read with `loop.add_reader`.

`on_datagram` is the entry point of every client datagram. It demultiplexes on the first byte
(RFC 8656 section 12 / RFC 7983): ChannelData (0x40-0x4F) and Send indications (type 0x0016) go to
the packet path with a single dict lookup by source address; every other STUN message goes to the
control plane (`TurnCore.handle`); anything else is counted as malformed and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

from relay.server.forwarding import Forwarder, report_internal_error
from relay.stun.attributes import Address
from relay.turn.handler import TurnCore

RECV_BATCH = 64
_BUFFER = bytearray(65536)
_VIEW = memoryview(_BUFFER)


class UdpListener:
    """An `Origin` for many clients: the allocation table keys them by source address."""

    transport = "udp"
    stream = False

    def __init__(
        self,
        sock: socket.socket,
        core: TurnCore,
        forwarder: Forwarder,
        loop: asyncio.AbstractEventLoop,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.sock = sock
        self.core = core
        self.forwarder = forwarder
        self.loop = loop
        self.clock = clock
        self.wall_clock = wall_clock
        self.local: Address = sock.getsockname()[:2]
        self.key = self
        self.allocations = core.table.origin_index(self)  # the packet path's one lookup
        self.stats = core.stats
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._on_readable)

    @classmethod
    def bind(cls, host: str, port: int, **kwargs: Any) -> UdpListener:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6 and host == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual-stack "::"
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return cls(sock, **kwargs)

    def sender(self, client: Address) -> Callable[[bytes], Any]:
        sendto = self.sock.sendto

        def send(data: bytes) -> Any:
            return sendto(data, client)

        return send

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _on_readable(self) -> None:
        recv = self.sock.recvfrom_into
        handle = self.on_datagram
        view = _VIEW
        for _ in range(RECV_BATCH):
            try:
                size, address = recv(_BUFFER)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                handle(view[:size], address)
            except Exception:  # a bug costs one datagram, never the listener or the rest of the batch
                self.stats.malformed_udp += 1
                report_internal_error("udp datagram")

    def on_datagram(self, data: bytes | memoryview, address: Address) -> None:
        """Process one datagram from `address` (safe for any bytes)."""
        if len(data) < 4:
            self.stats.malformed_udp += 1
            return
        first = data[0]
        if first & 0xC0 == 0x40:
            allocation = self.allocations.get(address)
            if allocation is not None:
                self.forwarder.client_channel_data(allocation, data)
            return
        if first & 0xC0:
            self.stats.malformed_udp += 1
            return
        if first == 0 and data[1] == 0x16:
            allocation = self.allocations.get(address)
            if allocation is not None:
                self.forwarder.client_send_indication(allocation, data)
            return
        response = self.core.handle(bytes(data), self, address, self.clock(), self.wall_clock())
        if response is not None:
            with contextlib.suppress(OSError):
                self.sock.sendto(response, address)
