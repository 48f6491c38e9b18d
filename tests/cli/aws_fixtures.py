"""A deployment's AWS side in moto: tagged BBB and TURN groups with the lifecycle hooks, contract metrics,
alarms and state machines (what `status` reads and `drain` acts on)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import boto3

REGION = "eu-west-1"
ENV = "bbb"
AMI = "ami-12c6146b"  # one of moto's built-in images


@dataclass
class Deployment:
    groups: dict[str, str] = field(default_factory=dict)  # role -> group name
    machines: dict[str, str] = field(default_factory=dict)  # name -> arn

    def instances(self, role: str) -> list[str]:
        asg = boto3.client("autoscaling", region_name=REGION)
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[self.groups[role]])["AutoScalingGroups"][0]
        return sorted(i["InstanceId"] for i in group["Instances"])

    def group(self, role: str) -> dict[str, Any]:
        asg = boto3.client("autoscaling", region_name=REGION)
        return asg.describe_auto_scaling_groups(AutoScalingGroupNames=[self.groups[role]])["AutoScalingGroups"][0]


def make_group(name: str, role: str, environment: str, size: tuple[int, int, int], *, hooks: bool = True) -> str:
    asg = boto3.client("autoscaling", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    template = f"{name}-lt"
    ec2.create_launch_template(
        LaunchTemplateName=template, LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.small"}
    )
    low, want, high = size
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=low, DesiredCapacity=want, MaxSize=high,
        LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
        AvailabilityZones=[f"{REGION}a"],
        Tags=[{"Key": "bbb-on-aws:environment", "Value": environment, "PropagateAtLaunch": True},
              {"Key": "bbb-on-aws:role", "Value": role, "PropagateAtLaunch": True}],
    )  # fmt: skip
    if hooks:
        for hook, transition in (("bbb-on-aws-launch", "LAUNCHING"), ("bbb-on-aws-terminate", "TERMINATING")):
            asg.put_lifecycle_hook(
                LifecycleHookName=hook,
                AutoScalingGroupName=name,
                LifecycleTransition=f"autoscaling:EC2_INSTANCE_{transition}",
                HeartbeatTimeout=1800,
            )
    return name


def deployment(now: datetime.datetime) -> Deployment:
    d = Deployment()
    d.groups["turn"] = make_group("bbb-fleets-TurnGroupASG8DD4AA16-AbC", "turn", ENV, (1, 2, 4))
    d.groups["bbb"] = make_group("bbb-fleets-BbbGroupASG7E369134-XyZ", "bbb", ENV, (1, 1, 3))
    make_group("other-fleets-TurnGroupASG-Q", "turn", "other", (1, 1, 1))  # another deployment: never shown
    cw = boto3.client("cloudwatch", region_name=REGION)
    namespace = f"BBBOnAWS/{ENV}"
    turn_ids = d.instances("turn")
    data = [
        {
            "MetricName": "Allocations",
            "Value": 12.0 + i,
            "Timestamp": now - datetime.timedelta(minutes=1),
            "Dimensions": [
                {"Name": "AutoScalingGroupName", "Value": d.groups["turn"]},
                {"Name": "InstanceId", "Value": iid},
            ],
        }
        for i, iid in enumerate(turn_ids)
    ]
    data += [
        {
            "MetricName": "Allocations",
            "Value": 25.0,
            "Timestamp": now - datetime.timedelta(minutes=1),
            "Dimensions": [{"Name": "AutoScalingGroupName", "Value": d.groups["turn"]}],
        }
    ]
    data += [
        {
            "MetricName": name,
            "Value": value,
            "Timestamp": now - datetime.timedelta(minutes=1),
            "Dimensions": [{"Name": "AutoScalingGroupName", "Value": d.groups["bbb"]}],
        }
        for name, value in (("Meetings", 3.0), ("Participants", 41.0))
    ]
    cw.put_metric_data(Namespace=namespace, MetricData=data)
    for name, state in (
        ("bbb-fleets-BbbLifecycleDrainStateMachineFailed-1A2B", "ALARM"),
        (f"bbb-on-aws-{ENV}-turn-probe-{turn_ids[0]}", "ALARM"),
        ("bbb-fleets-TurnLifecycleRuleFailedInvocations-9Z", "OK"),
        ("other-fleets-TurnLifecycleDrainFailed-1", "ALARM"),
    ):
        cw.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"test: {state}")
    sfn = boto3.client("stepfunctions", region_name=REGION)
    role = "arn:aws:iam::123456789012:role/sfn"
    definition = '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}'
    for name, environment in (
        ("TurnLifecycleDrainStateMachineF14406D1-abc", ENV),
        ("BbbLifecycleLaunchStateMachine12616838-def", ENV),
        ("TurnLifecycleDrainStateMachine-other", "other"),
    ):
        arn = sfn.create_state_machine(
            name=name,
            definition=definition,
            roleArn=role,
            tags=[{"key": "bbb-on-aws:environment", "value": environment}],
        )["stateMachineArn"]
        d.machines[name] = arn
    return d
