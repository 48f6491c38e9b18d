"""A small stack for the lifecycle tests: VPC, three fleets (bbb, turn, single), an imported zone, topic
and secrets, and a FleetLifecycle on each fleet. Env-agnostic, like the app's stacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import App, Duration, Stack, Validations
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from cdk_nag import AwsSolutionsChecks

from cdk_constructs.lifecycle import FleetLifecycle, LifecycleTimings
from cdk_constructs.lifecycle.rollout import FleetRollout, RolloutSettings
from cdk_constructs.nag import acknowledge

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ZONE_ID = "Z0LIFECYCLETEST"
DOMAIN = "meet.example.test"
ENVIRONMENT = "lctest"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:lctest-operator"
SECRET_ARNS = {
    "bbb": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:lctest-bbb-AbCdEf",
    "scalelite": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:lctest-scalelite-GhIjKl",
}
SCALELITE_URL = f"https://scalelite.{DOMAIN}/scalelite/api"
GROUP_NAMES = {"bbb": "lctest-bbb", "turn": "lctest-turn", "single": "lctest-single"}
STACK_NAME = "LifecycleTest"


def build(outdir: Path, *, nag: bool) -> tuple[App, Stack]:
    app = App(outdir=str(outdir))
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = Stack(app, STACK_NAME)
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)],
        flow_logs={"all": ec2.FlowLogOptions(traffic_type=ec2.FlowLogTrafficType.ALL)},
    )
    zone = route53.HostedZone.from_hosted_zone_attributes(stack, "Zone", hosted_zone_id=ZONE_ID, zone_name=DOMAIN)
    topic = sns.Topic.from_topic_arn(stack, "Operator", TOPIC_ARN)
    bbb_secret = secretsmanager.Secret.from_secret_complete_arn(stack, "BbbSecret", SECRET_ARNS["bbb"])
    scalelite_secret = secretsmanager.Secret.from_secret_complete_arn(
        stack, "ScaleliteSecret", SECRET_ARNS["scalelite"]
    )
    image = ec2.MachineImage.from_ssm_parameter(
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
        os=ec2.OperatingSystemType.LINUX,
    )
    groups: dict[str, autoscaling.AutoScalingGroup] = {}
    for role, name in GROUP_NAMES.items():
        template = ec2.LaunchTemplate(
            stack,
            f"{role}Template",
            machine_image=image,
            instance_type=ec2.InstanceType("c5.large"),
            require_imdsv2=True,
            security_group=ec2.SecurityGroup(stack, f"{role}Sg", vpc=vpc),
            block_devices=[
                ec2.BlockDevice(device_name="/dev/sda1", volume=ec2.BlockDeviceVolume.ebs(20, encrypted=True))
            ],
        )
        groups[role] = autoscaling.AutoScalingGroup(
            stack,
            f"{role}Fleet",
            vpc=vpc,
            launch_template=template,
            auto_scaling_group_name=name,
            min_capacity=0,
            max_capacity=4,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            notifications=[autoscaling.NotificationConfiguration(topic=topic)],
        )
    common: dict[str, Any] = {
        "hosted_zone": zone,
        "domain_name": DOMAIN,
        "environment_name": ENVIRONMENT,
        "operator_topic": topic,
    }
    lifecycles: dict[str, FleetLifecycle] = {}
    lifecycles["bbb"] = FleetLifecycle(
        stack,
        "BbbLifecycle",
        auto_scaling_group=groups["bbb"],
        role="bbb",
        bbb_secret=bbb_secret,
        scalelite_secret=scalelite_secret,
        scalelite_api_url=SCALELITE_URL,
        **common,
    )
    lifecycles["turn"] = FleetLifecycle(
        stack,
        "TurnLifecycle",
        auto_scaling_group=groups["turn"],
        role="turn",
        timings=LifecycleTimings(drain_max=Duration.minutes(30)),
        **common,
    )
    lifecycles["single"] = FleetLifecycle(
        stack,
        "SingleLifecycle",
        auto_scaling_group=groups["single"],
        role="single",
        bbb_secret=bbb_secret,
        data_volume_gib=100,
        **common,
    )
    for role, lifecycle in lifecycles.items():
        settings = RolloutSettings(0, 100) if role == "single" else RolloutSettings(100, 50)
        FleetRollout(
            stack,
            f"{role.capitalize()}Rollout",
            lifecycle=lifecycle,
            auto_scaling_group=groups[role],
            settings=settings,
        )
    # Test scaffolding only (not the construct under test): the VPC flow log's own role.
    acknowledge(stack.node.find_child("Vpc"), "IAM5[Resource::*]", "test stack only: CDK's default flow log role")
    return app, stack
