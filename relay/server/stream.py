"""TCP and TLS client connections (RFC 8656 section 3.1) on the event loop's transports: one `Origin` per
connection. With the compiled packet path, plain TCP connections are relay.server.cstream's instead (the same
bounds, from this module's constants); TLS connections are always these.

Framing: the byte stream carries STUN messages (20 + length bytes) and ChannelData (4 + length,
padded to 4). `on_bytes` is the entry point of every chunk a connection receives. A connection on a
`proxy_protocol` listener must start with a PROXY v1/v2 header (AWS NLB); the address it carries is
the client address for nonces, quotas and logs. Anything that is not valid framing closes the
connection.

Memory per connection is bounded whatever the client does (issue 15):
  * writes: above WRITE_HIGH_WATER bytes queued towards the client, the relay stops reading from it
    (the transport's pause_writing callback) and stops processing frames it already has, so requests
    that are never read cannot pile up answers; relayed peer data is dropped instead of queued (media
    is better late-dropped). A client that does not read back below WRITE_LOW_WATER within
    WRITE_STALL_TIMEOUT is closed (`stream_closes{reason="write_stalled"}`).
  * reads: until the connection holds an allocation, a frame may be at most PREAUTH_MAX_FRAME bytes;
    a longer declared length closes it (`frame_too_large`). Unprocessed input is at most one read
    (the event loop reads 256 KiB at a time) while paused, and is dropped with the connection.
  * a connection reset before it is accepted (no peer address: load-balancer health checks, SO_LINGER
    0) is closed quietly with a debug line (`reset`), and a missing or malformed PROXY header is
    logged at most once per PROXY_LOG_INTERVAL with its reason (`proxy_header`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from relay.ops.logs import RateLimitedLog
from relay.server.forwarding import Forwarder, report_internal_error
from relay.server.proxy_protocol import ProxyHeaderBuffer, ProxyProtocolError
from relay.stun.attributes import Address
from relay.turn.handler import TurnCore
from relay.turn.wire import stream_frame_length

_log = logging.getLogger("relay.server.stream")

WRITE_HIGH_WATER = 64 * 1024  # bytes queued towards one client before reading from it pauses
WRITE_LOW_WATER = 16 * 1024  # ... and resumes once the client has read back to this
WRITE_STALL_TIMEOUT = 15.0  # seconds a paused client has to read before it is closed
# The longest frame before an allocation: an Allocate with every attribute a client may put in it at
# its RFC maximum (USERNAME 513 B, SOFTWARE 763 B, both MESSAGE-INTEGRITYs, FINGERPRINT, our realm
# and 24-byte nonce) is about 1.6 KB. Browsers send 100-300 B (tests/relay/io/test_hardening_memory.py).
PREAUTH_MAX_FRAME = 2048
UNALLOCATED_IDLE = 30.0  # seconds a connection may stay open without an allocation
PROXY_LOG_INTERVAL = 10.0  # at most one log line per interval for refused PROXY headers


_LOCAL_ADDRESSES: dict[Address, Address] = {}  # this host's own addresses: one tuple each, not one per connection


def _shared(local: Address) -> Address:
    if len(_LOCAL_ADDRESSES) > 256:  # a wildcard listener on a host with very many addresses
        return local
    return _LOCAL_ADDRESSES.setdefault(local, local)


class _ProxyRefusals:
    """Rate-limited reporting of refused PROXY headers (relay.ops.logs.RateLimitedLog, one key): one line
    per interval with the count since; `flush` reports a count left at the end of a burst."""

    def __init__(self) -> None:
        self.limit = RateLimitedLog(PROXY_LOG_INTERVAL)

    @property
    def suppressed(self) -> int:
        return self.limit.suppressed("proxy")

    def report(self, peer: Address | None, reason: str, now: float) -> None:
        address = f"{peer[0]}:{peer[1]}" if peer else "?"
        suppressed = self.limit.admit("proxy", now, (address, reason))
        if suppressed is not None:
            self._write(address, reason, suppressed)

    def flush(self, now: float) -> None:
        for _, count, (address, reason) in self.limit.due(now):
            self._write(address, reason, count - 1)  # the last one, and how many came before it

    @staticmethod
    def _write(address: str, reason: str, suppressed: int) -> None:
        _log.warning(
            "connection from %s refused: %s (%d more refusals not logged since the last line)",
            address,
            reason,
            suppressed,
        )


PROXY_REFUSALS = _ProxyRefusals()


class StreamConnection(asyncio.Protocol):
    stream = True
    # A slotted object (asyncio.Protocol has empty slots): no per-connection dictionary on Python 3.10, the
    # TURN hosts' version, where it is the largest part of a connection's own memory.
    __slots__ = (
        "_buffer",
        "_on_close",
        "_paused",
        "_peer",
        "_proxy",
        "_stall",
        "_transport",
        "allocations",
        "client",
        "clock",
        "core",
        "forwarder",
        "key",
        "local",
        "opened_at",
        "stats",
        "transport_name",
        "unallocated_since",
        "wall_clock",
    )

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
        self.unallocated_since: float | None = self.opened_at  # the app's idle timer reads and sets it
        self._proxy = ProxyHeaderBuffer() if proxy_protocol else None
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._peer: Address | None = None
        self._buffer = bytearray()
        self._paused = False  # writing paused: reading paused too, frames left in _buffer
        self._stall: asyncio.TimerHandle | None = None
        self.allocations = core.table.origin_index(self)

    @property
    def transport(self) -> str:  # the Origin attribute: "tcp" | "tls"
        return self.transport_name

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance(transport, asyncio.Transport): uvloop's transports do not register as one.
        self._transport = transport  # type: ignore[assignment]
        try:
            peer = transport.get_extra_info("peername")
            local = transport.get_extra_info("sockname")
        except OSError:  # uvloop asks the socket lazily: ENOTCONN once it is reset
            peer = local = None
        if not peer:
            # Reset between the kernel's accept and ours (a balancer's TCP health check, SO_LINGER 0).
            _log.debug("%s connection reset before it was accepted", self.transport_name)
            self._close("reset")
            self._on_close(self)  # the gauge drops now, not when asyncio gets round to connection_lost
            return
        self.local = _shared((local[0], local[1])) if local else ("0.0.0.0", 0)
        self._peer = (peer[0], peer[1])
        if self._proxy is None:
            self.client = self._peer
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        try:
            self.on_bytes(data)
        except Exception:  # a bug closes this connection, never the listener
            report_internal_error("stream chunk")
            self._malformed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._buffer = bytearray()  # a paused connection's unprocessed input goes with it
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self.core.close_origin(self)
        self._on_close(self)

    def pause_writing(self) -> None:
        """More than WRITE_HIGH_WATER queued: stop reading and processing until the client reads."""
        self._paused = True
        transport = self._transport
        if transport is None:
            return
        transport.pause_reading()
        if self._stall is None:
            self._stall = asyncio.get_running_loop().call_later(WRITE_STALL_TIMEOUT, self._stalled)

    def resume_writing(self) -> None:
        self._paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        transport = self._transport
        if transport is None:
            return
        transport.resume_reading()
        try:
            self._process()
        except Exception:
            report_internal_error("stream chunk")
            self._malformed()

    def _stalled(self) -> None:
        self._stall = None
        if self._paused and self._transport is not None:
            _log.debug("closing %s connection of %s: it did not read its responses", self.transport_name, self._peer)
            self._close("write_stalled")

    # Origin
    def send(self, data: bytes, client: Address) -> None:
        transport = self._transport
        if transport is None or self._paused:
            raise BlockingIOError("client connection is not keeping up")
        transport.write(data)

    def write_view(self, view: memoryview, client: Address) -> None:
        """The relay socket's in-place handler (relay.server.relays): `view` is of a buffer reused for the
        next datagram, so it is copied here (a transport may keep what it cannot send at once)."""
        self.send(bytes(view), client)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def close_idle(self) -> None:
        """The app's idle timer: no allocation for UNALLOCATED_IDLE."""
        self._close("idle")

    def tick(self, now: float) -> None:
        """The app's tick: nothing to do here (the event loop's transport times a stall, `pause_writing`)."""

    @property
    def paused(self) -> bool:
        """Writing paused: the client is not reading its answers."""
        return self._paused

    @property
    def has_allocation(self) -> bool:
        return bool(self.allocations)

    @property
    def buffered(self) -> int:
        """Bytes held for this connection: unprocessed input plus output queued in the transport."""
        transport = self._transport
        queued = transport.get_write_buffer_size() if transport is not None else 0
        return len(self._buffer) + queued

    # framing
    def on_bytes(self, data: bytes) -> None:
        """Entry point for every received chunk (safe for any bytes; closes on garbage)."""
        if self._transport is None:
            return
        if self.client is None:
            assert self._proxy is not None
            try:
                header = self._proxy.feed(data)
            except ProxyProtocolError as refused:
                PROXY_REFUSALS.report(self._peer, str(refused), self.clock())
                self._close("proxy_header")
                return
            if header is None:
                return
            self.client = header.source or self._peer
            data = self._proxy.remainder
        if self._buffer or self._paused:
            self._buffer += data
            self._process()
            return
        # Nothing held back (the usual case): frames are taken from the chunk itself, the rest is kept.
        consumed = self._frames(data)
        if consumed < len(data) and self._transport is not None:
            self._buffer += data[consumed:]

    def _process(self) -> None:
        """Handle the complete frames held in the buffer, up to the point where writing pauses."""
        consumed = self._frames(self._buffer)
        if consumed and self._transport is not None:
            del self._buffer[:consumed]

    def _frames(self, buffer: bytes | bytearray) -> int:
        """Handle the complete frames at the start of `buffer` until writing pauses; returns the bytes
        consumed. ChannelData of an allocated client is forwarded here without another call."""
        offset = 0
        end = len(buffer)
        forward = self.forwarder.client_channel_data
        try:
            while not self._paused and end - offset >= 4:
                if buffer[offset] & 0xC0 == 0x40:  # ChannelData: 4 + length, padded to 4
                    length = (buffer[offset + 2] << 8) | buffer[offset + 3]
                    size = 4 + length + (-length & 3)
                    allocation = self.allocations.get(self.client)
                    if size > PREAUTH_MAX_FRAME and not self.allocations:
                        self._close("frame_too_large")
                        return offset
                    if end - offset < size:
                        break
                    if allocation is not None:
                        forward(allocation, buffer[offset : offset + size])
                    offset += size
                    continue
                length = stream_frame_length(buffer, offset)
                assert length is not None  # four bytes or more are there
                if length > PREAUTH_MAX_FRAME and not self.allocations:
                    self._close("frame_too_large")
                    return offset
                if end - offset < length:
                    break
                self._frame(bytes(buffer[offset : offset + length]))
                offset += length
                if self._transport is None:
                    return offset
        except ValueError:
            self._malformed()
        return offset

    def _frame(self, frame: bytes) -> None:
        """A STUN message: a Send indication goes to the forwarder, anything else to the core."""
        if frame[0] == 0 and frame[1] == 0x16:
            allocation = self.allocations.get(self.client)
            if allocation is not None:
                self.forwarder.client_send_indication(allocation, frame)
            return
        assert self.client is not None
        response = self.core.handle(frame, self, self.client, self.clock(), self.wall_clock())
        if response is not None and self._transport is not None:
            self._transport.write(response)

    def _close(self, reason: str) -> None:
        name = f"stream_closes_{reason}"
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        self._abort()

    def _malformed(self) -> None:
        name = f"malformed_{self.transport_name}"
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        self._abort()

    def _abort(self) -> None:
        """Close now; nothing more is read, processed or written (connection_lost follows later)."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()
