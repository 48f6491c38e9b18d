"""What the dashboard and the alarms watch: the names of the deployment's resources, nothing else.

Each bundle holds only the identifiers CloudWatch's dimensions need (group names, load balancer full names,
cluster ids), so the monitoring construct depends on no stack's internals and on no Config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_stepfunctions as sfn


@dataclass(frozen=True, kw_only=True)
class Fleet:
    """An Auto Scaling group of BBB servers or TURN relays and its lifecycle automation."""

    title: str  # "TURN", "BBB"
    group_name: str
    max_instances: int
    per_server_target: float  # the scaling target: allocations (TURN) or load units (BBB) per server
    load_metric: str  # the host metric that target is about: "Allocations" or "Load"
    launch: sfn.IStateMachine
    drain: sfn.IStateMachine


@dataclass(frozen=True, kw_only=True)
class TurnEdge:
    """The TURN fleet's NLB (turns:<name>:443)."""

    load_balancer: str  # full name, net/<name>/<id>
    target_group: str  # full name, targetgroup/<name>/<id>


@dataclass(frozen=True, kw_only=True)
class Frontend:
    """The ALB and the ECS services behind it (scalable shape)."""

    load_balancer: str  # full name, app/<name>/<id>
    target_groups: Mapping[str, str]  # title -> full name
    cluster_name: str
    services: Mapping[str, str]  # title -> ECS service name, every service of the cluster
    importer: str  # the key in `services` of the one Scalelite recording importer


@dataclass(frozen=True, kw_only=True)
class DataTier:
    """Aurora, the cache nodes and the recordings file system (scalable shape)."""

    database_cluster: str  # DBClusterIdentifier
    serverless: bool
    cache_nodes: Sequence[str]  # CacheClusterId of each node (<replication group id>-001, ...)
    file_system: str  # FileSystemId


@dataclass(frozen=True, kw_only=True)
class Watched:
    """Everything of one deployment the monitoring construct reads."""

    namespace: str  # the hosts' and Lambdas' namespace, BBBOnAWS/<environment>
    turn: Fleet
    turn_edge: TurnEdge
    bbb: Fleet
    certificate_arn: str
    ses_region: str
    frontend: Frontend | None = None
    data: DataTier | None = None
    # Alarms made elsewhere (TURN health, lifecycle); shown in the status widget, not made again.
    existing_alarms: Sequence[cloudwatch.IAlarm] = ()
