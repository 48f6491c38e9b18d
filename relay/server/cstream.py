"""TCP client connections served by the compiled packet path (relay.server._fastpath_stream.h): the same Origin
as relay.server.stream's StreamConnection, with the connection's socket read and written by the Engine.

Why a second connection type: over TCP the Python path costs an event-loop transport (~1.1 KB a connection,
bench/relay_allocation_memory.py) and interpreter work on every relayed message in both directions, the part
of the TCP rows where the relay lost to coturn (bench/PROFILE.md). Here Python accepts the connection, reads a
PROXY header if its listener takes one, and hands the descriptor to the Engine, which frames the byte stream,
forwards ChannelData and Send indications that the control plane installed (the same entries as for UDP
clients, kept by cpath.CMirror), queues peer data as padded ChannelData or Data indications, and hands every
other frame back here whole: STUN requests go to the TurnCore and their answers into the same ordered output.

Plain TCP listeners only: TLS needs the event loop's SSL transport, so `tls` listeners keep StreamConnection.
The bounds are StreamConnection's (relay.server.stream: write high/low water, stall timeout, PREAUTH_MAX_FRAME,
idle close), enforced in C except the stall timer, which the app's tick runs (`tick`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from relay.server import stream
from relay.server.forwarding import Forwarder, report_internal_error
from relay.server.proxy_protocol import ProxyHeaderBuffer, ProxyProtocolError
from relay.stun.attributes import Address
from relay.stun.constants import FAMILY_IPV4
from relay.turn.grants import family_of
from relay.turn.handler import TurnCore

_log = logging.getLogger("relay.server.stream")
ALLOCATED_MAX_FRAME = 20 + 0xFFFF  # the longest frame there is (a STUN message of the largest length)
PROXY_READ = 4096  # bytes read at a time while a PROXY header is expected (a v2 header is at most 16 + 65535)
ACCEPTS_PER_ROUND = 64  # connections accepted per readiness event of a listener (the rest next round)
_SOFT_ACCEPT_ERRORS = {errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN}


def _v4(address: Address | None) -> Address | None:
    """The client address the Engine may key entries by (IPv4 only), else None."""
    if address is None or family_of(str(address[0])) != FAMILY_IPV4:
        return None
    return (address[0], address[1])


class StreamContext:
    """What every compiled TCP connection of one server shares: one reference per connection instead of eight
    (a connection's own memory is what TCP's RSS per allocation is made of, bench/PROFILE.md)."""

    __slots__ = ("clock", "core", "engine", "forwarder", "module", "on_close", "stats", "wall_clock")

    def __init__(
        self,
        core: TurnCore,
        forwarder: Forwarder,
        engine: Any,
        module: Any,
        *,
        on_close: Callable[[Any], None],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.core, self.forwarder, self.engine, self.module = core, forwarder, engine, module
        self.stats, self.on_close, self.clock, self.wall_clock = core.stats, on_close, clock, wall_clock


class OneAllocation(MutableMapping[Address, Any]):
    """A connection's allocations by client address, as the AllocationTable fills it (`by_origin`): a TCP
    connection has one client, so one allocation at most. 56 bytes where a dict of one item takes 224."""

    __slots__ = ("_allocation", "_client", "_more")

    def __init__(self) -> None:
        self._client: Address | None = None
        self._allocation: Any = None
        self._more: dict[Address, Any] | None = None  # never used by a TCP client; kept correct all the same

    def __getitem__(self, client: Address) -> Any:
        if self._client is not None and client == self._client:
            return self._allocation
        if self._more is not None:
            return self._more[client]
        raise KeyError(client)

    def get(self, client: Address, default: Any = None) -> Any:  # the per-frame lookup: no exception
        if self._client is not None and client == self._client:
            return self._allocation
        return default if self._more is None else self._more.get(client, default)

    def __setitem__(self, client: Address, allocation: Any) -> None:
        if self._client is None or client == self._client:
            self._client, self._allocation = client, allocation
        else:
            self._more = self._more or {}
            self._more[client] = allocation

    def __delitem__(self, client: Address) -> None:
        if self._client is not None and client == self._client:
            self._client = self._allocation = None
            if self._more:
                self._client, self._allocation = self._more.popitem()
        elif self._more is not None:
            del self._more[client]
        else:
            raise KeyError(client)

    def __iter__(self) -> Iterator[Address]:
        if self._client is not None:
            yield self._client
        if self._more:
            yield from list(self._more)

    def __len__(self) -> int:
        return (self._client is not None) + len(self._more or ())

    def __bool__(self) -> bool:
        return self._client is not None


class CompiledStream:
    """One TCP client connection whose socket the Engine reads and writes (an Origin for the TurnCore). The
    object itself is the Engine's callback (`__call__`): no bound method is kept per connection."""

    stream = True
    compiled = True  # cpath.CMirror installs entries for its allocations
    __slots__ = (
        "_ctx",
        "_limit",
        "_open",
        "_paused_since",
        "_peer",
        "_proxy",
        "allocations",
        "client",
        "fd",
        "local",
        "transport_name",
        "unallocated_since",
    )

    def __init__(self, context: StreamContext, transport_name: str) -> None:
        self._ctx = context
        self.transport_name = transport_name
        self.client: Address | None = None
        self.local: Address = ("0.0.0.0", 0)
        self.unallocated_since: float | None = context.clock()
        self.fd = -1  # the Engine's descriptor once handed over
        self._proxy: tuple[socket.socket, ProxyHeaderBuffer] | None = None  # while a PROXY header is read
        self._peer: Address | None = None
        self._open = True
        self._limit = stream.PREAUTH_MAX_FRAME
        self._paused_since: float | None = None
        self.allocations = OneAllocation()
        context.core.table.by_origin[self] = self.allocations  # the table fills it, the frames read it

    @property
    def key(self) -> CompiledStream:  # the Origin attribute: the table's key for this connection
        return self

    @property
    def transport(self) -> str:  # the Origin attribute
        return self.transport_name

    # --- start ------------------------------------------------------------------------------------

    def accepted(self, sock: socket.socket, peer: Address, *, proxy_protocol: bool) -> None:
        try:
            sock.getpeername()
            local = sock.getsockname()
        except OSError:  # reset between the kernel's accept and ours (a balancer's health check, SO_LINGER 0)
            _log.debug("%s connection reset before it was accepted", self.transport_name)
            self._count("stream_closes_reset")
            sock.close()
            self._end()
            return
        self.local = stream._shared((local[0], local[1]))
        self._peer = (peer[0], peer[1])
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the event loop's transports do
        if not proxy_protocol:
            self.client = self._peer
            self._hand_over(sock, b"")
            return
        self._proxy = (sock, ProxyHeaderBuffer())
        asyncio.get_running_loop().add_reader(sock.fileno(), self._read_proxy_header)

    def _read_proxy_header(self) -> None:
        if self._proxy is None:
            return
        sock, proxy = self._proxy
        try:
            data = sock.recv(PROXY_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._end()
            return
        try:
            header = proxy.feed(data)
        except ProxyProtocolError as refused:
            stream.PROXY_REFUSALS.report(self._peer, str(refused), self._ctx.clock())
            self._count("stream_closes_proxy_header")
            self.close()
            return
        if header is None:
            return
        self.client = header.source or self._peer
        asyncio.get_running_loop().remove_reader(sock.fileno())
        self._proxy = None
        self._hand_over(sock, bytes(proxy.remainder))

    def _hand_over(self, sock: socket.socket, initial: bytes) -> None:
        fd = sock.detach()
        self.fd = fd
        try:
            self._ctx.engine.add_stream(
                fd, self, _v4(self.client), initial, self._limit, stream.WRITE_HIGH_WATER, stream.WRITE_LOW_WATER
            )
        except Exception:
            report_internal_error("stream hand-over")
            self.close()

    # --- from the Engine ---------------------------------------------------------------------------

    def __call__(self, frame: bytes | int) -> None:
        """A whole frame the Engine did not forward, or (an int) the code of the connection's end."""
        if frame.__class__ is int:
            self._ended(frame)  # type: ignore[arg-type]
            return
        try:
            self._frame(frame)  # type: ignore[arg-type]
        except Exception:  # a bug closes this connection, never the Engine
            report_internal_error("stream chunk")
            self._count(f"malformed_{self.transport_name}")
            self.close()

    def _frame(self, frame: bytes) -> None:
        allocation = self.allocations.get(self.client)
        if frame[0] & 0xC0 == 0x40:  # ChannelData without an entry (unknown channel, or a bandwidth limit)
            if allocation is not None:
                self._ctx.forwarder.client_channel_data(allocation, frame)
            return
        if frame[0] == 0 and frame[1] == 0x16:  # a Send indication the Engine did not forward
            if allocation is not None:
                self._ctx.forwarder.client_send_indication(allocation, frame)
            return
        assert self.client is not None
        ctx = self._ctx
        response = ctx.core.handle(frame, self, self.client, ctx.clock(), ctx.wall_clock())
        if self.fd < 0:
            return
        if response is not None:
            ctx.engine.stream_write(self.fd, response, True)
        limit = ALLOCATED_MAX_FRAME if self.allocations else stream.PREAUTH_MAX_FRAME
        if limit != self._limit:
            self._limit = limit
            ctx.engine.stream_limit(self.fd, limit)

    def _ended(self, code: int) -> None:
        module = self._ctx.module
        if code == module.STREAM_MALFORMED:
            self._count(f"malformed_{self.transport_name}")
        elif code == module.STREAM_TOO_LARGE:
            self._count("stream_closes_frame_too_large")
        elif code == module.STREAM_OUT_OF_MEMORY:
            self._count("stream_closes_out_of_memory")
        fd, self.fd = self.fd, -1  # the Engine has forgotten it already
        if fd >= 0:
            os.close(fd)
        self._end()

    # --- Origin ------------------------------------------------------------------------------------

    def send(self, data: bytes, client: Address) -> None:
        if self.fd < 0 or not self._ctx.engine.stream_write(self.fd, data, False):
            raise BlockingIOError("client connection is not keeping up")

    def write_view(self, view: memoryview, client: Address) -> None:
        self.send(bytes(view), client)

    def close(self) -> None:
        """Close now (what is queued is dropped, as an aborted transport's)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            self._ctx.engine.remove(fd)
            os.close(fd)
        self._end()

    def close_idle(self) -> None:
        self._count("stream_closes_idle")
        self.close()

    def tick(self, now: float) -> None:
        """The app's tick: a client paused (not reading its answers) for WRITE_STALL_TIMEOUT is closed."""
        if not self.paused:
            self._paused_since = None
        elif self._paused_since is None:
            self._paused_since = now
        elif now - self._paused_since >= stream.WRITE_STALL_TIMEOUT:
            _log.debug("closing %s connection of %s: it did not read its responses", self.transport_name, self._peer)
            self._count("stream_closes_write_stalled")
            self.close()

    @property
    def paused(self) -> bool:
        return self.fd >= 0 and bool(self._ctx.engine.stream_state(self.fd)[0])

    @property
    def has_allocation(self) -> bool:
        return bool(self.allocations)

    @property
    def buffered(self) -> int:
        """Bytes held for this connection: unprocessed input plus output not yet written."""
        if self.fd < 0:
            return 0
        _, held, pending = self._ctx.engine.stream_state(self.fd)
        return int(held) + int(pending)

    # --- helpers -----------------------------------------------------------------------------------

    def _end(self) -> None:
        """Forget the connection (once): the socket read for a PROXY header, allocations, the app's gauge."""
        if self._proxy is not None:
            sock, _ = self._proxy
            self._proxy = None
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        if not self._open:
            return
        self._open = False
        self._ctx.core.close_origin(self)
        self._ctx.on_close(self)

    def _count(self, name: str) -> None:
        stats = self._ctx.stats
        setattr(stats, name, getattr(stats, name) + 1)


class CompiledStreamServer:
    """A plain TCP listener whose connections go to the Engine: accepted here (a rare event), then
    `on_connection(sock, peer)`. Quacks like the asyncio server the app keeps (sockets, close, wait_closed)."""

    def __init__(self, sock: socket.socket, on_connection: Callable[[socket.socket, Address], None]) -> None:
        sock.setblocking(False)
        self.sockets = [sock]
        self._on_connection = on_connection
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        sock = self.sockets[0]
        for _ in range(ACCEPTS_PER_ROUND):
            try:
                connection, peer = sock.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno not in _SOFT_ACCEPT_ERRORS:  # EMFILE, ENOBUFS: log, and try again next round
                    _log.warning("accepting a TCP connection failed: %s", error)
                return
            try:
                self._on_connection(connection, peer)
            except Exception:
                report_internal_error("accepted connection")
                connection.close()

    def close(self) -> None:
        if self.sockets:
            sock = self.sockets.pop()
            self._loop.remove_reader(sock.fileno())
            sock.close()

    async def wait_closed(self) -> None:
        return None


def bind_stream(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening TCP sockets for `host` as the event loop's create_server binds them: one per address the
    host resolves to, SO_REUSEADDR, IPv6 sockets IPv6-only."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(
            (info[0], info[1], info[2], "", info[4]) for info in infos
        ):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound
