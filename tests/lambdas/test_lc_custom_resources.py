"""The reusable custom-resource pattern (lambdas/common/custom_resource.py) and the dispatcher's
refusals (events that must start nothing)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from common.custom_resource import CustomResource, Request

EVENT = {
    "RequestType": "Create",
    "LogicalResourceId": "Thing",
    "StackId": "stack",
    "ServiceToken": "t",
    "ResourceProperties": {"ServiceToken": "t", "Name": "a"},
}


def resource(calls: list[tuple[str, dict[str, Any]]]) -> CustomResource:
    def create(request: Request) -> dict[str, Any]:
        calls.append(("create", request.properties))
        return {"PhysicalResourceId": f"thing-{request.properties['Name']}", "Data": {"Size": 3}}

    def delete(request: Request) -> dict[str, Any]:
        calls.append(("delete", {"id": request.physical_id}))
        return {}

    return CustomResource(create=create, delete=delete)


def test_create_update_delete_are_routed_and_answered_for_the_provider_framework() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    on_event = resource(calls)
    assert on_event(EVENT) == {"PhysicalResourceId": "thing-a", "Data": {"Size": 3}}
    assert on_event(
        {**EVENT, "RequestType": "Update", "PhysicalResourceId": "thing-a", "ResourceProperties": {"Name": "b"}}
    ) == {"PhysicalResourceId": "thing-b", "Data": {"Size": 3}}
    assert on_event({**EVENT, "RequestType": "Delete", "PhysicalResourceId": "thing-b"}) == {
        "PhysicalResourceId": "thing-b"
    }
    assert calls == [("create", {"Name": "a"}), ("create", {"Name": "b"}), ("delete", {"id": "thing-b"})]


def test_bad_events_are_refused_clearly() -> None:
    on_event = resource([])
    with pytest.raises(ValueError, match="not a custom resource event"):
        on_event({"RequestType": "Poke"})
    no_id = CustomResource(create=lambda request: {})
    with pytest.raises(ValueError, match="returned no PhysicalResourceId"):
        no_id(EVENT)


def test_dispatcher_routes_only_this_groups_lifecycle_events(world_factory: Any) -> None:
    world = world_factory("bbb")
    [iid] = world.launch_instances(1)
    event = world.lifecycle_event(iid, "launch")
    other_group = {**event, "detail": {**event["detail"], "AutoScalingGroupName": "someone-else"}}
    warm_pool = {**event, "detail": {**event["detail"], "Destination": "WarmPool"}}
    test_notification = {**event, "detail": {**event["detail"], "LifecycleTransition": "autoscaling:TEST_NOTIFICATION"}}
    for ignored in (other_group, warm_pool, test_notification):
        assert world.deliver(ignored)["outcome"] == "ignored"
    with pytest.raises(ValueError, match="not an Auto Scaling lifecycle event"):
        world.invoke_handler("lifecycle_dispatch.", {"source": "aws.ec2", "detail": {}})
    assert world.execution_count() == 0


def test_every_log_line_of_a_request_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    logger = Logger(service="custom-resource-test")

    def create(request: Request) -> dict[str, Any]:
        logger.info("made")
        return {"PhysicalResourceId": "thing-a"}

    CustomResource(create=create, logger=logger)({**EVENT, "PhysicalResourceId": "old"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines] == ["custom resource request", "made"]
    for line in lines:
        assert (line["request_type"], line["logical_id"], line["physical_id"]) == ("Create", "Thing", "old")
