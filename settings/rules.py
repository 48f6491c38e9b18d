"""Rules across keys of the configuration, run once every single value is valid; each message names the
cdk.json keys involved, the values and the fix.
"""

from __future__ import annotations

import ipaddress
import re

import contract
from settings.model import CONTEXT_KEY, Config, PortRange
from settings.scaling_rules import check_scaling

# The relay refuses a longer realm (relay.config.model.MAX_REALM_LENGTH: its 5x reflection bound on the 401
# to a browser's 28-byte first Allocate); the fleet's realm is turn.<domain>. tests/unit keeps them equal.
TURN_REALM_MAX = 80


def check_relations(c: Config, problems: list[str]) -> None:
    """Rules that involve several keys; each message names the keys involved."""
    p = CONTEXT_KEY
    env, dom, net = c.environment, c.domain, c.network

    # Domain inside the hosted zone.
    if not (dom.name == dom.hosted_zone_name or dom.name.endswith("." + dom.hosted_zone_name)):
        problems.append(f"{p}.domain.name: '{dom.name}' is not inside the hosted zone "
                        f"'{dom.hosted_zone_name}' ({p}.domain.hostedZoneName); use a name that ends with "
                        f"'.{dom.hosted_zone_name}'")
    realm = contract.TURN_POOL_PREFIX + dom.name
    if len(realm) > TURN_REALM_MAX:
        problems.append(f"{p}.domain.name: '{dom.name}' makes the TURN realm '{realm}' {len(realm)} characters long; "
                        f"the relay accepts at most {TURN_REALM_MAX}; use a domain of at most "
                        f"{TURN_REALM_MAX - len(contract.TURN_POOL_PREFIX)} characters")

    # Availability zones.
    azs = net.availability_zones
    if not 2 <= len(azs) <= 3:
        problems.append(f"{p}.network.availabilityZones: {len(azs)} zone(s) given; use 2 or 3")
    for i, az in enumerate(azs):
        if not re.match(rf"^{re.escape(env.region)}[a-z]$", az):
            problems.append(f"{p}.network.availabilityZones[{i}]: '{az}' is not a zone of region '{env.region}' "
                            f"({p}.environment.region); use names such as '{env.region}a'")
    if len(set(azs)) != len(azs):
        problems.append(f"{p}.network.availabilityZones: zones must be distinct, got {azs}")

    # Subnets: one per AZ, inside the VPC, no overlap.
    vpc = ipaddress.ip_network(net.vpc_cidr)
    tiers = {"publicSubnets": net.public_subnets, "applicationSubnets": net.application_subnets,
             "databaseSubnets": net.database_subnets}
    seen: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for tier, cidrs in tiers.items():
        if len(cidrs) != len(azs):
            problems.append(f"{p}.network.{tier}: {len(cidrs)} CIDR(s) for {len(azs)} availability zone(s); "
                            f"give exactly one per zone in {p}.network.availabilityZones")
        for i, cidr in enumerate(cidrs):
            sub = ipaddress.ip_network(cidr)
            where = f"{p}.network.{tier}[{i}]"
            if not sub.subnet_of(vpc):  # type: ignore[arg-type]
                problems.append(f"{where}: '{cidr}' is outside the VPC CIDR '{net.vpc_cidr}' ({p}.network.vpcCidr)")
            for other_where, other in seen:
                if sub.overlaps(other):
                    problems.append(f"{where}: '{cidr}' overlaps {other_where} '{other}'; subnets must not overlap")
            seen.append((where, sub))

    # Group sizes.
    for section, group in (("frontend", c.frontend), ("bbb", c.bbb), ("turn", c.turn)):
        lo, want, hi = group.min_instances, group.desired_instances, group.max_instances
        if not lo <= want <= hi:
            problems.append(f"{p}.{section}: minInstances={lo}, desiredInstances={want}, maxInstances={hi}; "
                            "they must satisfy minInstances <= desiredInstances <= maxInstances")

    check_warm_pools(c, problems)

    # Database capacity.
    db = c.database
    for key, acu in (("serverlessMinAcu", db.serverless_min_acu), ("serverlessMaxAcu", db.serverless_max_acu)):
        if acu * 2 != int(acu * 2) or not 0 <= acu <= 256:
            problems.append(f"{p}.database.{key}: {acu} must be between 0 and 256 in steps of 0.5")
    if db.serverless_min_acu > db.serverless_max_acu or db.serverless_max_acu < 1:
        problems.append(f"{p}.database: serverlessMinAcu={db.serverless_min_acu} and "
                        f"serverlessMaxAcu={db.serverless_max_acu}; need min <= max and max >= 1")

    if c.cluster_proxy.enabled and env.type != "scalable":
        problems.append(f"{p}.clusterProxy.enabled: the cluster proxy fronts a fleet of BBB servers and the single "
                        f"shape has one; set it to false or use {p}.environment.type 'scalable'")

    certs = c.bbb.certificates
    if certs.alarm_days >= certs.renew_days:
        problems.append(f"{p}.bbb.certificates.alarmDays: {certs.alarm_days} must be below "
                        f"{p}.bbb.certificates.renewDays ({certs.renew_days}), so renewal has been failing for a "
                        "while before the operator is alarmed; e.g. renewDays 30, alarmDays 20")

    check_relay_ports(c.turn.relay_ports, problems)
    check_scaling(c.bbb, problems, scalable=c.environment.type == "scalable")

    # Backups: AWS Backup keeps a monthly recovery point at least as long as a month.
    for stage in ("dev", "stage", "prod"):
        monthly = getattr(c.backup, stage).monthly_retention_days
        if 0 < monthly < 28:
            problems.append(f"{p}.backup.{stage}.monthlyRetentionDays: {monthly} would delete a monthly backup "
                            "before the next one exists; use 0 (no monthly rule) or at least 28")

    # Roll-outs: Auto Scaling's MaxHealthyPercentage = min + batch must stay within 100..200.
    for section, rollout in (("bbb", c.bbb.rollout), ("turn", c.turn.rollout)):
        total = rollout.min_healthy_percent + rollout.batch_percent
        if not 100 <= total <= 200:
            problems.append(f"{p}.{section}.rollout: minHealthyPercent={rollout.min_healthy_percent} + "
                            f"batchPercent={rollout.batch_percent} = {total}; instance refresh needs 100 to 200 "
                            "(raise batchPercent to replace more at a time, or minHealthyPercent to keep more)")

    # ECS task sizes.
    check_tasks(c, problems)


def check_relay_ports(ports: PortRange, problems: list[str]) -> None:
    """The one rule for the TURN relay port range; later layers (user data, relay) only check bounds.

    The range must be ordered, hold enough ports for the allocations, avoid the relay's own listeners
    (contract.TURN_FIXED_PORTS) and leave the host enough ephemeral ports outside it.
    """
    key = f"{CONTEXT_KEY}.turn.relayPorts"
    low, high = ports.min, ports.max
    shown = f"{{\"min\": {low}, \"max\": {high}}}"
    if low > high:
        problems.append(f"{key}: {shown} has min={low} > max={high}; swap them")
        return
    count = high - low + 1
    if count < contract.RELAY_PORTS_MINIMUM:
        problems.append(f"{key}: {shown} holds {count} ports; give at least {contract.RELAY_PORTS_MINIMUM} "
                        "(each allocation uses one), e.g. {\"min\": 49152, \"max\": 65535}")
    inside = [f"{port} ({use})" for port, use in contract.TURN_FIXED_PORTS.items() if low <= port <= high]
    if inside:
        problems.append(f"{key}: {shown} contains the listening ports {', '.join(inside)}; choose a range "
                        "without them, e.g. {\"min\": 49152, \"max\": 65535}")
    if contract.ephemeral_port_range(low, high) is None:
        problems.append(f"{key}: {shown} leaves fewer than {contract.EPHEMERAL_PORTS_MINIMUM} ephemeral ports "
                        "for the host's own connections; narrow it, e.g. {\"min\": 49152, \"max\": 65535}")


def check_warm_pools(c: Config, problems: list[str]) -> None:
    """A prepared server must be able to enter service: the pool fits between the group's minimum and maximum."""
    for section, group in (("bbb", c.bbb), ("turn", c.turn)):
        pool = group.warm_pool
        key = f"{CONTEXT_KEY}.{section}.warmPool"
        room = group.max_instances - group.min_instances
        if pool.enabled and pool.min_size > room:
            problems.append(f"{key}.minSize: {pool.min_size} prepared servers, but the group can only grow by "
                            f"{room} ({CONTEXT_KEY}.{section}.maxInstances={group.max_instances} - minInstances="
                            f"{group.min_instances}); the rest could never enter service: use at most {room}")
        cap = pool.max_prepared_capacity
        if cap is None:
            continue
        if cap < 0:
            problems.append(f"{key}.maxPreparedCapacity: {cap} must not be negative; use null (the group's "
                            "maxInstances) or a number of servers")
        elif cap > group.max_instances:
            problems.append(f"{key}.maxPreparedCapacity: {cap} exceeds {CONTEXT_KEY}.{section}.maxInstances="
                            f"{group.max_instances}; servers beyond the maximum could never enter service: use "
                            f"at most {group.max_instances} or null")
        elif cap < pool.min_size:
            problems.append(f"{key}.maxPreparedCapacity: {cap} is below {key}.minSize={pool.min_size}; "
                            "raise it or lower minSize")


# Fargate's valid task CPU units -> memory (MiB) choices.
FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}


def fargate_pair_ok(cpu: int, memory: int) -> bool:
    return memory in FARGATE_MEMORY.get(cpu, ())


def check_tasks(c: Config, problems: list[str]) -> None:
    fe = c.frontend
    p = f"{CONTEXT_KEY}.frontend"
    tasks = {
        "greenlight": [("greenlight", fe.greenlight)],
        "scalelite web (scaleliteApi + scaleliteNginx)": [("scaleliteApi", fe.scalelite_api),
                                                          ("scaleliteNginx", fe.scalelite_nginx)],
        "scalelitePoller": [("scalelitePoller", fe.scalelite_poller)],
        "scaleliteImporter": [("scaleliteImporter", fe.scalelite_importer)],
    }
    for task, containers in tasks.items():
        cpu = sum(ct.cpu for _, ct in containers)
        mem = sum(ct.memory_mib for _, ct in containers)
        keys = " + ".join(f"{p}.{k}" for k, _ in containers)
        if fe.capacity == "fargate" and not fargate_pair_ok(cpu, mem):
            allowed = "; ".join(f"{c_}: {m[0]}-{m[-1]} MiB" for c_, m in FARGATE_MEMORY.items())
            problems.append(f"{keys}: task {task} needs cpu={cpu}, memoryMib={mem}, which Fargate rejects; "
                            f"valid task sizes (cpu: memory) are {allowed} (memory in the steps AWS documents)")
        if fe.capacity == "ec2":
            size = EC2_SIZES.get(fe.instance_type)
            if size and (cpu > size[0] or mem > size[1] - 512):
                problems.append(f"{keys}: task {task} needs cpu={cpu}, memoryMib={mem}, more than one "
                                f"{fe.instance_type} offers ({size[0]} CPU units, {size[1] - 512} MiB after the "
                                f"ECS agent's reserve; {p}.instanceType); ECS could never place it")


# vCPU units and MiB of the instance types commonly used for the ECS cluster (others are not size-checked).
EC2_SIZES: dict[str, tuple[int, int]] = {
    "t3.medium": (2048, 4096), "t3.large": (2048, 8192), "t3.xlarge": (4096, 16384),
    "t3a.medium": (2048, 4096), "t3a.large": (2048, 8192), "t3a.xlarge": (4096, 16384),
    "m6i.large": (2048, 8192), "m6i.xlarge": (4096, 16384), "m7i.large": (2048, 8192),
    "c6i.large": (2048, 4096), "c6i.xlarge": (4096, 8192),
}
