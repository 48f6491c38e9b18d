"""bbb-turn-relay: a TURN/STUN relay for BigBlueButton (RFC 8489, RFC 8656), safe on the open internet.

Layout, in reading order (each folder imports only folders before it):
`relay.stun` (codec), `relay.ops` (admin endpoint, control, metrics, logs, systemd; beside everything,
it imports no other folder), `relay.policy` (auth, nonces, peers, quotas, TLS policy), `relay.config`
(the configuration value and its loader), `relay.turn` (allocation state and request handling: with
stun the pure protocol core), `relay.server` (socket I/O, per-packet forwarding, PROXY protocol) and
`relay.process` (`cli`, the worker supervisor and its workers), which starts it all.
"""

from __future__ import annotations

__version__ = "0.1.0"
