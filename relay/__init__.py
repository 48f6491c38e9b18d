"""bbb-turn-relay: a TURN/STUN relay for BigBlueButton (RFC 8489, RFC 8656), safe on the open internet.

Layout, in reading order (each folder imports only folders before it; `config` and `ops` sit beside):
`relay.stun` (codec) and `relay.turn` (allocation state and request handling) are the pure protocol
core; `relay.policy` holds its pure policies (auth, nonce, peers, quotas); `relay.server` does the
socket I/O, the per-packet forwarding, PROXY protocol and TLS; `relay.process` starts it all (`cli`,
the worker supervisor and its workers). `relay.config` is the configuration value and its loader;
`relay.ops` the admin endpoint, control, metrics, logs and systemd.
"""

from __future__ import annotations

__version__ = "0.1.0"
