"""The packet path: ChannelData and Send indications from clients, datagrams from peers.

Each function does the least Python work per packet: one or two dict lookups keyed by what the socket
returned (channel number, peer address), a slice, one send call and two integer increments on the
process's `RelayStats`. No STUN parsing beyond the 4-byte ChannelData header (Send indications get
the lean `relay.turn.wire` walker), no logging, no objects besides the output bytes, no clock reads
unless a bandwidth limit is configured. Expiry is the control plane's job (`TurnCore.tick`): a
channel or permission present in the allocation's dictionaries is live.

Inputs may be `memoryview`s of a reused receive buffer; they are consumed before the next receive.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from relay.turn.allocation import Allocation
from relay.turn.wire import channel_data, data_indication, data_indication_head, parse_send_indication

_MAX_DATA_HEADS = 64  # cached Data-indication prefixes per allocation (peers without a channel)
_log = logging.getLogger("relay.server")
_error_log_budget = [20]  # internal errors logged with a traceback; later ones only counted


def report_internal_error(where: str) -> None:
    """Log an unexpected exception from the packet path, a bounded number of times (a flood of one bad
    packet type must not become a flood of tracebacks)."""
    if _error_log_budget[0] > 0:
        _error_log_budget[0] -= 1
        _log.exception("internal error handling a %s (dropped)", where)


class Forwarder:
    __slots__ = ("clock", "stats")

    def __init__(self, stats: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.stats = stats
        self.clock = clock

    def client_channel_data(self, allocation: Allocation, data: bytes | memoryview) -> bool:
        """ChannelData from the client (RFC 8656 section 12.6): relay the payload to the bound peer."""
        channel = allocation.channels.get((data[0] << 8) | data[1])
        if channel is None or channel.sendto is None:
            return False
        length = (data[2] << 8) | data[3]
        if length > len(data) - 4:
            return False  # shorter than it claims: discard
        bucket = allocation.bucket_from_client
        if bucket is not None and not bucket.consume(length, self.clock()):
            self.stats.quota_rejections_bandwidth += 1
            return False
        try:
            channel.sendto(data[4 : 4 + length], channel.peer)
        except OSError:
            return False
        stats = self.stats
        stats.packets_client_to_peer += 1
        stats.bytes_client_to_peer += length
        return True

    def client_send_indication(self, allocation: Allocation, data: bytes | memoryview) -> bool:
        """Send indication (RFC 8656 section 10.2): relay DATA to XOR-PEER-ADDRESS if permitted."""
        parsed = parse_send_indication(data)
        if parsed is None:
            return False
        host, port, payload, dont_fragment = parsed
        if host not in allocation.permissions or port == 0:
            return False  # never refreshes a permission; denied peers never have one
        if ":" in host:
            sendto = allocation.send_v6
            family = 2
        else:
            sendto = allocation.send_v4
            family = 1
        if sendto is None:
            return False
        if dont_fragment and not allocation.dont_fragment:
            endpoint = allocation.relays[family]
            if not endpoint.set_dont_fragment():
                return False  # RFC 8656: DF we cannot honour makes the indication unprocessable
            allocation.dont_fragment = True
        size = len(payload)
        bucket = allocation.bucket_from_client
        if bucket is not None and not bucket.consume(size, self.clock()):
            self.stats.quota_rejections_bandwidth += 1
            return False
        try:
            sendto(payload, (host, port))
        except OSError:
            return False
        stats = self.stats
        stats.packets_client_to_peer += 1
        stats.bytes_client_to_peer += size
        return True

    def peer_datagram(self, allocation: Allocation, data: bytes | memoryview, address: tuple) -> bool:
        """A datagram arrived on the relay socket from `address`: ChannelData if a channel is bound to
        the peer, else a Data indication, and nothing at all without a permission."""
        peer = address if len(address) == 2 else address[:2]
        header = allocation.channel_in.get(peer)
        if header is not None:
            packet: bytes | None = channel_data(header, data, allocation.stream)
        elif peer[0] in allocation.permissions:
            head = allocation.data_heads.get(peer)
            if head is None:
                if len(allocation.data_heads) >= _MAX_DATA_HEADS:
                    allocation.data_heads.clear()
                head = allocation.data_heads[peer] = data_indication_head(peer, os.urandom(12))
            packet = data_indication(head, data)
            if packet is None:
                return False
        else:
            return False
        size = len(data)
        bucket = allocation.bucket_to_client
        if bucket is not None and not bucket.consume(size, self.clock()):
            self.stats.quota_rejections_bandwidth += 1
            return False
        try:
            allocation.origin.send(packet, allocation.client)
        except OSError:
            return False
        stats = self.stats
        stats.packets_peer_to_client += 1
        stats.bytes_peer_to_client += size
        return True
