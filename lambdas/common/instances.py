"""What AWS knows about an instance: EC2 state, public IP, tags, and its Auto Scaling lifecycle state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from botocore.exceptions import ClientError

from common import aws, names, timeutil

# An instance in these EC2 states cannot answer anything any more.
GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})
# Auto Scaling lifecycle states in which a launch may still proceed.
LAUNCHING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "InService"})


@dataclass(frozen=True)
class Instance:
    id: str
    state: str
    public_ip: str | None
    launch_time: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def gone(self) -> bool:
        return self.state in GONE_STATES

    @property
    def started(self) -> int | None:
        """The unix time of the instance's last start: EC2 resets LaunchTime whenever a stopped instance starts."""
        try:
            return int(timeutil.parse(self.launch_time).timestamp()) if self.launch_time else None
        except ValueError:
            return None

    @property
    def ready_since(self) -> int | None:
        """The unix time the host tagged itself ready (contract tag bbb-on-aws:ready), if it did."""
        value = self.tags.get(names.TAG_READY)
        try:
            return int(value) if value else None
        except ValueError:
            return None


def _from_api(raw: dict) -> Instance:
    launch = raw.get("LaunchTime")
    return Instance(
        id=raw["InstanceId"],
        state=raw["State"]["Name"],
        public_ip=raw.get("PublicIpAddress"),
        launch_time=launch.isoformat() if isinstance(launch, datetime) else str(launch or ""),
        tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
    )


def describe(instance_id: str) -> Instance | None:
    """None if EC2 no longer knows the instance."""
    found = describe_many([instance_id])
    return found.get(instance_id)


def describe_many(instance_ids: list[str]) -> dict[str, Instance]:
    """The instances EC2 still knows among `instance_ids` (a filter, so unknown ids are no error)."""
    result: dict[str, Instance] = {}
    ec2 = aws.client("ec2")
    for start in range(0, len(instance_ids), 100):
        chunk = instance_ids[start : start + 100]
        paginator = ec2.get_paginator("describe_instances")
        for page in paginator.paginate(Filters=[{"Name": "instance-id", "Values": chunk}]):
            for reservation in page["Reservations"]:
                for raw in reservation["Instances"]:
                    result[raw["InstanceId"]] = _from_api(raw)
    return result


def fleet_instances(environment: str, role: str) -> dict[str, Instance]:
    """Every instance of this environment and role that still exists (any state but terminated)."""
    result: dict[str, Instance] = {}
    paginator = aws.client("ec2").get_paginator("describe_instances")
    filters = [
        {"Name": f"tag:{names.TAG_ENVIRONMENT}", "Values": [environment]},
        {"Name": f"tag:{names.TAG_ROLE}", "Values": [role]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "shutting-down", "stopping", "stopped"]},
    ]
    for page in paginator.paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for raw in reservation["Instances"]:
                result[raw["InstanceId"]] = _from_api(raw)
    return result


@dataclass(frozen=True)
class GroupMember:
    instance_id: str
    group: str
    lifecycle_state: str


def group_membership(instance_id: str) -> GroupMember | None:
    """The instance's Auto Scaling group and lifecycle state, or None once it left every group."""
    try:
        response = aws.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
    except ClientError as exc:
        if aws.error_code(exc) == "ValidationError":
            return None
        raise
    for item in response.get("AutoScalingInstances", []):
        return GroupMember(item["InstanceId"], item["AutoScalingGroupName"], item["LifecycleState"])
    return None


def group_members(group: str) -> list[GroupMember]:
    response = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    members = []
    for asg in response.get("AutoScalingGroups", []):
        for item in asg.get("Instances", []):
            members.append(GroupMember(item["InstanceId"], group, item["LifecycleState"]))
    return members
