"""FleetLifecycle's alarms to the operator topic, each naming what to check first and the guide's section.

Kept apart from fleet.py (which wires hooks, functions, state machines and events) so that the texts an
operator reads live in one place. Every alarm is created in the FleetLifecycle's own scope with the
construct id it always had, so logical IDs stay put; FleetRollout finds "LaunchAbandonedAlarm" there.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk_constructs.lifecycle.functions import FunctionKit

DRAIN_GUIDE = "docs/troubleshooting.md#drain-does-not-finish"


def launch_guide(role: str) -> str:
    """The troubleshooting guide's section for a launch problem of this fleet."""
    section = "turn-alarm" if role == "turn" else "server-not-receiving-meetings"
    return f"docs/troubleshooting.md#{section}"


def execution_alarms(
    scope: Construct, kit: FunctionKit, construct_id: str, machine: sfn.StateMachine, *, guide: str
) -> None:
    """Failed, timed-out and aborted executions of one state machine."""
    for name, metric, outcome in (
        ("Failed", machine.metric_failed(), "failed"),
        ("TimedOut", machine.metric_timed_out(), "timed out"),
        ("Aborted", machine.metric_aborted(), "was aborted"),
    ):
        kit.alarm(
            scope,
            f"{construct_id}{name}",
            metric,
            f"{construct_id}: an execution {outcome}. Check first: its execution history (the last step and its "
            f"error). Guide: {guide}",
        )


def rule_alarm(scope: Construct, kit: FunctionKit, rule: events.Rule) -> None:
    """Lifecycle events the rule could not hand to the dispatcher."""
    kit.alarm(
        scope,
        "RuleFailedInvocations",
        cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="FailedInvocations",
            dimensions_map={"RuleName": rule.rule_name},
            statistic="Sum",
            period=Duration.minutes(5),
        ),
        "Lifecycle events could not be delivered to the dispatcher (the reconciler recovers them). Check first: "
        f"the dispatcher function's errors and the rule's target. Guide: {DRAIN_GUIDE}",
    )


def outcome_alarms(scope: Construct, kit: FunctionKit, *, role: str, namespace: str, group_name: str) -> None:
    """Abandoned launches, drains that hit their maximum and (bbb) repeated Scalelite errors, from the
    handlers' own metrics."""

    def custom(metric: str, service: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=metric,
            statistic="Sum",
            period=Duration.minutes(5),
            dimensions_map={"service": service, "AutoScalingGroupName": group_name},
        )

    kit.alarm(
        scope,
        "LaunchAbandonedAlarm",
        custom("LaunchAbandoned", "lifecycle-launch"),
        f"A {role} instance did not become ready and was abandoned (Auto Scaling replaces it). Check first: the "
        f"instance's bootstrap log (system log group, stream <instance id>/bootstrap). Guide: {launch_guide(role)}",
    )
    kit.alarm(
        scope,
        "DrainMaxReachedAlarm",
        custom("DrainMaxReached", "lifecycle-drain"),
        f"A {role} drain reached its maximum; remaining sessions were ended. Check first: the drain execution's "
        f"history (what it waited for). Guide: {DRAIN_GUIDE}",
    )
    if role == "bbb":
        kit.alarm(
            scope,
            "ScaleliteErrorsAlarm",
            custom("ScaleliteErrors", "lifecycle-drain"),
            "Scalelite's API keeps failing during drains. Check first: the Scalelite service's tasks and logs. "
            "Guide: docs/troubleshooting.md#server-not-receiving-meetings",
            threshold=5,
            evaluation_periods=3,
        )
