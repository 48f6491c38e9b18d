"""The deployment's configuration: one typed, validated model read from cdk.json's context.

This is the only reader of operator parameters. Everything lives under the context key `deployment`
(camelCase keys, nested by section); `-c deployment.<section>.<key>=<value>` on the CDK command line
overrides a single value. Every problem is collected and reported at once, each naming the key, the bad
value and what is allowed, before any construct is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

CONTEXT_KEY = "deployment"

Stage = Literal["dev", "stage", "prod"]
Shape = Literal["scalable", "single"]


class ConfigError(Exception):
    """Raised with every problem found; str() lists one problem per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s) in cdk.json context '{CONTEXT_KEY}':\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


# ---------------------------------------------------------------------------------------------------------
# Field helpers: `doc` is the operator-facing description (the README's parameter table is generated from it).


def _f(default: Any, doc: str, **checks: Any) -> Any:
    factory = {"default_factory": (lambda d=default: d)} if isinstance(default, list) else {"default": default}
    return field(metadata={"doc": doc, **checks}, **factory)


def _required(doc: str, **checks: Any) -> Any:
    return field(metadata={"doc": doc, "required": True, **checks})


# ---------------------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True, kw_only=True)
class Environment:
    name: str = _f("bbb", "Environment name; prefixes every stack and resource of this deployment.",
                   pattern=(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$", "3-20 lowercase letters, digits or '-'"))
    stage: Stage = _f("dev", "dev: 1 NAT, single DB instance, data destroyed with the stack; "
                             "stage/prod: NAT per AZ, DB writer+reader, deletion protection, data retained.")
    type: Shape = _f("scalable", "scalable: Greenlight + Scalelite on ECS with BBB and TURN fleets; "
                                 "single: one BBB host with Greenlight, plus the TURN fleet.")
    region: str = _f("eu-west-1", "AWS region to deploy to (the availability zones must be in it).",
                     pattern=(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$", "an AWS region such as eu-west-1"))


@dataclass(frozen=True, kw_only=True)
class Domain:
    hosted_zone_id: str = _required("Route 53 public hosted zone id (imported by id, no lookup).",
                                    pattern=(r"^Z[A-Z0-9]{1,31}$", "a hosted zone id such as Z0123456789ABCDEFGHIJ"))
    hosted_zone_name: str = _required("The hosted zone's domain name, e.g. example.com.", dns=True)
    name: str = _required("Domain of this deployment inside the zone, e.g. bbb.example.com; "
                          "Greenlight is served here, the other names below it.", dns=True)


@dataclass(frozen=True, kw_only=True)
class Network:
    vpc_cidr: str = _f("10.1.0.0/16", "VPC CIDR block.", cidr=True)
    availability_zones: list[str] = _f(["eu-west-1a", "eu-west-1b", "eu-west-1c"],
                                       "Availability zone names (no lookup): 2 or 3, in the region.")
    public_subnets: list[str] = _f(["10.1.0.0/22", "10.1.4.0/22", "10.1.8.0/22"],
                                   "Public subnet CIDRs, one per AZ (ALB, NLB, NAT, BBB and TURN hosts).", cidrs=True)
    application_subnets: list[str] = _f(["10.1.16.0/20", "10.1.32.0/20", "10.1.48.0/20"],
                                        "Private application subnet CIDRs, one per AZ (ECS, EFS, Lambda).",
                                        cidrs=True)
    database_subnets: list[str] = _f(["10.1.64.0/24", "10.1.65.0/24", "10.1.66.0/24"],
                                     "Isolated database subnet CIDRs, one per AZ (Aurora, ElastiCache).", cidrs=True)


@dataclass(frozen=True, kw_only=True)
class Database:
    engine_version: str = _f("17.9", "Aurora PostgreSQL engine version (major.minor).",
                             pattern=(r"^(1[3-8])\.\d{1,2}$", "an Aurora PostgreSQL version 13.x to 18.x"))
    capacity: Literal["serverless", "provisioned"] = _f("serverless", "Aurora Serverless v2 or provisioned instances.")
    instance_class: str = _f("db.t4g.medium", "Instance class when capacity is provisioned.",
                             pattern=(r"^db\.[a-z][a-z0-9-]*\.[a-z0-9]+$", "a DB instance class such as db.t4g.medium"))
    serverless_min_acu: float = _f(0.5, "Serverless v2 minimum capacity (ACU, 0 to 256 in steps of 0.5).")
    serverless_max_acu: float = _f(4.0, "Serverless v2 maximum capacity (ACU, 1 to 256 in steps of 0.5).")


@dataclass(frozen=True, kw_only=True)
class Cache:
    engine: Literal["valkey", "redis"] = _f("valkey", "ElastiCache engine.")
    engine_version: str = _f("8.0", "Engine version.", pattern=(r"^\d+\.\d+$", "major.minor, e.g. 8.0"))
    node_type: str = _f("cache.t4g.micro", "Cache node type.",
                        pattern=(r"^cache\.[a-z][a-z0-9-]*\.[a-z0-9]+$", "a cache node type such as cache.t4g.micro"))


@dataclass(frozen=True, kw_only=True)
class Container:
    image: str = _required("Container image.", pattern=(r"^[\w.\-/:@]+$", "an image reference such as repo/name:tag"))
    cpu: int = _required("CPU units (1024 = 1 vCPU).", minimum=64, maximum=16384)
    memory_mib: int = _required("Memory limit in MiB.", minimum=128, maximum=122880)


@dataclass(frozen=True, kw_only=True)
class Frontend:
    capacity: Literal["ec2", "fargate"] = _f("ec2", "ECS capacity: EC2 instances (as the sample) or Fargate.")
    instance_type: str = _f("t3a.large", "ECS container instance type (capacity ec2).", instance_type=True)
    min_instances: int = _f(1, "ECS instances: minimum.", minimum=0, maximum=100)
    desired_instances: int = _f(2, "ECS instances: desired.", minimum=0, maximum=100)
    max_instances: int = _f(4, "ECS instances: maximum.", minimum=1, maximum=100)
    greenlight: Container = _f(Container(image="bigbluebutton/greenlight:v3", cpu=512, memory_mib=1024),
                               "Greenlight v3.")
    scalelite_api: Container = _f(Container(image="blindsidenetwks/scalelite:v1.6-api", cpu=512, memory_mib=1024),
                                  "Scalelite API (same task as nginx).")
    scalelite_nginx: Container = _f(Container(image="blindsidenetwks/scalelite:v1.6-nginx", cpu=512, memory_mib=1024),
                                    "Scalelite nginx (same task as the API).")
    scalelite_poller: Container = _f(Container(image="blindsidenetwks/scalelite:v1.6-poller", cpu=256, memory_mib=512),
                                     "Scalelite poller.")
    scalelite_importer: Container = _f(Container(image="blindsidenetwks/scalelite:v1.6-recording-importer",
                                                 cpu=256, memory_mib=512),
                                       "Scalelite recording importer (always exactly one task).")
    greenlight_tasks: int = _f(2, "Greenlight tasks (desired).", minimum=1, maximum=20)
    scalelite_api_tasks: int = _f(2, "Scalelite API+nginx tasks (desired).", minimum=1, maximum=20)


@dataclass(frozen=True, kw_only=True)
class PortRange:
    min: int = _f(49152, "Lowest relay port.", minimum=1024, maximum=65535)
    max: int = _f(65535, "Highest relay port.", minimum=1024, maximum=65535)


@dataclass(frozen=True, kw_only=True)
class Bbb:
    instance_type: str = _f("c5a.2xlarge", "BBB server instance type (BBB recommends 8 cores, 16 GB).",
                            instance_type=True)
    min_instances: int = _f(1, "BBB servers: minimum.", minimum=0, maximum=200)
    desired_instances: int = _f(1, "BBB servers: desired.", minimum=0, maximum=200)
    max_instances: int = _f(3, "BBB servers: maximum.", minimum=1, maximum=200)
    root_volume_gib: int = _f(40, "Root volume size (GiB).", minimum=20, maximum=16384)
    data_volume_gib: int = _f(100, "Data volume for /var/bigbluebutton (GiB).", minimum=10, maximum=16384)
    participants_per_server: int = _f(100, "Scale-out target: average participants per BBB server.",
                                      minimum=1, maximum=5000)
    drain_max_hours: float = _f(4.0, "Longest a BBB server waits for meetings and recordings on scale-in.",
                                minimum=0.5, maximum=47)
    install_sha256: str | None = _f(None, "SHA-256 of the reviewed bbb-install.sh (v3.0 branch) to refuse any "
                                          "other script; null = trust the branch over HTTPS.",
                                    pattern=(r"^[0-9a-f]{64}$", "64 lowercase hex digits (sha256sum of the script)"))


@dataclass(frozen=True, kw_only=True)
class Turn:
    instance_type: str = _f("t3.small", "TURN server instance type.", instance_type=True)
    min_instances: int = _f(1, "TURN servers: minimum.", minimum=1, maximum=100)
    desired_instances: int = _f(2, "TURN servers: desired.", minimum=1, maximum=100)
    max_instances: int = _f(4, "TURN servers: maximum.", minimum=1, maximum=100)
    root_volume_gib: int = _f(10, "Root volume size (GiB).", minimum=8, maximum=1024)
    relay_ports: PortRange = _f(PortRange(), "UDP relay port range.")
    user_quota: int = _f(16, "Allocations per TURN username (0 = unlimited).", minimum=0, maximum=100000)
    total_quota: int = _f(10000, "Allocations per TURN server (0 = unlimited).", minimum=0, maximum=1000000)
    max_bps: int = _f(0, "Bytes per second per allocation and direction (0 = unlimited).", minimum=0)
    allocations_per_server: int = _f(400, "Scale-out target: average live allocations per TURN server.",
                                     minimum=1, maximum=1000000)
    # Up to 47 h: a lifecycle hook lives at most 48 h, and the drain keeps 1 h of margin to complete it.
    drain_max_minutes: int = _f(60, "Longest a TURN server waits for its allocations on scale-in.",
                                minimum=1, maximum=2820)


@dataclass(frozen=True, kw_only=True)
class ClusterProxy:
    enabled: bool = _f(False, "Serve every BBB server's HTML5 client under bbb-proxy.<domain> (seed 001).")
    instance_type: str = _f("t3.small", "Cluster proxy instance type.", instance_type=True)


@dataclass(frozen=True, kw_only=True)
class Monitoring:
    """Alarm thresholds (cdk_constructs/monitoring/README.md lists each alarm and what it watches)."""

    capacity_percent: int = _f(90, "Alarm when a BBB or TURN fleet at its maximum size carries this percentage of "
                                   "its per-server scaling target (bbb.participantsPerServer, "
                                   "turn.allocationsPerServer) for 5 minutes.", minimum=10, maximum=1000)
    alb_5xx_percent: float = _f(5.0, "Alarm when this percentage of the frontend's requests fail with a 5xx "
                                     "(load balancer or target) for 15 minutes.", minimum=0.1, maximum=100)
    database_cpu_percent: int = _f(80, "Alarm when Aurora's CPU (and, serverless, its capacity used of "
                                       "database.serverlessMaxAcu) stays at or above this for 15 minutes.",
                                   minimum=10, maximum=100)
    cache_cpu_percent: int = _f(80, "Alarm when a cache node's engine CPU stays at or above this for 15 minutes.",
                                minimum=10, maximum=100)
    cache_memory_percent: int = _f(85, "Alarm when a cache node's memory use stays at or above this for 15 minutes.",
                                   minimum=10, maximum=100)
    disk_percent: int = _f(85, "Alarm when a disk of a BBB server (/, /var/bigbluebutton) or a TURN server (/) "
                                "is this full for 15 minutes.", minimum=10, maximum=99)
    certificate_days: int = _f(30, "Alarm when the ACM certificate expires in fewer days (ACM renews 60 days "
                                   "before expiry, so this means renewal is stuck).", minimum=1, maximum=395)
    server_certificate_days: int = _f(10, "Alarm when a BBB server's Let's Encrypt certificate expires in fewer "
                                          "days (certbot renews from 30 days before expiry, or a third of the "
                                          "lifetime for shorter certificates).", minimum=1, maximum=60)
    spool_age_minutes: int = _f(60, "Alarm when a recording has waited this long in the Scalelite spool "
                                    "(the importer is stopped or refuses it).", minimum=5, maximum=10080)
    ses_bounce_percent: float = _f(5.0, "Alarm at this SES bounce rate (AWS reviews the account at 5 %, may pause "
                                        "sending at 10 %).", minimum=0.1, maximum=10)
    ses_complaint_percent: float = _f(0.1, "Alarm at this SES complaint rate (AWS reviews at 0.1 %, may pause "
                                           "sending at 0.5 %).", minimum=0.01, maximum=0.5)


@dataclass(frozen=True, kw_only=True)
class Config:
    environment: Environment = _f(Environment(), "Environment.")
    operator_email: str = _required("Operator e-mail: alarms, Let's Encrypt, Greenlight's first administrator.",
                                    email=True)
    domain: Domain = _required("DNS.")
    ses_region: str | None = _f(None, "SES region if SES is not available in the deployment region (null = same).",
                                pattern=(r"^[a-z]{2}(-gov)?-[a-z]+-\d$", "an AWS region such as eu-west-1"))
    network: Network = _f(Network(), "Network.")
    database: Database = _f(Database(), "Aurora PostgreSQL.")
    cache: Cache = _f(Cache(), "ElastiCache.")
    frontend: Frontend = _f(Frontend(), "ECS frontend (Greenlight, Scalelite).")
    bbb: Bbb = _f(Bbb(), "BigBlueButton servers.")
    turn: Turn = _f(Turn(), "TURN servers.")
    cluster_proxy: ClusterProxy = _f(ClusterProxy(), "Cluster proxy.")
    monitoring: Monitoring = _f(Monitoring(), "Dashboard and alarm thresholds.")

    # -- derived values: the one place stacks read stage rules and names from ----------------------------

    @property
    def is_production_like(self) -> bool:
        return self.environment.stage != "dev"

    @property
    def nat_gateways(self) -> int:
        return len(self.network.availability_zones) if self.is_production_like else 1

    @property
    def log_retention_days(self) -> int:
        return {"dev": 7, "stage": 90, "prod": 365}[self.environment.stage]

    @property
    def backup_retention_days(self) -> int:
        return {"dev": 1, "stage": 7, "prod": 30}[self.environment.stage]

    @property
    def names(self) -> Names:
        return Names(domain=self.domain.name)

    @property
    def prefix(self) -> str:
        """Prefix of stack names, alarm names and metric namespaces of this deployment."""
        return self.environment.name

    @property
    def metric_namespace(self) -> str:
        return f"BBBOnAWS/{self.environment.name}"


@dataclass(frozen=True, kw_only=True)
class Names:
    """DNS names of the deployment (see docs/host-contract.md)."""

    domain: str

    @property
    def greenlight(self) -> str:
        return self.domain

    @property
    def scalelite(self) -> str:
        return f"scalelite.{self.domain}"

    @property
    def turn(self) -> str:
        return f"turn.{self.domain}"

    @property
    def turns(self) -> str:
        return f"turns.{self.domain}"

    @property
    def cluster_proxy(self) -> str:
        return f"bbb-proxy.{self.domain}"


# ---------------------------------------------------------------------------------------------------------
# Loading


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def load_config(context: Mapping[str, Any]) -> Config:
    """Build the Config from the CDK context (cdk.json's `context` merged with `-c` overrides)."""
    raw = context.get(CONTEXT_KEY)
    if isinstance(raw, str):  # `-c deployment='{...}'` arrives as a string
        raw = _parse_override(raw)
    if raw is None:
        raise ConfigError([f"'{CONTEXT_KEY}' is missing from cdk.json's context: add the deployment section "
                           "(see README, 'Parameters')"])
    if not isinstance(raw, Mapping):
        raise ConfigError([f"'{CONTEXT_KEY}' must be an object, got {type(raw).__name__}"])
    raw = _apply_overrides(dict(raw), context)
    problems: list[str] = []
    config = _build(Config, raw, CONTEXT_KEY, problems)
    if not problems:  # rules across keys need every single value to be valid first
        _check_relations(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _parse_override(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _apply_overrides(raw: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    prefix = CONTEXT_KEY + "."
    for key in sorted(k for k in context if k.startswith(prefix)):
        path = key[len(prefix):].split(".")
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, Mapping) else {}
            node = child
        node[path[-1]] = _parse_override(context[key])
    return raw


def _build(cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: expected an object, got {_show(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {camel(f.name): f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed keys: {', '.join(sorted(fields))}"
            problems.append(f"{path}.{key}: unknown key{hint}")
    values: dict[str, Any] = {}
    for key, f in fields.items():
        here = f"{path}.{key}"
        if key not in raw:
            if f.metadata.get("required"):
                problems.append(f"{here}: required ({f.metadata['doc']})")
            continue
        value = _convert(hints[f.name], raw[key], here, problems)
        if value is not _INVALID:
            _check_value(f.metadata, value, here, problems)
            values[f.name] = value
    if any(p.startswith(path + ".") or p.startswith(path + ":") for p in problems):
        return _INVALID
    try:
        return cls(**values)
    except TypeError:  # a required nested value failed: already reported
        return _INVALID


_INVALID: Any = object()


def _convert(hint: Any, value: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, path, problems)
    if origin is Literal:
        if value not in args:
            problems.append(f"{path}: {_show(value)} is not allowed; use one of {', '.join(map(repr, args))}")
            return _INVALID
        return value
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {_show(value)}")
            return _INVALID
        items = [_convert(args[0], v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return _INVALID if _INVALID in items else items
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, problems)
    expected: dict[Any, tuple[type, ...]] = {str: (str,), bool: (bool,), int: (int,), float: (int, float)}
    ok = isinstance(value, expected[hint]) and (hint is bool or not isinstance(value, bool))
    if not ok:
        problems.append(f"{path}: expected {hint.__name__ if hint is not float else 'a number'}, got {_show(value)}")
        return _INVALID
    return float(value) if hint is float else value


_DNS = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


def _check_value(meta: Mapping[str, Any], value: Any, path: str, problems: list[str]) -> None:
    checks: list[tuple[str, Callable[[Any], str | None]]] = [
        ("pattern", lambda v: None if v is None or re.match(meta["pattern"][0], v)
         else f"must be {meta['pattern'][1]}"),
        ("dns", lambda v: None if _DNS.match(v) else "must be a lowercase DNS name such as bbb.example.com"),
        ("email", lambda v: None if _EMAIL.match(v) else "must be an e-mail address such as ops@example.com"),
        ("instance_type", lambda v: None if _INSTANCE_TYPE.match(v)
         else "must be an EC2 instance type such as t3.small"),
        ("cidr", lambda v: _cidr_problem(v)),
        ("minimum", lambda v: None if v >= meta["minimum"] else f"must be at least {meta['minimum']}"),
        ("maximum", lambda v: None if v <= meta["maximum"] else f"must be at most {meta['maximum']}"),
    ]
    for name, check in checks:
        if name in meta:
            problem = check(value)
            if problem:
                problems.append(f"{path}: {_show(value)} {problem}")
    if meta.get("cidrs"):
        for i, item in enumerate(value):
            problem = _cidr_problem(item)
            if problem:
                problems.append(f"{path}[{i}]: {_show(item)} {problem}")


def _cidr_problem(value: str) -> str | None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        return f"is not a valid IPv4 CIDR block ({exc}); use the form 10.1.0.0/16"
    if net.version != 4:
        return "must be an IPv4 CIDR block such as 10.1.0.0/16"
    if not 16 <= net.prefixlen <= 28:
        return "must have a prefix length between /16 and /28 (the range AWS allows for VPCs and subnets)"
    return None


def _check_relations(c: Config, problems: list[str]) -> None:
    """Rules that involve several keys; each message names the keys involved."""
    p = CONTEXT_KEY
    env, dom, net = c.environment, c.domain, c.network

    # Domain inside the hosted zone.
    if not (dom.name == dom.hosted_zone_name or dom.name.endswith("." + dom.hosted_zone_name)):
        problems.append(f"{p}.domain.name: '{dom.name}' is not inside the hosted zone "
                        f"'{dom.hosted_zone_name}' ({p}.domain.hostedZoneName); use a name that ends with "
                        f"'.{dom.hosted_zone_name}'")

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

    # Relay ports.
    ports = c.turn.relay_ports
    if ports.min > ports.max:
        problems.append(f"{p}.turn.relayPorts: min={ports.min} > max={ports.max}")
    elif ports.max - ports.min + 1 < 1000:
        problems.append(f"{p}.turn.relayPorts: {ports.min}-{ports.max} holds {ports.max - ports.min + 1} ports; "
                        "give at least 1000 (each allocation uses one)")
    elif ports.min <= 3479 <= ports.max or ports.min <= 3478 <= ports.max:
        problems.append(f"{p}.turn.relayPorts: {ports.min}-{ports.max} contains the listening ports 3478/3479")

    # ECS task sizes.
    _check_tasks(c, problems)


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


def _check_tasks(c: Config, problems: list[str]) -> None:
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


def parameters() -> list[tuple[str, str, str]]:
    """(key, default, description) for every parameter; used to keep the README's table honest."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type, path: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{path}.{camel(f.name)}"
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint) and not f.metadata.get("required") and hint is not Container:
                walk(hint, key)
                continue
            if f.metadata.get("required"):
                default = "(required)"
            else:
                value = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
                default = json.dumps(_plain(value))
            if dataclasses.is_dataclass(hint) and f.metadata.get("required"):
                walk(hint, key)
                continue
            rows.append((key, default, f.metadata["doc"]))

    walk(Config, CONTEXT_KEY)
    return rows


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {camel(f.name): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
