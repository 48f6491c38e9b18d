"""Relay sockets: UDP sockets bound to the private relay address on a port from the configured range,
advertised as the external address (an EC2 instance sits behind 1:1 NAT).

Each endpoint is a non-blocking socket in the process's data plane (relay.server.dataplane), which
calls its handler once per ready datagram. The handler for IPv4 relay sockets is the hot path and does
the forwarding itself, in place in one shared buffer (sent from it to a UDP client; copied once into the
connection's write for a TCP/TLS client, whose ChannelData is padded); IPv6 relay sockets hand the
datagram to `Forwarder.peer_datagram`. Both apply the same rules (channel -> ChannelData, permission -> Data
indication, else drop) and tests/relay/unit/test_fast_path.py runs them side by side. With the compiled
packet path (relay.server.cpath) the IPv4 relay sockets of UDP and plain TCP clients (relay.server.cstream) are
read by its C loop, which hands datagrams from peers it has no entry for to `Forwarder.peer_datagram`.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
import sys
from typing import Any

from relay.server.dataplane import DataPlane
from relay.server.forwarding import Forwarder, report_internal_error
from relay.stun.attributes import Address
from relay.stun.constants import FAMILY_IPV4, FAMILY_IPV6
from relay.turn.wire import MAX_STUN_LENGTH, PADDING, data_indication_head

_BIND_ATTEMPTS = 64
_SOCK_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)  # Linux: non-blocking from socket(2) on
# Linux <netinet/in.h> values (Python does not export them): set DF on everything a socket sends.
_IP_MTU_DISCOVER, _IPV6_MTU_DISCOVER, _PMTUDISC_DO = 10, 23, 2

# One receive buffer per process: a datagram is fully forwarded before the next recvfrom_into. It is
# received at _HEADROOM, room for the longest header put in front (an IPv6 Data indication's 48 bytes).
_HEADROOM = 48
_BUFFER = bytearray(_HEADROOM + 65536 + 4)
_VIEW = memoryview(_BUFFER)
_RECV_VIEW = _VIEW[_HEADROOM : _HEADROOM + 65536]
_PACK_CHANNEL = struct.Struct(">2sH").pack_into
_PACK_HEADER = struct.Struct(">HH").pack_into
_MAX_DATA_HEADS = 64  # cached Data-indication prefixes per allocation (peers without a channel)


class _BufferedSystemRandom:
    """`randrange` from the OS's CSPRNG like random.SystemRandom, but reading 4 KiB at a time instead of
    one getrandom() system call per port (unpredictable ports matter: RFC 6056)."""

    def __init__(self) -> None:
        self._words: list[int] = []

    def randrange(self, n: int) -> int:
        if not self._words:
            self._words = list(memoryview(os.urandom(4096)).cast("I"))
        # 32-bit values modulo n <= 65536: the bias is below 2e-5, far under what an observer could use.
        return self._words.pop() % n


class PortPool:
    """Free ports of the relay range, picked at random (RFC 8656 section 7.2 recommends RFC 6056-style
    randomisation). Ports the OS refuses (taken by another process) are skipped, not lost."""

    def __init__(self, low: int, high: int, rng: random.Random | None = None) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"relay port range {low}-{high} is not within 1-65535 with min <= max")
        self.low, self.high = low, high
        self._free = list(range(low, high + 1))
        self._index = {port: i for i, port in enumerate(self._free)}
        self._rng = rng or _BufferedSystemRandom()

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
        "_channel_in",
        "_client",
        "_client_sendto",
        "_clock",
        "_deliver",
        "_in_place",
        "_pad",
        "_permissions",
        "_plane",
        "_pool",
        "_reading",
        "_recv",
        "_stats",
        "advertised",
        "compiled",
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
        plane: DataPlane,
        forwarder: Forwarder,
        pool: PortPool,
        in_place: bool = True,
    ) -> None:
        self.sock = sock
        self.family = family
        self.advertised = advertised
        self.port = advertised[1]
        self.sendto = sock.sendto
        self._recv = sock.recvfrom_into
        self._plane = plane
        self._deliver = forwarder.peer_datagram
        self._stats = forwarder.stats
        self._clock = forwarder.clock
        self._pool = pool
        self._allocation: Any = None
        self._channel_in: dict[Address, bytes] = {}
        self._permissions: dict[str, float] = {}
        self._client: Address | None = None
        self._client_sendto: Any = None
        self._pad = False  # ChannelData padded to 4 bytes (RFC 8656 section 12.5: stream clients)
        self._in_place = in_place  # False: always the general handler (the portable path, for tests)
        self._reading = False
        self.compiled = False  # read by the compiled path (relay.server.cpath), which may hold entries for it

    def attach(self, allocation: Any) -> None:
        self._allocation = allocation
        # The packet path reads these per datagram: the allocation's dictionaries (kept, never
        # replaced, by the control plane) and, for UDP clients, the listener socket's sendto.
        self._channel_in = allocation.channel_in
        self._permissions = allocation.permissions
        origin = allocation.origin
        if self.family == FAMILY_IPV4 and self._in_place:
            if origin.stream:
                write = getattr(origin, "write_view", None)
                if write is not None:
                    self._client, self._client_sendto, self._pad = allocation.client, write, True
            elif (udp_socket := getattr(origin, "sock", None)) is not None:
                self._client, self._client_sendto = allocation.client, udp_socket.sendto
        if not self._reading:
            # The compiled path reads it only for a client of a compiled listener (it holds no entries for others).
            compiled = self._client_sendto is not None and getattr(allocation.origin, "compiled", False)
            add_compiled = getattr(self._plane, "add_relay", None) if compiled else None
            if add_compiled is not None:
                add_compiled(self.sock.fileno(), self._handed_back)
                self.compiled = True
            else:
                self._plane.add(self.sock.fileno(), self._on_readable if self._client_sendto else self._on_readable_any)
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
            self._plane.closing(self.sock.fileno())
            self._reading = False
        self.sock.close()
        self._pool.release(self.port)
        self._allocation = None
        self._client_sendto = None

    def _on_readable(self) -> int:
        """IPv4 relay socket: one datagram per readiness event (relay.server.dataplane), received behind a
        48-byte headroom so the ChannelData or Data-indication header is written in front of it and the
        datagram leaves without being copied (a UDP client) or copied once (a stream client's write).
        Returns the payload size relayed (the data plane counts it) or -1."""
        try:
            size, address = self._recv(_RECV_VIEW)
        except OSError:
            return -1  # nothing after all, or a queued ICMP error
        header = self._channel_in.get(address)
        if header is not None:
            _PACK_CHANNEL(_BUFFER, _HEADROOM - 4, header, size)
            start = _HEADROOM - 4
            end = _HEADROOM + size
            if self._pad and size & 3:
                _BUFFER[end : end + 4 - (size & 3)] = PADDING[size & 3]
                end += 4 - (size & 3)
        elif address[0] in self._permissions:
            head = self._allocation.data_heads.get(address)
            if head is None:
                head = _new_data_head(self._allocation, address)
            pad = -size & 3
            length = len(head) - 12 + size + pad  # attributes: XOR-PEER-ADDRESS and DATA
            if length > MAX_STUN_LENGTH:
                return -1
            start = _HEADROOM - 8 - len(head)
            _PACK_HEADER(_BUFFER, start, 0x0017, length)
            _BUFFER[start + 4 : _HEADROOM - 4] = head
            _PACK_HEADER(_BUFFER, _HEADROOM - 4, 0x0013, size)
            end = _HEADROOM + size
            if pad:
                _BUFFER[end : end + pad] = PADDING[size & 3]
                end += pad
        else:
            return -1
        bucket = self._allocation.bucket_to_client
        if bucket is not None and not bucket.consume(size, self._clock()):
            self._stats.quota_rejections_bandwidth += 1
            return -1
        try:
            self._client_sendto(_VIEW[start:end], self._client)
        except OSError:
            return -1
        return size

    def _handed_back(self, data: bytes, address: Address) -> None:
        """A datagram the compiled path did not forward (no entry for its peer): the general path decides."""
        try:
            self._deliver(self._allocation, data, address)
        except Exception:  # a bug costs one datagram, never the relay socket
            report_internal_error("relay datagram")

    def _on_readable_any(self) -> int:
        """IPv6 relay sockets (and any client when the in-place handler is off, for tests): the general
        `Forwarder.peer_datagram`."""
        try:
            size, address = self._recv(_RECV_VIEW)
        except OSError:
            return -1
        self._deliver(self._allocation, _RECV_VIEW[:size], address)
        return -1  # counted by the forwarder


def _new_data_head(allocation: Any, peer: Address) -> bytes:
    heads = allocation.data_heads
    if len(heads) >= _MAX_DATA_HEADS:
        heads.clear()
    head = heads[peer] = data_indication_head(peer, os.urandom(12))
    return head


class SocketBinder:
    """Implements `relay.turn.allocation.RelayBinder` with real sockets."""

    def __init__(
        self,
        plane: DataPlane,
        forwarder: Forwarder,
        *,
        relay_ip: str,
        external_ip: str | None,
        relay_ipv6: str | None,
        external_ipv6: str | None,
        min_port: int,
        max_port: int,
        in_place: bool = True,
    ) -> None:
        self._plane = plane
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
        self._in_place = in_place

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
        sock = socket.socket(af, socket.SOCK_DGRAM | _SOCK_NONBLOCK)  # no separate fcntl per allocation
        try:
            if af == socket.AF_INET6:
                # No IPv4-mapped traffic on IPv6 relay sockets: peers are checked as real IPv4 addresses.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if not _SOCK_NONBLOCK:
                sock.setblocking(False)
            sock.bind((self._bind_ip[family], port))
        except OSError as error:
            sock.close()
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return None  # someone else holds it: the port stays out of the pool until restart
            raise
        return UdpRelayEndpoint(
            sock,
            family,
            (self._advertised_ip[family], port),
            self._plane,
            self._forwarder,
            self.pools[family],
            self._in_place,
        )
