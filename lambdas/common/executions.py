"""Starting the launch / drain state machine for an instance, once.

The execution name is derived from the instance id (names.execution_name): Step Functions refuses a second
execution with that name, so duplicated EventBridge deliveries, the reconciler's recovery and the deploy
time bootstrap can all ask for the same execution and only one ever runs.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from common import aws, config, instances, names
from common.lifecycle import LifecycleAction


def start(settings: config.Settings, kind: str, action: LifecycleAction) -> str:
    """Returns "started", or "duplicate" if that execution already exists."""
    arn = settings.need("launch_state_machine_arn" if kind == "launch" else "drain_state_machine_arn")
    name = names.execution_name(kind, action.instance_id)
    payload: dict[str, Any] = {"lifecycle": action.to_state(), "state": {}}
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
    not yet routed events); with include_in_service, also launch InService instances (first deploy:
    they booted before the hooks existed). Returns {"started": [...], "duplicate": [...]}."""
    outcome: dict[str, list[str]] = {"started": [], "duplicate": []}
    for member in instances.group_members(settings.group):
        if member.lifecycle_state == "Terminating:Wait":
            kind, hook = "drain", settings.terminate_hook
        elif member.lifecycle_state == "Pending:Wait" or (include_in_service and member.lifecycle_state == "InService"):
            kind, hook = "launch", settings.launch_hook
        else:
            continue
        action = LifecycleAction(instance_id=member.instance_id, group=settings.group, hook=hook)
        outcome[start(settings, kind, action)].append(member.instance_id)
    return outcome
