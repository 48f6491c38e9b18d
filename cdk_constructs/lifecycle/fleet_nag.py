"""cdk-nag acknowledgments of FleetLifecycle: each remaining wildcard, named exactly, with its reason.

Apart from fleet.py so that the construct reads as what it builds; the acknowledgments are attached to the
same constructs (the FleetLifecycle, its functions, state machines and provider) as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_lambda as lambda_
from aws_cdk import custom_resources as cr

from cdk_constructs.lifecycle import permissions
from cdk_constructs.nag import acknowledge, resource_finding

if TYPE_CHECKING:
    from cdk_constructs.lifecycle.fleet import FleetLifecycle


def acknowledge_fleet(fleet: FleetLifecycle, provider: cr.Provider) -> None:
    """Each remaining wildcard of the fleet's lifecycle, named exactly, with its reason."""
    group_arn = permissions.lifecycle_actions(fleet.group_name).resources[0]
    for function in fleet_functions(fleet):
        acknowledge(
            function,
            "L1",
            "Python 3.13 is pinned on purpose: AWS's Powertools layer used here is "
            "built for python3.13 (AWSLambdaPowertoolsPythonV3-python313-x86_64)",
        )
    acknowledge(
        fleet,
        resource_finding(fleet, "IAM5", group_arn),
        "Auto Scaling group ARNs embed a UUID unknown before creation; the group name pins the group",
    )
    acknowledge(
        fleet,
        "IAM5[Resource::*]",
        "Describe* (EC2, Auto Scaling), ssm:GetCommandInvocation, cloudwatch:GetMetricData/PutMetricData "
        "(namespace condition), route53:ListHealthChecks/CreateHealthCheck and X-Ray/log delivery of "
        "the state machines support no resource-level permissions",
    )
    acknowledge(
        fleet,
        "IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]",
        "ssm:SendCommand targets instances launched later; the statement is restricted by the "
        "environment and role tags of this deployment",
    )
    if fleet.role == "turn":
        acknowledge(
            fleet,
            "IAM5[Resource::arn:<AWS::Partition>:route53:::healthcheck/*]",
            "health check ids are random; the functions only touch checks tagged with this environment",
        )
        alarm_arn = permissions.probe_alarms(fleet.environment_name, write=False).resources[0]
        acknowledge(
            fleet,
            resource_finding(fleet, "IAM5", alarm_arn),
            "per-instance probe alarms are created at runtime; the name prefix pins this environment",
        )
    for state_machine in (fleet.launch_state_machine, fleet.drain_state_machine):
        acknowledge(
            fleet,
            resource_finding(fleet, "IAM5", permissions.execution_arns(state_machine)),
            "executions are named after instances at runtime; DescribeExecution is limited to the "
            "executions of this fleet's own state machine",
        )
    for machine, function in (
        (fleet.launch_state_machine, fleet.launch_function),
        (fleet.drain_state_machine, fleet.drain_function),
    ):
        acknowledge(
            machine,
            resource_finding(fleet, "IAM5", f"{function.function_arn}:*"),
            "Step Functions' LambdaInvoke grant covers the function's versions; only this function",
        )
    acknowledge(
        fleet,
        resource_finding(fleet, "IAM5", f"{fleet.bootstrap_function.function_arn}:*"),
        "the Provider framework may invoke any version of the bootstrap function, and only that one",
    )
    acknowledge(provider, "L1", "the CDK Provider framework chooses its own Node.js runtime")


def fleet_functions(fleet: FleetLifecycle) -> list[lambda_.Function]:
    """The fleet's own Powertools functions (the data-volume function acknowledges itself)."""
    found = [
        fleet.launch_function,
        fleet.drain_function,
        fleet.dispatch_function,
        fleet.bootstrap_function,
        fleet.reconciler.function,
    ]
    if fleet.prober is not None:
        found.append(fleet.prober.function)
    return found
