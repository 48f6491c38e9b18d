"""The BBB fleet's warm pool in the fleets template, and the lifecycle rule receiving every warm-pool event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from tests.infra.fleets_support import fleets, one, resources

ROUTES = [
    ("launch", "EC2", "AutoScalingGroup"),
    ("launch", "EC2", "WarmPool"),
    ("launch", "WarmPool", "AutoScalingGroup"),
    ("terminate", "AutoScalingGroup", "WarmPool"),
    ("terminate", "AutoScalingGroup", "EC2"),
    ("terminate", "WarmPool", "EC2"),
]


def group_of(template: dict[str, Any], under: str) -> str:
    logical_id, _ = one(template, "AWS::AutoScaling::AutoScalingGroup", under)
    return logical_id


def test_default_pool_prepares_up_to_the_maximum_stopped_and_reuses_on_scale_in() -> None:
    template = fleets("scalable")
    [pool] = resources(template, "AWS::AutoScaling::WarmPool").values()
    assert pool["Properties"] == {
        "AutoScalingGroupName": {"Ref": group_of(template, "Bbb")},
        "MinSize": 0,
        "PoolState": "Stopped",
        "InstanceReusePolicy": {"ReuseOnScaleIn": True},
    }


def test_pool_follows_the_configuration() -> None:
    template = fleets(
        "scalable",
        **{
            "bbb.maxInstances": 8,
            "bbb.warmPool": {"minSize": 2, "maxPreparedCapacity": 6, "poolState": "Running", "reuseOnScaleIn": False},
        },
    )
    [pool] = resources(template, "AWS::AutoScaling::WarmPool").values()
    assert pool["Properties"]["MinSize"] == 2 and pool["Properties"]["MaxGroupPreparedCapacity"] == 6
    assert pool["Properties"]["PoolState"] == "Running"
    assert pool["Properties"]["InstanceReusePolicy"] == {"ReuseOnScaleIn": False}


@pytest.mark.parametrize(("shape", "changes"), [("scalable", {"bbb.warmPool.enabled": False}), ("single", {})])
def test_no_pool_when_disabled_or_for_the_single_host(shape: str, changes: dict[str, Any]) -> None:
    assert resources(fleets(shape, **changes), "AWS::AutoScaling::WarmPool") == {}


def test_turn_pool_only_when_configured() -> None:
    template = fleets("scalable", **{"bbb.warmPool.enabled": False, "turn.warmPool": {"minSize": 1}})
    [pool] = resources(template, "AWS::AutoScaling::WarmPool").values()
    assert pool["Properties"]["AutoScalingGroupName"] == {"Ref": group_of(template, "Turn")}
    assert pool["Properties"]["MinSize"] == 1 and pool["Properties"]["PoolState"] == "Stopped"


@pytest.mark.parametrize(("kind", "origin", "destination"), ROUTES)
def test_lifecycle_rule_receives_every_warm_pool_transition(kind: str, origin: str, destination: str) -> None:
    """AWS's documented payloads (Origin/Destination: EC2 | AutoScalingGroup | WarmPool) match the BBB rule,
    the same events of another group or hook do not."""
    template = fleets("scalable")
    [rule] = [
        r for lid, r in resources(template, "AWS::Events::Rule").items() if lid.startswith("BbbLifecycleLifecycle")
    ]
    pattern = rule["Properties"]["EventPattern"]
    group = "bbb-fleet-group"
    pattern["detail"]["AutoScalingGroupName"] = [group]  # a Ref in the template: the group's name at deploy time
    matcher = EventPattern.load(json.dumps(pattern))
    launch = kind == "launch"
    event = {
        "version": "0",
        "id": "12345678-1234-1234-1234-123456789012",
        "detail-type": f"EC2 Instance-{kind} Lifecycle Action",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2021-01-13T00:12:37.214Z",
        "region": "eu-west-1",
        "resources": ["auto-scaling-group-arn"],
        "detail": {
            "LifecycleActionToken": "71514b9d-6a40-4b26-8523-05e7eEXAMPLE",
            "AutoScalingGroupName": group,
            "LifecycleHookName": "bbb-on-aws-launch" if launch else "bbb-on-aws-terminate",
            "EC2InstanceId": "i-1234567890abcdef0",
            "LifecycleTransition": f"autoscaling:EC2_INSTANCE_{'LAUNCHING' if launch else 'TERMINATING'}",
            "Origin": origin,
            "Destination": destination,
        },
    }
    assert matcher.matches_event(event)
    assert not matcher.matches_event({**event, "detail": {**event["detail"], "AutoScalingGroupName": "other"}})
    assert not matcher.matches_event({**event, "detail": {**event["detail"], "LifecycleHookName": "someone-else"}})
