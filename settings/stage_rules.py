"""The stage rules as CDK values, derived from the settings in one place.

dev: data is destroyed with the stack and logs are kept briefly; stage/prod: data is retained (or
snapshotted where CloudFormation supports it) and logs are kept long. Each function takes the whole Config or
the Deployment value a construct receives: both carry the stage facts.
"""

from __future__ import annotations

from typing import Protocol

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

_RETENTION = {7: logs.RetentionDays.ONE_WEEK, 90: logs.RetentionDays.THREE_MONTHS, 365: logs.RetentionDays.ONE_YEAR}


class StageFacts(Protocol):
    """What the stage rules read (settings.Config and settings.Deployment both have it)."""

    @property
    def is_production_like(self) -> bool: ...

    @property
    def log_retention_days(self) -> int: ...


def data_removal_policy(stage: StageFacts, *, snapshot: bool = False) -> RemovalPolicy:
    """For stateful resources; `snapshot` where the resource supports a final snapshot (RDS, ElastiCache)."""
    if not stage.is_production_like:
        return RemovalPolicy.DESTROY
    return RemovalPolicy.SNAPSHOT if snapshot else RemovalPolicy.RETAIN


def log_retention(stage: StageFacts) -> logs.RetentionDays:
    return _RETENTION[stage.log_retention_days]


def log_removal_policy(stage: StageFacts) -> RemovalPolicy:
    return RemovalPolicy.RETAIN if stage.is_production_like else RemovalPolicy.DESTROY
