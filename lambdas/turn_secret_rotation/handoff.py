"""When BigBlueButton servers have stopped handing out credentials made with an older TURN secret.

Each BBB server tags itself `bbb-on-aws:turn-secret` = `<version id>@<unix seconds>` (docs/host-contract.md):
the Secrets Manager version its bbb-web issues credentials with, and when it stopped issuing the version
before (0 if it never issued another one, e.g. a server launched after the rotation). A credential lives
`ttl` seconds (turn-stun-servers.xml), so an older secret is needed by no one once every running server
issues with the current version and `ttl` seconds have passed since the last one switched.

The TURN hosts apply the same rule (userdata/turn/secret_versions.py); tests/lambdas/test_turn_secret_rotation.py
checks both on one table of cases.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Handoff:
    """Whether the versions older than `current` are still needed, and why (for logs and errors)."""

    done: bool
    reason: str
    until: int | None = None  # unix time the grace ends, when that is all that is left


def parse_tag(value: str | None) -> tuple[str, int] | None:
    if not value or "@" not in value:
        return None
    version, _, stamp = value.rpartition("@")
    if not version or not stamp.isdigit():
        return None
    return version, int(stamp)


def handoff(current: str, servers: Iterable[tuple[str, str | None]], ttl: int, now: int) -> Handoff:
    """`servers`: (instance id, tag value or None) of every pending or running BBB server."""
    waiting: list[str] = []
    last_switch = 0
    for instance_id, value in servers:
        parsed = parse_tag(value)
        if parsed is None or parsed[0] != current:
            waiting.append(instance_id)
        else:
            last_switch = max(last_switch, parsed[1])
    if waiting:
        return Handoff(False, f"BBB servers {', '.join(sorted(waiting))} do not issue with version {current} yet")
    until = last_switch + ttl
    if now < until:
        return Handoff(False, f"credentials issued before the last switch stay valid until {until}", until)
    return Handoff(True, f"every BBB server issues with {current}; older credentials expired at {until}")
