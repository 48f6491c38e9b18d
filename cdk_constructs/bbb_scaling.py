"""How the BBB fleet scales, besides the target-tracking policy: the timetable pre-warm (`bbb.schedule` as
scheduled actions) and the least-loaded termination policy (docs/scaling.md).

Least-loaded scale-in: Auto Scaling's Lambda-based custom termination policy. The group's TerminationPolicies
holds the function's unqualified ARN; the function's resource policy lets the Auto Scaling service-linked
role invoke it (AWS: "Create a custom termination policy with Lambda"). The function reads each candidate's
latest Load and Meetings from CloudWatch (lambdas/bbb_termination/index.py says why not from BBB itself).
"""

from __future__ import annotations

import dataclasses
import json

from aws_cdk import Duration, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_constructs.lambda_defaults import PythonFunction
from cdk_constructs.nag import acknowledge
from settings import Bbb, Deployment, camel

# AWS: "The maximum run time for your Lambda function is two seconds"; past it Auto Scaling retries later.
TERMINATION_TIMEOUT = Duration.seconds(2)
AUTO_SCALING_ROLE = "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"


def load_weights_json(bbb: Bbb) -> str:
    """bbb.loadWeights as the host's LOAD_WEIGHTS (cdk.json's key names; userdata/bbb/load_figure.py reads it)."""
    weights = bbb.load_weights
    return json.dumps(
        {camel(f.name): getattr(weights, f.name) for f in dataclasses.fields(weights)}, separators=(",", ":")
    )


def add_schedule(group: autoscaling.AutoScalingGroup, bbb: Bbb) -> list[autoscaling.ScheduledAction]:
    """One scheduled action per `bbb.schedule` entry (validated by settings/scaling_rules.py)."""
    actions = []
    for index, entry in enumerate(bbb.schedule):
        actions.append(
            group.scale_on_schedule(
                f"Schedule{index}",
                schedule=autoscaling.Schedule.expression(entry.cron),
                time_zone=entry.timezone,
                min_capacity=entry.min_instances,
                desired_capacity=entry.desired_instances,
                max_capacity=entry.max_instances,
            )
        )
    return actions


class LeastLoadedTermination(Construct):
    """The termination-policy function, installed as the group's only termination policy."""

    def __init__(
        self, scope: Construct, construct_id: str, *, group: autoscaling.AutoScalingGroup, deployment: Deployment
    ) -> None:
        super().__init__(scope, construct_id)
        built = PythonFunction(
            self,
            "Function",
            config=deployment,
            folder="bbb_termination",
            description=f"{deployment.prefix} BBB fleet: offer the least-loaded servers for scale-in",
            timeout=TERMINATION_TIMEOUT,
            environment={"METRICS_NAMESPACE": deployment.metric_namespace},
        )
        self.function = built.function
        # GetMetricData has no resource type in IAM: it can only be granted on "*".
        self.function.add_to_role_policy(iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"]))
        acknowledge(self.function, "L1", "Python 3.13 is pinned on purpose: the project's Powertools layer is the "
                                         "python313 build (cdk_constructs/lambda_function.py); bumped together")
        acknowledge(
            built.role,
            "IAM5[Resource::*]",
            "cloudwatch:GetMetricData has no resource-level permissions; "
            "the function only reads this deployment's Load and Meetings.",
        )
        stack = Stack.of(self)
        self.function.add_permission(
            "AutoScalingInvoke",
            principal=iam.ArnPrincipal(stack.format_arn(service="iam", region="", resource=AUTO_SCALING_ROLE)),
            action="lambda:InvokeFunction",
        )
        # The permission names the service-linked role, which exists once the account has a group: create it after
        # the group (Auto Scaling invokes the function only when it scales in).
        self.function.node.find_child("AutoScalingInvoke").node.add_dependency(group)
        cfn_group = group.node.default_child
        assert isinstance(cfn_group, autoscaling.CfnAutoScalingGroup)
        cfn_group.termination_policies = [self.function.function_arn]
