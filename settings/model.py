"""The deployment's configuration model: typed sections read from cdk.json's context, each field with its
operator-facing doc (the README's parameter table is generated from it) and its single-value checks.

Everything lives under the context key `deployment` (camelCase keys, nested by section). Loading and
single-value checks: settings/loading.py; rules across keys: settings/rules.py.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import contract

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
    factory = {"default_factory": (lambda d=default: d)} if isinstance(default, (list, dict)) else {"default": default}
    return field(metadata={"doc": doc, **checks}, **factory)


def _required(doc: str, **checks: Any) -> Any:
    return field(metadata={"doc": doc, "required": True, **checks})


@dataclass(frozen=True)
class Hosts:
    """What the hosts of an instance-type key boot (`instance_type=Hosts(...)`): loading refuses a type EC2 does
    not have, or one whose architecture cannot boot the image. The images are chosen in cdk_constructs
    (fleet_host.ubuntu_2204, the ECS cluster's launch template); tests/unit/test_instance_types.py ties
    these claims to the synthesized templates."""

    name: str  # "the TURN hosts"
    image: str  # "the amd64 Ubuntu 22.04 image"
    architecture: str = "x86_64"


# The Ubuntu hosts' image is Canonical's amd64 build (an arm64 type cannot boot it); BBB ships amd64 packages only.
_UBUNTU = "the amd64 Ubuntu 22.04 image"


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
                             pattern=(r"^db\.[a-z][a-z0-9-]*\.[a-z0-9]+$", "a DB instance class such as db.t4g.medium"),
                             service_class="auroraPostgresqlClasses")
    serverless_min_acu: float = _f(0.5, "Serverless v2 minimum capacity (ACU, 0 to 256 in steps of 0.5).")
    serverless_max_acu: float = _f(4.0, "Serverless v2 maximum capacity (ACU, 1 to 256 in steps of 0.5).")


@dataclass(frozen=True, kw_only=True)
class Cache:
    engine: Literal["valkey", "redis"] = _f("valkey", "ElastiCache engine.")
    engine_version: str = _f("8.0", "Engine version.", pattern=(r"^\d+\.\d+$", "major.minor, e.g. 8.0"))
    node_type: str = _f("cache.t4g.micro", "Cache node type.",
                        pattern=(r"^cache\.[a-z][a-z0-9-]*\.[a-z0-9]+$", "a cache node type such as cache.t4g.micro"),
                        service_class="cacheNodeTypes")


@dataclass(frozen=True, kw_only=True)
class Container:
    image: str = _required("Container image.", pattern=(r"^[\w.\-/:@]+$", "an image reference such as repo/name:tag"))
    cpu: int = _required("CPU units (1024 = 1 vCPU).", minimum=64, maximum=16384)
    memory_mib: int = _required("Memory limit in MiB.", minimum=128, maximum=122880)


@dataclass(frozen=True, kw_only=True)
class Frontend:
    capacity: Literal["ec2", "fargate"] = _f("ec2", "ECS capacity: EC2 instances (as the sample) or Fargate.")
    instance_type: str = _f("t3a.large", "ECS container instance type (capacity ec2; x86_64).",
                         instance_type=Hosts("the ECS container instances",
                                             "the x86_64 ECS-optimized Amazon Linux 2023 image"))
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


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True, kw_only=True)
class Certificates:
    acme_directory: str = _f(LETS_ENCRYPT,
                             "ACME directory of the BBB fleet's wildcard certificate: Let's Encrypt production; "
                             f"staging ({LETS_ENCRYPT_STAGING}) or another CA.",
                             pattern=(r"^https://[^\s]+$", "an https:// URL"))
    renew_days: int = _f(30, "Renew the fleet certificate when this many days are left.", minimum=1, maximum=60)
    alarm_days: int = _f(20, "Alarm the operator when the served certificate has fewer days left.",
                         minimum=1, maximum=59)


@dataclass(frozen=True, kw_only=True)
class WarmPool:
    """An Auto Scaling warm pool: servers installed once, then kept stopped until a scale-out wakes them."""

    enabled: bool = _f(True, "Keep a warm pool of prepared (installed, verified, stopped) servers.")
    # 0 by default: the pool is then maxPreparedCapacity - desired, so servers returning on scale-in fill it
    # exactly; a larger minimum is kept even at the maximum and churns one new server (and certificate) a day.
    min_size: int = _f(0, "Prepared servers kept in the pool at least, beyond what maxPreparedCapacity leaves.",
                       minimum=0, maximum=200)
    # Checked in settings/rules.py (null is allowed, so no single-value bounds here).
    max_prepared_capacity: int | None = _f(None, "Servers in service plus prepared at most (null = the group's "
                                                 "maxInstances: everything the group may still grow to is prepared).")
    pool_state: Literal["Stopped", "Running"] = _f(
        "Stopped", "State of prepared servers: Stopped (pay for EBS only) or Running (pay for the instance).")
    reuse_on_scale_in: bool = _f(True, "On scale-in, drain a server and return it to the pool instead of "
                                       "terminating it.")


@dataclass(frozen=True, kw_only=True)
class ScheduledSize:
    """One timetable entry of `bbb.schedule`: an Auto Scaling scheduled action (docs/scaling.md)."""

    cron: str = _required("Unix cron, 5 fields (minute hour day-of-month month day-of-week), e.g. '30 7 * * 1-5'.")
    timezone: str = _required("IANA time zone the cron is read in, e.g. 'Europe/Berlin'.")
    min_instances: int | None = _f(None, "BBB servers: minimum from then on (null = unchanged).")
    desired_instances: int | None = _f(None, "BBB servers: desired from then on (null = unchanged).")
    max_instances: int | None = _f(None, "BBB servers: maximum from then on (null = unchanged).")


@dataclass(frozen=True, kw_only=True)
class LoadWeights:
    """Load units per unit of each getMeetings figure (docs/scaling.md: the reasoning behind the defaults)."""

    participant: float = _f(1.0, "Per participant (HTML5 client, its WebSocket and state).", minimum=0)
    voice: float = _f(1.0, "Per voiceParticipantCount (a microphone in FreeSWITCH's mix), on top.", minimum=0)
    listener: float = _f(0.5, "Per listenerCount (a listen-only audio leg), on top.", minimum=0)
    webcam: float = _f(2.0, "Per videoCount (a webcam published to mediasoup).", minimum=0)
    webcam_viewer: float = _f(0.1, "Per webcam and other participant (each webcam goes to every viewer).",
                              minimum=0)
    screen_share_viewer: float = _f(0.05, "Per other participant of a meeting with a presenter (screen share "
                                          "proxy: getMeetings does not report screen sharing).", minimum=0)


# Load units one BBB server carries at 100 % per vCPU (docs/scaling.md: 8 vCPUs = 400 units = 8 classes of 25).
LOAD_UNITS_PER_VCPU = 50.0
# vCPUs of an x86 size (EC2's naming for every current x86 family: large 2, xlarge 4, <n>xlarge 4n); metal and
# other sizes need an explicit bbb.loadCapacity entry.
_SIZE = re.compile(r"^(?:(?P<n>\d+)?xlarge|large)$")


def vcpus(instance_type: str) -> int | None:
    """vCPUs of a standard x86 size name, None when the name does not say (metal, medium, ...)."""
    match = _SIZE.match(instance_type.partition(".")[2])
    if match is None:
        return None
    return 2 if match.group(0) == "large" else 4 * int(match.group("n") or 1)


@dataclass(frozen=True, kw_only=True)
class Rollout:
    min_healthy_percent: int = _f(100, "Roll-out on a launch template change: servers kept serving, in % of the "
                                       "desired capacity (instance refresh MinHealthyPercentage).",
                                  minimum=0, maximum=100)
    batch_percent: int = _f(50, "Roll-out batch size in % of the desired capacity; min + batch above 100 "
                                "launches new servers before the old ones drain.", minimum=1, maximum=100)


@dataclass(frozen=True, kw_only=True)
class Bbb:
    instance_type: str = _f("c5a.2xlarge", "BBB server instance type (BBB recommends 8 cores, 16 GB; x86_64).",
                            instance_type=Hosts("the BBB servers (and the single host)",
                                                f"{_UBUNTU} and BBB, which is built for amd64 only"))
    min_instances: int = _f(1, "BBB servers: minimum.", minimum=0, maximum=200)
    desired_instances: int = _f(1, "BBB servers: desired.", minimum=0, maximum=200)
    max_instances: int = _f(3, "BBB servers: maximum.", minimum=1, maximum=200)
    root_volume_gib: int = _f(40, "Root volume size (GiB).", minimum=20, maximum=16384)
    data_volume_gib: int = _f(100, "Data volume for /var/bigbluebutton (GiB).", minimum=10, maximum=16384)
    schedule: list[ScheduledSize] = _f([], "Timetable pre-warm: scheduled size changes (docs/scaling.md).")
    load_weights: LoadWeights = _f(LoadWeights(), "Load figure weights (load units).")
    load_capacity: dict[str, float] = _f({}, "Load units per server at 100 %, by instance type (types not "
                                             "listed: 50 per vCPU, e.g. 400 for an 8-vCPU type).")
    load_target_percent: int = _f(70, "Scale-out target: average load per server, % of its type's capacity.",
                                  minimum=10, maximum=100)
    drain_max_hours: float = _f(4.0, "Longest a BBB server waits for meetings and recordings on scale-in.",
                                minimum=0.5, maximum=47)
    warm_pool: WarmPool = _f(WarmPool(), "Warm pool of prepared BBB servers (a cold server needs 20-40 min of "
                                         "bbb-install, a woken one minutes).")
    install_sha256: str | None = _f(None, "SHA-256 of the reviewed bbb-install.sh (v3.0 branch) to refuse any "
                                          "other script; null = trust the branch over HTTPS.",
                                    pattern=(r"^[0-9a-f]{64}$", "64 lowercase hex digits (sha256sum of the script)"))
    rollout: Rollout = _f(Rollout(), "Roll-out of the scalable fleet (the single host always drains, then "
                                     "launches: its data volume serves one instance).")
    certificates: Certificates = _f(Certificates(), "The fleet's wildcard certificate (scalable shape).")

    @property
    def load_target(self) -> float:
        """Load units per server to scale at: the instance type's capacity times loadTargetPercent."""
        return self.capacity * self.load_target_percent / 100

    @property
    def capacity(self) -> float:
        """Load units of one server of bbb.instanceType at 100 % (0 when neither listed nor derivable)."""
        if self.instance_type in self.load_capacity:
            return self.load_capacity[self.instance_type]
        return LOAD_UNITS_PER_VCPU * (vcpus(self.instance_type) or 0)


@dataclass(frozen=True, kw_only=True)
class Turn:
    instance_type: str = _f("t3.small", "TURN server instance type (x86_64).",
                            instance_type=Hosts("the TURN hosts", _UBUNTU))
    min_instances: int = _f(1, "TURN servers: minimum.", minimum=1, maximum=100)
    desired_instances: int = _f(2, "TURN servers: desired.", minimum=1, maximum=100)
    max_instances: int = _f(4, "TURN servers: maximum.", minimum=1, maximum=100)
    root_volume_gib: int = _f(10, "Root volume size (GiB).", minimum=8, maximum=1024)
    relay_ports: PortRange = _f(PortRange(), "UDP relay port range.")
    # 200 as the relay's own default (relay/config/model.py has the arithmetic from BBB's peer connections).
    user_quota: int = _f(200, "Allocations per TURN username (0 = unlimited).", minimum=0, maximum=100000)
    total_quota: int = _f(10000, "Allocations per TURN server (0 = unlimited).", minimum=0, maximum=1000000)
    max_bps: int = _f(0, "Bytes per second per allocation and direction (0 = unlimited).", minimum=0)
    # Targets per instance (docs/scaling.md derives them from bench/PROFILE.md for a t3.small).
    relay_ports_target_percent: int = _f(80, "Scale-out target: live allocations per TURN server, % of the relay "
                                             "ports (one each) or of totalQuota if lower.", minimum=10, maximum=100)
    relayed_packets_per_second: int = _f(30000, "Scale-out target: packets sent per TURN server per second.",
                                         minimum=100)
    relayed_bytes_per_second: int = _f(9600000, "Scale-out target: bytes sent per TURN server per second.",
                                       minimum=10000)
    warm_pool: WarmPool = _f(WarmPool(enabled=False),
                             "Warm pool of prepared TURN servers (off: a relay boots in about a minute).")
    # Up to 47 h: a lifecycle hook lives at most 48 h, and the drain keeps 1 h of margin to complete it.
    drain_max_minutes: int = _f(60, "Longest a TURN server waits for its allocations on scale-in.",
                                minimum=1, maximum=2820)
    # The floor leaves the last rotation's old secret time to expire everywhere (contract.py).
    secret_rotation_days: int = _f(30, "Days between rotations of the TURN shared secret (Secrets Manager).",
                                   minimum=contract.TURN_SECRET_ROTATION_MIN_DAYS, maximum=365)
    rollout: Rollout = _f(Rollout(), "Roll-out of the TURN fleet.")

    @property
    def allocations_target(self) -> int:
        """Live allocations per server to scale at: a share of what they use up, the relay ports (one each)."""
        ports = self.relay_ports.max - self.relay_ports.min + 1
        limit = min(ports, self.total_quota) if self.total_quota else ports
        return max(1, limit * self.relay_ports_target_percent // 100)


@dataclass(frozen=True, kw_only=True)
class ClusterProxy:
    enabled: bool = _f(False, "Serve every BBB server's HTML5 client under bbb-proxy.<domain> (seed 001).")
    instance_type: str = _f("t3.small", "Cluster proxy instance type (x86_64).",
                            instance_type=Hosts("the cluster proxy hosts", _UBUNTU))


def _backup_stage(name: str, enabled: bool, daily: int, monthly: int) -> type:
    """The backup settings of one stage, with that stage's defaults (dev may be off)."""
    return dataclasses.make_dataclass(name, [
        ("enabled", bool, _f(enabled, "AWS Backup plan for this stage.")),
        ("daily_retention_days", int, _f(daily, "Daily backups (03:00 UTC) kept for this many days.",
                                         minimum=1, maximum=36500)),
        ("monthly_retention_days", int, _f(monthly, "Monthly backups (the 1st, 03:00 UTC) kept this many days; "
                                                    "0 = no monthly rule.", minimum=0, maximum=36500)),
    ], frozen=True, kw_only=True)


BackupDev = _backup_stage("BackupDev", False, 7, 0)
BackupStaging = _backup_stage("BackupStaging", True, 14, 90)
BackupProd = _backup_stage("BackupProd", True, 35, 365)


@dataclass(frozen=True, kw_only=True)
class Backup:
    dev: BackupDev = _f(BackupDev(), "Backups in dev.")  # type: ignore[valid-type]
    stage: BackupStaging = _f(BackupStaging(), "Backups in stage.")  # type: ignore[valid-type]
    prod: BackupProd = _f(BackupProd(), "Backups in prod.")  # type: ignore[valid-type]


@dataclass(frozen=True, kw_only=True)
class Monitoring:
    """Alarm thresholds (cdk_constructs/monitoring/README.md lists each alarm and what it watches)."""

    capacity_percent: int = _f(90, "Alarm when a BBB or TURN fleet at its maximum size carries this percentage of "
                                   "its per-server scaling target (BBB: load, bbb.loadTargetPercent of the type's "
                                   "bbb.loadCapacity; TURN: allocations, turn.relayPortsTargetPercent of the ports) "
                                   "for 5 minutes.", minimum=10, maximum=1000)
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
    backup: Backup = _f(Backup(), "AWS Backup (Aurora, recordings EFS, the single host's data volume), per stage.")

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
    def database_monitoring_interval_seconds(self) -> int:
        """Aurora Enhanced Monitoring (OS metrics into CloudWatch Logs, billed per sample): finer in prod."""
        return {"dev": 60, "stage": 30, "prod": 15}[self.environment.stage]

    @property
    def names(self) -> Names:
        return Names(domain=self.domain.name)

    @property
    def backup_rules(self) -> Any:
        """This stage's backup settings (`backup.<stage>` in cdk.json)."""
        return getattr(self.backup, self.environment.stage)

    @property
    def prefix(self) -> str:
        """Prefix of stack names, alarm names and metric namespaces of this deployment."""
        return self.environment.name

    @property
    def deployment(self) -> Deployment:
        """What every construct reads besides its own section."""
        return Deployment(
            environment_name=self.environment.name, names=self.names, is_production_like=self.is_production_like,
            log_retention_days=self.log_retention_days, backup_retention_days=self.backup_retention_days,
            database_monitoring_interval_seconds=self.database_monitoring_interval_seconds,
        )

    @property
    def metric_namespace(self) -> str:
        return contract.metric_namespace(self.environment.name)


@dataclass(frozen=True, kw_only=True)
class Names:
    """DNS names of the deployment (see docs/host-contract.md)."""

    domain: str

    @property
    def greenlight(self) -> str:
        return self.domain

    @property
    def scalelite(self) -> str:
        return f"{contract.SCALELITE_PREFIX}{self.domain}"

    @property
    def bbb_fleet(self) -> str:
        """Parent of the BBB fleet's server names; its wildcard is the fleet certificate."""
        return f"{contract.BBB_FLEET_PREFIX}{self.domain}"

    @property
    def turn(self) -> str:
        return f"{contract.TURN_POOL_PREFIX}{self.domain}"

    @property
    def turns(self) -> str:
        return f"{contract.TURNS_PREFIX}{self.domain}"

    @property
    def cluster_proxy(self) -> str:
        return f"{contract.CLUSTER_PROXY_PREFIX}{self.domain}"


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """The deployment-wide values a construct needs besides its own section: names, namespace, stage facts.

    Plain values; settings/stage_rules.py turns the stage facts into CDK values (retention, removal policy).
    """

    environment_name: str
    names: Names
    is_production_like: bool
    log_retention_days: int
    backup_retention_days: int
    database_monitoring_interval_seconds: int

    @property
    def prefix(self) -> str:
        """Prefix of stack names, alarm names and descriptions of this deployment."""
        return self.environment_name

    @property
    def metric_namespace(self) -> str:
        return contract.metric_namespace(self.environment_name)
