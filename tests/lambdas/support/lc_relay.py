"""The TURN relay as the lifecycle automation sees it (shared by the drain and roll-out tests)."""

from __future__ import annotations

from datetime import datetime, timedelta

import boto3
from lc_world import World

SIGNAL = "kill --signal=SIGUSR1 bbb-turn-relay"


class Relay:
    """The relay on the TURN host as the automation sees it: its Allocations metric once a minute, and
    one allocation ending every `seconds_each` once SIGUSR1 put it in drain mode (clients leave; nobody
    new gets in)."""

    def __init__(self, world: World, instance_id: str, allocations: int, *, seconds_each: float = 120) -> None:
        self.world, self.instance_id, self.initial, self.seconds_each = world, instance_id, allocations, seconds_each
        self.allocations = allocations
        self.publishing = True
        self.draining_since: datetime | None = None
        self.last_publish: datetime | None = None

    def tick(self, now: datetime) -> None:
        if self.draining_since is None and SIGNAL in self.world.systemctl_calls(self.instance_id):
            self.draining_since = now
        if self.draining_since is not None:
            left = self.initial - int((now - self.draining_since).total_seconds() // self.seconds_each)
            self.allocations = max(0, left)
        if not self.publishing or (self.last_publish and now - self.last_publish < timedelta(seconds=60)):
            return
        self.last_publish = now
        boto3.client("cloudwatch").put_metric_data(
            Namespace="BBBOnAWS/lctest",
            MetricData=[
                {
                    "MetricName": "Allocations",
                    "Timestamp": now,
                    "Value": float(self.allocations),
                    "Dimensions": [
                        {"Name": "AutoScalingGroupName", "Value": self.world.group},
                        {"Name": "InstanceId", "Value": self.instance_id},
                    ],
                }
            ],
        )
