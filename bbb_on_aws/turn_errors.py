"""What a TURN error means for an operator: each error code of RFC 8656 / RFC 8489 the probe can meet, mapped to
the most likely cause in this deployment and the fix."""

from __future__ import annotations

import ipaddress

from aioice import stun

from bbb_on_aws.checks import Failure

# RFC 8489/8656's reason phrases, for servers that send none (our relay omits it before authentication, to keep
# its answers to unauthenticated requests small).
REASONS = {
    300: "Try Alternate", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 420: "Unknown Attribute",
    437: "Allocation Mismatch", 438: "Stale Nonce", 440: "Address Family not Supported", 441: "Wrong Credentials",
    442: "Unsupported Transport Protocol", 443: "Peer Address Family Mismatch", 486: "Allocation Quota Reached",
    500: "Server Error", 508: "Insufficient Capacity",
}


def turn_failure(error: stun.TransactionFailed, step: str) -> Failure:
    code, reason = error.response.attributes.get("ERROR-CODE", (0, "no error code"))
    seen = f"{step}: {code} {reason.strip() or REASONS.get(code, 'no reason phrase')}"
    if code in (401, 441) and step == "Allocate":
        return Failure(
            seen,
            "the relay rejects the REST credentials: the shared secret differs from the relay's, "
            "or this machine's clock is off by more than the credential lifetime",
            "use the TURN secret of this deployment (--secret-arn, or the relay's auth-secret-file) and "
            "check the clock here (NTP)",
        )
    if code == 403 and step == "Allocate":
        return Failure(
            seen,
            "the relay takes no new allocations: it is draining (scale-in or `drain`)",
            "run `bbb-on-aws status`: a draining TURN server should be out of turn.<domain>; probe another",
        )
    if code == 403:
        return Failure(
            seen,
            "the relay refuses this peer: its address is in a denied range (private, loopback, "
            "cloud metadata) and not on the relay's allowed list",
            "use the peer's public address; the allowed list (/etc/bbb-turn-relay/allowed-peers.conf) "
            "holds the BBB servers and is refreshed every 20 s",
        )
    if code == 486:
        return Failure(
            seen,
            "this user's allocation quota is used up (turn.userQuota)",
            "wait for the probe's old allocations to expire or raise deployment.turn.userQuota",
        )
    if code == 508:
        return Failure(
            seen,
            "the relay is out of capacity (turn.totalQuota or the relay port range)",
            "scale the TURN fleet out (deployment.turn.maxInstances) or widen deployment.turn.relayPorts",
        )
    if code == 442:
        return Failure(seen, "the relay does not offer UDP relaying", "use a TURN server that relays UDP (RFC 8656)")
    return Failure(
        seen,
        "the relay refused the request",
        "see the relay's log on the instance (journalctl -u bbb-turn-relay) for the reason",
    )


def closed(error: Exception) -> Failure:
    return Failure(
        f"connection lost: {error}",
        "the server closed the connection (wrong protocol on this port, or a TLS terminator that forwards to nothing)",
        "check the listener's target group is healthy",
    )


def private_relayed_address(server: str, relayed: str) -> Failure | None:
    """A relay reached at a public address must hand out a public relayed address: a private one (the
    instance's own VPC address) is unreachable for browsers, so every relayed call would fail."""
    if ipaddress.ip_address(server).is_global and not ipaddress.ip_address(relayed).is_global:
        return Failure(
            f"relayed address {relayed} is not public (server {server})",
            "the relay advertises its private address: its public IP (relay external-ip / relay-ip) is not set",
            "check /etc/bbb-turn-relay/relay.conf on the host (rendered at boot from the instance's public IPv4)",
        )
    return None
