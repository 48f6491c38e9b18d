"""Launch, end to end: EventBridge event -> dispatcher -> synthesized launch state machine -> handlers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from lc_fixtures import emitted_metrics
from lc_stun_responder import StunResponder
from lc_world import BBB_SECRET, World

TOKEN = "d3ad6e2f-6b3c-4a48-9b8e-1c2d3e4f5a6b"
LAUNCH_HOOK = "bbb-on-aws-launch"


@pytest.fixture
def bbb(world_factory: Any) -> World:
    return world_factory("bbb")


def invoke_step(world: World, iid: str, name: str, **state: Any) -> dict[str, Any]:
    """One launch step invoked directly, as the state machine (or a replay of it) would."""
    payload = {
        "lifecycle": {"instance_id": iid, "group": world.group, "hook": LAUNCH_HOOK, "token": TOKEN},
        "now": world.clock.iso(),
        "started": world.clock.iso(),
        "state": state,
        "step": name,
    }
    return world.invoke_handler("lifecycle_launch.", payload)


@pytest.fixture
def responder() -> Iterator[StunResponder]:
    server = StunResponder().start()
    yield server
    server.stop()


@pytest.mark.slow
def test_bbb_launch_waits_for_the_host_then_registers_and_continues(bbb: World) -> None:
    [iid] = bbb.launch_instances(1)
    host = bbb.host(iid)
    bbb.fake.hosts[host].down = True  # bbb-install still running
    bbb.at(12 * 60, lambda: bbb.tag_ready(iid))  # the host tags itself ready...
    bbb.at(13 * 60, lambda: setattr(bbb.fake.hosts[host], "down", False))  # ...nginx answers a bit later
    bbb.expect_heartbeats(iid, LAUNCH_HOOK, 1, TOKEN)  # at 10 min
    bbb.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", TOKEN)

    event = bbb.lifecycle_event(iid, "launch", TOKEN)
    assert bbb.deliver(event)["outcome"] == "started"
    bbb.deliver(event)  # EventBridge delivers twice: still one execution
    assert bbb.execution_count() == 1
    [execution] = bbb.run_executions().values()

    assert execution.status == "SUCCEEDED", execution
    visited = execution.visited()
    assert visited[:3] == ["Prepare", "Proceed?", "WaitForHost"]
    assert visited[-3:] == ["Registered?", "Complete", "Launched"]
    assert "LaunchHeartbeat" in visited
    # the instance's own A record exists from the start (Let's Encrypt needs it during bbb-install)
    assert bbb.first("route53", action="UPSERT", name=host) < bbb.first("host-ready")
    [record] = [r for r in bbb.records() if r["Name"].rstrip(".") == host]
    assert record["ResourceRecords"] == [{"Value": bbb.public_ip(iid)}] and record["TTL"] == 60
    # registered only once ready, then enabled, and the action completed last
    server = bbb.fake.server_for_host(host)
    assert server is not None and server.state == "enabled" and server.secret == BBB_SECRET
    assert server.url == f"https://{host}/bigbluebutton/api"
    assert bbb.first("host-ready") < bbb.first("scalelite-addServer") < bbb.first("scalelite-updateServer")
    assert bbb.first("scalelite-updateServer") < bbb.first("CompleteLifecycleAction")
    assert bbb.fake.scalelite_actions().count("addServer") == 1


def test_replayed_launch_registers_nothing_twice(bbb: World) -> None:
    [iid] = bbb.launch_instances(1)
    bbb.tag_ready(iid)
    bbb.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", TOKEN)
    bbb.deliver(bbb.lifecycle_event(iid, "launch", TOKEN))
    bbb.run_executions()
    # A replay of every step after success (e.g. the bootstrap or a late duplicate): same end state.
    bbb.set_lifecycle_state(iid, "InService")
    bbb.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", TOKEN, active=False)
    payload = {
        "lifecycle": {"instance_id": iid, "group": bbb.group, "hook": LAUNCH_HOOK, "token": TOKEN},
        "now": bbb.clock.iso(),
        "started": bbb.clock.iso(),
    }
    state: dict[str, Any] = {}
    for step in ("prepare", "check", "register", "complete"):
        state = bbb.invoke_handler("lifecycle_launch.", {**payload, "step": step, "state": state})
    assert state["status"] == "launched" and state["completed"] is False
    assert bbb.fake.scalelite_actions().count("addServer") == 1
    assert len(bbb.fake.servers) == 1
    assert sum(1 for r in bbb.records() if r["Name"].rstrip(".") == bbb.host(iid)) == 1


def test_late_launch_event_for_a_terminating_instance_does_nothing(bbb: World) -> None:
    [iid] = bbb.launch_instances(1, state="Terminating:Wait")
    result = bbb.deliver(bbb.lifecycle_event(iid, "launch", TOKEN))
    assert result["outcome"] == "ignored" and "late launch event" in result["reason"]
    assert bbb.execution_count() == 0


def test_launch_that_starts_for_a_terminating_instance_stops_at_once(bbb: World) -> None:
    [iid] = bbb.launch_instances(1)
    bbb.deliver(bbb.lifecycle_event(iid, "launch", TOKEN))
    bbb.set_lifecycle_state(iid, "Terminating:Wait")  # scale-in raced the launch
    [execution] = bbb.run_executions().values()
    assert execution.status == "SUCCEEDED" and execution.visited()[-1] == "Skipped"
    assert bbb.records() == [] and bbb.fake.servers == {}


@pytest.mark.slow
def test_host_never_ready_is_abandoned_and_alarmed(world_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    world = world_factory("bbb", LAUNCH_MAX_SECONDS="900")
    [iid] = world.launch_instances(1)
    world.expect_heartbeats(iid, LAUNCH_HOOK, 1, TOKEN)
    world.expect_complete(iid, LAUNCH_HOOK, "ABANDON", TOKEN)
    world.deliver(world.lifecycle_event(iid, "launch", TOKEN))
    [execution] = world.run_executions().values()
    assert (execution.status, execution.error) == ("FAILED", "LaunchAbandoned")
    assert execution.visited()[-2:] == ["Abandon", "LaunchFailed"]
    assert world.records() == []  # its record was removed again: nothing else uses it
    assert emitted_metrics(capsys.readouterr().out).get("LaunchAbandoned") == 1


@pytest.mark.slow
def test_scalelite_failing_at_registration_abandons(bbb: World) -> None:
    [iid] = bbb.launch_instances(1)
    bbb.tag_ready(iid)
    bbb.fake.fail_status = 500
    bbb.expect_complete(iid, LAUNCH_HOOK, "ABANDON", TOKEN)
    bbb.deliver(bbb.lifecycle_event(iid, "launch", TOKEN))
    [execution] = bbb.run_executions().values()
    assert execution.status == "FAILED" and "Abandon" in execution.visited()
    # retried with backoff (TransientError) before giving up, never added half-way
    assert [e for _t, state, e in execution.history if state == "Register"] == [
        "entered",
        "caught TransientError",
    ]  # 5 retries inside one state entry, then the catch
    assert bbb.kinds().count("backoff") >= 6 * 2  # each GET was also retried inside the call
    assert "addServer" not in bbb.fake.scalelite_actions()
    assert bbb.fake.scalelite_actions().count("getServers") >= 6 * 3


def test_turn_launch_probes_the_relay_then_joins_the_turn_name(world_factory: Any, responder: StunResponder) -> None:
    world = world_factory("turn", TURN_PORT=str(responder.port), PROBE_TIMEOUT_SECONDS="0.1")
    [iid] = world.launch_instances(1)
    world.set_public_ip(iid, "127.0.0.1")
    responder.udp_enabled = False  # relay up on TCP only at first: not ready
    world.tag_ready(iid)
    world.at(90, lambda: setattr(responder, "udp_enabled", True))
    world.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", TOKEN)
    world.deliver(world.lifecycle_event(iid, "launch", TOKEN))
    [execution] = world.run_executions().values()
    assert execution.status == "SUCCEEDED", execution
    assert execution.visited().count("CheckReady") >= 3  # refused while UDP was silent

    names = world.record_names()
    assert (f"turn-{iid[2:]}.meet.example.test", None) in names
    assert ("turn.meet.example.test", iid) in names
    [weighted] = [r for r in world.records() if r.get("SetIdentifier") == iid]
    assert weighted["Weight"] == 100 and weighted["TTL"] == 60
    health_check = boto3.client("route53").get_health_check(HealthCheckId=weighted["HealthCheckId"])
    assert health_check["HealthCheck"]["HealthCheckConfig"]["Type"] == "CLOUDWATCH_METRIC"
    [alarm] = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix="bbb-on-aws-lctest-turn-probe-")[
        "MetricAlarms"
    ]
    assert alarm["AlarmName"] == f"bbb-on-aws-lctest-turn-probe-{iid}"
    assert alarm["MetricName"] == "TurnProbeHealthy" and alarm["Namespace"] == "BBBOnAWS/lctest"
    assert alarm["Dimensions"] == [{"Name": "InstanceId", "Value": iid}]
    assert alarm["AlarmActions"] == [world.topic_arn] and alarm["TreatMissingData"] == "missing"
    assert world.first("route53", action="UPSERT", set=iid) > world.first("host-ready")


def registered(world: World) -> tuple[str, Any]:
    """One instance taken through the real launch flow: ready, enabled in Scalelite. Returns it and its server."""
    [iid] = world.launch_instances(1)
    world.tag_ready(iid)
    world.expect_complete(iid, LAUNCH_HOOK, "CONTINUE", TOKEN)
    world.deliver(world.lifecycle_event(iid, "launch", TOKEN))
    world.run_executions()
    server = world.fake.server_for_host(world.host(iid))
    assert server is not None and server.state == "enabled"
    return iid, server


def test_replayed_launch_leaves_a_cordoned_server_cordoned(bbb: World) -> None:
    """Only a drain cordons: a launch step replayed after the drain began (a late duplicate, the reconciler) must
    not enable the server again, or Scalelite would send new meetings to a host on its way out."""
    iid, server = registered(bbb)
    server.state = "cordoned"  # what the drain's first step does
    state = invoke_step(bbb, iid, "register")
    assert state["status"] == "gone"
    assert state["reason"] == "Scalelite already has this server cordoned (a drain started)"
    assert server.state == "cordoned" and bbb.fake.scalelite_actions().count("updateServer") == 1


def _abandon(world: World, iid: str) -> dict[str, Any]:
    world.expect_complete(iid, LAUNCH_HOOK, "ABANDON", TOKEN, active=False)
    return invoke_step(world, iid, "abandon")


@pytest.mark.parametrize("state", ["enabled", "cordoned"])
def test_an_abandoned_launch_leaves_a_server_scalelite_may_send_meetings_to(bbb: World, state: str) -> None:
    """Abandon's cleanup (a replay after the launch registered, the reconciler) must not delete a server that may
    hold meetings, nor the DNS name its drain needs: that is the drain's job."""
    iid, server = registered(bbb)
    server.state = state
    assert _abandon(bbb, iid)["cleaned"] == []
    assert bbb.fake.server_for_host(bbb.host(iid)) is server and "deleteServer" not in bbb.fake.scalelite_actions()
    assert [r["Name"].rstrip(".") for r in bbb.records()] == [bbb.host(iid)]


def test_an_abandoned_launch_removes_a_disabled_server_and_its_name(bbb: World) -> None:
    iid, server = registered(bbb)
    server.state = "disabled"
    assert _abandon(bbb, iid)["cleaned"] == ["scalelite server", "instance record"]
    assert bbb.fake.servers == {} and bbb.records() == []


def test_a_launch_for_an_instance_ec2_no_longer_knows_stops_at_once(bbb: World) -> None:
    state = invoke_step(bbb, "i-0fedcba9876543210", "prepare")
    assert (state["proceed"], state["status"], state["reason"]) == (False, "gone", "instance is unknown to EC2")
    assert bbb.records() == []


@pytest.mark.parametrize("transition", ["launch", "prewarm"])
@pytest.mark.parametrize("where", ["another group", "no group"])
def test_an_instance_that_is_not_in_this_group_is_not_launched(bbb: World, transition: str, where: str) -> None:
    """The handler serves one group: an instance Auto Scaling lists in another group (here: the function serves
    "<group>-a", which sorts after the instance's own) or no longer lists at all is left alone."""
    [iid] = bbb.launch_instances(1, state="Warmed:Pending:Wait" if transition == "prewarm" else "Pending:Wait")
    launch = bbb.functions[bbb.function_id("lifecycle_launch.")]
    if where == "another group":
        launch["env"]["AUTO_SCALING_GROUP_NAME"] = bbb.group + "-a"
    else:
        boto3.client("autoscaling").detach_instances(
            InstanceIds=[iid], AutoScalingGroupName=bbb.group, ShouldDecrementDesiredCapacity=True
        )
    state = invoke_step(bbb, iid, "prepare", transition=transition)
    assert (state["proceed"], state["status"]) == (False, "gone")
    assert state["reason"] == "instance is not (any more) in this Auto Scaling group"
    assert bbb.records() == []
