"""The names of docs/host-contract.md, derived from the instance id and the deployment (never random).

Everything the automation creates can be found again from an instance id alone, which is what makes the
handlers idempotent and lets the reconciler recognise state whose instance is gone.
"""

from __future__ import annotations

import hashlib
import re

# The contract's tags, re-exported: the handlers and cdk_constructs/lifecycle read them from here.
from .contract import BBB_FLEET_PREFIX, METRIC_NAMESPACE_PREFIX, TURN_POOL_PREFIX
from .contract import TAG_ENVIRONMENT as TAG_ENVIRONMENT
from .contract import TAG_READY as TAG_READY
from .contract import TAG_ROLE as TAG_ROLE

# Put on the Route 53 health checks the automation creates (the reconciler finds them by these tags).
TAG_INSTANCE_ID = "bbb-on-aws:instance-id"

ROLES = ("bbb", "turn", "single")
RECORD_TTL = 60
TURN_WEIGHT = 100

_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_HOST_LABEL = re.compile(r"^(bbb|turn)-([0-9a-f]{8,17})$")


class ContractNameError(ValueError):
    """A value that cannot be part of a contract name (names the value and what was expected)."""


def check_instance_id(instance_id: str) -> str:
    if not isinstance(instance_id, str) or not _INSTANCE_ID.match(instance_id):
        raise ContractNameError(f"{instance_id!r} is not an EC2 instance id (expected i- followed by 8-17 hex digits)")
    return instance_id


def normalize_domain(domain: str) -> str:
    """Lower case, without the trailing dot Route 53 returns."""
    cleaned = domain.strip().rstrip(".").lower()
    if not cleaned or " " in cleaned or "." not in cleaned:
        raise ContractNameError(f"{domain!r} is not a DNS domain name (expected e.g. meet.example.org)")
    return cleaned


def host_prefix(role: str) -> str:
    """`bbb` for BBB fleets, `turn` for TURN fleets; the single host's name is the domain itself."""
    if role == "turn":
        return "turn"
    if role in ("bbb", "single"):
        return "bbb"
    raise ContractNameError(f"unknown fleet role {role!r} (expected one of {', '.join(ROLES)})")


def server_domain(role: str, domain: str) -> str:
    """The parent of a fleet's server names: `fleet.<domain>` for the BBB fleet (its wildcard certificate's
    name), `<domain>` for TURN servers and the single host. The BBB lifecycle is configured with it."""
    domain = normalize_domain(domain)
    return f"{BBB_FLEET_PREFIX}{domain}" if role == "bbb" else domain


def instance_host(role: str, instance_id: str, domain: str) -> str:
    """`bbb-<id without i->.<domain>` / `turn-<id without i->.<domain>`; `<domain>` for the single host."""
    domain = normalize_domain(domain)
    if role == "single":
        return domain
    return f"{host_prefix(role)}-{check_instance_id(instance_id)[2:]}.{domain}"


def parse_instance_host(name: str, domain: str) -> tuple[str, str] | None:
    """(`bbb`|`turn`, instance id) for a per-instance name of this domain, else None."""
    name = name.rstrip(".").lower()
    suffix = "." + normalize_domain(domain)
    if not name.endswith(suffix):
        return None
    match = _HOST_LABEL.match(name[: -len(suffix)])
    if match is None:
        return None
    return match.group(1), f"i-{match.group(2)}"


def turn_pool_name(domain: str) -> str:
    return f"{TURN_POOL_PREFIX}{normalize_domain(domain)}"


def bbb_api_url(host: str) -> str:
    """The URL registered in Scalelite (and used by Scalelite's poller) for a BBB host."""
    return f"https://{host}/bigbluebutton/api"


def parse_bbb_api_url(url: str, domain: str) -> str | None:
    """The instance id of a Scalelite server URL this deployment registered, else None."""
    match = re.match(r"^https://([^/]+)/bigbluebutton/api/?$", url.strip())
    if match is None:
        return None
    parsed = parse_instance_host(match.group(1), domain)
    if parsed is None or parsed[0] != "bbb":
        return None
    return parsed[1]


def metric_namespace(environment: str) -> str:
    return f"{METRIC_NAMESPACE_PREFIX}{environment}"


def probe_alarm_prefix(environment: str) -> str:
    return f"bbb-on-aws-{environment}-turn-probe-"


def probe_alarm_name(environment: str, instance_id: str) -> str:
    return probe_alarm_prefix(environment) + check_instance_id(instance_id)


def health_check_caller_reference(environment: str, instance_id: str, launch_time: str) -> str:
    """Stable per instance launch, at most 64 characters (Route 53's limit)."""
    digest = hashlib.sha256(f"{environment}|{instance_id}|{launch_time}".encode()).hexdigest()[:24]
    return f"bbb-on-aws-{check_instance_id(instance_id)}-{digest}"


def execution_name(kind: str, instance_id: str, started: int | None = None) -> str:
    """One execution name per instance and lifecycle transition (common/transitions.py): duplicated events
    start nothing new (Step Functions refuses a name again for 90 days).

    launch, drain, prewarm and retire happen once per instance (ids are never reused); wake and park happen on
    every start of a warm-pool instance, so they carry `started`, the instance's EC2 LaunchTime (unix seconds).
    """
    if kind in ("launch", "drain", "prewarm", "retire"):
        return f"{kind}-{check_instance_id(instance_id)}"
    if kind in ("wake", "park"):
        if started is None or started <= 0:
            raise ContractNameError(f"a {kind} execution needs the instance's LaunchTime, got {started!r}")
        return f"{kind}-{check_instance_id(instance_id)}-{started}"
    raise ContractNameError(f"unknown execution kind {kind!r} (expected launch, drain, prewarm, wake, park, retire)")
