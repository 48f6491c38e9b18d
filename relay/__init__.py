"""bbb-turn-relay: a TURN/STUN relay for BigBlueButton (RFC 8489, RFC 8656), safe on the open internet.

Layout: `relay.stun` (codec) and `relay.turn` (allocation state and request handling) are the pure
protocol core; `relay.auth`, `relay.nonce`, `relay.peers` and `relay.quotas` are its pure policies;
`relay.server` does the socket I/O and the per-packet forwarding; `relay.cli` starts it all.
"""

from __future__ import annotations

__version__ = "0.1.0"
