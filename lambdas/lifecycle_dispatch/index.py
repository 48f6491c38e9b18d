"""EventBridge target for this group's lifecycle-action events: validate, then start one execution.

Starting Step Functions here (not as a direct rule target) lets the execution be *named* after the
instance, which is what makes duplicated deliveries harmless, and lets a late launch event for an
instance that is already terminating be dropped before anything happens.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from common import config, executions, instances, names, observability, transitions
from common.lifecycle import LifecycleAction

logger, metrics = observability.tools()

TRANSITIONS = {"autoscaling:EC2_INSTANCE_LAUNCHING": "launch", "autoscaling:EC2_INSTANCE_TERMINATING": "drain"}


def _ignored(reason: str, **details: Any) -> dict[str, Any]:
    logger.info("event ignored", extra={"reason": reason, **details})
    metrics.add_metric(name="LifecycleEventsIgnored", unit=MetricUnit.Count, value=1)
    return {"outcome": "ignored", "reason": reason}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config.load()
    observability.group_dimension(metrics, settings.group)
    detail = event.get("detail")
    if event.get("source") != "aws.autoscaling" or not isinstance(detail, dict):
        raise ValueError("not an Auto Scaling lifecycle event: the rule routes only aws.autoscaling events here")
    kind = TRANSITIONS.get(str(detail.get("LifecycleTransition")))
    if kind is None:
        return _ignored("not a launch or terminate transition", transition=detail.get("LifecycleTransition"))
    instance_id = names.check_instance_id(str(detail.get("EC2InstanceId")))
    logger.append_keys(instance_id=instance_id, kind=kind)
    expected_hook = settings.launch_hook if kind == "launch" else settings.terminate_hook
    if detail.get("AutoScalingGroupName") != settings.group or detail.get("LifecycleHookName") != expected_hook:
        return _ignored("event of another group or hook", group=detail.get("AutoScalingGroupName"))
    transition = transitions.classify(kind, detail.get("Origin"), detail.get("Destination"))
    if transition is None:
        return _ignored("undocumented origin/destination", origin=detail.get("Origin"), to=detail.get("Destination"))
    logger.append_keys(transition=transition.name)
    member = instances.group_membership(instance_id) if transition.states else None
    if transition.states and not transition.accepts(member.lifecycle_state if member else None):
        # Late, replayed or out of order: the instance has moved on (a drain or a later transition owns it).
        return _ignored(
            f"late {transition.name} event: the instance is no longer where that transition leads through",
            state=member.lifecycle_state if member else None,
        )
    started = None
    if transition.per_start:
        instance = instances.describe(instance_id)
        started = instance.started if instance else None
        if started is None:
            return _ignored(f"{transition.name} event for an instance EC2 no longer knows")
    action = LifecycleAction(
        instance_id=instance_id,
        group=settings.group,
        hook=expected_hook,
        token=str(detail.get("LifecycleActionToken") or "") or None,
    )
    outcome = executions.start(settings, transition, action, started)
    metrics.add_metric(
        name="LifecycleEventsStarted" if outcome == "started" else "LifecycleEventsDuplicated",
        unit=MetricUnit.Count,
        value=1,
    )
    logger.info("lifecycle event routed", extra={"outcome": outcome})
    return {"outcome": outcome, "kind": kind, "transition": transition.name, "instance_id": instance_id}
