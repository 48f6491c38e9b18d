"""The UDP listener (port 3478): every client datagram enters here.

Demultiplexing on the first byte (RFC 8656 section 12 / RFC 7983): ChannelData (0x40-0x4F) and Send
indications (type 0x0016) go to the packet path with one dict lookup by source address; every other
STUN message goes to the control plane (`TurnCore.handle`); anything else is counted as malformed.

Two readers, one behaviour:
  * `_on_readable_batched` (Linux, IPv4): `recvmmsg` fills up to 64 slots per system call and the
    ChannelData case is handled inline: the client is found by an int made of its raw sockaddr
    (`relay.server.mmsg`), its channel by number, and the payload leaves as a memoryview of the slot.
    Send indications use the allocation-free parser of `relay.server.fastwire`.
  * `_on_readable` (IPv6, other platforms): `recvfrom_into` a shared buffer, then `on_datagram`,
    which is also the entry point the fuzz tests drive directly.
With the compiled packet path (relay.server.cpath) an IPv4 listener is read by its C loop instead, which
forwards installed channels and permissions and hands the rest to `on_datagram` (`_handed_back`).
Relayed packets and bytes are added to `RelayStats` once per batch.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Hashable
from typing import Any

from relay.server.dataplane import DataPlane
from relay.server.fastwire import parse_send
from relay.server.forwarding import Forwarder, report_internal_error
from relay.server.mmsg import BatchReceiver, address_key
from relay.stun.attributes import Address
from relay.turn.allocation import Allocation
from relay.turn.handler import TurnCore

RECV_BATCH = 64
LISTENER_RECEIVE_BUFFER = 4 * 1024 * 1024
_BUFFER = bytearray(65536)
_VIEW = memoryview(_BUFFER)


class ClientIndex(dict):  # type: ignore[type-arg]
    """The listener's allocations by client address (what `AllocationTable` maintains), mirrored in
    `raw` by the int key recvmmsg yields for that address (IPv4 clients only), plus each allocation's
    cache of decoded XOR-PEER-ADDRESS values (`relay.server.fastwire`), dropped with the allocation."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: dict[int, Allocation] = {}
        self.peers: dict[int, dict[bytes, Any]] = {}

    def __setitem__(self, client: Address, allocation: Allocation) -> None:
        if client in self:
            self._forget(client)
        super().__setitem__(client, allocation)
        key = _raw_key(client)
        if key is not None:
            self.raw[key] = allocation

    def __delitem__(self, client: Address) -> None:
        self._forget(client)
        super().__delitem__(client)

    def pop(self, client: Address, *default: Any) -> Any:
        self._forget(client)
        return super().pop(client, *default)

    def clear(self) -> None:
        super().clear()
        self.raw.clear()
        self.peers.clear()

    def _forget(self, client: Address) -> None:
        allocation = self.get(client)
        if allocation is not None:
            self.peers.pop(allocation.seq, None)
        key = _raw_key(client)
        if key is not None:
            self.raw.pop(key, None)


def _raw_key(client: Hashable) -> int | None:
    if type(client) is tuple and len(client) == 2 and ":" not in client[0]:
        try:
            return address_key(client)
        except (OSError, ValueError, OverflowError, TypeError):
            return None
    return None


class UdpListener:
    """An `Origin` for many clients: the allocation table keys them by source address."""

    transport = "udp"
    stream = False

    def __init__(
        self,
        sock: socket.socket,
        core: TurnCore,
        forwarder: Forwarder,
        plane: DataPlane,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        batched: bool = True,
    ) -> None:
        self.sock = sock
        self.core = core
        self.forwarder = forwarder
        self.plane = plane
        self.clock = clock
        self.wall_clock = wall_clock
        self.local: Address = sock.getsockname()[:2]
        self.key = self
        self.allocations = ClientIndex()
        core.table.by_origin[self] = self.allocations  # the table fills it; the packet path reads it
        self.stats = core.stats
        sock.setblocking(False)
        # The compiled path (relay.server.cpath) reads IPv4 listeners itself and hands back what it does not
        # forward; `compiled` tells its mirror that this listener's clients can have entries there.
        add_compiled = getattr(plane, "add_listener", None) if batched and sock.family == socket.AF_INET else None
        self.compiled = add_compiled is not None
        self.receiver = BatchReceiver.create(sock) if batched and not self.compiled else None
        if add_compiled is not None:
            add_compiled(sock.fileno(), self._handed_back)
        else:
            plane.add(sock.fileno(), self._on_readable if self.receiver is None else self._on_readable_batched)

    @classmethod
    def bind(cls, host: str, port: int, **kwargs: Any) -> UdpListener:
        return cls(bind_udp(host, port), **kwargs)

    def send(self, data: bytes, client: Address) -> Any:
        return self.sock.sendto(data, client)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.plane.remove(self.sock.fileno())
            self.sock.close()
        if self.receiver is not None:
            self.receiver.close()
            self.receiver = None

    # --- readers -----------------------------------------------------------------------------------

    def _on_readable(self) -> int:
        recv = self.sock.recvfrom_into
        handle = self.on_datagram
        view = _VIEW
        for _ in range(RECV_BATCH):
            try:
                size, address = recv(_BUFFER)
            except OSError:  # BlockingIOError: drained; anything else: the next readiness continues
                return -1
            try:
                handle(view[:size], address)
            except Exception:  # a bug costs one datagram, never the listener or the rest of the batch
                self.stats.malformed_udp += 1
                report_internal_error("udp datagram")
        return -1

    def _handed_back(self, data: bytes, address: Address) -> None:
        """A datagram the compiled path did not forward, exactly as it arrived."""
        try:
            self.on_datagram(data, address)
        except Exception:  # a bug costs one datagram, never the listener or the rest of the batch
            self.stats.malformed_udp += 1
            report_internal_error("udp datagram")

    def _on_readable_batched(self) -> int:
        receiver = self.receiver
        assert receiver is not None
        count = receiver.receive()
        if not count:
            return -1
        words, length_index, keys, slots = receiver.words, receiver.length_index, receiver.keys, receiver.slots
        clients = self.allocations.raw
        packets = 0
        payload_bytes = 0
        for i in range(count):
            try:
                size = words[length_index[i]]
                data = slots[i]
                if size >= 4 and data[0] & 0xC0 == 0x40:  # ChannelData: the hot case, inline
                    allocation = clients.get(keys[2 * i])
                    if allocation is None:
                        continue
                    channel = allocation.channels.get((data[0] << 8) | data[1])
                    if channel is None or channel.sendto is None:
                        continue
                    length = (data[2] << 8) | data[3]
                    if length > size - 4:
                        continue  # shorter than it claims: discard
                    bucket = allocation.bucket_from_client
                    if bucket is not None and not bucket.consume(length, self.clock()):
                        self.stats.quota_rejections_bandwidth += 1
                        continue
                    try:
                        channel.sendto(data[4 : 4 + length], channel.peer)
                    except OSError:
                        continue
                    packets += 1
                    payload_bytes += length
                    continue
                if size >= 20 and data[0] == 0 and data[1] == 0x16:  # Send indication
                    allocation = clients.get(keys[2 * i])
                    if allocation is None:
                        continue
                    sent = self._send_indication(allocation, data, size)
                    if sent >= 0:
                        packets += 1
                        payload_bytes += sent
                    continue
                self.on_datagram(data[:size], receiver.address(i))
            except Exception:  # a bug costs one datagram, never the listener or the rest of the batch
                self.stats.malformed_udp += 1
                report_internal_error("udp datagram")
        if packets:
            stats = self.stats
            stats.packets_client_to_peer += packets
            stats.bytes_client_to_peer += payload_bytes
        return -1

    def _send_indication(self, allocation: Allocation, data: memoryview, size: int) -> int:
        """Relay a batched Send indication; the payload size relayed, or -1."""
        peers = self.allocations.peers
        cache = peers.get(allocation.seq)
        if cache is None:
            cache = peers[allocation.seq] = {}
        parsed = parse_send(data, size, cache)
        if parsed is None:
            return -1
        host, port, payload, dont_fragment = parsed
        if host not in allocation.permissions or port == 0:
            return -1  # never refreshes a permission; denied peers never have one
        sendto = allocation.send_v6 if ":" in host else allocation.send_v4
        if sendto is None:
            return -1
        if dont_fragment and not allocation.dont_fragment:
            endpoint = allocation.relays[2 if ":" in host else 1]
            if not endpoint.set_dont_fragment():
                return -1  # RFC 8656: DF we cannot honour makes the indication unprocessable
            allocation.dont_fragment = True
        length = len(payload)
        bucket = allocation.bucket_from_client
        if bucket is not None and not bucket.consume(length, self.clock()):
            self.stats.quota_rejections_bandwidth += 1
            return -1
        try:
            sendto(payload, (host, port))
        except OSError:
            return -1
        return length

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


def bind_udp(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A UDP listening socket; with `reuse_port`, one of several (one per worker) sharing the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual-stack "::"
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # Every client's datagrams share this socket: a burst (a conference starting, 1 000 Allocates
        # at once) must queue, not drop. The kernel caps the size at net.core.rmem_max.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LISTENER_RECEIVE_BUFFER)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    os.set_inheritable(sock.fileno(), False)
    return sock
