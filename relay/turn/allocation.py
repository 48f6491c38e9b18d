"""Allocation state (RFC 8656 sections 2.2, 9, 12) and the interfaces the core needs from the I/O layer.

An `Allocation` keeps both the control-plane state (lifetimes, permissions, channels with their expiry
times) and small precomputed dictionaries the per-packet path reads directly:

    permissions   {peer host text: expiry}           peer -> client: is this source permitted?
    channels      {channel number: Channel}           client ChannelData -> peer: one lookup, then the
                                                      channel's `sendto` (None unless live) and `peer`
    channel_in    {(peer host, port): b"\\x40\\x01"}    peer datagram -> ChannelData header, one lookup
    send_v4/v6    relay socket sendto for the family  Send indication -> peer

What reaches the client goes through `origin.send(data, client)` (UDP sendto / TCP write): nothing per
allocation is kept for it (a closure per allocation was ~350 bytes of its ~3-5 KiB).

The control plane keeps these in step: a channel has a `sendto` and is present in `channel_in` only while
both the binding and a permission for its peer are live, so the data path never checks an expiry (the
mark is on the Channel, not in a second number-keyed dictionary: one dictionary less per allocation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Protocol

from relay.stun.attributes import Address

SendTo = Callable[[bytes, Address], Any]


class RelayEndpoint(Protocol):
    """One relay socket (relayed transport address). Implemented with real sockets by relay.server."""

    family: int  # FAMILY_IPV4 | FAMILY_IPV6
    advertised: Address  # XOR-RELAYED-ADDRESS: the external IP (1:1 NAT) and the bound port
    sendto: SendTo  # sends one datagram to a peer from this socket

    def attach(self, allocation: Allocation) -> None:
        """Start delivering datagrams from peers to `allocation`."""

    def set_dont_fragment(self) -> bool:
        """Set DF on everything this socket sends; False if the platform cannot."""

    def close(self) -> None: ...


class RelayBinder(Protocol):
    """Creates relay sockets from the configured port range."""

    dont_fragment: bool  # whether DONT-FRAGMENT can be honoured at all

    def supports(self, family: int) -> bool: ...

    def bind(
        self, family: int, *, even_port: bool = False, reserve_next: bool = False
    ) -> tuple[RelayEndpoint, RelayEndpoint | None] | None:
        """A new endpoint (and, with `reserve_next`, the port after it held for a RESERVATION-TOKEN),
        or None when no port is free (508)."""


class AllocationMirror(Protocol):
    """Something that must follow each allocation's permissions and channels: the in-kernel forwarding
    path (relay.server.kernel.KernelMirror). `TurnCore` calls `sync` after every change to
    `permissions` or a channel's liveness and `forget` when the allocation ends; data packets never call it."""

    def sync(self, allocation: Allocation) -> None: ...

    def forget(self, allocation: Allocation) -> None: ...


def update_mirror(mirror: AllocationMirror | None, allocation: Allocation, *, forget: bool = False) -> None:
    """Bring `mirror` in line with `allocation` after its permissions or channels changed (or withdraw it
    all). A failure (a full map) is logged and costs the offload, never the request."""
    if mirror is not None:
        try:
            (mirror.forget if forget else mirror.sync)(allocation)
        except Exception:
            logging.getLogger("relay.turn").exception(
                "kernel mirror update failed; the allocation is served from user space"
            )


class Origin(Protocol):
    """Where requests arrive: a UDP listener (many clients) or one TCP/TLS connection (one client)."""

    transport: str  # "udp" | "tcp" | "tls"
    key: Hashable  # identifies this listener / connection in the allocation table
    local: Address  # the server side of the 5-tuple
    stream: bool  # True for TCP/TLS: ChannelData is padded to 4 bytes

    def send(self, data: bytes, client: Address) -> Any:
        """Send bytes to `client` over this origin (raises OSError when they cannot go now)."""


class Channel:
    __slots__ = ("expires", "header", "number", "peer", "sendto")

    def __init__(self, number: int, peer: Address, expires: float) -> None:
        self.number = number
        self.peer = peer
        self.expires = expires
        self.header = number.to_bytes(2, "big")
        self.sendto: SendTo | None = None  # the relay socket's, while the channel is live (sync_channel)


class Allocation:
    __slots__ = (
        "allocate_response",
        "allocate_tid",
        "bucket_from_client",
        "bucket_to_client",
        "channel_in",
        "channels",
        "client",
        "closed",
        "cooldown_numbers",
        "cooldown_peers",
        "data_heads",
        "dont_fragment",
        "expires",
        "key",
        "origin",
        "permissions",
        "quota_user",
        "relays",
        "scheduled",
        "send_v4",
        "send_v6",
        "seq",
        "stream",
        "username",
    )

    def __init__(
        self,
        *,
        seq: int,
        origin: Origin,
        client: Address,
        username: str,
        key: bytes,
        quota_user: str,
        relays: dict[int, RelayEndpoint],
        expires: float,
    ) -> None:
        self.seq = seq
        self.origin = origin
        self.client = client
        self.stream = origin.stream
        self.username = username
        self.key = key
        self.quota_user = quota_user
        self.relays = relays
        self.send_v4: SendTo | None = relays[1].sendto if 1 in relays else None
        self.send_v6: SendTo | None = relays[2].sendto if 2 in relays else None
        self.expires = expires
        self.permissions: dict[str, float] = {}
        self.channels: dict[int, Channel] = {}
        self.channel_in: dict[Address, bytes] = {}
        # RFC 8656 section 12: a channel number / peer stays reserved 5 minutes after its binding ends.
        self.cooldown_numbers: dict[int, tuple[Address, float]] = {}
        self.cooldown_peers: dict[Address, tuple[int, float]] = {}
        self.data_heads: dict[Address, bytes] = {}
        self.allocate_tid = b""
        self.allocate_response = b""
        self.dont_fragment = False
        self.bucket_from_client: Any = None  # TokenBucket when max_bps is set
        self.bucket_to_client: Any = None
        self.scheduled = float("inf")
        self.closed = False

    def next_deadline(self) -> float:
        deadline = self.expires
        for expires in self.permissions.values():
            if expires < deadline:
                deadline = expires
        for channel in self.channels.values():
            if channel.expires < deadline:
                deadline = channel.expires
        for _, until in self.cooldown_numbers.values():
            if until < deadline:
                deadline = until
        return deadline

    def sync_channel(self, channel: Channel) -> None:
        """Publish or withdraw a channel's fast-path entries: live only while its peer is permitted."""
        peer = channel.peer
        sendto = self.send_v6 if ":" in peer[0] else self.send_v4
        if peer[0] in self.permissions and self.channels.get(channel.number) is channel and sendto:
            channel.sendto = sendto
            self.channel_in[peer] = channel.header
        else:
            channel.sendto = None
            if self.channel_in.get(peer) == channel.header:
                del self.channel_in[peer]

    def live_channels(self) -> Iterator[Channel]:
        """The channels the packet path forwards on: those `sync_channel` gave a `sendto`."""
        return (channel for channel in self.channels.values() if channel.sendto is not None)

    def sync_channels_for_host(self, host: str) -> None:
        for channel in self.channels.values():
            if channel.peer[0] == host:
                self.sync_channel(channel)
