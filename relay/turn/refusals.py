"""Why the core refused a request: a `Refusal` per error response, with a cause an operator can act on.

The core (relay.turn.handler) stays pure: it hands each `Refusal` to the sink it was given and the I/O
layer (relay.server.refusals) logs it through a rate limiter keyed by (code, cause). Causes are the
fixed keys of CAUSES, so the limiter's state is bounded whatever clients send; the text is formatted
only when a line is actually written. A refusal holds the username (not a secret) and never the
password, the key or MESSAGE-INTEGRITY.

The unauthenticated 401 that opens every session (a request without MESSAGE-INTEGRITY) is not a
refusal here: it is the normal first step of every client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relay.stun.attributes import Address
from relay.stun.constants import Method

_PEERS = "(denied-peer-ip / allowed-peer-ip / allowed-peers-file)"
_SECRETS = "static-auth-secret / auth-secret-file must hold the secret BBB signs with"

# cause -> reason template (str.format with the refusal's detail). One place for every reason text.
CAUSES: dict[str, str] = {
    "unknown_method": "method {method:#06x} is not a request this relay serves",
    "missing_credentials": "MESSAGE-INTEGRITY without a well-formed USERNAME, REALM and NONCE",
    "stale_nonce": "stale nonce (older than stale-nonce seconds or issued to another address); clients retry",
    "wrong_realm": "realm {realm} is not this relay's realm {expected} (set realm to what clients use)",
    "unknown_user": "user {username} is neither a static user nor a TURN REST name <expiry>:<user> ({secrets})",
    "expired": "credential of user {username} has expired (its <expiry> is in the past: check clocks and TTL)",
    "bad_integrity": "wrong credentials for user {username}: no configured secret matches ({secrets})",
    "allocation_key": "wrong credentials for user {username}: not the key its allocation was created with",
    "other_user": "allocation of user {owner} used with the credentials of user {username} (RFC 8656)",
    "unknown_attribute": "unknown comprehension-required attribute(s) {attributes}",
    "malformed_attribute": "malformed attribute(s) {attributes}",
    "no_allocation": "no allocation on this 5-tuple (it expired or was deleted: the client must Allocate again)",
    "allocation_exists": "this 5-tuple already has an allocation (a new Allocate transaction on it)",
    "draining": "this relay is draining: new allocations go to other instances",
    "no_transport": "Allocate without REQUESTED-TRANSPORT",
    "transport": "REQUESTED-TRANSPORT {protocol} is not UDP (17): TCP relaying (RFC 6062) is not offered",
    "dont_fragment": "DONT-FRAGMENT requested but relay sockets cannot set DF here",
    "token_conflict": "RESERVATION-TOKEN together with EVEN-PORT or an address family",
    "two_families": "both REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY",
    "additional_family": "ADDITIONAL-ADDRESS-FAMILY must be IPv6, without EVEN-PORT",
    "reservation": "RESERVATION-TOKEN unknown or expired (a reserved port is held 30 s)",
    "family": "address family {family} not offered (configure a relay-ip of that family)",
    "user_quota": "user {user} is at user-quota ({limit} allocations; raise user-quota if that is legitimate)",
    "total_quota": "the relay is at total-quota ({limit} allocations; raise total-quota or add instances)",
    "ports": "no free relay port (min-port..max-port all in use: widen the range or add instances)",
    "denied_peer": "peer {peer} refused: {rule} " + _PEERS,
    "peer_family": "peer {peer} is not of a family the allocation relays (ADDITIONAL-ADDRESS-FAMILY adds IPv6)",
    "refresh_family": "Refresh names an address family the allocation does not have",
    "no_peer": "CreatePermission without XOR-PEER-ADDRESS",
    "permissions": "the allocation already has max-permissions ({limit}) peer addresses",
    "channel_args": "ChannelBind without CHANNEL-NUMBER or XOR-PEER-ADDRESS, or with peer port 0",
    "channel_range": "channel number {number:#06x} outside 0x4000-{highest:#06x} "
    "(coturn's turnutils_uclient picks numbers up to 0x7FFF: set legacy-channel-numbers)",
    "channel_taken": "channel {number:#06x} is bound to another peer",
    "peer_bound": "peer {peer} is bound to another channel",
    "channel_cooldown": "channel {number:#06x} or peer {peer} was unbound less than 5 minutes ago (RFC 8656 12)",
    "channels": "the allocation already has max-channels ({limit}) channels",
}
# Routine causes, logged at debug only: nonces expire by design (every stale-nonce seconds each client
# gets one 438 and retries at once with the fresh nonce), so a 438 says nothing is wrong.
ROUTINE = frozenset({"stale_nonce"})

METHOD_NAMES = {
    Method.BINDING: "Binding",
    Method.ALLOCATE: "Allocate",
    Method.REFRESH: "Refresh",
    Method.CREATE_PERMISSION: "CreatePermission",
    Method.CHANNEL_BIND: "ChannelBind",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    code: int
    cause: str  # a key of CAUSES
    method: int
    client: Address
    transport: str
    username: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The reason; raises KeyError/ValueError if the detail does not fit the cause's template."""
        detail = dict(self.detail)
        if "attributes" in detail:  # attribute types as the RFCs write them
            detail["attributes"] = ", ".join(f"{int(a):#06x}" for a in detail["attributes"])
        return CAUSES[self.cause].format(secrets=_SECRETS, username=self.username, **detail)

    @property
    def reason(self) -> str:
        try:
            return self.text()
        except (KeyError, ValueError, IndexError):  # a template/detail mismatch must not lose the line
            return f"{self.cause} {self.detail}"

    def describe(self) -> str:
        """`refused 403 CreatePermission from 127.0.0.1:5000/udp user 1900000000:alice: peer ...`"""
        method = METHOD_NAMES.get(self.method, f"method {self.method:#06x}")
        user = f" user {self.username}" if self.username is not None else ""
        return (
            f"refused {self.code} {method} from {self.client[0]}:{self.client[1]}/{self.transport}{user}: {self.reason}"
        )


class Reject(Exception):
    """Control flow inside one request (an error response to send and why); never escapes the core."""

    def __init__(self, code: int, cause: str, extra: tuple[tuple[int, Any], ...] = (), **detail: Any) -> None:
        self.code = code
        self.cause = cause
        self.extra = extra
        self.detail = detail
