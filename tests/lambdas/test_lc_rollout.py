"""Roll-outs (instance refresh on a launch template change), end to end and decision by decision.

Auto Scaling's instance refresh is not in moto: its calls go to a botocore Stubber asserting the exact
parameters, and `play_refresh` plays what the refresh does with the Preferences our handler sent
(documented behaviour: replace `desired x (Max - Min)%` instances per batch, launch first when Max is
above 100, a new instance counts once its launch lifecycle action completed and the warmup passed, old
ones leave through the terminate hook, the refresh fails when an alarm of its AlarmSpecification fires).
Everything else is the real thing: the synthesized state machines under the ASL interpreter, the
handlers, moto, and the fake Scalelite/BBB server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from lc_fixtures import emitted_metrics
from lc_relay import SIGNAL, Relay
from lc_stun_responder import StunResponder
from lc_world import REGION, World

LAUNCH = "bbb-on-aws-launch"
TERMINATE = "bbb-on-aws-terminate"
GROUP = "lctest-bbb"
PENDING_TAG = "bbb-on-aws:rollout-pending"
MINUTE = 60


@pytest.fixture
def refresh(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> Iterator[Stubber]:
    """The instance refresh client of the rollout handler, stubbed (every call must be expected)."""
    from fleet_rollout import index

    client = boto3.client("autoscaling", region_name=REGION)
    stubber = Stubber(client)
    stubber.activate()
    monkeypatch.setattr(index, "_client", lambda: client)
    yield stubber
    stubber.assert_no_pending_responses()


@pytest.fixture
def bbb(world_factory: Any) -> World:
    return world_factory("bbb")


def abandoned_alarm(world: World) -> str:
    """The logical id (= the test world's alarm name) of the fleet's LaunchAbandoned alarm."""
    prefix = f"{world.role.capitalize()}LifecycleLaunchAbandonedAlarm"
    [lid] = [
        lid
        for lid, res in world.template["Resources"].items()
        if res["Type"] == "AWS::CloudWatch::Alarm" and lid.startswith(prefix)
    ]
    assert world.template["Resources"][lid]["Properties"]["MetricName"] == "LaunchAbandoned"
    return lid


def start_params(world: World) -> dict[str, Any]:
    return {
        "AutoScalingGroupName": world.group,
        "Strategy": "Rolling",
        "Preferences": {
            "MinHealthyPercentage": 100,
            "MaxHealthyPercentage": 150,
            "InstanceWarmup": 120,
            "SkipMatching": True,
            "AutoRollback": False,
            "AlarmSpecification": {"Alarms": [abandoned_alarm(world)]},
        },
    }


def deploy(world: World, old: str, new: str) -> dict[str, Any]:
    """CloudFormation's Update of the rollout custom resource (what the Provider framework passes on)."""
    properties = {"Group": GROUP, "Settings": "100/150"}
    event = {
        "RequestType": "Update",
        "ResourceProperties": {"ServiceToken": "arn:provider", **properties, "LaunchTemplateVersion": new},
        "OldResourceProperties": {"ServiceToken": "arn:provider", **properties, "LaunchTemplateVersion": old},
        "PhysicalResourceId": f"bbb-on-aws-rollout-{GROUP}",
        "LogicalResourceId": "BbbRolloutRollout",
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/LifecycleTest/1",
    }
    return world.invoke_handler("fleet_rollout.", event)


def refresh_event(world: World, outcome: str, group: str = GROUP) -> dict[str, Any]:
    return world.invoke_handler(
        "fleet_rollout.",
        {
            "source": "aws.autoscaling",
            "detail-type": f"EC2 Auto Scaling Instance Refresh {outcome}",
            "detail": {"InstanceRefreshId": "r-1", "AutoScalingGroupName": group},
        },
    )


def refreshes(*statuses: str) -> dict[str, Any]:
    return {
        "InstanceRefreshes": [
            {"InstanceRefreshId": f"r-{n}", "AutoScalingGroupName": GROUP, "Status": status}
            for n, status in enumerate(statuses, start=1)
        ]
    }


def pending_tag() -> str | None:
    tags = boto3.client("autoscaling").describe_tags(Filters=[{"Name": "key", "Values": [PENDING_TAG]}])["Tags"]
    return tags[0]["Value"] if tags else None


# --- the AWS side of an instance refresh, played on the world ------------------------------------------


def bring_up(world: World, *, ready: bool = True) -> tuple[str, Any]:
    """One new instance through the real launch flow; returns it and its launch execution."""
    [iid] = world.launch_instances(1)
    token = str(uuid.uuid4())
    if ready:
        world.tag_ready(iid)
        world.expect_complete(iid, LAUNCH, "CONTINUE", token)
    else:
        world.fake.hosts[world.host(iid)].down = True  # bbb-install failed: never ready
        world.expect_heartbeats(iid, LAUNCH, 4, token)  # at 10, 20, 30, 40 min of the 45 min maximum
        world.expect_complete(iid, LAUNCH, "ABANDON", token)
    world.deliver(world.lifecycle_event(iid, "launch", token))
    [execution] = world.run_executions().values()
    if execution.status == "SUCCEEDED":
        world.set_lifecycle_state(iid, "InService")
    return iid, execution


def drain(world: World, iid: str, *, meeting_ends_after: float) -> Any:
    """Auto Scaling terminates `iid`: its terminate hook starts the real drain; the meeting on it ends on
    its own `meeting_ends_after` seconds later (drain heartbeats every 10 min meanwhile)."""
    host = world.host(iid)
    for meeting in list(world.fake.hosts[host].meetings):
        world.at(meeting_ends_after, lambda m=meeting: end_meeting(world, host, m))
    token = str(uuid.uuid4())
    world.expect_heartbeats(iid, TERMINATE, int(meeting_ends_after // (10 * MINUTE)), token)
    world.expect_complete(iid, TERMINATE, "CONTINUE", token)
    world.set_lifecycle_state(iid, "Terminating:Wait")
    world.log("refresh-terminates", {"instance": iid})
    world.deliver(world.lifecycle_event(iid, "terminate", token))
    [execution] = world.run_executions().values()
    boto3.client("autoscaling").detach_instances(
        InstanceIds=[iid], AutoScalingGroupName=GROUP, ShouldDecrementDesiredCapacity=True
    )
    boto3.client("ec2").terminate_instances(InstanceIds=[iid])
    return execution


def end_meeting(world: World, host: str, meeting: str) -> None:
    world.fake.hosts[host].meetings.pop(meeting)
    world.log("meeting-ended", {"host": host, "meeting": meeting})


def play_refresh(world: World, preferences: dict[str, Any], old: list[str], *, fail_new: bool = False) -> str:
    """Instance refresh as AWS documents it, for the Preferences the handler sent. Returns its status."""
    desired = len(old)
    batch = max(1, desired * (preferences["MaxHealthyPercentage"] - preferences["MinHealthyPercentage"]) // 100)
    assert preferences["MaxHealthyPercentage"] > 100, "these tests cover launch-before-terminate"
    queue = list(old)
    while queue:
        current, queue = queue[:batch], queue[batch:]
        for _ in current:
            iid, launch = bring_up(world, ready=not fail_new)
            if launch.status != "SUCCEEDED":
                # The abandoned launch emitted LaunchAbandoned; its alarm is in the AlarmSpecification:
                # the refresh fails here and terminates nothing more.
                world.log("refresh-failed", {"instance": iid})
                return "Failed"
            world.log("refresh-launched", {"instance": iid})
        world.clock.advance(preferences["InstanceWarmup"])
        for iid in current:
            execution = drain(world, iid, meeting_ends_after=25 * MINUTE)
            assert execution.status == "SUCCEEDED", execution
    return "Successful"


def serving_floor(world: World, floor: int) -> None:
    """Invariant checked at every tick: at least `floor` servers enabled in Scalelite, and no meeting
    ended by anything but its own end."""

    def check(_now: Any) -> None:
        enabled = [s for s in world.fake.servers.values() if s.state == "enabled"]
        assert len(enabled) >= floor, [(s.url, s.state) for s in world.fake.servers.values()]
        assert all("end" not in host.calls for host in world.fake.hosts.values())

    world.every_tick(check)


# --- end to end --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_rollout_replaces_every_server_batch_by_batch_without_ending_a_meeting(bbb: World, refresh: Stubber) -> None:
    old = [bring_up(bbb)[0] for _ in range(2)]
    bbb.every_tick(lambda _now: bbb.fake.poll())
    for n, iid in enumerate(old):
        bbb.fake.start_meeting(bbb.host(iid), f"meeting-{n}", 20 + n)
    bbb.fake.poll()
    serving_floor(bbb, 2)  # MinHealthyPercentage 100 of 2 servers

    params = start_params(bbb)
    refresh.add_response("describe_instance_refreshes", refreshes("Successful"), {"AutoScalingGroupName": GROUP})
    refresh.add_response("start_instance_refresh", {"InstanceRefreshId": "r-2"}, params)
    answer = deploy(bbb, "1", "2")
    assert answer["Data"] == {"Rollout": "started", "InstanceRefreshId": "r-2"}

    assert play_refresh(bbb, params["Preferences"], old) == "Successful"

    # every old server drained after its replacement was serving, one batch (one server) at a time
    launched = [e for _t, kind, e in bbb.events if kind == "refresh-launched"]
    terminated = [e for _t, kind, e in bbb.events if kind == "refresh-terminates"]
    assert [e["instance"] for e in terminated] == old
    for new, gone in zip(launched, terminated, strict=True):
        assert bbb.first("refresh-launched", instance=new["instance"]) < bbb.first(
            "refresh-terminates", instance=gone["instance"]
        )
        host = bbb.host(gone["instance"])
        # cordoned, its meeting ended on its own, only then did Scalelite forget the server
        start = bbb.first("refresh-terminates", instance=gone["instance"])
        order = [
            start,
            bbb.first("scalelite-updateServer", state="cordon", after=start),
            bbb.first("meeting-ended", host=host, after=start),
            bbb.first("scalelite-deleteServer", after=start),
        ]
        assert order == sorted(order)
    # batch 2 started only after batch 1's old server was gone
    assert bbb.first("scalelite-deleteServer") < bbb.first("refresh-launched", instance=launched[1]["instance"])
    assert all("end" not in host.calls for host in bbb.fake.hosts.values())
    assert "panicServer" not in bbb.fake.scalelite_actions()
    new_hosts = {bbb.host(e["instance"]) for e in launched}
    assert {s.url.split("/")[2] for s in bbb.fake.servers.values()} == new_hosts
    assert all(s.state == "enabled" for s in bbb.fake.servers.values())


@pytest.mark.slow
def test_failed_new_server_stops_the_rollout_and_old_servers_keep_serving(
    bbb: World, refresh: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    old = [bring_up(bbb)[0] for _ in range(2)]
    bbb.every_tick(lambda _now: bbb.fake.poll())
    bbb.fake.start_meeting(bbb.host(old[0]), "lecture", 30)
    bbb.fake.poll()
    serving_floor(bbb, 2)
    params = start_params(bbb)
    refresh.add_response("describe_instance_refreshes", refreshes(), {"AutoScalingGroupName": GROUP})
    refresh.add_response("start_instance_refresh", {"InstanceRefreshId": "r-1"}, params)
    deploy(bbb, "1", "2")
    capsys.readouterr()

    assert play_refresh(bbb, params["Preferences"], old, fail_new=True) == "Failed"

    # the abandoned launch emitted exactly the metric the refresh's alarm watches
    assert emitted_metrics(capsys.readouterr().out).get("LaunchAbandoned") == 1
    assert "refresh-terminates" not in bbb.kinds()
    assert not [e for _t, kind, e in bbb.events if kind == "scalelite-updateServer" and e.get("state") == "cordon"]
    for iid in old:
        server = bbb.fake.server_for_host(bbb.host(iid))
        assert server is not None and server.state == "enabled"
    assert bbb.fake.hosts[bbb.host(old[0])].meetings == {"lecture": 30}


# --- the handler's decisions (Stubber: instance refresh; moto: the group's tags) ---------------------------


def test_second_deploy_during_a_rollout_cancels_and_restarts_on_the_newest_template(
    bbb: World, refresh: Stubber
) -> None:
    group = {"AutoScalingGroupName": GROUP}
    refresh.add_response("describe_instance_refreshes", refreshes("InProgress"), group)
    refresh.add_response("cancel_instance_refresh", {"InstanceRefreshId": "r-1"}, group)
    assert deploy(bbb, "2", "3")["Data"] == {"Rollout": "pending", "Cancelled": "r-1"}
    assert pending_tag() == "3"

    # a third deploy while the cancel is still waiting for the drains in flight: no second cancel
    refresh.add_response("describe_instance_refreshes", refreshes("Cancelling"), group)
    assert deploy(bbb, "3", "4")["Data"]["Rollout"] == "pending"
    assert pending_tag() == "4"

    # the scheduled check while still cancelling: waits
    refresh.add_response("describe_instance_refreshes", refreshes("Cancelling"), group)
    assert bbb.invoke_handler("fleet_rollout.", {"source": "aws.events", "detail-type": "Scheduled Event"}) == {
        "Rollout": "pending",
        "Waiting": "r-1",
    }

    # the cancel is done (the in-flight drains finished): the pending roll-out starts, once
    refresh.add_response("describe_instance_refreshes", refreshes("Cancelled"), group)
    refresh.add_response("start_instance_refresh", {"InstanceRefreshId": "r-2"}, start_params(bbb))
    assert refresh_event(bbb, "Cancelled") == {"Rollout": "started", "InstanceRefreshId": "r-2", "Version": "4"}
    assert pending_tag() is None
    assert refresh_event(bbb, "Cancelled") == {"Rollout": "none pending"}  # a duplicate event


def test_an_operators_cancel_is_not_undone(bbb: World, refresh: Stubber) -> None:
    assert refresh_event(bbb, "Cancelled") == {"Rollout": "none pending"}
    assert refresh_event(bbb, "Failed") == {"Rollout": "none pending"}  # a failed roll-out is not retried


def test_refresh_started_by_someone_else_meanwhile_is_cancelled_and_followed(bbb: World, refresh: Stubber) -> None:
    group = {"AutoScalingGroupName": GROUP}
    refresh.add_response("describe_instance_refreshes", refreshes(), group)
    refresh.add_client_error(
        "start_instance_refresh",
        service_error_code="InstanceRefreshInProgress",
        service_message="An Instance Refresh is already in progress",
        expected_params=start_params(bbb),
    )
    refresh.add_response("describe_instance_refreshes", refreshes("Pending"), group)
    refresh.add_response("cancel_instance_refresh", {"InstanceRefreshId": "r-1"}, group)
    assert deploy(bbb, "5", "6")["Data"] == {"Rollout": "pending", "Cancelled": "r-1"}
    assert pending_tag() == "6"


def test_unchanged_template_create_delete_and_other_groups_start_nothing(bbb: World, refresh: Stubber) -> None:
    assert deploy(bbb, "7", "7")["Data"] == {"Rollout": "unchanged"}
    create = {
        "RequestType": "Create",
        "ResourceProperties": {"ServiceToken": "x", "Group": GROUP, "LaunchTemplateVersion": "1"},
        "LogicalResourceId": "BbbRolloutRollout",
        "StackId": "s",
    }
    assert bbb.invoke_handler("fleet_rollout.", create)["PhysicalResourceId"] == f"bbb-on-aws-rollout-{GROUP}"
    delete = {**create, "RequestType": "Delete", "PhysicalResourceId": f"bbb-on-aws-rollout-{GROUP}"}
    assert bbb.invoke_handler("fleet_rollout.", delete) == {"PhysicalResourceId": f"bbb-on-aws-rollout-{GROUP}"}
    assert refresh_event(bbb, "Cancelled", group="someone-elses-group") == {"Rollout": "ignored"}


def test_bad_setting_fails_the_deploy_before_touching_the_fleet(world_factory: Any, refresh: Stubber) -> None:
    from common.config import ConfigurationError

    world = world_factory("bbb", ROLLOUT_MAX_HEALTHY_PERCENT="250")
    with pytest.raises(ConfigurationError, match="ROLLOUT_MAX_HEALTHY_PERCENT='250' must be a whole number from 100"):
        deploy(world, "1", "2")


# --- TURN: a roll-out drains every relay's allocations, the pool never shrinks -----------------------------


@pytest.fixture
def responder() -> Iterator[StunResponder]:
    server = StunResponder().start()
    yield server
    server.stop()


@pytest.mark.slow
def test_turn_rollout_drains_every_relay_and_keeps_the_pool_full(
    world_factory: Any, responder: StunResponder, refresh: Stubber
) -> None:
    turn = world_factory("turn", TURN_PORT=str(responder.port), PROBE_TIMEOUT_SECONDS="0.1")
    pool = "turn.meet.example.test"

    def relay_up() -> str:
        [iid] = turn.launch_instances(1)
        turn.set_public_ip(iid, "127.0.0.1")  # the STUN responder answers the launch check
        turn.tag_ready(iid)
        token = str(uuid.uuid4())
        turn.expect_complete(iid, LAUNCH, "CONTINUE", token)
        turn.deliver(turn.lifecycle_event(iid, "launch", token))
        [execution] = turn.run_executions().values()
        assert execution.status == "SUCCEEDED", execution
        turn.set_lifecycle_state(iid, "InService")
        turn.log("refresh-launched", {"instance": iid})
        return iid

    def pool_members() -> set[str]:
        return {set_id for name, set_id in turn.record_names() if name == pool}

    old = [relay_up() for _ in range(2)]
    relays = {iid: Relay(turn, iid, allocations=6) for iid in old}  # one allocation ends every 2 min once drained
    for relay in relays.values():
        turn.every_tick(relay.tick)
    turn.every_tick(lambda _now: assert_pool(pool_members(), 2))

    params = start_params(turn)
    refresh.add_response("describe_instance_refreshes", {"InstanceRefreshes": []}, {"AutoScalingGroupName": turn.group})
    refresh.add_response("start_instance_refresh", {"InstanceRefreshId": "r-9"}, params)
    assert deploy(turn, "3", "4")["Data"]["Rollout"] == "started"

    new = []
    for iid in old:  # batch of one (Min 100, Max 150 of 2 relays): launch, warm up, then drain the old one
        new.append(relay_up())
        turn.clock.advance(params["Preferences"]["InstanceWarmup"])
        token = str(uuid.uuid4())
        turn.expect_heartbeats(iid, TERMINATE, 1, token)  # 10 min; the 6 allocations end after ~14 min
        turn.expect_complete(iid, TERMINATE, "CONTINUE", token)
        turn.set_lifecycle_state(iid, "Terminating:Wait")
        turn.deliver(turn.lifecycle_event(iid, "terminate", token))
        [execution] = turn.run_executions().values()
        assert execution.status == "SUCCEEDED", execution
        assert relays[iid].allocations == 0  # every allocation ended on its own before the relay left
        boto3.client("autoscaling").detach_instances(
            InstanceIds=[iid], AutoScalingGroupName=turn.group, ShouldDecrementDesiredCapacity=True
        )
    assert pool_members() == set(new)
    for iid in old:  # out of the pool first, the relay told to drain only after twice the TTL
        withdrawn = turn.first("route53", action="DELETE", set=iid)
        assert turn.first("refresh-launched", instance=new[old.index(iid)]) < withdrawn
        assert turn.systemctl_calls(iid) == [SIGNAL]


def assert_pool(members: set[str], floor: int) -> None:
    """The pool's weighted records never drop below the healthy floor (a draining relay is withdrawn only
    once its replacement is in)."""
    assert len(members) >= floor, members


def test_rollout_settings_refuse_what_instance_refresh_or_one_data_volume_cannot_do() -> None:
    from cdk_constructs.backup import BackupRules
    from cdk_constructs.lifecycle.rollout import RolloutSettings

    assert RolloutSettings(100, 50).check("bbb") == []
    assert RolloutSettings(0, 100).check("single") == []
    [single] = RolloutSettings(100, 50).check("single")
    assert "one volume that only one instance can use" in single and "minHealthyPercent 0, batchPercent 100" in single
    [too_few] = RolloutSettings(20, 30).check("turn")
    assert too_few.startswith("minHealthyPercent + batchPercent = 50 must be 100 to 200")
    assert BackupRules(35, 365).check() == [] and BackupRules(7, 0).check() == []
    [monthly] = BackupRules(7, 14).check()
    assert monthly.startswith("monthlyRetentionDays 14 must be 0 (no monthly rule) or 28 to 36500")
