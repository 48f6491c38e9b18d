"""Custom resource (CDK Provider framework, with is_complete polling): create Greenlight's first administrator.

Create/Update run one ECS task from the Greenlight admin task definition with the given command; the
command itself is idempotent (it checks for the account first and succeeds when it exists), so running it
again on Update or after a framework retry is safe. is_complete polls the task: running -> not complete,
exit code 0 -> complete, anything else -> the deployment fails with the exit code, ECS's reason and the
last lines of the task's log. Delete does nothing: the account, like every other Greenlight user, stays.

The administrator's password never passes through here: the task definition injects it as an ECS secret.

ResourceProperties:
  Cluster, TaskDefinition, ContainerName: where and what to run
  Command: list of strings, the container command override (contains no secret)
  AdminEmail: the account's e-mail (part of the physical id)
  Subnets, SecurityGroups: awsvpc network configuration (Fargate); empty lists for bridge mode (EC2)
  LaunchType "FARGATE", or CapacityProvider: the EC2 capacity provider's name
  LogGroup, LogStreamPrefix: the awslogs destination of the container (for failure reasons)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from common import observability
from common.custom_resource import CustomResource, Request, Result, parse

logger, metrics = observability.tools()
_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 5})
STARTED_BY = "cfn-greenlight-admin"
LOG_LINES_IN_REASON = 15
REQUIRED = ("Cluster", "TaskDefinition", "ContainerName", "Command", "AdminEmail", "LogGroup", "LogStreamPrefix")


class PropertyError(ValueError):
    """A resource property is missing or malformed (a bug in the stack, reported to CloudFormation)."""


@functools.cache
def _client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests start a fresh fake AWS per test)."""
    _client.cache_clear()


def physical_id(properties: Mapping[str, Any]) -> str:
    return f"greenlight-admin/{properties['AdminEmail']}"


def _properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    props = dict(properties)
    missing = [k for k in REQUIRED if not props.get(k)]
    if missing:
        raise PropertyError(f"missing resource properties {missing}; the stack must set all of {list(REQUIRED)}")
    command = props["Command"]
    if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
        raise PropertyError(f"Command must be a list of strings, got {type(command).__name__}")
    if props.get("LaunchType") != "FARGATE" and not props.get("CapacityProvider"):
        raise PropertyError("set LaunchType=FARGATE or CapacityProvider=<EC2 capacity provider name>")
    return props


def _run_task_request(props: Mapping[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "cluster": props["Cluster"],
        "taskDefinition": props["TaskDefinition"],
        "count": 1,
        "startedBy": STARTED_BY,
        "enableExecuteCommand": False,
        "overrides": {"containerOverrides": [{"name": props["ContainerName"], "command": list(props["Command"])}]},
    }
    if props.get("LaunchType") == "FARGATE":
        request["launchType"] = "FARGATE"
        request["networkConfiguration"] = {"awsvpcConfiguration": {
            "subnets": list(props.get("Subnets") or []),
            "securityGroups": list(props.get("SecurityGroups") or []),
            "assignPublicIp": "DISABLED",
        }}
        if not request["networkConfiguration"]["awsvpcConfiguration"]["subnets"]:
            raise PropertyError("Subnets is empty: a Fargate task needs the application subnets")
    else:
        request["capacityProviderStrategy"] = [{"capacityProvider": props["CapacityProvider"], "weight": 1}]
    return request


def start(request: Request) -> Result:
    props = _properties(request.properties)
    response = _client("ecs").run_task(**_run_task_request(props))
    failures = response.get("failures") or []
    tasks = response.get("tasks") or []
    if failures or not tasks:
        reasons = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')} {f.get('detail', '')}".strip()
                            for f in failures) or "no task was started"
        raise RuntimeError(f"ECS could not start the Greenlight admin task in {props['Cluster']}: {reasons}")
    task_arn = tasks[0]["taskArn"]
    logger.info("started the Greenlight admin task", extra={"task": task_arn, "email": props["AdminEmail"]})
    return {"PhysicalResourceId": physical_id(props), "Data": {"TaskArn": task_arn}}


def keep(request: Request) -> Result:
    """Delete keeps the account: deleting a stack (or replacing this resource) must not delete users."""
    return {"PhysicalResourceId": request.physical_id or "greenlight-admin"}


resource = CustomResource(create=start, update=start, delete=keep, logger=logger)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def on_event(event: Mapping[str, Any], context: LambdaContext) -> Result:
    return resource(event, context)


def _log_tail(props: Mapping[str, Any], task_arn: str) -> list[str]:
    stream = f"{props['LogStreamPrefix']}/{props['ContainerName']}/{task_arn.rsplit('/', 1)[-1]}"
    try:
        events = _client("logs").get_log_events(
            logGroupName=props["LogGroup"], logStreamName=stream, limit=LOG_LINES_IN_REASON, startFromHead=False
        )["events"]
    except Exception as exc:  # the reason must still reach CloudFormation without the log lines
        logger.warning("could not read the task's log", extra={"stream": stream, "error": str(exc)})
        return [f"(log {props['LogGroup']}/{stream} unreadable: {exc})"]
    return [e["message"].rstrip() for e in events]


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def is_complete(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event)
    if request.request_type == "Delete":
        return {"IsComplete": True}
    props = _properties(request.properties)
    task_arn = request.data.get("TaskArn")
    if not task_arn:
        raise PropertyError("is_complete got no Data.TaskArn from on_event")
    described = _client("ecs").describe_tasks(cluster=props["Cluster"], tasks=[task_arn])
    tasks = described.get("tasks") or []
    if not tasks:
        reasons = "; ".join(f.get("reason", "") for f in described.get("failures") or []) or "not found"
        raise RuntimeError(f"the Greenlight admin task {task_arn} disappeared: {reasons}")
    task = tasks[0]
    if task.get("lastStatus") != "STOPPED":
        logger.info("Greenlight admin task still running", extra={"task": task_arn, "status": task.get("lastStatus")})
        return {"IsComplete": False}
    container = next((c for c in task.get("containers") or [] if c.get("name") == props["ContainerName"]), {})
    exit_code = container.get("exitCode")
    if exit_code == 0:
        logger.info("Greenlight administrator is in place", extra={"task": task_arn})
        return {"IsComplete": True}
    reason = (
        f"the Greenlight admin task {task_arn} failed: exit code {exit_code}, "
        f"stopped because {task.get('stoppedReason') or 'unknown'}"
        + (f", container: {container['reason']}" if container.get("reason") else "")
    )
    tail = _log_tail(props, task_arn)
    if tail:
        reason += "; last log lines: " + " | ".join(tail)
    raise RuntimeError(reason)
