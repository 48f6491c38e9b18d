"""Reconciler: a scheduled Lambda that removes state whose instance is gone and recovers lost events.

One per fleet (it knows its role's names); runs every 15 min by default, without Lambda's async retries
(the next run is the retry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk_constructs.lifecycle import permissions
from cdk_constructs.lifecycle.functions import FunctionKit


class Reconciler(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        kit: FunctionKit,
        role: str,
        environment_name: str,
        zone_id: str,
        record_patterns: Sequence[str],
        state_machines: Sequence[sfn.IStateMachine],
        scalelite_secret: secretsmanager.ISecret | None,
        every: Duration,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        statements: list[iam.PolicyStatement] = [
            *permissions.record_changes(zone_id, record_patterns, ["DELETE"]),
            permissions.describe_fleet(groups=True),
            *permissions.start_executions(state_machines),
        ]
        if role == "turn":
            statements += [
                *permissions.health_checks(create=False),
                permissions.probe_alarms(environment_name, write=False),
            ]
        self.function = kit.function(
            self,
            "Function",
            handler="fleet_reconciler.index.handler",
            service="lifecycle-reconciler",
            description=f"{environment_name} {role} fleet: reconcile stale state",
            timeout=Duration.minutes(5),
            statements=statements,
            environment=environment,
            retry_attempts=0,
        )
        if scalelite_secret is not None:
            scalelite_secret.grant_read(self.function)
        self.schedule = events.Rule(
            self,
            "Schedule",
            schedule=events.Schedule.rate(every),
            description=f"Reconcile the {role} fleet of {environment_name}",
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
