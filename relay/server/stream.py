"""TCP and TLS client connections (RFC 8656 section 3.1): one `Origin` per connection.

Framing: the byte stream carries STUN messages (20 + length bytes) and ChannelData (4 + length,
padded to 4). `on_bytes` is the entry point of every chunk a connection receives. A connection on a
`proxy_protocol` listener must start with a PROXY v1/v2 header (AWS NLB); the address it carries is
the client address for nonces, quotas and logs. Anything that is not valid framing closes the
connection. Peer data going back is dropped (not buffered without bound) when the client reads too
slowly: relayed media is better late-dropped than queued.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from relay.server.forwarding import Forwarder, report_internal_error
from relay.server.proxy_protocol import ProxyHeaderBuffer, ProxyProtocolError
from relay.stun.attributes import Address
from relay.turn.handler import TurnCore
from relay.turn.wire import stream_frame_length

MAX_WRITE_BUFFER = 256 * 1024  # bytes queued towards one client before relayed data is dropped
UNALLOCATED_IDLE = 30.0  # seconds a connection may stay open without an allocation


class StreamConnection(asyncio.Protocol):
    stream = True

    def __init__(
        self,
        core: TurnCore,
        forwarder: Forwarder,
        transport_name: str,
        *,
        proxy_protocol: bool,
        on_close: Callable[[StreamConnection], None],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.forwarder = forwarder
        self.transport_name = transport_name
        self.key = self
        self.stats = core.stats
        self.clock = clock
        self.wall_clock = wall_clock
        self.client: Address | None = None
        self.local: Address = ("0.0.0.0", 0)
        self.opened_at = clock()
        self._proxy = ProxyHeaderBuffer() if proxy_protocol else None
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self.allocations = core.table.origin_index(self)

    @property
    def transport(self) -> str:  # the Origin attribute: "tcp" | "tls"
        return self.transport_name

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance(transport, asyncio.Transport): uvloop's transports do not register as one.
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.local = (local[0], local[1]) if local else ("0.0.0.0", 0)
        if self._proxy is None:
            self.client = (peer[0], peer[1])
        self._peer = (peer[0], peer[1])

    def data_received(self, data: bytes) -> None:
        try:
            self.on_bytes(data)
        except Exception:  # a bug closes this connection, never the listener
            report_internal_error("stream chunk")
            self._malformed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.core.close_origin(self)
        self._on_close(self)

    # Origin
    def sender(self, client: Address) -> Callable[[bytes], Any]:
        def send(data: bytes) -> None:
            transport = self._transport
            if transport is None or transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                raise BlockingIOError("client connection is not keeping up")
            transport.write(data)

        return send

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def has_allocation(self) -> bool:
        return bool(self.allocations)

    # framing
    def on_bytes(self, data: bytes) -> None:
        """Entry point for every received chunk (safe for any bytes; closes on garbage)."""
        if self._transport is None:
            return
        if self.client is None:
            assert self._proxy is not None
            try:
                header = self._proxy.feed(data)
            except ProxyProtocolError:
                self._malformed()
                return
            if header is None:
                return
            self.client = header.source or self._peer
            data = self._proxy.remainder
        buffer = self._buffer
        buffer += data
        offset = 0
        try:
            while True:
                length = stream_frame_length(buffer, offset)
                if length is None or len(buffer) - offset < length:
                    break
                self._frame(bytes(buffer[offset : offset + length]))
                offset += length
                if self._transport is None:
                    return
        except ValueError:
            self._malformed()
            return
        finally:
            if offset:
                del buffer[:offset]

    def _frame(self, frame: bytes) -> None:
        first = frame[0]
        if first & 0xC0 == 0x40:
            allocation = self.allocations.get(self.client)
            if allocation is not None:
                self.forwarder.client_channel_data(allocation, frame)
            return
        if first == 0 and frame[1] == 0x16:
            allocation = self.allocations.get(self.client)
            if allocation is not None:
                self.forwarder.client_send_indication(allocation, frame)
            return
        assert self.client is not None
        response = self.core.handle(frame, self, self.client, self.clock(), self.wall_clock())
        if response is not None and self._transport is not None:
            self._transport.write(response)

    def _malformed(self) -> None:
        name = f"malformed_{self.transport_name}"
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        if self._transport is not None:
            self._transport.abort()
