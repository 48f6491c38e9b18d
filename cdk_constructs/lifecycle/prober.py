"""TurnProber: every minute, a STUN Binding (UDP and TCP) to each InService TURN instance.

Its TurnProbeHealthy{InstanceId} metric feeds the per-instance alarms (created by the launch step) behind
the CLOUDWATCH_METRIC health checks of the weighted `turn.<domain>` records: Route 53 has no UDP check.
If the prober itself breaks, the alarms go to INSUFFICIENT_DATA, every health check turns unhealthy and
Route 53 then answers with all records (all-unhealthy counts as all-healthy): clients still get relays,
and the prober's Errors alarm tells the operator.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from cdk_constructs.lifecycle import permissions
from cdk_constructs.lifecycle.functions import FunctionKit


class TurnProber(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, kit: FunctionKit, namespace: str) -> None:
        super().__init__(scope, construct_id)
        self.function = kit.function(
            self,
            "Function",
            handler="turn_prober.index.handler",
            service="turn-prober",
            description="TURN fleet: STUN probe of every instance",
            timeout=Duration.seconds(50),
            statements=[permissions.describe_fleet(groups=True), permissions.put_metrics(namespace)],
            environment={"PROBE_TIMEOUT_SECONDS": "1.0"},
            retry_attempts=0,
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            description="Probe the TURN fleet",
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
