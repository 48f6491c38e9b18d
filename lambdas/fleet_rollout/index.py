"""Roll a fleet onto its new launch template, batch by batch, with Auto Scaling's instance refresh.

Why instance refresh: it replaces instances through the group's own lifecycle hooks, so every new server
passes the launch state machine (ready, registered) before it counts as healthy, and every old one leaves
through the terminate hook's drain state machine, exactly as on scale-in (no meeting ended, recordings
transferred, TURN allocations drained). Auto Scaling keeps MinHealthyPercentage serving and launches before
it terminates when MaxHealthyPercentage is above 100. The refresh fails, leaving the old servers serving,
when the fleet's LaunchAbandoned alarm fires (a new server never became ready). AutoRollback stays off: it
would point the group back at the old template behind CloudFormation's back (drift).

Entry points (one function):
- CloudFormation custom resource (Provider framework): Update with a new LaunchTemplateVersion starts a
  refresh and returns at once (`cdk deploy` does not wait hours for drains). Create and Delete start
  nothing (a new group's instances already run its template; a deleted group needs no roll-out).
- A deploy during a roll-out cancels the running refresh and marks the group `bbb-on-aws:rollout-pending`;
  cancelling lets the replacements in flight finish (launches complete, drains run to their end), and
  when the refresh is Cancelled (its EventBridge event, or the schedule as a backstop for a lost event) the
  pending roll-out starts against the group's newest template. SkipMatching leaves servers already on it.
  An operator's own cancel sets no mark, so nothing restarts it.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from common import aws, contract, observability
from common.config import ConfigurationError
from common.custom_resource import CustomResource, Request, Result

logger, metrics = observability.tools()

PENDING_TAG = contract.TAG_ROLLOUT_PENDING
# A refresh in one of these states must end before another can start (StartInstanceRefresh refuses).
ACTIVE = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})


def _client() -> Any:
    """Instance refresh calls (absent from moto: the tests stub this client, with exact parameters)."""
    return aws.client("autoscaling", "instance-refresh")


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set; the FleetRollout construct sets it")
    return value


def _percent(name: str, low: int, high: int) -> int:
    raw = _env(name)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigurationError(f"{name}={raw!r} must be a whole number from {low} to {high}")
    return int(raw)


def preferences() -> dict[str, Any]:
    """StartInstanceRefresh Preferences from the function's environment (set from cdk.json)."""
    minimum = _percent("ROLLOUT_MIN_HEALTHY_PERCENT", 0, 100)
    maximum = _percent("ROLLOUT_MAX_HEALTHY_PERCENT", 100, 200)
    if maximum - minimum > 100 or maximum == minimum:
        raise ConfigurationError(
            f"ROLLOUT_MAX_HEALTHY_PERCENT {maximum} - ROLLOUT_MIN_HEALTHY_PERCENT {minimum} must be 1 to 100"
        )
    found: dict[str, Any] = {
        "MinHealthyPercentage": minimum,
        "MaxHealthyPercentage": maximum,
        "InstanceWarmup": _percent("ROLLOUT_INSTANCE_WARMUP_SECONDS", 0, 3600),
        "SkipMatching": True,
        "AutoRollback": False,
    }
    alarms = [name for name in os.environ.get("ROLLOUT_ALARMS", "").split(",") if name.strip()]
    if alarms:
        found["AlarmSpecification"] = {"Alarms": alarms}
    return found


def _group() -> str:
    return _env("AUTO_SCALING_GROUP_NAME")


def active_refresh(group: str) -> dict[str, Any] | None:
    found = _client().describe_instance_refreshes(AutoScalingGroupName=group)["InstanceRefreshes"]
    return next((refresh for refresh in found if refresh.get("Status") in ACTIVE), None)


def _pending(group: str) -> str | None:
    tags = aws.client("autoscaling").describe_tags(
        Filters=[
            {"Name": "auto-scaling-group", "Values": [group]},
            {"Name": "key", "Values": [PENDING_TAG]},
        ]
    )["Tags"]
    return tags[0]["Value"] if tags else None


def _mark_pending(group: str, version: str) -> None:
    aws.client("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": group,
                "ResourceType": "auto-scaling-group",
                "Key": PENDING_TAG,
                "Value": version,
                "PropagateAtLaunch": False,
            }
        ]
    )


def _clear_pending(group: str) -> None:
    if _pending(group) is not None:
        aws.client("autoscaling").delete_tags(
            Tags=[{"ResourceId": group, "ResourceType": "auto-scaling-group", "Key": PENDING_TAG}]
        )


def _start(group: str) -> str:
    answer = _client().start_instance_refresh(AutoScalingGroupName=group, Strategy="Rolling", Preferences=preferences())
    _clear_pending(group)
    logger.info("instance refresh started", extra={"group": group, "refresh": answer["InstanceRefreshId"]})
    return str(answer["InstanceRefreshId"])


def _defer(group: str, version: str, running: dict[str, Any]) -> dict[str, str]:
    """A refresh is running: mark the newer template pending and cancel the running one (if not already)."""
    _mark_pending(group, version)
    if running.get("Status") != "Cancelling":
        _client().cancel_instance_refresh(AutoScalingGroupName=group)
    logger.info(
        "roll-out deferred until the running refresh is cancelled",
        extra={"group": group, "running": running.get("InstanceRefreshId"), "version": version},
    )
    return {"Rollout": "pending", "Cancelled": str(running.get("InstanceRefreshId", ""))}


def roll(version: str) -> dict[str, str]:
    """Start a refresh onto the group's current template, or defer it behind the running one."""
    group = _group()
    preferences()  # a bad setting fails the deploy now, not the restart hours later
    running = active_refresh(group)
    if running is not None:
        return _defer(group, version, running)
    try:
        return {"Rollout": "started", "InstanceRefreshId": _start(group)}
    except ClientError as exc:
        if aws.error_code(exc) != "InstanceRefreshInProgress":
            raise
        running = active_refresh(group) or {}
        return _defer(group, version, running)


def resume_pending() -> dict[str, str]:
    """After a refresh ended (event) or on schedule: start the roll-out a deploy left pending, if any."""
    group = _group()
    version = _pending(group)
    if version is None:
        return {"Rollout": "none pending"}
    running = active_refresh(group)
    if running is not None:
        return {"Rollout": "pending", "Waiting": str(running.get("InstanceRefreshId", ""))}
    return {"Rollout": "started", "InstanceRefreshId": _start(group), "Version": version}


def _physical_id() -> str:
    return f"bbb-on-aws-rollout-{_group()}"


def create(_request: Request) -> Result:
    return {"PhysicalResourceId": _physical_id(), "Data": {"Rollout": "none (new group)"}}


def update(request: Request) -> Result:
    new = str(request.properties.get("LaunchTemplateVersion", ""))
    old = str(request.old_properties.get("LaunchTemplateVersion", ""))
    if not new:
        raise ValueError("the rollout custom resource needs LaunchTemplateVersion")
    data = roll(new) if new != old else {"Rollout": "unchanged"}
    logger.info("rollout update", extra={"old": old, "new": new, **data})
    return {"PhysicalResourceId": request.physical_id or _physical_id(), "Data": data}


def delete(request: Request) -> Result:
    return {"PhysicalResourceId": request.physical_id or _physical_id()}


resource = CustomResource(create=create, update=update, delete=delete, logger=logger)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Custom resource events (RequestType), instance refresh events (aws.autoscaling) and the schedule."""
    if "RequestType" in event:
        return resource(event, context)
    detail = event.get("detail") or {}
    if event.get("source") == "aws.autoscaling" and detail.get("AutoScalingGroupName") not in (None, _group()):
        logger.warning("event of another group ignored", extra={"group": detail.get("AutoScalingGroupName")})
        return {"Rollout": "ignored"}
    outcome = resume_pending()
    logger.info("refresh ended or scheduled check", extra={"detail_type": event.get("detail-type"), **outcome})
    return outcome
