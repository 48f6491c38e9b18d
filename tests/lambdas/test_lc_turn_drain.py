"""TURN drain, end to end: out of the TURN name first, TTL honoured, relay drained, allocations to zero."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from lc_fixtures import emitted_metrics
from lc_relay import SIGNAL, Relay
from lc_stun_responder import StunResponder
from lc_world import World

LAUNCH = "bbb-on-aws-launch"
TERMINATE = "bbb-on-aws-terminate"
TOKEN = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
POOL = "turn.meet.example.test"


@pytest.fixture
def responder() -> Iterator[StunResponder]:
    server = StunResponder().start()
    yield server
    server.stop()


@pytest.fixture
def turn(world_factory: Any, responder: StunResponder) -> World:
    return world_factory("turn", TURN_PORT=str(responder.port), PROBE_TIMEOUT_SECONDS="0.1")


def launched(world: World) -> str:
    [iid] = world.launch_instances(1)
    world.set_public_ip(iid, "127.0.0.1")
    world.tag_ready(iid)
    world.expect_complete(iid, LAUNCH, "CONTINUE", TOKEN)
    world.deliver(world.lifecycle_event(iid, "launch", TOKEN))
    [execution] = world.run_executions().values()
    assert execution.status == "SUCCEEDED"
    world.set_lifecycle_state(iid, "InService")
    assert (POOL, iid) in world.record_names()
    return iid


def drain(world: World, iid: str) -> Any:
    world.set_lifecycle_state(iid, "Terminating:Wait")
    event = world.lifecycle_event(iid, "terminate", TOKEN)
    world.deliver(event)
    world.deliver(event)
    [execution] = world.run_executions().values()
    return execution


def probe_state(world: World) -> tuple[list[Any], list[Any]]:
    checks = boto3.client("route53").list_health_checks()["HealthChecks"]
    found = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix="bbb-on-aws-lctest-turn-probe-")
    return checks, found["MetricAlarms"]


@pytest.mark.slow
def test_turn_drain_sequence(turn: World) -> None:
    iid = launched(turn)
    relay = Relay(turn, iid, allocations=6)
    turn.every_tick(relay.tick)
    turn.expect_heartbeats(iid, TERMINATE, 1, TOKEN)  # 10 min; allocations reach 0 after ~14 min
    turn.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    execution = drain(turn, iid)

    assert execution.status == "SUCCEEDED", execution
    assert turn.execution_count() == 2
    withdrawn = turn.when("route53", action="DELETE", set=iid)
    signalled = turn.when("ssm-command", instance=iid)
    assert signalled - withdrawn >= timedelta(seconds=120)  # twice the record TTL
    assert turn.systemctl_calls(iid) == [SIGNAL]
    assert relay.allocations == 0
    start = turn.first("execution-start", kind="drain")
    order = [
        turn.first("route53", action="DELETE", set=iid),
        turn.first("ssm-command", instance=iid),
        turn.first("RecordLifecycleActionHeartbeat"),
        turn.first("route53", action="DELETE", name=f"turn-{iid[2:]}.meet.example.test"),
        turn.first("CompleteLifecycleAction", result="CONTINUE", after=start),
    ]
    assert order == sorted(order)
    assert turn.records() == []
    assert probe_state(turn) == ([], [])


@pytest.mark.slow
def test_relay_that_stops_publishing_counts_as_drained(turn: World) -> None:
    iid = launched(turn)
    relay = Relay(turn, iid, allocations=3)
    turn.every_tick(relay.tick)
    turn.at(5 * 60, lambda: setattr(relay, "publishing", False))  # the relay exited (its own drain timeout)
    turn.expect_heartbeats(iid, TERMINATE, 1, TOKEN)  # silent from 5 min, drained 5 min later
    turn.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    execution = drain(turn, iid)
    assert execution.status == "SUCCEEDED", execution
    last_check = [d for _t, k, d in turn.events if k == "task" and d["step"] == "check"][-1]
    assert last_check["reason"] == "no Allocations sample for 300 s: relay gone"
    assert turn.records() == [] and probe_state(turn) == ([], [])


@pytest.mark.slow
def test_a_relay_without_a_sample_since_the_signal_is_waited_for(turn: World) -> None:
    """No Allocations sample since the drain signal yet is not "no allocation left": the drain waits (up to
    300 s of silence), and the late sample's allocations keep it waiting until they are gone."""
    iid = launched(turn)
    relay = Relay(turn, iid, allocations=2)
    relay.publishing = False
    turn.every_tick(relay.tick)
    turn.at(4 * 60, lambda: setattr(relay, "publishing", True))  # about 2 min after the signal: 1 allocation left
    turn.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    execution = drain(turn, iid)
    assert execution.status == "SUCCEEDED", execution
    reasons = [d["reason"] for _t, k, d in turn.events if k == "task" and d["step"] == "check"]
    assert "no Allocations sample since the drain signal yet" in reasons and "1 allocation(s) left" in reasons
    assert reasons[-1] == "no allocation left" and relay.allocations == 0


@pytest.mark.slow
def test_turn_drain_maximum(turn: World, capsys: pytest.CaptureFixture[str]) -> None:
    iid = launched(turn)
    relay = Relay(turn, iid, allocations=50, seconds_each=10**6)  # clients that never leave
    turn.every_tick(relay.tick)
    turn.expect_heartbeats(iid, TERMINATE, 2, TOKEN)  # the test stack sets drain_max to 30 min
    turn.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    capsys.readouterr()
    execution = drain(turn, iid)
    assert execution.status == "SUCCEEDED"
    start = turn.first("execution-start", kind="drain")
    completed = turn.events[turn.first("CompleteLifecycleAction", result="CONTINUE", after=start)][0]
    assert completed - turn.events[start][0] >= timedelta(minutes=30)
    assert emitted_metrics(capsys.readouterr().out).get("DrainMaxReached") == 1
    assert turn.records() == []


def test_stopped_turn_instance_is_cleaned_at_once(turn: World) -> None:
    iid = launched(turn)
    boto3.client("ec2").stop_instances(InstanceIds=[iid], Force=True)
    turn.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    execution = drain(turn, iid)
    assert execution.status == "SUCCEEDED"
    assert "CheckDrained" not in execution.visited()  # no signal possible: straight to the cleanup
    assert turn.systemctl_calls(iid) == []
    assert turn.records() == [] and probe_state(turn) == ([], [])


def test_replayed_turn_steps_change_nothing(turn: World) -> None:
    iid = launched(turn)
    lifecycle = {"instance_id": iid, "group": turn.group, "hook": LAUNCH, "token": TOKEN}
    payload = {"lifecycle": lifecycle, "now": turn.clock.iso(), "started": turn.clock.iso(), "state": {}}
    turn.invoke_handler("lifecycle_launch.", {**payload, "step": "prepare"})  # replayed launch steps
    turn.invoke_handler("lifecycle_launch.", {**payload, "step": "register"})
    checks, alarms = probe_state(turn)
    assert len(checks) == 1 and len(alarms) == 1
    assert sum(1 for name, set_id in turn.record_names() if set_id == iid) == 1
    boto3.client("ec2").stop_instances(InstanceIds=[iid], Force=True)
    turn.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    drain(turn, iid)
    turn.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN, active=False)
    drained = {**payload, "lifecycle": {**lifecycle, "hook": TERMINATE}}
    for step in ("withdraw", "finish"):  # a late duplicate of the drain
        state = turn.invoke_handler("turn_drain.", {**drained, "step": step})
    assert state["removed"] == [] and state["completed"] is False
    assert turn.records() == [] and probe_state(turn) == ([], [])


def test_an_instance_ec2_no_longer_knows_is_unreachable(turn: World) -> None:
    """EC2 forgets a terminated instance after a while: the check reports it gone instead of failing the execution."""
    iid = launched(turn)
    unknown = "i-0fedcba9876543210"
    lifecycle = {"instance_id": unknown, "group": turn.group, "hook": TERMINATE, "token": TOKEN}
    payload = {"lifecycle": lifecycle, "now": turn.clock.iso(), "started": turn.clock.iso(), "state": {}}
    state = turn.invoke_handler("turn_drain.", {**payload, "step": "check"})
    assert (state["status"], state["reason"]) == ("unreachable", "instance is gone")
    assert (POOL, iid) in turn.record_names()  # the check of another instance touched nothing
