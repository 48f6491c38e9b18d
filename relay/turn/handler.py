"""The TURN request handler: parse, authenticate, decide, encode (RFC 8489, RFC 8656, RFC 6156).

`TurnCore.handle()` takes one STUN request with the time and returns the response bytes (or None when
the request must be dropped silently). It never touches sockets itself: relay sockets come from the
`RelayBinder` it is given and responses go back to the caller. Time comes in as two numbers: `now`
(monotonic seconds, for lifetimes) and `wall` (unix seconds, for nonces and credential expiry).

Security rules enforced here:
  * nothing is stored for a source before it returns a valid nonce (401/438 come from stateless
    nonces; the only per-source structure is the constant-size 401 limiter);
  * answers to unauthenticated requests are small (no SOFTWARE, no reason phrase, FINGERPRINT only
    when asked) and, on UDP, never more than AMPLIFICATION_BOUND times the request: a larger answer
    is dropped, whatever the realm. Answers larger than their request also spend the source IP's
    reflection budget (relay.policy.quotas.SourceLimiter), which a valid nonce from that IP refunds;
  * every peer address is normalised and checked by the peer policy before a permission or channel
    exists, so the packet path only needs "is there a permission".

Send indications and ChannelData never come here: see relay.server.forwarding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from relay.config import RelayConfig
from relay.config.model import AMPLIFICATION_BOUND
from relay.policy.auth import Authenticator, AuthFailure, Credential
from relay.policy.nonce import Nonces, NonceStatus
from relay.policy.peers import PeerPolicy
from relay.policy.quotas import QuotaBackend, SourceLimiter, TokenBucket
from relay.stun.attributes import Address
from relay.stun.constants import (
    FAMILY_IPV4,
    FAMILY_IPV6,
    REASONS,
    TRANSPORT_UDP,
    Attr,
    ErrorCode,
    MessageClass,
    Method,
)
from relay.stun.integrity import verify_fingerprint, verify_integrity
from relay.stun.message import Message, StunDecodeError, decode, encode
from relay.turn import allocation as _allocation
from relay.turn.allocation import Allocation, AllocationMirror, Origin, RelayBinder, RelayEndpoint
from relay.turn.grants import PeerGrants, family_of
from relay.turn.refusals import Refusal
from relay.turn.refusals import Reject as _Reject
from relay.turn.table import AllocationTable

_log = logging.getLogger("relay.turn")

CHANNEL_COOLDOWN = 300.0  # RFC 8656 section 12: no rebinding of a number/peer for 5 minutes
RESERVATION_LIFETIME = 30.0  # RFC 8656 section 7.2: hold an EVEN-PORT R reservation ~30 s

_METHOD_LABELS = {
    Method.BINDING: "binding",
    Method.ALLOCATE: "allocate",
    Method.REFRESH: "refresh",
    Method.CREATE_PERMISSION: "create_permission",
    Method.CHANNEL_BIND: "channel_bind",
}
_TURN_METHODS = frozenset((Method.ALLOCATE, Method.REFRESH, Method.CREATE_PERMISSION, Method.CHANNEL_BIND))


def reflexive(client: Address) -> Address:
    """The client's address as it should appear in XOR-MAPPED-ADDRESS: a dual-stack listener sees IPv4
    clients as ::ffff:a.b.c.d, which is reported as the IPv4 address it is."""
    host = client[0]
    if host.startswith("::ffff:") and "." in host:
        return host[7:], client[1]
    return client[0], client[1]


class TurnCore(PeerGrants):
    """One process's TURN server logic and its allocation table (CreatePermission and ChannelBind:
    relay.turn.grants)."""

    def __init__(
        self,
        config: RelayConfig,
        *,
        auth: Authenticator,
        nonces: Nonces,
        peers: PeerPolicy,
        quota: QuotaBackend,
        binder: RelayBinder,
        stats: Any,
        limiter: SourceLimiter | None = None,
        draining: Callable[[], bool] = lambda: False,
        refusals: Callable[[Refusal], None] | None = None,
        mirror: AllocationMirror | None = None,
    ) -> None:
        self.config = config
        self.auth = auth
        self.nonces = nonces
        self.peers = peers
        self.quota = quota
        self.binder = binder
        self.stats = stats
        self.limiter = limiter
        self._request_size = 0  # of the request being handled: bounds what may be reflected
        self.draining = draining
        self.refusals = refusals  # told why each error response was sent (relay.server.refusals logs it)
        self.mirror = mirror  # the in-kernel path, kept equal to each allocation's permissions and channels
        self.table = AllocationTable()
        # RESERVATION-TOKEN -> (held endpoint, expiry, quota user): a held port counts against the
        # total and per-user quotas like an allocation until it is used or expires.
        self.reservations: dict[bytes, tuple[RelayEndpoint, float, str]] = {}
        self.realm = config.realm
        self.max_permissions = config.max_permissions

    # --- entry point -----------------------------------------------------------------------------

    def handle(self, data: bytes, origin: Origin, client: Address, now: float, wall: float) -> bytes | None:
        """Process one STUN message from `client`; return the response to send, or None."""
        self._request_size = len(data)
        try:
            message = decode(data)
        except StunDecodeError:
            self._count_malformed(origin)
            return None
        if message.message_class != MessageClass.REQUEST:
            return None  # responses and indications other than Send are not for a server
        if verify_fingerprint(message) is False:
            self._count_malformed(origin)
            return None
        method = message.method
        label = _METHOD_LABELS.get(method, "other")
        try:
            if method == Method.BINDING:
                response = self._binding(message, origin, client, wall)
            elif method in _TURN_METHODS:
                response = self._turn_request(message, origin, client, now, wall)
            else:
                response = self._unauthenticated_error(
                    message, origin, client, wall, ErrorCode.BAD_REQUEST, cause="unknown_method", method=method
                )
        except Exception:  # a bug must cost one request, never the listener
            _log.exception("request handling failed", extra={"method": label})
            self.stats.count_request(label, "server_error")
            return self._encode_error(message, ErrorCode.SERVER_ERROR, None)
        if response is not None:
            result = "success" if (response[0] & 0x01, response[1] & 0x10) == (1, 0) else "client_error"
            self.stats.count_request(label, result)
        return response

    # --- encoding --------------------------------------------------------------------------------

    def _encode(self, request: Message, cls: MessageClass, attrs: list[tuple[int, Any]], key: bytes | None) -> bytes:
        if key is not None and self.config.software:
            attrs.append((Attr.SOFTWARE, self.config.software))
        message = Message(request.method, cls, request.transaction_id, attrs)
        # Unauthenticated answers carry FINGERPRINT only when the request did: 8 bytes less reflection.
        fingerprint = self.config.fingerprint and (key is not None or request.fingerprint_offset >= 0)
        return encode(message, integrity_key=key, fingerprint=fingerprint)

    def _encode_error(
        self, request: Message, code: int, key: bytes | None, extra: tuple[tuple[int, Any], ...] = ()
    ) -> bytes:
        attrs: list[tuple[int, Any]] = [(Attr.ERROR_CODE, (code, REASONS.get(code, "Error")))]
        attrs.extend(extra)
        return self._encode(request, MessageClass.ERROR, attrs, key)

    def _acquire(self, user: str) -> None:
        """One unit of the total and per-user quotas (486 / 508 when exhausted)."""
        refused = self.quota.try_acquire(user)
        if refused is not None:
            kind = "total" if refused == ErrorCode.INSUFFICIENT_CAPACITY else "user"
            self._bump(f"quota_rejections_{kind}")
            limit = self.config.total_quota if kind == "total" else self.config.user_quota
            raise _Reject(refused, f"{kind}_quota", user=user, limit=limit)

    def _bump(self, name: str) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + 1)

    def _count_malformed(self, origin: Origin) -> None:
        self._bump(f"malformed_{origin.transport}")

    def _reflect(
        self, response: bytes, origin: Origin, client: Address, wall: float, budgeted: bool = True
    ) -> bytes | None:
        """An answer to an unauthenticated request, or None when it must not leave: on UDP (where the
        source may be forged) never over AMPLIFICATION_BOUND times the request, and one that is larger
        than its request only within the source's reflection budget. Binding answers are not
        `budgeted`: at most 2.2x (a 24-byte IPv6 XOR-MAPPED-ADDRESS to a bare 20-byte request), and
        STUN keepalives from a NAT crowd never authenticate. TCP/TLS peers completed a handshake:
        nothing is reflected to anyone else."""
        if origin.transport != "udp":
            return response
        size = len(response)
        if size > AMPLIFICATION_BOUND * self._request_size or (
            budgeted
            and size > self._request_size
            and self.limiter is not None
            and not self.limiter.allow(client[0], wall)
        ):
            self.stats.rate_limited += 1
            return None
        return response

    def _refuse(self, code: int, cause: str, request: Message, origin: Origin, client: Address, **detail: Any) -> None:
        if self.refusals is not None:
            username = request.get(Attr.USERNAME)  # a name, never a secret; MESSAGE-INTEGRITY is not kept
            self.refusals(Refusal(code, cause, request.method, client, origin.transport, username, detail))

    def _unauthenticated_error(
        self,
        request: Message,
        origin: Origin,
        client: Address,
        wall: float,
        code: int,
        challenge: bool = False,
        cause: str | None = None,  # None: the routine 401 that opens every session, not reported
        **detail: Any,
    ) -> bytes | None:
        if cause is not None:
            self._refuse(code, cause, request, origin, client, **detail)
        # No reason phrase before authentication: the code is what clients act on, and 16 bytes less.
        attrs: list[tuple[int, Any]] = [(Attr.ERROR_CODE, (code, ""))]
        if challenge:
            attrs += [(Attr.REALM, self.realm), (Attr.NONCE, self.nonces.issue(client, wall))]
        return self._reflect(self._encode(request, MessageClass.ERROR, attrs, None), origin, client, wall)

    # --- Binding ---------------------------------------------------------------------------------

    def _binding(self, request: Message, origin: Origin, client: Address, wall: float) -> bytes | None:
        cls = MessageClass.SUCCESS
        attrs: list[tuple[int, Any]] = [(Attr.XOR_MAPPED_ADDRESS, reflexive(client))]
        if request.unknown_required:
            self._refuse(420, "unknown_attribute", request, origin, client, attributes=request.unknown_required)
            cls = MessageClass.ERROR
            attrs = [
                (Attr.ERROR_CODE, (ErrorCode.UNKNOWN_ATTRIBUTE, "")),
                (Attr.UNKNOWN_ATTRIBUTES, request.unknown_required),
            ]
        return self._reflect(self._encode(request, cls, attrs, None), origin, client, wall, budgeted=False)

    # --- authentication --------------------------------------------------------------------------

    def _turn_request(self, request: Message, origin: Origin, client: Address, now: float, wall: float) -> bytes | None:
        if request.integrity_offset < 0:
            return self._unauthenticated_error(request, origin, client, wall, ErrorCode.UNAUTHENTICATED, challenge=True)
        malformed = {Attr.USERNAME, Attr.REALM, Attr.NONCE} & set(request.malformed)
        username, realm, nonce = request.get(Attr.USERNAME), request.get(Attr.REALM), request.get(Attr.NONCE)
        if malformed or username is None or realm is None or nonce is None:
            self.stats.auth_failures_malformed += 1
            return self._unauthenticated_error(request, origin, client, wall, 400, cause="missing_credentials")
        status = self.nonces.check(nonce, client, wall)
        if status is not NonceStatus.VALID:
            self.stats.auth_failures_stale_nonce += 1
            return self._unauthenticated_error(request, origin, client, wall, 438, True, "stale_nonce")
        if self.limiter is not None and origin.transport == "udp":
            self.limiter.refund(client[0])  # this source receives our answers: one back in its budget
        if realm != self.realm:
            self.stats.auth_failures_wrong_realm += 1
            return self._unauthenticated_error(
                request, origin, client, wall, 401, True, "wrong_realm", realm=realm, expected=self.realm
            )

        allocation = self.table.get(origin.key, client)
        verify = lambda key: verify_integrity(request, key)  # noqa: E731
        if allocation is not None and username == allocation.username:
            if not verify(allocation.key):
                self.stats.auth_failures_bad_integrity += 1
                return self._unauthenticated_error(request, origin, client, wall, 401, True, "allocation_key")
            key = allocation.key
            credential = Credential(allocation.username, allocation.key, allocation.quota_user)
        else:
            outcome = self.auth.authenticate(
                username, verify, wall, check_expiry=request.method == Method.ALLOCATE and allocation is None
            )
            if isinstance(outcome, AuthFailure):
                self._bump(f"auth_failures_{outcome.value}")
                return self._unauthenticated_error(request, origin, client, wall, 401, True, outcome.value)
            credential, key = outcome, outcome.key
            if allocation is not None and request.method != Method.ALLOCATE:
                # RFC 8656: requests on an allocation must use the credentials that created it
                # (a second Allocate on the 5-tuple gets 437 below, whoever sends it).
                self._refuse(441, "other_user", request, origin, client, owner=allocation.username)
                return self._encode_error(request, ErrorCode.WRONG_CREDENTIALS, key)

        # Authenticated from here on: every response carries MESSAGE-INTEGRITY.
        try:
            if request.unknown_required:
                unknown = request.unknown_required
                raise _Reject(420, "unknown_attribute", ((Attr.UNKNOWN_ATTRIBUTES, unknown),), attributes=unknown)
            if request.malformed:
                raise _Reject(ErrorCode.BAD_REQUEST, "malformed_attribute", attributes=request.malformed)
            if request.method == Method.ALLOCATE:
                return self._allocate(request, origin, client, credential, now)
            if allocation is None:
                raise _Reject(ErrorCode.ALLOCATION_MISMATCH, "no_allocation")
            if request.method == Method.REFRESH:
                return self._refresh(request, allocation, now)
            if request.method == Method.CREATE_PERMISSION:
                self._create_permission(request, allocation, now)
            else:
                self._channel_bind(request, allocation, now)
            return self._encode(request, MessageClass.SUCCESS, [], allocation.key)
        except _Reject as reject:
            self._refuse(reject.code, reject.cause, request, origin, client, **reject.detail)
            return self._encode_error(request, reject.code, key, reject.extra)

    # --- Allocate (RFC 8656 section 7.2) ---------------------------------------------------------

    def _allocate(self, request: Message, origin: Origin, client: Address, credential: Credential, now: float) -> bytes:
        existing = self.table.get(origin.key, client)
        if existing is not None:
            if existing.allocate_tid == request.transaction_id:
                return existing.allocate_response  # a retransmission: same answer
            raise _Reject(ErrorCode.ALLOCATION_MISMATCH, "allocation_exists")
        if self.draining():
            raise _Reject(ErrorCode.FORBIDDEN, "draining")
        transport = request.get(Attr.REQUESTED_TRANSPORT)
        if transport is None:
            raise _Reject(ErrorCode.BAD_REQUEST, "no_transport")
        if transport != TRANSPORT_UDP:
            raise _Reject(ErrorCode.UNSUPPORTED_TRANSPORT_PROTOCOL, "transport", protocol=transport)
        dont_fragment = request.has(Attr.DONT_FRAGMENT)
        if dont_fragment and not self.binder.dont_fragment:
            raise _Reject(420, "dont_fragment", ((Attr.UNKNOWN_ATTRIBUTES, (int(Attr.DONT_FRAGMENT),)),))
        token = request.get(Attr.RESERVATION_TOKEN)
        requested_family = request.get(Attr.REQUESTED_ADDRESS_FAMILY)
        additional_family = request.get(Attr.ADDITIONAL_ADDRESS_FAMILY)
        even_port = request.get(Attr.EVEN_PORT)
        if token is not None and (
            even_port is not None or requested_family is not None or additional_family is not None
        ):
            raise _Reject(ErrorCode.BAD_REQUEST, "token_conflict")
        if requested_family is not None and additional_family is not None:
            raise _Reject(ErrorCode.BAD_REQUEST, "two_families")
        reserved_endpoint: RelayEndpoint | None = None
        if token is not None:
            held = self.reservations.get(token)
            if held is None or held[1] <= now:
                raise _Reject(ErrorCode.INSUFFICIENT_CAPACITY, "reservation")
            reserved_endpoint = held[0]
            family = reserved_endpoint.family
        else:
            family = FAMILY_IPV4 if requested_family is None else requested_family
            if family not in (FAMILY_IPV4, FAMILY_IPV6) or not self.binder.supports(family):
                raise _Reject(ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED, "family", family=family)
        if additional_family is not None and (additional_family != FAMILY_IPV6 or even_port):
            raise _Reject(
                ErrorCode.BAD_REQUEST, "additional_family"
            )  # only IPv6 may be added; no reservation with dual
        lifetime_requested = request.get(Attr.LIFETIME, self.config.default_lifetime)
        lifetime = max(self.config.default_lifetime, min(lifetime_requested, self.config.max_lifetime))

        self._acquire(credential.quota_user)
        spare_unit = bool(even_port)  # a reserved port is one more held port: it needs its own unit
        if spare_unit:
            try:
                self._acquire(credential.quota_user)
            except _Reject:
                self.quota.release(credential.quota_user)
                raise

        relays: dict[int, RelayEndpoint] = {}
        new_token: bytes | None = None
        address_error: tuple[int, int, str] | None = None
        try:
            if reserved_endpoint is not None:
                self.quota.release(self.reservations.pop(token)[2])  # the allocation's own unit holds it now
                relays[family] = reserved_endpoint
            else:
                bound = self.binder.bind(family, even_port=even_port is not None, reserve_next=bool(even_port))
                if bound is None:
                    raise _Reject(ErrorCode.INSUFFICIENT_CAPACITY, "ports")
                relays[family], reserved = bound
                if reserved is not None:
                    new_token = os.urandom(8)
                    self.reservations[new_token] = (reserved, now + RESERVATION_LIFETIME, credential.quota_user)
                    spare_unit = False  # the reservation holds it until it is used or expires
            if additional_family is not None:
                if not self.binder.supports(FAMILY_IPV6):
                    address_error = (FAMILY_IPV6, ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED, "")
                else:
                    extra = self.binder.bind(FAMILY_IPV6)
                    if extra is None:
                        address_error = (FAMILY_IPV6, ErrorCode.INSUFFICIENT_CAPACITY, "")
                    else:
                        relays[FAMILY_IPV6] = extra[0]
            if dont_fragment:
                for endpoint in relays.values():
                    endpoint.set_dont_fragment()
        except _Reject:
            for endpoint in relays.values():
                endpoint.close()
            self.quota.release(credential.quota_user)
            if spare_unit:
                self.quota.release(credential.quota_user)
            raise
        if spare_unit:
            self.quota.release(credential.quota_user)  # no port could be reserved after all

        allocation = Allocation(
            seq=self.table.next_seq(),
            origin=origin,
            client=client,
            username=credential.username,
            key=credential.key,
            quota_user=credential.quota_user,
            relays=relays,
            expires=now + lifetime,
        )
        allocation.dont_fragment = dont_fragment
        if self.config.max_bps:
            rate = float(self.config.max_bps)
            allocation.bucket_from_client = TokenBucket(rate, rate, now)
            allocation.bucket_to_client = TokenBucket(rate, rate, now)
        attrs: list[tuple[int, Any]] = [(Attr.XOR_RELAYED_ADDRESS, e.advertised) for e in relays.values()]
        attrs.append((Attr.LIFETIME, lifetime))
        if new_token is not None:
            attrs.append((Attr.RESERVATION_TOKEN, new_token))
        attrs.append((Attr.XOR_MAPPED_ADDRESS, reflexive(client)))
        if address_error is not None:
            attrs.append((Attr.ADDRESS_ERROR_CODE, (*address_error[:2], REASONS[address_error[1]])))
        response = self._encode(request, MessageClass.SUCCESS, attrs, credential.key)
        if not origin.stream:  # over TCP/TLS nothing is retransmitted (RFC 8489 section 6.2.2): nothing kept
            allocation.allocate_tid = request.transaction_id
            allocation.allocate_response = response
        self.table.add(allocation)
        for endpoint in relays.values():
            endpoint.attach(allocation)
        self.stats.allocations += 1
        self.stats.allocations_created += 1
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("allocation created for %s:%s relayed %s", client[0], client[1], attrs[0][1])
        return response

    # --- Refresh (RFC 8656 section 7.3) ----------------------------------------------------------

    def _refresh(self, request: Message, allocation: Allocation, now: float) -> bytes:
        family = request.get(Attr.REQUESTED_ADDRESS_FAMILY)
        if family is not None and family not in allocation.relays:
            raise _Reject(ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH, "refresh_family")
        requested = request.get(Attr.LIFETIME, self.config.default_lifetime)
        if requested == 0:
            if family is not None and len(allocation.relays) > 1:
                self._drop_family(allocation, family)
            else:
                self.delete(allocation)
            return self._encode(request, MessageClass.SUCCESS, [(Attr.LIFETIME, 0)], allocation.key)
        lifetime = min(requested, self.config.max_lifetime)
        allocation.expires = now + lifetime
        self.table.schedule(allocation, allocation.expires)
        return self._encode(request, MessageClass.SUCCESS, [(Attr.LIFETIME, lifetime)], allocation.key)

    def _drop_family(self, allocation: Allocation, family: int) -> None:
        endpoint = allocation.relays.pop(family)
        endpoint.close()
        if family == FAMILY_IPV4:
            allocation.send_v4 = None
        else:
            allocation.send_v6 = None
        for host in [h for h in allocation.permissions if family_of(h) == family]:
            del allocation.permissions[host]
            allocation.sync_channels_for_host(host)
        _allocation.update_mirror(self.mirror, allocation)

    # --- lifecycle -------------------------------------------------------------------------------

    def delete(self, allocation: Allocation) -> None:
        """End an allocation: close its relay sockets, give back its quota."""
        if allocation.closed:
            return
        allocation.closed = True
        _allocation.update_mirror(self.mirror, allocation, forget=True)  # the kernel stops before the sockets
        self.table.remove(allocation)
        for endpoint in allocation.relays.values():
            endpoint.close()
        # Everything it holds goes now, not when the last reference to the object does.
        for table in (
            allocation.channel_in,
            allocation.permissions,
            allocation.channels,
            allocation.cooldown_numbers,
            allocation.cooldown_peers,
            allocation.data_heads,
        ):
            table.clear()
        allocation.allocate_response = b""
        self.quota.release(allocation.quota_user)
        self.stats.allocations -= 1
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("allocation for %s:%s ended", allocation.client[0], allocation.client[1])

    def tick(self, now: float) -> None:
        """Expire whatever is due: call about once a second (the packet path never checks times)."""
        for allocation in self.table.due(now):
            if allocation.expires <= now:
                self.delete(allocation)
                continue
            for number, channel in [(n, c) for n, c in allocation.channels.items() if c.expires <= now]:
                del allocation.channels[number]
                allocation.sync_channel(channel)
                until = channel.expires + CHANNEL_COOLDOWN
                allocation.cooldown_numbers[number] = (channel.peer, until)
                allocation.cooldown_peers[channel.peer] = (number, until)
            for host in [h for h, expires in allocation.permissions.items() if expires <= now]:
                del allocation.permissions[host]
                allocation.sync_channels_for_host(host)
                for peer in [p for p in allocation.data_heads if p[0] == host]:
                    del allocation.data_heads[peer]
            for number in [n for n, (_, until) in allocation.cooldown_numbers.items() if until <= now]:
                peer = allocation.cooldown_numbers.pop(number)[0]
                if allocation.cooldown_peers.get(peer, (None,))[0] == number:
                    del allocation.cooldown_peers[peer]
            _allocation.update_mirror(self.mirror, allocation)
            self.table.schedule(allocation, allocation.next_deadline())
        for token in [t for t, (_, until, _) in self.reservations.items() if until <= now]:
            endpoint, _, user = self.reservations.pop(token)
            endpoint.close()
            self.quota.release(user)

    def close_origin(self, origin: Origin) -> None:
        """A TCP/TLS connection closed: its allocations end with it (RFC 8656 section 3.1)."""
        for allocation in list(self.table.origin_index(origin.key).values()):
            self.delete(allocation)
        self.table.forget_origin(origin.key)

    def revalidate_peers(self) -> int:
        """After the peer lists changed: withdraw permissions and channels the policy now denies."""
        revoked = 0
        for allocation in self.table:
            for host in [h for h in allocation.permissions if not self.peers.allows(h)]:
                del allocation.permissions[host]
                allocation.sync_channels_for_host(host)
                revoked += 1
            _allocation.update_mirror(self.mirror, allocation)
        return revoked

    def shutdown(self) -> None:
        for allocation in self.table:
            self.delete(allocation)
        for endpoint, _, user in self.reservations.values():
            endpoint.close()
            self.quota.release(user)
        self.reservations.clear()
