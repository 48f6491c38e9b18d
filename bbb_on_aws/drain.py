"""`bbb-on-aws drain <instance-id>`: take one BBB or TURN server out of service the way scale-in does.

The drain the fleets use hangs off the terminating lifecycle hook (`bbb-on-aws-terminate`): Auto Scaling
holds the instance in Terminating:Wait, EventBridge hands the event to the dispatcher, which starts the
drain state machine (BBB: cordon in Scalelite, wait for meetings and recordings; TURN: withdraw from
turn.<domain>, signal the relay, wait for allocations). So this command asks Auto Scaling to terminate the
instance (TerminateInstanceInAutoScalingGroup): that is the one call that fires the hook, exactly as a
scale-in does. Detaching or moving to Standby fire no hook (the server would go on serving, or stop without
a drain), and instance protection only steers which instance scale-in picks.

By default the desired capacity drops by one (like a scale-in); `--replace` keeps it, so a replacement
launches while the old server drains. The command refuses an instance of another deployment, of a group
without the hook, one not InService, or a decrement below the group's minimum.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from bbb_on_aws.aws_clients import Clients
from lambdas.common.names import ROLES, TAG_ENVIRONMENT, TAG_ROLE, check_instance_id, execution_name

TERMINATE_HOOK = "bbb-on-aws-terminate"  # cdk_constructs/lifecycle/names.py (the CLI may not import CDK code)


class DrainRefused(Exception):
    """The drain was not started; the message says why and what to do."""


@dataclass
class DrainStarted:
    instance: str
    group: str
    role: str
    decremented: bool
    activity: str
    execution: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        capacity = (
            "desired capacity decremented" if self.decremented else "desired capacity kept: a replacement launches"
        )
        return (
            f"draining {self.instance} ({self.role}, group {self.group}; {capacity})\n"
            f"Auto Scaling activity {self.activity}; the drain runs as execution {self.execution}.\n"
            "Follow it with `bbb-on-aws status` (the server shows as draining until the drain completes)."
        )


def drain(
    instance_id: str, *, environment: str, region: str, replace: bool = False, clients: Clients | None = None
) -> DrainStarted:
    aws = clients or Clients(region)
    try:
        check_instance_id(instance_id)
    except ValueError as error:
        raise DrainRefused(str(error)) from None
    members = aws.autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    if not members:
        raise DrainRefused(
            f"{instance_id} is in no Auto Scaling group in {region}: only BBB and TURN servers of a "
            "fleet can be drained (check the id and --region)"
        )
    member = members[0]
    group_name = member["AutoScalingGroupName"]
    group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"][0]
    tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
    if tags.get(TAG_ENVIRONMENT) != environment:
        raise DrainRefused(
            f"{instance_id} belongs to group {group_name}, which is not part of environment "
            f"'{environment}' (tag {TAG_ENVIRONMENT}={tags.get(TAG_ENVIRONMENT)!r})"
        )
    role = tags.get(TAG_ROLE, "")
    if role not in ROLES:
        raise DrainRefused(
            f"{instance_id} is in group {group_name}, which is no BBB or TURN fleet (tag {TAG_ROLE}="
            f"{role!r}); ECS capacity drains itself through its capacity provider"
        )
    hooks = aws.autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group_name)["LifecycleHooks"]
    if not any(
        h["LifecycleHookName"] == TERMINATE_HOOK and h["LifecycleTransition"].endswith("TERMINATING") for h in hooks
    ):
        raise DrainRefused(
            f"group {group_name} has no '{TERMINATE_HOOK}' terminating hook, so terminating would "
            "end its sessions without a drain; redeploy the fleets stack first"
        )
    state = member["LifecycleState"]
    if state.startswith("Terminating"):
        raise DrainRefused(f"{instance_id} is already draining ({state}); `bbb-on-aws status` shows since when")
    if state != "InService":
        raise DrainRefused(
            f"{instance_id} is {state}, not InService: wait until it serves (a launching server "
            "that never gets ready is abandoned by its launch hook)"
        )
    if not replace and group["DesiredCapacity"] - 1 < group["MinSize"]:
        raise DrainRefused(
            f"group {group_name} is at its minimum size ({group['MinSize']}): give --replace to keep "
            f"the capacity (a replacement launches), or lower deployment.{role}.minInstances first"
        )
    try:
        response = aws.autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=instance_id, ShouldDecrementDesiredCapacity=not replace
        )
    except ClientError as error:
        raise DrainRefused(f"Auto Scaling refused: {error.response['Error'].get('Message', error)}") from None
    return DrainStarted(
        instance_id,
        group_name,
        role,
        not replace,
        response["Activity"]["ActivityId"],
        execution_name("drain", instance_id),
    )
