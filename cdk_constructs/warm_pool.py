"""An Auto Scaling warm pool from a fleet's `warmPool` settings section.

Prepared servers are launched into the pool, installed and verified by the launch hook (the lifecycle
automation's "prewarm" transition), then stopped by Auto Scaling; a scale-out wakes one in minutes instead of
installing a new one for 20-40 min. The lifecycle automation (cdk_constructs/lifecycle) handles every pool
transition; this module only shapes the pool.
"""

from __future__ import annotations

from aws_cdk import aws_autoscaling as autoscaling

from settings import WarmPool

POOL_STATES = {"Stopped": autoscaling.PoolState.STOPPED, "Running": autoscaling.PoolState.RUNNING}


def add_warm_pool(group: autoscaling.AutoScalingGroup, pool: WarmPool) -> autoscaling.WarmPool | None:
    """The group's warm pool, or None when the section disables it. Bounds are checked by settings/rules.py."""
    if not pool.enabled:
        return None
    return group.add_warm_pool(
        min_size=pool.min_size,
        max_group_prepared_capacity=pool.max_prepared_capacity,
        pool_state=POOL_STATES[pool.pool_state],
        reuse_on_scale_in=pool.reuse_on_scale_in,
    )
