"""Which versions of the TURN shared secret the relay accepts (bbb-turn-relay-secrets.timer).

    secret_versions.py --secret <describe-secret JSON> --servers <JSON> --ttl <seconds> --now <unix seconds>

prints `<version id> <stage>` per line: AWSCURRENT, AWSPENDING (during a rotation) and AWSPREVIOUS until the
handoff is done: every BBB server tags itself `bbb-on-aws:turn-secret` = `<version>@<unix seconds it stopped
issuing the version before, 0 if none>` (docs/host-contract.md), and a credential lives `ttl` seconds. So
AWSPREVIOUS is dropped once every pending or running BBB server issues with AWSCURRENT and `ttl` seconds have
passed since the last one switched; a server without the tag keeps it. `--servers` is the output of
`aws ec2 describe-instances --query 'Reservations[].Instances[].[InstanceId, Tags[?Key==`...`].Value | [0]]'`.

The rotation Lambda refuses to start a rotation on the same rule (lambdas/turn_secret_rotation/handoff.py);
the tests check both against one table. Standard library only: it runs with the host's python3.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STAGES = ("AWSCURRENT", "AWSPENDING", "AWSPREVIOUS")


def previous_retired(current: str, servers: list[list[str | None]], ttl: int, now: int) -> tuple[bool, str]:
    waiting, last_switch = [], 0
    for instance_id, value in servers:
        version, _, stamp = (value or "").rpartition("@")
        if version != current or not stamp.isdigit():
            waiting.append(str(instance_id))
        else:
            last_switch = max(last_switch, int(stamp))
    if waiting:
        return False, f"BBB servers {', '.join(sorted(waiting))} do not issue with {current} yet"
    if now < last_switch + ttl:
        return False, f"credentials issued before the last switch stay valid until {last_switch + ttl}"
    return True, f"every BBB server issues with {current}; older credentials expired at {last_switch + ttl}"


def accepted(
    stages: dict[str, list[str]], servers: list[list[str | None]], ttl: int, now: int
) -> list[tuple[str, str]]:
    by_stage = {stage: v for v, labels in stages.items() for stage in labels if stage in STAGES}
    if "AWSCURRENT" not in by_stage:
        raise ValueError("the secret has no AWSCURRENT version")
    current = by_stage["AWSCURRENT"]
    versions = [(current, "AWSCURRENT")]
    if by_stage.get("AWSPENDING", current) != current:
        versions.append((by_stage["AWSPENDING"], "AWSPENDING"))
    previous = by_stage.get("AWSPREVIOUS")
    if previous and previous not in (v for v, _ in versions):
        retired, reason = previous_retired(current, servers, ttl, now)
        print(f"AWSPREVIOUS {previous}: {'retired' if retired else 'accepted'} ({reason})", file=sys.stderr)
        if not retired:
            versions.append((previous, "AWSPREVIOUS"))
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret", type=Path, required=True)
    parser.add_argument("--servers", type=Path, required=True)
    parser.add_argument("--ttl", type=int, required=True)
    parser.add_argument("--now", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        stages = json.loads(args.secret.read_text())["VersionIdsToStages"]
        servers = json.loads(args.servers.read_text()) or []
        versions = accepted(stages, servers, args.ttl, args.now)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot decide the accepted TURN secret versions: {exc}", file=sys.stderr)
        return 1
    print("\n".join(f"{version} {stage}" for version, stage in versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
