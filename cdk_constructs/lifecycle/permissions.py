"""Least-privilege IAM statements of the lifecycle functions, each scoped to this deployment.

Where an action cannot be scoped to a resource (IAM's service authorization reference lists no resource
type for it: EC2/Auto Scaling Describe*, route53:CreateHealthCheck / ListHealthChecks,
ssm:GetCommandInvocation, cloudwatch:GetMetricData / PutMetricData) the statement says so, and a
condition narrows it where one exists (PutMetricData: cloudwatch:namespace).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn

from cdk_constructs.lifecycle import names


def _arn(service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
    region_part = Aws.REGION if region else ""
    account_part = Aws.ACCOUNT_ID if account else ""
    return f"arn:{Aws.PARTITION}:{service}:{region_part}:{account_part}:{resource}"


def record_changes(zone_id: str, record_names: Sequence[str], actions: Sequence[str]) -> list[iam.PolicyStatement]:
    """A records of `record_names` (StringLike patterns, normalized: lower case, no trailing dot) in this
    zone only, with these change actions only."""
    zone_arn = f"arn:{Aws.PARTITION}:route53:::hostedzone/{zone_id}"
    return [
        iam.PolicyStatement(
            sid="ChangeOwnRecordsOnly",
            actions=["route53:ChangeResourceRecordSets"],
            resources=[zone_arn],
            conditions={
                "ForAllValues:StringLike": {
                    "route53:ChangeResourceRecordSetsNormalizedRecordNames": list(record_names),
                },
                "ForAllValues:StringEquals": {
                    "route53:ChangeResourceRecordSetsRecordTypes": ["A"],
                    "route53:ChangeResourceRecordSetsActions": list(actions),
                },
            },
        ),
        iam.PolicyStatement(sid="ReadZoneRecords", actions=["route53:ListResourceRecordSets"], resources=[zone_arn]),
    ]


def health_checks(*, create: bool) -> list[iam.PolicyStatement]:
    """Route 53 health checks: ids are random, so only the `healthcheck/*` type can be named; Create and
    List have no resource type at all."""
    statements = [
        iam.PolicyStatement(
            sid="ManageHealthChecks",
            actions=["route53:ListTagsForResources", "route53:DeleteHealthCheck"]
            + (["route53:ChangeTagsForResource"] if create else []),
            resources=[f"arn:{Aws.PARTITION}:route53:::healthcheck/*"],
        ),
        iam.PolicyStatement(
            sid="ListHealthChecks",
            actions=["route53:ListHealthChecks"] + (["route53:CreateHealthCheck"] if create else []),
            resources=["*"],
        ),
    ]
    return statements


def probe_alarms(environment: str, *, write: bool) -> iam.PolicyStatement:
    """The per-instance probe alarms, by name prefix. DescribeAlarms is also what Route 53 checks when a
    CLOUDWATCH_METRIC health check is created on behalf of the caller."""
    actions = ["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]
    if write:
        actions.append("cloudwatch:PutMetricAlarm")
    return iam.PolicyStatement(
        sid="ProbeAlarms",
        actions=actions,
        resources=[_arn("cloudwatch", f"alarm:{names.probe_alarm_prefix(environment)}*")],
    )


def lifecycle_actions(group_name: str) -> iam.PolicyStatement:
    """Complete/heartbeat on this group only (its ARN embeds a UUID unknown before creation: `*`)."""
    return iam.PolicyStatement(
        sid="LifecycleActionsOfThisGroup",
        actions=["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"],
        resources=[_arn("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{group_name}")],
    )


def describe_fleet(
    *, instances: bool = True, groups: bool = False, group_instances: bool = False
) -> iam.PolicyStatement:
    actions = ["ec2:DescribeInstances"] if instances else []
    if groups:
        actions.append("autoscaling:DescribeAutoScalingGroups")
    if group_instances:
        actions.append("autoscaling:DescribeAutoScalingInstances")
    return iam.PolicyStatement(sid="DescribeFleet", actions=actions, resources=["*"])


def run_command(environment: str, role: str) -> list[iam.PolicyStatement]:
    """AWS-RunShellScript on this environment's instances of this role only (tag conditions)."""
    return [
        iam.PolicyStatement(
            sid="RunShellScriptDocument",
            actions=["ssm:SendCommand"],
            resources=[f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}::document/AWS-RunShellScript"],
        ),
        iam.PolicyStatement(
            sid="OnOwnInstancesOnly",
            actions=["ssm:SendCommand"],
            resources=[_arn("ec2", "instance/*")],
            conditions={
                "StringEquals": {
                    f"ssm:resourceTag/{names.TAG_ENVIRONMENT}": environment,
                    f"ssm:resourceTag/{names.TAG_ROLE}": role,
                }
            },
        ),
        iam.PolicyStatement(sid="ReadCommandResults", actions=["ssm:GetCommandInvocation"], resources=["*"]),
    ]


def put_metrics(namespace: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="PutMetricsInOwnNamespace",
        actions=["cloudwatch:PutMetricData"],
        resources=["*"],
        conditions={"StringEquals": {"cloudwatch:namespace": namespace}},
    )


def read_metrics() -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="ReadMetrics", actions=["cloudwatch:GetMetricData"], resources=["*"])


def start_executions(state_machines: Sequence[sfn.IStateMachine]) -> list[iam.PolicyStatement]:
    """Start, and look up the (instance-named) executions of, these state machines only."""
    return [
        iam.PolicyStatement(
            sid="StartOwnStateMachines",
            actions=["states:StartExecution"],
            resources=[machine.state_machine_arn for machine in state_machines],
        ),
        iam.PolicyStatement(
            sid="DescribeOwnExecutions",
            actions=["states:DescribeExecution"],
            resources=[execution_arns(machine) for machine in state_machines],
        ),
    ]


def execution_arns(machine: sfn.IStateMachine) -> str:
    return _arn("states", f"execution:{machine.state_machine_name}:*")
