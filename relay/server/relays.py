"""Relay sockets: UDP sockets bound to the private relay address on a port from the configured range,
advertised as the external address (an EC2 instance sits behind 1:1 NAT).

Each endpoint is a non-blocking socket read with `loop.add_reader` (works on asyncio and uvloop alike),
draining up to `RECV_BATCH` datagrams per wake-up into one shared receive buffer and handing each to
`Forwarder.peer_datagram`. Nothing here is asyncio-protocol based, so a faster loop (recvmmsg, a C
helper) can replace `_on_readable` without touching the core.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import sys
from typing import Any

from relay.server.forwarding import Forwarder, report_internal_error
from relay.stun.attributes import Address
from relay.stun.constants import FAMILY_IPV4, FAMILY_IPV6

RECV_BATCH = 64  # datagrams per readiness callback before yielding to the loop
_BIND_ATTEMPTS = 64
# Linux <netinet/in.h> values (Python does not export them): set DF on everything a socket sends.
_IP_MTU_DISCOVER, _IPV6_MTU_DISCOVER, _PMTUDISC_DO = 10, 23, 2

# One receive buffer per process: a datagram is fully forwarded before the next recvfrom_into.
_BUFFER = bytearray(65536)
_VIEW = memoryview(_BUFFER)


class PortPool:
    """Free ports of the relay range, picked at random (RFC 8656 section 7.2 recommends RFC 6056-style
    randomisation). Ports the OS refuses (taken by another process) are skipped, not lost."""

    def __init__(self, low: int, high: int, rng: random.Random | None = None) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"relay port range {low}-{high} is not within 1-65535 with min <= max")
        self.low, self.high = low, high
        self._free = list(range(low, high + 1))
        self._index = {port: i for i, port in enumerate(self._free)}
        self._rng = rng or random.SystemRandom()

    def __len__(self) -> int:
        return len(self._free)

    def take_random(self) -> int | None:
        if not self._free:
            return None
        return self._take(self._free[self._rng.randrange(len(self._free))])

    def take(self, port: int) -> bool:
        if port not in self._index:
            return False
        self._take(port)
        return True

    def is_free(self, port: int) -> bool:
        return port in self._index

    def _take(self, port: int) -> int:
        i = self._index.pop(port)
        last = self._free.pop()
        if last != port:
            self._free[i] = last
            self._index[last] = i
        return port

    def release(self, port: int) -> None:
        if self.low <= port <= self.high and port not in self._index:
            self._index[port] = len(self._free)
            self._free.append(port)


class UdpRelayEndpoint:
    """One relayed transport address: a bound UDP socket plus what the core and packet path need."""

    __slots__ = (
        "_allocation",
        "_forwarder",
        "_loop",
        "_pool",
        "_reading",
        "advertised",
        "family",
        "port",
        "sendto",
        "sock",
    )

    def __init__(
        self,
        sock: socket.socket,
        family: int,
        advertised: Address,
        loop: asyncio.AbstractEventLoop,
        forwarder: Forwarder,
        pool: PortPool,
    ) -> None:
        self.sock = sock
        self.family = family
        self.advertised = advertised
        self.port = advertised[1]
        self.sendto = sock.sendto
        self._loop = loop
        self._forwarder = forwarder
        self._pool = pool
        self._allocation: Any = None
        self._reading = False

    def attach(self, allocation: Any) -> None:
        self._allocation = allocation
        if not self._reading:
            self._loop.add_reader(self.sock.fileno(), self._on_readable)
            self._reading = True

    def set_dont_fragment(self) -> bool:
        if not sys.platform.startswith("linux"):
            return False
        level, option = (
            (socket.IPPROTO_IP, _IP_MTU_DISCOVER)
            if self.family == FAMILY_IPV4
            else (socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER)
        )
        try:
            self.sock.setsockopt(level, option, _PMTUDISC_DO)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        if self._reading:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False
        self.sock.close()
        self._pool.release(self.port)
        self._allocation = None

    def _on_readable(self) -> None:
        recv = self.sock.recvfrom_into
        deliver = self._forwarder.peer_datagram
        allocation = self._allocation
        view = _VIEW
        for _ in range(RECV_BATCH):
            try:
                size, address = recv(_BUFFER)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. a queued ICMP error; the next readiness event continues
            try:
                deliver(allocation, view[:size], address)
            except Exception:  # a bug costs one datagram, never the relay socket
                report_internal_error("peer datagram")


class SocketBinder:
    """Implements `relay.turn.allocation.RelayBinder` with real sockets."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        forwarder: Forwarder,
        *,
        relay_ip: str,
        external_ip: str | None,
        relay_ipv6: str | None,
        external_ipv6: str | None,
        min_port: int,
        max_port: int,
    ) -> None:
        self._loop = loop
        self._forwarder = forwarder
        self._bind_ip = {FAMILY_IPV4: relay_ip}
        self._advertised_ip = {FAMILY_IPV4: external_ip or relay_ip}
        if relay_ipv6:
            self._bind_ip[FAMILY_IPV6] = relay_ipv6
            self._advertised_ip[FAMILY_IPV6] = external_ipv6 or relay_ipv6
        for family, ip in self._advertised_ip.items():
            if ip in ("0.0.0.0", "::"):
                name = "external-ip" if family == FAMILY_IPV4 else "external-ipv6"
                raise ValueError(
                    f"the relay binds {ip} but must advertise a concrete address: set {name} "
                    f"(the public IP clients and peers reach) or bind a specific relay-ip"
                )
        self.pools = {family: PortPool(min_port, max_port) for family in self._bind_ip}
        self.dont_fragment = sys.platform.startswith("linux")

    def supports(self, family: int) -> bool:
        return family in self._bind_ip

    def bind(
        self, family: int, *, even_port: bool = False, reserve_next: bool = False
    ) -> tuple[UdpRelayEndpoint, UdpRelayEndpoint | None] | None:
        pool = self.pools.get(family)
        if pool is None:
            return None
        for _ in range(_BIND_ATTEMPTS):
            port = pool.take_random()
            if port is None:
                return None
            if even_port and port % 2:
                pool.release(port)
                port -= 1
                if not pool.take(port):
                    continue
            if reserve_next and not pool.take(port + 1):
                pool.release(port)
                continue
            endpoint = self._open(family, port)
            if endpoint is None:
                if reserve_next:
                    pool.release(port + 1)
                continue
            if not reserve_next:
                return endpoint, None
            reserved = self._open(family, port + 1)
            if reserved is not None:
                return endpoint, reserved
            endpoint.close()
        return None

    def _open(self, family: int, port: int) -> UdpRelayEndpoint | None:
        af = socket.AF_INET if family == FAMILY_IPV4 else socket.AF_INET6
        sock = socket.socket(af, socket.SOCK_DGRAM)
        try:
            if af == socket.AF_INET6:
                # No IPv4-mapped traffic on IPv6 relay sockets: peers are checked as real IPv4 addresses.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setblocking(False)
            sock.bind((self._bind_ip[family], port))
        except OSError as error:
            sock.close()
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return None  # someone else holds it: the port stays out of the pool until restart
            raise
        return UdpRelayEndpoint(
            sock, family, (self._advertised_ip[family], port), self._loop, self._forwarder, self.pools[family]
        )
