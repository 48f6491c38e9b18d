"""Powertools Logger/Metrics for a handler module, configured from the environment the construct sets
(POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE)."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics

# Steps that legitimately emit no metric (e.g. a readiness check) must not warn on every invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def tools() -> tuple[Logger, Metrics]:
    return Logger(), Metrics()


def group_dimension(metrics: Metrics, group: str) -> None:
    """Every metric of this invocation carries the group (set once per container and group)."""
    if metrics.default_dimensions.get("AutoScalingGroupName") != group:
        metrics.clear_default_dimensions()
        metrics.clear_metrics()
        metrics.set_default_dimensions(AutoScalingGroupName=group)
