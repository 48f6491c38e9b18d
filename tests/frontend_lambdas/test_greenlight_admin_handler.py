"""The Greenlight admin custom resource handler (lambdas/greenlight_admin/index.py).

ECS calls go through botocore's Stubber with the exact parameters expected: moto 5.2.5 cannot run this
task (its awsvpc run_task crashes on NetworkInterface.private_dns_name, it does not place tasks through a
capacity provider strategy, and it never reports a container exit code). CloudWatch Logs, which the handler
reads for the failure reason, is moto.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.platform_lambdas.conftest import LambdaContext, load_handler

REGION = "eu-west-1"
CLUSTER = f"arn:aws:ecs:{REGION}:123456789012:cluster/bbb-frontend-EcsCluster"
TASK_DEFINITION = f"arn:aws:ecs:{REGION}:123456789012:task-definition/GreenlightAdminTask:3"
TASK = f"arn:aws:ecs:{REGION}:123456789012:task/bbb-frontend-EcsCluster/0123456789abcdef0123456789abcdef"
COMMAND = ["set -eu\nrc=0\nbundle exec rake \"admin:create[$ADMIN_NAME,$ADMIN_EMAIL,$ADMIN_PASSWORD]\""]
LOG_GROUP = "bbb-frontend-GreenlightLogs"


handler = load_handler("greenlight_admin")
CONTEXT = LambdaContext()


def properties(capacity: str = "fargate", **changes: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:provider",
        "Cluster": CLUSTER, "TaskDefinition": TASK_DEFINITION, "ContainerName": "greenlight",
        "Command": COMMAND, "AdminEmail": "ops@example.com", "LogGroup": LOG_GROUP,
        "LogStreamPrefix": "greenlight", "Subnets": [], "SecurityGroups": [],
    }
    if capacity == "fargate":
        props |= {"LaunchType": "FARGATE", "Subnets": ["subnet-a", "subnet-b"], "SecurityGroups": ["sg-admin"]}
    else:
        props["CapacityProvider"] = "bbb-frontend-EcsCapacityProvider"
    return props | changes


def event(request_type: str, props: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"RequestType": request_type, "ResourceProperties": props or properties(),
            "LogicalResourceId": "GreenlightAdmin", "StackId": "stack", **extra}


def expected_run_task(capacity: str = "fargate") -> dict[str, Any]:
    request: dict[str, Any] = {
        "cluster": CLUSTER, "taskDefinition": TASK_DEFINITION, "count": 1, "startedBy": handler.STARTED_BY,
        "enableExecuteCommand": False,
        "overrides": {"containerOverrides": [{"name": "greenlight", "command": COMMAND}]},
    }
    if capacity == "fargate":
        request |= {"launchType": "FARGATE", "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": ["subnet-a", "subnet-b"], "securityGroups": ["sg-admin"], "assignPublicIp": "DISABLED"}}}
    else:
        request["capacityProviderStrategy"] = [{"capacityProvider": "bbb-frontend-EcsCapacityProvider", "weight": 1}]
    return request


def task(status: str, exit_code: int | None = None, **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "greenlight", "lastStatus": status}
    if exit_code is not None:
        container["exitCode"] = exit_code
    return {"taskArn": TASK, "lastStatus": status, "containers": [container], **extra}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """moto for everything, with ECS replaced by a Stubber-wrapped client (see the module docstring)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        handler.reset_clients()
        ecs = boto3.client("ecs", region_name=REGION)
        real = handler._client
        monkeypatch.setattr(handler, "_client", lambda service: ecs if service == "ecs" else real(service))
        with Stubber(ecs) as stubber:
            yield stubber
            stubber.assert_no_pending_responses()
        real.cache_clear()


@pytest.mark.parametrize("capacity", ["fargate", "ec2"])
def test_create_runs_the_admin_task_with_the_command_override(aws, capacity):
    aws.add_response("run_task", {"tasks": [task("PROVISIONING")], "failures": []}, expected_run_task(capacity))
    result = handler.on_event(event("Create", properties(capacity)), CONTEXT)
    assert result == {"PhysicalResourceId": "greenlight-admin/ops@example.com", "Data": {"TaskArn": TASK}}


def test_the_request_overrides_only_the_command(aws):
    # The password reaches the container from the task definition's secrets: the request may not carry an
    # environment override (it would land in CloudTrail and the task's description).
    for capacity in ("fargate", "ec2"):
        request = handler._run_task_request(properties(capacity))
        (override,) = request["overrides"]["containerOverrides"]
        assert set(override) == {"name", "command"} and set(request["overrides"]) == {"containerOverrides"}


def test_update_runs_the_idempotent_task_again_under_the_same_id(aws):
    aws.add_response("run_task", {"tasks": [task("PENDING")], "failures": []}, expected_run_task())
    old = properties()
    result = handler.on_event(event("Update", properties(), OldResourceProperties=old,
                                    PhysicalResourceId="greenlight-admin/ops@example.com"), CONTEXT)
    assert result["PhysicalResourceId"] == "greenlight-admin/ops@example.com"


def test_a_new_email_is_a_new_physical_id(aws):
    props = properties(AdminEmail="boss@example.com")
    request = expected_run_task()
    aws.add_response("run_task", {"tasks": [task("PENDING")], "failures": []}, request)
    result = handler.on_event(event("Update", props, PhysicalResourceId="greenlight-admin/ops@example.com"), CONTEXT)
    assert result["PhysicalResourceId"] == "greenlight-admin/boss@example.com"


def test_placement_failure_fails_the_deployment_with_ecs_reason(aws):
    failure = {"arn": "arn:container-instance", "reason": "RESOURCE:MEMORY"}
    aws.add_response("run_task", {"tasks": [], "failures": [failure]}, expected_run_task("ec2"))
    with pytest.raises(RuntimeError, match="RESOURCE:MEMORY"):
        handler.on_event(event("Create", properties("ec2")), CONTEXT)


def test_is_complete_reports_a_running_task_as_not_complete(aws):
    aws.add_response("describe_tasks", {"tasks": [task("RUNNING")], "failures": []},
                     {"cluster": CLUSTER, "tasks": [TASK]})
    assert handler.is_complete(event("Create", Data={"TaskArn": TASK}), CONTEXT) == {"IsComplete": False}


def test_is_complete_on_exit_code_zero(aws):
    aws.add_response("describe_tasks", {"tasks": [task("STOPPED", 0, stoppedReason="Essential container exited")],
                                        "failures": []}, {"cluster": CLUSTER, "tasks": [TASK]})
    assert handler.is_complete(event("Update", Data={"TaskArn": TASK}), CONTEXT) == {"IsComplete": True}


def test_non_zero_exit_fails_with_code_reason_and_log_tail(aws):
    logs = boto3.client("logs", region_name=REGION)
    stream = f"greenlight/greenlight/{TASK.rsplit('/', 1)[-1]}"
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000) - 60_000  # CloudWatch (and moto) refuse events older than 14 days
    lines = [f"line {i}" for i in range(30)] + ["greenlight-admin: admin:create did not create ops@example.com"]
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)])
    aws.add_response("describe_tasks", {"tasks": [task("STOPPED", 1, stoppedReason="Essential container exited")],
                                        "failures": []}, {"cluster": CLUSTER, "tasks": [TASK]})
    with pytest.raises(RuntimeError) as failure:
        handler.is_complete(event("Create", Data={"TaskArn": TASK}), CONTEXT)
    message = str(failure.value)
    assert "exit code 1" in message and "Essential container exited" in message
    assert "did not create ops@example.com" in message
    assert "line 29" in message and "line 5 " not in message  # only the tail


def test_a_task_that_never_started_reports_ecs_reason_even_without_logs(aws):
    stopped = task("STOPPED", None, stoppedReason="CannotPullContainerError: pull access denied")
    stopped["containers"][0]["reason"] = "CannotPullContainerError"
    aws.add_response("describe_tasks", {"tasks": [stopped], "failures": []}, {"cluster": CLUSTER, "tasks": [TASK]})
    with pytest.raises(RuntimeError, match=r"exit code None.*CannotPullContainerError.*unreadable"):
        handler.is_complete(event("Create", Data={"TaskArn": TASK}), CONTEXT)


def test_a_vanished_task_fails(aws):
    aws.add_response("describe_tasks", {"tasks": [], "failures": [{"arn": TASK, "reason": "MISSING"}]},
                     {"cluster": CLUSTER, "tasks": [TASK]})
    with pytest.raises(RuntimeError, match="MISSING"):
        handler.is_complete(event("Create", Data={"TaskArn": TASK}), CONTEXT)


def test_delete_keeps_the_account_and_calls_nothing(aws):
    # The Stubber has no responses queued: any ECS call would raise.
    deleted = event("Delete", PhysicalResourceId="greenlight-admin/ops@example.com")
    assert handler.on_event(deleted, CONTEXT) == {"PhysicalResourceId": "greenlight-admin/ops@example.com"}
    assert handler.is_complete(deleted, CONTEXT) == {"IsComplete": True}


@pytest.mark.parametrize(("change", "message"), [
    ({"Cluster": ""}, "missing resource properties \\['Cluster'\\]"),
    ({"Command": "rake admin:create"}, "Command must be a list of strings"),
    ({"LaunchType": None}, "LaunchType=FARGATE or CapacityProvider"),
    ({"Subnets": []}, "Subnets is empty"),
])
def test_bad_properties_are_named(aws, change, message):
    with pytest.raises(ValueError, match=message):
        handler.on_event(event("Create", properties("fargate", **change)), CONTEXT)


def test_unknown_request_type_is_rejected():
    with pytest.raises(ValueError, match="not Create, Update or Delete"):
        handler.on_event({"RequestType": "Replace"}, CONTEXT)
