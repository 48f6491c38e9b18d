"""The host contract's numbers and names (docs/host-contract.md), in one place.

Every side reads them from here: the settings (the relay port rule), the constructs (security groups, the NLB,
tags, metrics), the user-data renderer (which writes the ports into the host's params.env, so the shell
scripts have no defaults of their own), the hosts' metric publisher (userdata/common/contract.py links to this
file and ships in the bootstrap bundle) and the lifecycle Lambda handlers (common/names.py). It lives in the
Lambda tree because the lifecycle functions' asset is `lambdas/` and must ship it; the infrastructure side
imports it as the top-level `contract` (contract.py re-exports it). Plain values only: it imports nothing,
and runs on the hosts' Python 3.10.
"""

from __future__ import annotations

# --- TURN host ports ---------------------------------------------------------------------------------------
TURN_PORT = 3478  # UDP and TCP: clients (TURN/STUN), the prober and the launch check
PROXY_PORT = 3479  # plain TCP with PROXY protocol v2, from the TURN NLB only (its TLS 443 listener forwards here)
TURNS_PORT = 443  # the NLB's TLS listener (turns.<domain>)
ADMIN_HOST = "127.0.0.1"  # the relay's admin endpoint is never exposed
ADMIN_PORT = 9641  # /metrics, /healthz, /readyz, POST /drain
# The relay's fixed listeners: the relay port range must not contain any of them.
TURN_FIXED_PORTS: dict[int, str] = {
    TURN_PORT: "TURN/STUN (UDP and TCP)",
    PROXY_PORT: "the NLB's PROXY-protocol TCP",
    ADMIN_PORT: "the relay's admin endpoint",
}

# --- TURN relay port range -----------------------------------------------------------------------------------
RELAY_PORT_FLOOR = 1024  # no privileged ports
RELAY_PORT_CEILING = 65535
RELAY_PORTS_MINIMUM = 1000  # each allocation holds one relay port
# Outgoing connections of the host (AWS APIs, apt, the CloudWatch agent) take ephemeral ports outside the relay
# range (userdata/render.py:local_port_range): at least this many must be left.
EPHEMERAL_PORTS_MINIMUM = 8192

# --- Tags (on the Auto Scaling groups, propagated to instances) -------------------------------------------
TAG_ENVIRONMENT = "bbb-on-aws:environment"
TAG_ROLE = "bbb-on-aws:role"
TAG_READY = "bbb-on-aws:ready"  # the one tag a host writes, on itself, once ready
# The single host's data volume (lambdas/single_data): exactly one volume carries it (value: the environment);
# AWS Backup selects by it. A volume replaced by a copy or a restore gets RETIRED ("moved" | "stranded").
TAG_DATA_VOLUME = "bbb-on-aws:data-volume"
TAG_DATA_VOLUME_RETIRED = "bbb-on-aws:data-volume-retired"
DATA_DEVICE = "/dev/sdf"  # where the data volume is attached (userdata/bbb/lib.sh find_data_device)
# On an Auto Scaling group: a roll-out a deploy left waiting for a cancelled refresh (lambdas/fleet_rollout).
TAG_ROLLOUT_PENDING = "bbb-on-aws:rollout-pending"
# A BBB server writes it on itself: <secret version its bbb-web issues with>@<unix time it stopped issuing the
# version before, 0 if none>. The TURN secret rotation reads it (lambdas/turn_secret_rotation/handoff.py).
TAG_TURN_SECRET = "bbb-on-aws:turn-secret"

# --- TURN secret rotation ---------------------------------------------------------------------------------
# The lifetime of the TURN credentials bbb-web hands out (turn-stun-servers.xml): the relays keep accepting a
# rotated-out secret this long after the last BBB server stopped issuing with it.
TURN_CREDENTIAL_TTL_SECONDS = 86400
# A rotation never starts while the last one's old secret may still be in use: at least the credential
# lifetime plus a day for every BBB server to see a moment without meetings.
TURN_SECRET_ROTATION_MIN_DAYS = TURN_CREDENTIAL_TTL_SECONDS // 86400 + 1
# The hosts' timers (bbb-turn-relay-secrets.timer, bbb-on-aws-turn-secret.timer) run this often.
TURN_SECRET_POLL_SECONDS = 60

# --- DNS names under <domain> --------------------------------------------------------------------------------
BBB_HOST_PREFIX = "bbb-"  # bbb-<instance id without i->.fleet.<domain> (the fleet), or .<domain>
# fleet.<domain>: holds only the BBB fleet's server names, so its wildcard certificate (*.fleet.<domain>, one for
# the whole fleet, cdk_constructs/certificates) names no other service of the deployment.
BBB_FLEET_PREFIX = "fleet."
TURN_HOST_PREFIX = "turn-"  # turn-<instance id without i->.<domain>
TURN_POOL_PREFIX = "turn."  # turn.<domain>: weighted, health-checked A records, one per TURN instance
TURNS_PREFIX = "turns."  # turns.<domain>: the TURN NLB (TLS on 443)
SCALELITE_PREFIX = "scalelite."  # scalelite.<domain>: Scalelite's API and recordings
CLUSTER_PROXY_PREFIX = "bbb-proxy."  # bbb-proxy.<domain>: the optional cluster proxy (seed 001)

# --- Metrics -------------------------------------------------------------------------------------------------
METRIC_NAMESPACE_PREFIX = "BBBOnAWS/"  # + environment name
ALLOCATIONS_METRIC = "Allocations"  # TURN hosts: live allocations (the scale-out signal)
MEETINGS_METRIC = "Meetings"  # BBB hosts: meetings
PARTICIPANTS_METRIC = "Participants"  # BBB hosts: participants (the dashboard)
# BBB hosts: the load figure from getMeetings (userdata/bbb/load_figure.py), the scale-out signal; published
# per group and per InstanceId, with Meetings per InstanceId, for the least-loaded termination policy.
LOAD_METRIC = "Load"
UNHEALTHY_TURN_METRIC = "UnhealthyTurnInstances"  # the prober: TURN instances failing their STUN probe


def ephemeral_port_range(min_port: int, max_port: int) -> tuple[int, int] | None:
    """The host's ephemeral ports (net.ipv4.ip_local_port_range) outside the relay range, or None if no window
    leaves EPHEMERAL_PORTS_MINIMUM: Linux's default window above the range, then below, then from 10000."""
    for low, high in ((32768, min_port - 1), (max_port + 1, 65535), (10000, min_port - 1)):
        if high - low + 1 >= EPHEMERAL_PORTS_MINIMUM:
            return low, high
    return None


def metric_namespace(environment: str) -> str:
    return f"{METRIC_NAMESPACE_PREFIX}{environment}"


def admin_listen() -> str:
    """HOST:PORT of the relay's admin endpoint (the relay.conf `admin-listen` value)."""
    return f"{ADMIN_HOST}:{ADMIN_PORT}"


__all__ = [
    "ADMIN_HOST",
    "ADMIN_PORT",
    "ALLOCATIONS_METRIC",
    "BBB_FLEET_PREFIX",
    "BBB_HOST_PREFIX",
    "CLUSTER_PROXY_PREFIX",
    "DATA_DEVICE",
    "EPHEMERAL_PORTS_MINIMUM",
    "LOAD_METRIC",
    "MEETINGS_METRIC",
    "METRIC_NAMESPACE_PREFIX",
    "PARTICIPANTS_METRIC",
    "PROXY_PORT",
    "RELAY_PORTS_MINIMUM",
    "RELAY_PORT_CEILING",
    "RELAY_PORT_FLOOR",
    "SCALELITE_PREFIX",
    "TAG_DATA_VOLUME",
    "TAG_DATA_VOLUME_RETIRED",
    "TAG_ENVIRONMENT",
    "TAG_READY",
    "TAG_ROLE",
    "TAG_ROLLOUT_PENDING",
    "TAG_TURN_SECRET",
    "TURNS_PORT",
    "TURNS_PREFIX",
    "TURN_CREDENTIAL_TTL_SECONDS",
    "TURN_FIXED_PORTS",
    "TURN_HOST_PREFIX",
    "TURN_POOL_PREFIX",
    "TURN_PORT",
    "TURN_SECRET_POLL_SECONDS",
    "TURN_SECRET_ROTATION_MIN_DAYS",
    "UNHEALTHY_TURN_METRIC",
    "admin_listen",
    "ephemeral_port_range",
    "metric_namespace",
]
