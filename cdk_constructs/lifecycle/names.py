"""Contract names on the CDK side: the very module the handlers use (lambdas/common/names.py), plus the
names only the construct and the handlers' environment share."""

from __future__ import annotations

from lambdas.common.names import (
    ROLES,
    TAG_ENVIRONMENT,
    TAG_INSTANCE_ID,
    TAG_READY,
    TAG_ROLE,
    metric_namespace,
    normalize_domain,
    probe_alarm_prefix,
    turn_pool_name,
)

LAUNCH_HOOK = "bbb-on-aws-launch"
TERMINATE_HOOK = "bbb-on-aws-terminate"

__all__ = [
    "LAUNCH_HOOK",
    "ROLES",
    "TAG_ENVIRONMENT",
    "TAG_INSTANCE_ID",
    "TAG_READY",
    "TAG_ROLE",
    "TERMINATE_HOOK",
    "metric_namespace",
    "normalize_domain",
    "probe_alarm_prefix",
    "turn_pool_name",
]
