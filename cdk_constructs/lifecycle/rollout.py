"""FleetRollout: a deploy that changes a fleet's launch template rolls the fleet onto it, batch by batch.

Auto Scaling's instance refresh does the replacing, through the fleet's own lifecycle hooks: new servers
pass the launch state machine (ready, registered) before counting as healthy, old ones leave through the
drain state machine, exactly as on scale-in. The custom resource below starts the refresh when the
group's LaunchTemplate version changes and returns at once; see lambdas/fleet_rollout/index.py for why a
deploy during a roll-out cancels it and restarts on the newest template, and README.md for operators.

Batch size and the healthy floor come from cdk.json as percentages of the group's desired capacity:
MinHealthyPercentage = min_healthy_percent, MaxHealthyPercentage = min_healthy_percent + batch_percent
(above 100: launch before terminate). The single host cannot run twice (one data volume): its roll-out
must terminate first (0 and 100), which `RolloutSettings.check` enforces.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_constructs.custom_resource_provider import framework_provider
from cdk_constructs.lambda_function import code, python_function
from cdk_constructs.lifecycle import permissions
from cdk_constructs.lifecycle.fleet import FleetLifecycle
from cdk_constructs.nag import acknowledge, resource_finding

# The launch hook already held each new server until it was ready and registered; the warmup only keeps
# the next batch from starting before the new servers report their first metrics (published every minute).
INSTANCE_WARMUP_SECONDS = 120
REFRESH_ENDED = [
    "EC2 Auto Scaling Instance Refresh Cancelled",
    "EC2 Auto Scaling Instance Refresh Failed",
    "EC2 Auto Scaling Instance Refresh Succeeded",
]
PENDING_CHECK_EVERY = Duration.minutes(15)  # backstop for a lost (best-effort) refresh event


@dataclass(frozen=True)
class RolloutSettings:
    """Percentages of the desired capacity: at least `min_healthy_percent` serving, `batch_percent` replaced
    at a time."""

    min_healthy_percent: int = 100
    batch_percent: int = 50

    def check(self, role: str) -> list[str]:
        """Problems, each naming the setting (the caller prefixes the cdk.json key)."""
        problems = []
        if not 0 <= self.min_healthy_percent <= 100:
            problems.append(f"minHealthyPercent {self.min_healthy_percent} must be 0 to 100")
        if not 1 <= self.batch_percent <= 100:
            problems.append(f"batchPercent {self.batch_percent} must be 1 to 100")
        elif not 100 <= self.max_healthy_percent <= 200:
            problems.append(
                f"minHealthyPercent + batchPercent = {self.max_healthy_percent} must be 100 to 200 "
                "(Auto Scaling's MaxHealthyPercentage)"
            )
        if role == "single" and (self.min_healthy_percent, self.batch_percent) != (0, 100):
            problems.append(
                "the single host keeps its data on one volume that only one instance can use: its roll-out "
                "must terminate before launching (minHealthyPercent 0, batchPercent 100)"
            )
        return problems

    @property
    def max_healthy_percent(self) -> int:
        return self.min_healthy_percent + self.batch_percent


class FleetRollout(Construct):
    """Instance refresh of one lifecycle-managed group on every launch template change."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        lifecycle: FleetLifecycle,
        auto_scaling_group: autoscaling.AutoScalingGroup,
        settings: RolloutSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        problems = settings.check(lifecycle.role)
        if problems:
            raise ValueError(f"FleetRollout {construct_id}: " + "; ".join(problems))
        cfn_group = auto_scaling_group.node.default_child
        assert isinstance(cfn_group, autoscaling.CfnAutoScalingGroup)
        template = cfn_group.launch_template
        if not isinstance(template, autoscaling.CfnAutoScalingGroup.LaunchTemplateSpecificationProperty):
            raise ValueError(f"FleetRollout {construct_id}: the group must use a launch template (not a config)")
        group_name = lifecycle.group_name
        abandoned = lifecycle.node.find_child("LaunchAbandonedAlarm")
        assert isinstance(abandoned, cloudwatch.Alarm)
        kit = lifecycle.kit
        self.function = python_function(
            self,
            "Function",
            handler="fleet_rollout.index.handler",
            service="lifecycle-rollout",
            description=f"{kit.base_environment['ENVIRONMENT_NAME']} {lifecycle.role} fleet: roll-outs",
            role_description=f"{lifecycle.role} fleet roll-outs (bbb-on-aws lifecycle)",
            timeout=Duration.minutes(1),
            log_retention=kit.log_retention,
            code_asset=code(["fleet_rollout"]),
            environment={
                "ENVIRONMENT_NAME": kit.base_environment["ENVIRONMENT_NAME"],
                "AUTO_SCALING_GROUP_NAME": group_name,
                "POWERTOOLS_METRICS_NAMESPACE": kit.base_environment["METRICS_NAMESPACE"],
                "ROLLOUT_MIN_HEALTHY_PERCENT": str(settings.min_healthy_percent),
                "ROLLOUT_MAX_HEALTHY_PERCENT": str(settings.max_healthy_percent),
                "ROLLOUT_INSTANCE_WARMUP_SECONDS": str(INSTANCE_WARMUP_SECONDS),
                "ROLLOUT_ALARMS": abandoned.alarm_name,
            },
            retry_attempts=0,
        )
        group_arn = permissions.lifecycle_actions(group_name).resources[0]
        for statement in (
            iam.PolicyStatement(
                sid="RefreshThisGroup",
                actions=[
                    "autoscaling:StartInstanceRefresh",
                    "autoscaling:CancelInstanceRefresh",
                    "autoscaling:CreateOrUpdateTags",
                    "autoscaling:DeleteTags",
                ],
                resources=[group_arn],
            ),
            iam.PolicyStatement(
                sid="DescribeRefreshes",
                actions=["autoscaling:DescribeInstanceRefreshes", "autoscaling:DescribeTags"],
                resources=["*"],
            ),
        ):
            self.function.add_to_role_policy(statement)
        kit.alarm(
            self,
            "Errors",
            self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            f"{lifecycle.role} fleet roll-outs: the function failed (see its log group)",
        )
        self.rule = events.Rule(
            self,
            "RefreshEnded",
            description=f"Instance refreshes of {lifecycle.role} ending: start a roll-out left pending",
            event_pattern=events.EventPattern(
                source=["aws.autoscaling"], detail_type=REFRESH_ENDED, detail={"AutoScalingGroupName": [group_name]}
            ),
            targets=[targets.LambdaFunction(self.function, retry_attempts=4)],
        )
        self.schedule = events.Rule(
            self,
            "PendingCheck",
            schedule=events.Schedule.rate(PENDING_CHECK_EVERY),
            description=f"Start a {lifecycle.role} roll-out left pending if its refresh event was lost",
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        provider, _role = framework_provider(
            self, self.function, ids=("ProviderLogs", "ProviderRole", "Provider"),
            retention=kit.log_retention, removal_policy=RemovalPolicy.DESTROY,
        )
        self.resource = CustomResource(
            self,
            "Rollout",
            service_token=provider.service_token,
            resource_type="Custom::BbbOnAwsFleetRollout",
            properties={
                "Group": group_name,
                "LaunchTemplateVersion": template.version,
                # A changed setting is applied by the next roll-out, without starting one.
                "Settings": f"{settings.min_healthy_percent}/{settings.max_healthy_percent}",
            },
        )
        self.resource.node.add_dependency(auto_scaling_group, lifecycle.bootstrap)
        acknowledge(
            self,
            resource_finding(self, "IAM5", group_arn),
            "Auto Scaling group ARNs embed a UUID unknown before creation; the group name pins the group",
        )
        acknowledge(
            self,
            "IAM5[Resource::*]",
            "autoscaling:DescribeInstanceRefreshes and DescribeTags support no resource-level permissions",
        )
        acknowledge(
            self,
            resource_finding(self, "IAM5", f"{self.function.function_arn}:*"),
            "the Provider framework may invoke any version of the rollout function, and only that one",
        )
        acknowledge(self.function, "L1", "Python 3.13 on purpose: AWS's Powertools layer is built for python313")
        acknowledge(provider, "L1", "the CDK Provider framework chooses its own Node.js runtime")
