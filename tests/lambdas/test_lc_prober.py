"""The TURN prober against a real UDP/TCP STUN responder: metrics per instance and per group."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from lc_stun_responder import StunResponder
from lc_world import World


@pytest.fixture
def responder() -> Iterator[StunResponder]:
    server = StunResponder().start()
    yield server
    server.stop()


def published(metric: str, name: str, value: str) -> list[float]:
    now = datetime.now(timezone.utc)
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="BBBOnAWS/lctest",
        MetricName=metric,
        Dimensions=[{"Name": name, "Value": value}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Minimum"],
    )
    return [point["Minimum"] for point in stats["Datapoints"]]


def probe(world: World) -> dict[str, Any]:
    return world.invoke_handler("turn_prober.", {"source": "aws.events", "detail-type": "Scheduled Event"})


def test_prober_publishes_health_per_instance_and_group(world_factory: Any, responder: StunResponder) -> None:
    world = world_factory("turn", TURN_PORT=str(responder.port), PROBE_TIMEOUT_SECONDS="0.1")
    healthy, dead, no_address, booting = world.launch_instances(4, state="InService")
    world.set_public_ip(healthy, "127.0.0.1")
    world.set_public_ip(dead, "127.0.0.2")  # nothing listens there
    world.set_public_ip(no_address, None)
    world.set_lifecycle_state(booting, "Pending:Wait")

    result = probe(world)

    assert result["probed"] == 3  # InService only
    assert result["unhealthy"] == sorted([dead, no_address])
    assert result["results"][healthy]["healthy"] is True
    assert "udp_error" in result["results"][dead] and "tcp_error" in result["results"][dead]
    assert published("TurnProbeHealthy", "InstanceId", healthy) == [1.0]
    assert published("TurnProbeHealthy", "InstanceId", dead) == [0.0]
    assert published("TurnProbeHealthy", "InstanceId", no_address) == [0.0]
    assert published("TurnProbeHealthy", "InstanceId", booting) == []
    assert published("UnhealthyTurnInstances", "AutoScalingGroupName", world.group) == [2.0]
    assert responder.udp_requests == 1 and responder.tcp_requests == 1


def test_a_relay_answering_only_one_transport_is_unhealthy(world_factory: Any, responder: StunResponder) -> None:
    world = world_factory("turn", TURN_PORT=str(responder.port), PROBE_TIMEOUT_SECONDS="0.1")
    [iid] = world.launch_instances(1, state="InService")
    world.set_public_ip(iid, "127.0.0.1")
    responder.tcp_enabled = False
    assert probe(world)["unhealthy"] == [iid]
    responder.tcp_enabled, responder.udp_enabled = True, False
    assert probe(world)["unhealthy"] == [iid]
    responder.udp_enabled = True
    assert probe(world)["unhealthy"] == []
