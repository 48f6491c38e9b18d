"""Permissions and channels: CreatePermission and ChannelBind (RFC 8656 sections 9.2 and 11.2).

A mixin of `TurnCore` (relay.turn.handler) rather than a separate object because the core's settings
are swapped at runtime (a reload replaces `config` and `max_permissions`, tests give it a `mirror`):
reading them from the core itself keeps one copy. The methods change state or raise `Reject`; the
core encodes the answer. Pure like the rest of relay.turn: no sockets, time passed in.
"""

from __future__ import annotations

from typing import Any

from relay.config import RelayConfig
from relay.policy.peers import PeerPolicy
from relay.stun.attributes import Address
from relay.stun.constants import CHANNEL_MAX, CHANNEL_MIN, FAMILY_IPV4, FAMILY_IPV6, Attr, ErrorCode
from relay.stun.message import Message
from relay.turn import allocation as _allocation
from relay.turn.allocation import Allocation, AllocationMirror, Channel
from relay.turn.refusals import Reject as _Reject
from relay.turn.table import AllocationTable

CHANNEL_MAX_RFC5766 = 0x7FFF  # with config.legacy_channel_numbers: RFC 5766 section 11 "0x4000 through 0x7FFF"


def family_of(host: str) -> int:
    return FAMILY_IPV6 if ":" in host else FAMILY_IPV4


class PeerGrants:
    """CreatePermission and ChannelBind for `TurnCore`, which provides these attributes."""

    config: RelayConfig
    peers: PeerPolicy
    stats: Any
    table: AllocationTable
    mirror: AllocationMirror | None
    max_permissions: int

    # --- peers -----------------------------------------------------------------------------------

    def _check_peer(self, allocation: Allocation, peer: Address) -> Address:
        """Normalise and vet one XOR-PEER-ADDRESS: 403 if the policy denies it, 443 if the allocation has
        no relay of its family. The policy goes first so denied addresses get 403 whatever their form."""
        decision = self.peers.check(peer[0])
        if not decision.allowed:
            self.stats.denied_peers += 1
            raise _Reject(ErrorCode.FORBIDDEN, "denied_peer", peer=decision.address, rule=decision.reason)
        host = decision.address
        if family_of(host) not in allocation.relays:
            raise _Reject(ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH, "peer_family", peer=host)
        return host, peer[1]

    def _grant_permission(self, allocation: Allocation, host: str, now: float) -> None:
        fresh = host not in allocation.permissions
        expires = now + self.config.permission_lifetime
        allocation.permissions[host] = expires
        self.table.schedule(allocation, expires)
        if fresh:
            allocation.sync_channels_for_host(host)

    # --- CreatePermission (RFC 8656 section 9.2) -------------------------------------------------

    def _create_permission(self, request: Message, allocation: Allocation, now: float) -> None:
        peers = request.get_all(Attr.XOR_PEER_ADDRESS)
        if not peers:
            raise _Reject(ErrorCode.BAD_REQUEST, "no_peer")
        hosts = {self._check_peer(allocation, peer)[0] for peer in peers}  # all or nothing
        if len(set(allocation.permissions) | hosts) > self.max_permissions:
            raise _Reject(ErrorCode.INSUFFICIENT_CAPACITY, "permissions", limit=self.max_permissions)
        for host in hosts:
            self._grant_permission(allocation, host, now)
        _allocation.update_mirror(self.mirror, allocation)

    # --- ChannelBind (RFC 8656 section 11.2) -----------------------------------------------------

    def _channel_bind(self, request: Message, allocation: Allocation, now: float) -> None:
        number = request.get(Attr.CHANNEL_NUMBER)
        peer = request.get(Attr.XOR_PEER_ADDRESS)
        highest = CHANNEL_MAX_RFC5766 if self.config.legacy_channel_numbers else CHANNEL_MAX
        if number is None or peer is None or peer[1] == 0:
            raise _Reject(ErrorCode.BAD_REQUEST, "channel_args")
        if not CHANNEL_MIN <= number <= highest:
            raise _Reject(ErrorCode.BAD_REQUEST, "channel_range", number=number, highest=highest)
        peer = self._check_peer(allocation, peer)
        bound = allocation.channels.get(number)
        if bound is not None and bound.peer != peer:
            raise _Reject(ErrorCode.BAD_REQUEST, "channel_taken", number=number)
        # A scan, not a second dictionary per allocation: at most max_channels, on a request, never per packet.
        by_peer = next((channel for channel in allocation.channels.values() if channel.peer == peer), None)
        if by_peer is not None and by_peer.number != number:
            raise _Reject(ErrorCode.BAD_REQUEST, "peer_bound", peer=peer[0])
        cooling = allocation.cooldown_numbers.get(number)
        if cooling is not None and cooling[1] > now and cooling[0] != peer:
            raise _Reject(ErrorCode.BAD_REQUEST, "channel_cooldown", number=number, peer=peer[0])
        cooling_peer = allocation.cooldown_peers.get(peer)
        if cooling_peer is not None and cooling_peer[1] > now and cooling_peer[0] != number:
            raise _Reject(ErrorCode.BAD_REQUEST, "channel_cooldown", number=number, peer=peer[0])
        if peer[0] not in allocation.permissions and len(allocation.permissions) >= self.max_permissions:
            raise _Reject(ErrorCode.INSUFFICIENT_CAPACITY, "permissions", limit=self.max_permissions)
        if bound is None and len(allocation.channels) >= self.config.max_channels:
            self.stats.quota_rejections_channels += 1
            raise _Reject(ErrorCode.INSUFFICIENT_CAPACITY, "channels", limit=self.config.max_channels)
        expires = now + self.config.channel_lifetime
        if bound is None:
            channel = Channel(number, peer, expires)
            allocation.channels[number] = channel
            allocation.cooldown_numbers.pop(number, None)
            allocation.cooldown_peers.pop(peer, None)
        else:
            channel = bound
            channel.expires = expires
        self.table.schedule(allocation, expires)
        self._grant_permission(allocation, peer[0], now)
        allocation.sync_channel(channel)
        _allocation.update_mirror(self.mirror, allocation)
