"""What the in-process benchmarks share (relay_packet_costs, relay_allocation_costs, relay_allocation_memory): a
relay on loopback whose entry points the script calls itself, and the credentials its requests carry."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.config import Listener, RelayConfig
from relay.policy.auth import rest_password
from relay.stun import Attr, Message, MessageClass, encode, long_term_key

SECRET = "in-process-bench-secret-0123"
REALM = "bench.test"


def loopback_config(transport: str = "udp", **overrides: Any) -> RelayConfig:
    """One listener on an ephemeral loopback port, relay ports on 127.0.0.1, no rate limit on unauthenticated
    requests (the scripts send them as fast as they can)."""
    settings: dict[str, Any] = {
        "realm": REALM,
        "listeners": (Listener(transport, "127.0.0.1", 0),),  # type: ignore[arg-type]
        "relay_ip": "127.0.0.1",
        "min_port": 20000,
        "max_port": 59999,
        "auth_secrets": (SECRET,),
        "nonce_secret": b"in-process-bench-nonce",
        "unauthenticated_rate": 0,
    }
    settings.update(overrides)
    return RelayConfig(**settings)


def request(method: int, attributes: Sequence[tuple[int, Any]], nonce: str | None, username: str, key: bytes) -> bytes:
    """A request on the wire: bare without a nonce (the 401 round), else signed as `username` with a FINGERPRINT.
    `attributes` is copied, not extended: a caller may reuse it for the next request."""
    message = Message(method, MessageClass.REQUEST, os.urandom(12), list(attributes))
    if nonce is None:
        return encode(message)
    message.attributes += [(Attr.USERNAME, username), (Attr.REALM, REALM), (Attr.NONCE, nonce)]
    return encode(message, integrity_key=key, fingerprint=True)


def credentials(name: str) -> tuple[str, bytes]:
    """A REST username valid for an hour and its long-term key."""
    username = f"{int(time.time()) + 3600}:{name}"
    return username, long_term_key(username, REALM, rest_password(SECRET, username))
