"""`RelayServer`: builds the protocol core from a `RelayConfig`, opens the listeners and relay port
pool, runs the expiry timer, and applies reloads. One instance per process (per worker later).

    server = RelayServer(config, stats=RelayStats(), draining=lambda: control.draining)
    await server.start()          # binds everything; raises OSError/ValueError with the reason
    server.addresses              # [("udp", ("0.0.0.0", 3478)), ...] as actually bound
    server.reload(new_config)     # SIGHUP: secrets, static users, peer lists, TLS, quotas
    await server.close()          # ends every allocation and closes every socket

In a worker (relay.process.worker) the supervisor passes `sockets` (listeners it bound with SO_REUSEPORT),
`port_range` (this worker's share of the relay ports), a shared `quota` (relay.policy.shared_quotas) and a
config whose nonce_secret every worker shares. The allocation table, the port pool and the relay
sockets belong to this process. `mirror` is the in-kernel path (relay.server.kernel.KernelMirror, over the
program's maps: the process's own or the descriptors a worker inherited); the core keeps it in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from relay.config import Listener, RelayConfig
from relay.policy.auth import Authenticator
from relay.policy.nonce import Nonces
from relay.policy.peers import PeerPolicy
from relay.policy.quotas import AllocationQuota, QuotaBackend, SourceLimiter
from relay.server import cpath, stream
from relay.server.cstream import CompiledStream, CompiledStreamServer, StreamContext, bind_stream
from relay.server.dataplane import DataPlane, data_plane
from relay.server.forwarding import Forwarder
from relay.server.refusals import RefusalLog
from relay.server.relays import SocketBinder
from relay.server.stream import UNALLOCATED_IDLE, StreamConnection
from relay.server.udp import UdpListener, bind_udp
from relay.stun.attributes import Address
from relay.turn.allocation import AllocationMirror
from relay.turn.handler import TurnCore

_log = logging.getLogger("relay.server")
TICK_INTERVAL = 1.0
TLS_HANDSHAKE_TIMEOUT = 10.0
MAX_STREAM_CONNECTIONS = 20000
# Pending TCP/TLS handshakes per listener. asyncio's default of 100 drops SYNs when a school's
# conference starts (hundreds of clients within a second; each lost SYN costs its client 1 s); the
# kernel caps it at net.core.somaxconn (4096 on current kernels).
STREAM_BACKLOG = 4096


class RelayServer:
    def __init__(
        self,
        config: RelayConfig,
        *,
        stats: Any,
        draining: Any = lambda: False,
        quota: QuotaBackend | None = None,
        tls: Any = None,
        fast: bool = True,
        sockets: Mapping[int, socket.socket] | None = None,
        port_range: tuple[int, int] | None = None,
        mirror: AllocationMirror | None = None,
        packet_path: str | None = None,
    ) -> None:
        self.config = config
        self.stats = stats
        self._fast = fast  # False: the portable packet path (loop readers, recvfrom_into), for tests
        # A worker gets its listening sockets (by index in config.listeners) already bound by the
        # supervisor, and its own share of the relay port range.
        self._sockets = dict(sockets or {})
        self._port_range = port_range or (config.min_port, config.max_port)
        self._draining = draining
        self._tls = tls
        self._mirror = mirror  # the in-kernel path (relay.server.kernel), kept in step by the core
        self._packet_path = packet_path  # auto | compiled | python; None: RELAY_PACKET_PATH (relay.server.cpath)
        self.quota = quota if quota is not None else AllocationQuota(config.total_quota, config.user_quota)
        self.auth = Authenticator(
            config.realm,
            config.auth_secrets,
            config.static_users,
            ms_timestamp_ttl=config.rest_ms_timestamp_ttl,
        )
        # `allowed_peers` already holds the networks of `allowed_peers_file` (relay.config merges
        # them, and reads the file again on every reload).
        self.peers = PeerPolicy(config.allowed_peers, config.denied_peers, allow_loopback=config.allow_loopback_peers)
        self.nonces = Nonces(config.nonce_secret or os.urandom(32), config.nonce_lifetime)
        self.limiter = (
            SourceLimiter(config.unauthenticated_rate, max(1.0, config.unauthenticated_burst))
            if config.unauthenticated_rate > 0
            else None
        )
        self.forwarder = Forwarder(stats)
        self.refusals = RefusalLog()  # why requests were refused, rate-limited (relay.server.refusals)
        self.core: TurnCore | None = None
        self.udp: list[UdpListener] = []
        self.stream_servers: list[tuple[str, asyncio.AbstractServer | CompiledStreamServer]] = []
        self.connections: set[StreamConnection | CompiledStream] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.plane: DataPlane | cpath.CDataPlane | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: StreamContext | None = None  # what the compiled TCP connections share

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        config = self.config
        compiled = cpath.load(self._packet_path) if self._fast else None
        mirror = self._mirror
        if compiled is not None:
            self.plane = cpath.CDataPlane(loop, self.stats, compiled)
            mirror = cpath.Mirrors(mirror, cpath.CMirror(self.plane))
        else:
            self.plane = data_plane(loop, self.stats, epoll=self._fast)
        binder = SocketBinder(
            self.plane,
            self.forwarder,
            relay_ip=config.relay_ip,
            external_ip=config.external_ip,
            relay_ipv6=config.relay_ipv6,
            external_ipv6=config.external_ipv6,
            min_port=self._port_range[0],
            max_port=self._port_range[1],
            in_place=self._fast,
        )
        self.core = TurnCore(
            config,
            auth=self.auth,
            nonces=self.nonces,
            peers=self.peers,
            quota=self.quota,
            binder=binder,
            stats=self.stats,
            limiter=self.limiter,
            draining=self._draining,
            refusals=self.refusals,
            mirror=mirror,
        )
        try:
            for index, listener in enumerate(config.listeners):
                await self._listen(listener, self._sockets.pop(index, None))
        except BaseException:
            await self.close()
            raise
        self._timer = loop.call_later(TICK_INTERVAL, self._tick)

    async def _listen(self, listener: Listener, sock: socket.socket | None) -> None:
        assert self.core is not None and self._loop is not None
        if listener.transport == "udp":
            udp = UdpListener(
                sock if sock is not None else bind_udp(listener.host, listener.port),
                core=self.core,
                forwarder=self.forwarder,
                plane=self.plane,
                batched=self._fast,
            )
            self.udp.append(udp)
            _log.info("listening udp %s:%s (%s packet path)", *udp.local, "compiled" if udp.compiled else "Python")
            return
        ssl_context = None
        if listener.transport == "tls":
            if self._tls is None:
                raise ValueError("a tls listener needs cert and pkey (no TLS context was configured)")
            if listener.proxy_protocol:
                raise ValueError(
                    "PROXY protocol is supported on plain tcp listeners (TLS terminated by the load balancer); "
                    "a tls listener cannot take it"
                )
            ssl_context = self._tls.listener_context
        if ssl_context is None and isinstance(self.plane, cpath.CDataPlane):
            # Plain TCP on the compiled path: the Engine reads and writes each connection (relay.server.cstream).
            for bound in [sock] if sock is not None else bind_stream(listener.host, listener.port, STREAM_BACKLOG):
                self.stream_servers.append(
                    (listener.transport, CompiledStreamServer(bound, lambda s, peer: self._compiled(listener, s, peer)))
                )
                _log.info("listening %s %s (compiled packet path)", listener.transport, bound.getsockname()[:2])
            return
        if sock is not None:
            server = await self._loop.create_server(
                lambda: self._connection(listener),
                sock=sock,
                ssl=ssl_context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if ssl_context else None,
                backlog=STREAM_BACKLOG,
            )
        else:
            server = await self._loop.create_server(
                lambda: self._connection(listener),
                listener.host,
                listener.port,
                ssl=ssl_context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if ssl_context else None,
                reuse_address=True,
                backlog=STREAM_BACKLOG,
            )
        self.stream_servers.append((listener.transport, server))
        _log.info("listening %s %s", listener.transport, server.sockets[0].getsockname()[:2])

    def _connection(self, listener: Listener) -> StreamConnection:
        assert self.core is not None
        connection = StreamConnection(
            self.core,
            self.forwarder,
            listener.label,
            proxy_protocol=listener.proxy_protocol,
            on_close=self._connection_closed,
        )
        self._admit(connection, listener)
        return connection

    def _compiled(self, listener: Listener, sock: socket.socket, peer: Address) -> None:
        assert self.core is not None and isinstance(self.plane, cpath.CDataPlane)
        if self._streams is None:
            self._streams = StreamContext(
                self.core, self.forwarder, self.plane.engine, self.plane.module, on_close=self._connection_closed
            )
        connection = CompiledStream(self._streams, listener.label)
        self._admit(connection, listener)
        connection.accepted(sock, peer, proxy_protocol=listener.proxy_protocol)

    def _admit(self, connection: StreamConnection | CompiledStream, listener: Listener) -> None:
        self.connections.add(connection)
        name = f"connections_{listener.label}"
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        if len(self.connections) > MAX_STREAM_CONNECTIONS:
            asyncio.get_running_loop().call_soon(connection.close)

    def _connection_closed(self, connection: StreamConnection | CompiledStream) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            name = f"connections_{connection.transport_name}"
            setattr(self.stats, name, getattr(self.stats, name) - 1)

    def _tick(self) -> None:
        now = time.monotonic()
        try:
            if self.core is not None:
                self.core.tick(now)
            self.refusals.flush(now)
            stream.PROXY_REFUSALS.flush(now)  # the module's, which tests may replace
            for connection in list(self.connections):
                connection.tick(now)
                if connection.has_allocation:
                    connection.unallocated_since = None
                elif connection.unallocated_since is None:
                    connection.unallocated_since = now  # its allocations ended (expired or deleted)
                elif now - connection.unallocated_since > UNALLOCATED_IDLE:
                    connection.close_idle()
        except Exception:
            _log.exception("expiry tick failed")
        finally:
            if self._loop is not None:
                self._timer = self._loop.call_later(TICK_INTERVAL, self._tick)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, server in self.stream_servers:
            server.close()
        for connection in list(self.connections):
            connection.close()
        if self.core is not None:
            self.core.shutdown()
        for udp in self.udp:
            udp.close()
        for _, server in self.stream_servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self.udp.clear()
        self.stream_servers.clear()
        if self.plane is not None:
            self.plane.close()
            self.plane = None
            self._streams = None
        self._loop = None

    # --- introspection ---------------------------------------------------------------------------

    @property
    def addresses(self) -> list[tuple[str, Address]]:
        bound: list[tuple[str, Address]] = [("udp", udp.local) for udp in self.udp]
        for transport, server in self.stream_servers:
            bound.extend((transport, s.getsockname()[:2]) for s in server.sockets)
        return bound

    def address(self, transport: str) -> Address:
        return next(address for kind, address in self.addresses if kind == transport)

    @property
    def allocation_count(self) -> int:
        return 0 if self.core is None else len(self.core.table)

    # --- reload (SIGHUP) -------------------------------------------------------------------------

    def reload(self, config: RelayConfig) -> None:
        """Apply new secrets, static users, peer lists, TLS files and quota limits without dropping any
        session. The certificate is loaded first: if it is bad, it raises and nothing changes."""
        allowed = config.allowed_peers
        if self._tls is not None and config.cert_file and config.key_file:
            self._tls.reload(config.cert_file, config.key_file)
        self.auth.update(config.auth_secrets, config.static_users)
        self.peers.update(allowed, config.denied_peers, allow_loopback=config.allow_loopback_peers)
        update_limits = getattr(self.quota, "update", None)  # AllocationQuota, SharedQuota
        if update_limits is not None:
            update_limits(config.total_quota, config.user_quota)
        self.nonces.lifetime = float(config.nonce_lifetime)
        if self.limiter is not None and config.unauthenticated_rate > 0:
            self.limiter.rate = float(config.unauthenticated_rate)
            self.limiter.burst = max(1.0, float(config.unauthenticated_burst))
        revoked = 0
        if self.core is not None:
            self.core.config = config  # max_bps, max_permissions, max_channels: for what comes next
            self.core.max_permissions = config.max_permissions
            revoked = self.core.revalidate_peers()
        self.config = config
        _log.info(
            "reloaded: %d secrets, %d allowed peer networks, %d permissions revoked",
            len(config.auth_secrets),
            len(allowed),
            revoked,
        )
