"""Warm-pool transitions of the BBB fleet, end to end: the EventBridge payloads AWS documents for warm pools
(Origin/Destination, "Warm pool example events and patterns") -> dispatcher -> synthesized state machines ->
handlers, with moto, the fake Scalelite/BBB and the lifecycle-action Stubber of the lifecycle test world.

One instance goes the whole way: prewarm (EC2 -> WarmPool), stop, wake (WarmPool -> AutoScalingGroup, new
public IPv4), a meeting, park on scale-in (AutoScalingGroup -> WarmPool), a second wake, and retire
(WarmPool -> EC2). Duplicated deliveries and late or out-of-order events start nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import boto3
import pytest
from lc_world import World
from moto.ec2.models import ec2_backends

LAUNCH_HOOK = "bbb-on-aws-launch"
TERMINATE_HOOK = "bbb-on-aws-terminate"
MINUTE = 60


def pool_event(world: World, instance_id: str, origin: str, destination: str, token: str) -> dict[str, Any]:
    """The event AWS sends when an instance of a group with a warm pool enters a hook's wait state."""
    launching = destination == "AutoScalingGroup" or origin == "EC2"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": f"EC2 Instance-{'launch' if launching else 'terminate'} Lifecycle Action",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": world.clock.iso(),
        "region": "eu-west-1",
        "resources": [
            f"arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:uuid:autoScalingGroupName/{world.group}"
        ],
        "detail": {
            "LifecycleActionToken": token,
            "AutoScalingGroupName": world.group,
            "LifecycleHookName": LAUNCH_HOOK if launching else TERMINATE_HOOK,
            "EC2InstanceId": instance_id,
            "LifecycleTransition": f"autoscaling:EC2_INSTANCE_{'LAUNCHING' if launching else 'TERMINATING'}",
            "Origin": origin,
            "Destination": destination,
        },
    }


def stop(world: World, instance_id: str, state: str = "Warmed:Stopped") -> None:
    """What Auto Scaling does once a warm-pool hook is completed with CONTINUE (Stopped pool state)."""
    boto3.client("ec2").stop_instances(InstanceIds=[instance_id])
    world.set_lifecycle_state(instance_id, state)
    world.fake.hosts[world.host(instance_id)].down = True
    world.log("stopped", {"instance": instance_id})


def start(world: World, instance_id: str, ip: str) -> int:
    """Auto Scaling starts a pool instance for a scale-out: new public IPv4, new LaunchTime, Pending:Wait."""
    boto3.client("ec2").start_instances(InstanceIds=[instance_id])
    instance = ec2_backends["123456789012"]["eu-west-1"].get_instance(instance_id)
    instance.launch_time = world.clock.now.replace(tzinfo=None).isoformat()
    world.set_public_ip(instance_id, ip)
    world.set_lifecycle_state(instance_id, "Pending:Wait")
    return int(world.clock.now.timestamp())


def boots(world: World, instance_id: str, after: int) -> None:
    """The host's on-boot units: addresses rewritten, BBB up, then the ready tag (after `after` seconds)."""

    def ready() -> None:
        world.fake.hosts[world.host(instance_id)].down = False
        world.tag_ready(instance_id)

    world.at(after, ready)


def a_record(world: World, instance_id: str) -> list[str]:
    return [
        rr["Value"]
        for r in world.records()
        if r["Name"].rstrip(".") == world.host(instance_id)
        for rr in r["ResourceRecords"]
    ]


@pytest.fixture
def bbb(world_factory: Any) -> World:
    world = world_factory("bbb")
    world.every_tick(lambda _now: world.fake.poll())  # Scalelite's poller
    return world


@pytest.mark.slow
def test_a_server_goes_through_every_warm_pool_transition(bbb: World) -> None:
    # --- prewarm: EC2 -> WarmPool: installed and verified, not registered, no record left behind ---------------
    [iid] = bbb.launch_instances(1, state="Warmed:Pending:Wait")
    host = bbb.host(iid)
    bbb.fake.hosts[host].down = True  # bbb-install running
    boots(bbb, iid, 25 * MINUTE)
    token = str(uuid.uuid4())
    bbb.expect_heartbeats(iid, LAUNCH_HOOK, 2, token)
    bbb.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", token)
    prewarm = pool_event(bbb, iid, "EC2", "WarmPool", token)
    assert bbb.deliver(prewarm)["outcome"] == "started"
    assert bbb.deliver(prewarm)["outcome"] == "duplicate"  # EventBridge delivers at least once
    ran = bbb.run_executions()
    assert list(ran) == [f"prewarm-{iid}"]
    assert ran[f"prewarm-{iid}"].status == "SUCCEEDED", ran
    assert bbb.first("route53", action="UPSERT", name=host) < bbb.first("host-ready")  # the certificate needs it
    assert (
        bbb.first("host-ready")
        < bbb.first("route53", action="DELETE", name=host)
        < bbb.first("CompleteLifecycleAction", result="CONTINUE")
    )
    assert a_record(bbb, iid) == [] and bbb.fake.servers == {}  # prepared: not in Scalelite, no dangling record
    stop(bbb, iid)

    # --- wake: WarmPool -> AutoScalingGroup: the record follows the new address before anything else ----------
    bbb.clock.advance(3 * 3600)
    started = start(bbb, iid, "198.51.100.23")
    # nginx and the API answer after a minute, but the host's own word (a ready tag newer than this start,
    # written once its addresses are rewritten) comes at 3 min; the prewarm's old tag must not count.
    bbb.at(1 * MINUTE, lambda: setattr(bbb.fake.hosts[host], "down", False))
    boots(bbb, iid, 3 * MINUTE)
    token = str(uuid.uuid4())
    bbb.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", token)
    wake = pool_event(bbb, iid, "WarmPool", "AutoScalingGroup", token)
    assert bbb.deliver(wake)["transition"] == "wake"
    late_prewarm = bbb.deliver(prewarm)  # out of order: the prewarm's event again, long after it
    assert late_prewarm["outcome"] == "ignored"
    assert bbb.deliver(wake)["outcome"] == "duplicate"
    before = len(bbb.events)
    ran = bbb.run_executions()
    assert list(ran) == [f"wake-{iid}-{started}"] and ran[f"wake-{iid}-{started}"].status == "SUCCEEDED"
    upsert = bbb.first("route53", after=before, action="UPSERT", name=host)
    ready = bbb.first("host-ready", after=before)
    assert (
        upsert
        < ready
        < bbb.first("scalelite-addServer", after=before)
        < bbb.first("CompleteLifecycleAction", after=before)
    )
    # (the prewarm's ready tag was there all along: registering only after the new one proves it did not count)
    assert bbb.events[ready][0].timestamp() - started >= 3 * MINUTE
    assert a_record(bbb, iid) == ["198.51.100.23"]
    server = bbb.fake.server_for_host(host)
    assert server is not None and server.state == "enabled"
    bbb.set_lifecycle_state(iid, "InService")

    # --- park: AutoScalingGroup -> WarmPool on scale-in: the drain, then stopped -------------------------------
    bbb.fake.start_meeting(host, "maths-7b", 27)
    bbb.fake.poll()
    bbb.clock.advance(10 * MINUTE)
    bbb.set_lifecycle_state(iid, "Warmed:Pending:Wait")
    token = str(uuid.uuid4())
    bbb.at(35 * MINUTE, lambda: (bbb.fake.hosts[host].meetings.pop("maths-7b"), bbb.log("meeting-ended", {})))
    bbb.expect_heartbeats(iid, TERMINATE_HOOK, 3, token)
    bbb.expect_complete(iid, TERMINATE_HOOK, "CONTINUE", token)
    park = pool_event(bbb, iid, "AutoScalingGroup", "WarmPool", token)
    assert bbb.deliver(park)["transition"] == "park"
    assert bbb.deliver(wake)["outcome"] == "ignored"  # the wake's event replayed now: the instance is leaving
    assert bbb.deliver(park)["outcome"] == "duplicate"
    before = len(bbb.events)
    ran = bbb.run_executions()
    assert list(ran) == [f"park-{iid}-{started}"] and ran[f"park-{iid}-{started}"].status == "SUCCEEDED"
    assert bbb.first("scalelite-updateServer", after=before, state="cordon") < bbb.first("meeting-ended")
    assert (
        bbb.first("meeting-ended")
        < bbb.first("scalelite-deleteServer")
        < bbb.first("CompleteLifecycleAction", after=before)
    )
    assert "end" not in bbb.fake.hosts[host].calls  # no meeting was ended
    assert bbb.fake.servers == {} and a_record(bbb, iid) == []
    stop(bbb, iid)

    # --- a second stop/start cycle has its own executions ------------------------------------------------------
    bbb.clock.advance(20 * 3600)
    again = start(bbb, iid, "203.0.113.77")
    assert again != started
    boots(bbb, iid, 2 * MINUTE)
    token = str(uuid.uuid4())
    bbb.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", token)
    assert bbb.deliver(pool_event(bbb, iid, "WarmPool", "AutoScalingGroup", token))["outcome"] == "started"
    ran = bbb.run_executions()
    assert list(ran) == [f"wake-{iid}-{again}"] and ran[f"wake-{iid}-{again}"].status == "SUCCEEDED"
    assert a_record(bbb, iid) == ["203.0.113.77"]
    server = bbb.fake.server_for_host(host)
    assert server is not None and server.state == "enabled"  # registered again, and taking meetings
    assert bbb.fake.scalelite_actions().count("addServer") == 2

    # (scale-in again, straight back to the pool, without meetings)
    bbb.set_lifecycle_state(iid, "Warmed:Pending:Wait")
    token = str(uuid.uuid4())
    bbb.expect_complete(iid, TERMINATE_HOOK, "CONTINUE", token)
    bbb.deliver(pool_event(bbb, iid, "AutoScalingGroup", "WarmPool", token))
    assert [e.status for e in bbb.run_executions().values()] == ["SUCCEEDED"]
    stop(bbb, iid)

    # --- retire: WarmPool -> EC2: a prepared, stopped server is let go at once --------------------------------
    bbb.set_lifecycle_state(iid, "Warmed:Terminating:Wait")
    token = str(uuid.uuid4())
    bbb.expect_complete(iid, TERMINATE_HOOK, "CONTINUE", token)
    retire = pool_event(bbb, iid, "WarmPool", "EC2", token)
    assert bbb.deliver(retire)["transition"] == "retire"
    bbb.deliver(retire)
    before = bbb.clock.now
    ran = bbb.run_executions()
    assert list(ran) == [f"retire-{iid}"]
    execution = ran[f"retire-{iid}"]
    assert execution.status == "SUCCEEDED" and "ForceRemove" not in execution.visited()
    assert bbb.clock.now - before <= timedelta(minutes=2)
    assert bbb.fake.servers == {} and bbb.records() == []
    bbb.stubber.assert_no_pending_responses()


def test_events_the_instance_has_moved_past_start_nothing(bbb: World) -> None:
    [iid] = bbb.launch_instances(1, state="Warmed:Stopped")  # resting in the pool
    for origin, destination in (
        ("EC2", "WarmPool"),
        ("WarmPool", "AutoScalingGroup"),
        ("AutoScalingGroup", "WarmPool"),
        ("WarmPool", "EC2"),
    ):
        result = bbb.deliver(pool_event(bbb, iid, origin, destination, str(uuid.uuid4())))
        assert result["outcome"] == "ignored", (origin, destination, result)
    # A route AWS does not document is refused by name, not guessed.
    odd = pool_event(bbb, iid, "WarmPool", "WarmPool", str(uuid.uuid4()))
    assert "undocumented origin/destination" in bbb.deliver(odd)["reason"]
    assert bbb.execution_count() == 0


def test_a_prewarm_that_ends_in_the_pool_stops_early(bbb: World) -> None:
    """The instance left Warmed:Pending (e.g. the hook timed out): the execution stops without touching it."""
    [iid] = bbb.launch_instances(1, state="Warmed:Pending:Wait")
    bbb.deliver(pool_event(bbb, iid, "EC2", "WarmPool", str(uuid.uuid4())))
    bbb.set_lifecycle_state(iid, "Warmed:Stopped")
    [execution] = bbb.run_executions().values()
    assert execution.visited()[-1] == "Skipped"


def test_reconciler_leaves_the_pool_alone_and_recovers_lost_pool_events(bbb: World) -> None:
    resting, new, returning = bbb.launch_instances(3, state="Warmed:Stopped")
    boto3.client("ec2").stop_instances(InstanceIds=[resting])
    bbb.set_lifecycle_state(new, "Warmed:Pending:Wait")  # lost prewarm event: never tagged ready
    bbb.set_lifecycle_state(returning, "Warmed:Pending:Wait")  # lost park event: it served before
    bbb.tag_ready(returning)
    report = bbb.invoke_handler("fleet_reconciler.", {})
    assert report["removed"] == {} and resting in report["live_instances"]  # stopped in the pool: not stale
    launch_time = int(
        boto3.client("ec2")
        .describe_instances(InstanceIds=[returning])["Reservations"][0]["Instances"][0]["LaunchTime"]
        .timestamp()
    )
    sfn = boto3.client("stepfunctions")
    names = {
        e["name"]
        for machine in bbb.state_machines.values()
        for e in sfn.list_executions(stateMachineArn=machine["arn"])["executions"]
    }
    assert names == {f"prewarm-{new}", f"park-{returning}-{launch_time}"}
    inputs = {
        e["name"]: json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
        for machine in bbb.state_machines.values()
        for e in sfn.list_executions(stateMachineArn=machine["arn"])["executions"]
    }
    assert inputs[f"prewarm-{new}"]["state"] == {"transition": "prewarm"}
    assert inputs[f"park-{returning}-{launch_time}"]["lifecycle"]["hook"] == TERMINATE_HOOK
    # Run again: the same executions, nothing new.
    again = bbb.invoke_handler("fleet_reconciler.", {})
    assert sorted(again["recovered"]["duplicate"]) == sorted([new, returning])


@pytest.mark.slow
def test_turn_relay_prewarm_wake_and_retire(world_factory: Any) -> None:
    from lc_stun_responder import StunResponder

    responder = StunResponder().start()
    try:
        world = world_factory("turn", TURN_PORT=str(responder.port), PROBE_TIMEOUT_SECONDS="0.1")
        [iid] = world.launch_instances(1, state="Warmed:Pending:Wait")
        world.set_public_ip(iid, "127.0.0.1")  # the STUN responder listens on loopback only
        world.at(2 * MINUTE, lambda: world.tag_ready(iid))
        token = str(uuid.uuid4())
        world.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", token)
        world.deliver(pool_event(world, iid, "EC2", "WarmPool", token))
        assert [e.status for e in world.run_executions().values()] == ["SUCCEEDED"]
        # Prepared: probed from outside, then nothing left that names it (no records, health check or alarm).
        assert world.records() == []
        assert boto3.client("route53").list_health_checks()["HealthChecks"] == []
        assert (
            boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix="bbb-on-aws-lctest-turn-probe-")["MetricAlarms"]
            == []
        )
        boto3.client("ec2").stop_instances(InstanceIds=[iid])
        world.set_lifecycle_state(iid, "Warmed:Stopped")

        world.clock.advance(3600)
        started = start_relay(world, iid)
        world.at(1 * MINUTE, lambda: world.tag_ready(iid))  # relay.conf rewritten, relay answers: tagged again
        token = str(uuid.uuid4())
        world.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", token)
        world.deliver(pool_event(world, iid, "WarmPool", "AutoScalingGroup", token))
        before = len(world.events)
        ran = world.run_executions()
        assert list(ran) == [f"wake-{iid}-{started}"] and ran[f"wake-{iid}-{started}"].status == "SUCCEEDED"
        assert world.first("host-ready", after=before) < world.first("route53", after=before, set=iid)
        assert ("turn.meet.example.test", iid) in world.record_names()

        # Retire from the pool after a park: stopped, no STUN, its records already gone.
        world.set_lifecycle_state(iid, "Warmed:Terminating:Wait")
        boto3.client("ec2").stop_instances(InstanceIds=[iid])
        token = str(uuid.uuid4())
        world.expect_complete(iid, TERMINATE_HOOK, "CONTINUE", token)
        world.deliver(pool_event(world, iid, "WarmPool", "EC2", token))
        ran = world.run_executions()
        assert list(ran) == [f"retire-{iid}"] and ran[f"retire-{iid}"].status == "SUCCEEDED"
        assert world.records() == [] and boto3.client("route53").list_health_checks()["HealthChecks"] == []
        world.stubber.assert_no_pending_responses()
    finally:
        responder.stop()


def start_relay(world: World, instance_id: str) -> int:
    boto3.client("ec2").start_instances(InstanceIds=[instance_id])
    instance = ec2_backends["123456789012"]["eu-west-1"].get_instance(instance_id)
    instance.launch_time = world.clock.now.replace(tzinfo=None).isoformat()
    world.set_public_ip(instance_id, "127.0.0.1")
    world.set_lifecycle_state(instance_id, "Pending:Wait")
    return int(world.clock.now.timestamp())
