"""The stage rules as CDK values, derived from the config in one place.

dev: data is destroyed with the stack and logs are kept briefly; stage/prod: data is retained (or
snapshotted where CloudFormation supports it) and logs are kept long.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

from stacks.config import Config

_RETENTION = {7: logs.RetentionDays.ONE_WEEK, 90: logs.RetentionDays.THREE_MONTHS, 365: logs.RetentionDays.ONE_YEAR}


def data_removal_policy(config: Config, *, snapshot: bool = False) -> RemovalPolicy:
    """For stateful resources; `snapshot` where the resource supports a final snapshot (RDS, ElastiCache)."""
    if not config.is_production_like:
        return RemovalPolicy.DESTROY
    return RemovalPolicy.SNAPSHOT if snapshot else RemovalPolicy.RETAIN


def log_retention(config: Config) -> logs.RetentionDays:
    return _RETENTION[config.log_retention_days]


def log_removal_policy(config: Config) -> RemovalPolicy:
    return RemovalPolicy.RETAIN if config.is_production_like else RemovalPolicy.DESTROY
