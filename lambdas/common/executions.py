"""Starting the launch / drain state machine for an instance, once.

The execution name is derived from the instance id (names.execution_name): Step Functions refuses a second
execution with that name, so duplicated EventBridge deliveries, the reconciler's recovery and the deploy
time bootstrap can all ask for the same execution and only one ever runs.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from common import aws, config, instances, names, transitions
from common.lifecycle import LifecycleAction


def start(
    settings: config.Settings, transition: transitions.Transition, action: LifecycleAction, started: int | None = None
) -> str:
    """Returns "started", or "duplicate" if that execution already exists. `started`: the instance's LaunchTime
    (unix seconds), needed by the transitions that happen on every start (wake, park)."""
    arn = settings.need(f"{transition.machine}_state_machine_arn")
    name = names.execution_name(transition.name, action.instance_id, started if transition.per_start else None)
    # The plain launch and drain keep their input as it always was; the others tell the steps which they are.
    state = {} if transition.name in ("launch", "drain") else {"transition": transition.name}
    payload: dict[str, Any] = {"lifecycle": action.to_state(), "state": state}
    sfn = aws.client("stepfunctions")
    # StartExecution is idempotent for a running execution with the same input and would not tell us:
    # look first, so the outcome (and the metrics and reports built on it) is exact.
    try:
        sfn.describe_execution(executionArn=f"{arn.replace(':stateMachine:', ':execution:', 1)}:{name}")
        return "duplicate"
    except ClientError as exc:
        if aws.error_code(exc) != "ExecutionDoesNotExist":
            raise
    try:
        sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
    except ClientError as exc:
        if aws.error_code(exc) == "ExecutionAlreadyExists":
            return "duplicate"
        raise
    return "started"


def recover(settings: config.Settings, *, include_in_service: bool = False) -> dict[str, list[str]]:
    """Start the state machine for every instance of the group waiting in a lifecycle hook (lost or
    not yet routed events), warm-pool transitions included (common/transitions.recovered); with
    include_in_service, also launch InService instances (first deploy: they booted before the hooks existed).
    Instances resting in the warm pool (Warmed:Stopped, Warmed:Running) wait for nothing: left alone.
    Returns {"started": [...], "duplicate": [...]}."""
    outcome: dict[str, list[str]] = {"started": [], "duplicate": []}
    members = instances.group_members(settings.group)
    waiting = [m for m in members if m.lifecycle_state.endswith(":Wait")]
    described = instances.describe_many([m.instance_id for m in waiting]) if waiting else {}
    for member in members:
        instance = described.get(member.instance_id)
        if member.lifecycle_state.endswith(":Wait"):
            prepared = bool(instance and instance.ready_since)
            transition = transitions.recovered(member.lifecycle_state, prepared)
        elif include_in_service and member.lifecycle_state == "InService":
            transition = transitions.LAUNCH
        else:
            continue
        if transition is None:
            continue
        hook = settings.launch_hook if transition.machine == "launch" else settings.terminate_hook
        started = instance.started if instance else None
        if transition.per_start and started is None:
            continue  # EC2 no longer knows it: nothing to wake or park
        action = LifecycleAction(instance_id=member.instance_id, group=settings.group, hook=hook)
        outcome[start(settings, transition, action, started)].append(member.instance_id)
    return outcome
