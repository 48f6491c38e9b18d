"""BBB drain, end to end on the synthesized drain state machine: no meeting is ended by a scale-in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest
from lc_fixtures import emitted_metrics
from lc_world import World

LAUNCH = "bbb-on-aws-launch"
TERMINATE = "bbb-on-aws-terminate"
LAUNCH_TOKEN = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
TOKEN = "7f0e1d2c-3b4a-4596-8877-66554433aa11"
MINUTE = 60


@pytest.fixture
def bbb(world_factory: Any) -> World:
    return world_factory("bbb")


def launched(world: World) -> str:
    """One instance taken through the real launch flow: DNS, Scalelite enabled, InService."""
    [iid] = world.launch_instances(1)
    world.tag_ready(iid)
    world.expect_complete(iid, LAUNCH, "CONTINUE", LAUNCH_TOKEN)
    world.deliver(world.lifecycle_event(iid, "launch", LAUNCH_TOKEN))
    [execution] = world.run_executions().values()
    assert execution.status == "SUCCEEDED"
    world.set_lifecycle_state(iid, "InService")
    world.every_tick(lambda _now: world.fake.poll())  # Scalelite's poller, every minute
    return iid


def terminate(world: World, iid: str, *, duplicates: int = 0) -> None:
    world.set_lifecycle_state(iid, "Terminating:Wait")
    event = world.lifecycle_event(iid, "terminate", TOKEN)
    for _ in range(1 + duplicates):
        world.deliver(event)


def end_meeting(world: World, iid: str, meeting: str) -> None:
    world.fake.hosts[world.host(iid)].meetings.pop(meeting)
    world.log("meeting-ended", {"meeting": meeting})


@pytest.mark.slow
def test_drain_waits_for_meetings_and_recordings_then_removes_the_server(bbb: World) -> None:
    iid = launched(bbb)
    host = bbb.host(iid)
    bbb.fake.start_meeting(host, "lecture", 30)
    bbb.fake.start_meeting(host, "seminar", 12)
    bbb.fake.poll()
    recorded = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678-1711111111111"

    bbb.at(25 * MINUTE, lambda: end_meeting(bbb, iid, "seminar"))
    bbb.at(25 * MINUTE, lambda: bbb.recording(iid, recorded, "ended"))
    bbb.at(40 * MINUTE, lambda: end_meeting(bbb, iid, "lecture"))
    bbb.at(41 * MINUTE, lambda: bbb.recording(iid, recorded, "archived"))
    bbb.at(50 * MINUTE, lambda: bbb.recording(iid, recorded, "published"))
    bbb.at(56 * MINUTE, lambda: bbb.recording(iid, recorded, "transferred"))
    bbb.expect_heartbeats(iid, TERMINATE, 5, TOKEN)  # at 10, 20, 30, 40, 50 min
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)

    terminate(bbb, iid, duplicates=1)
    assert bbb.deliver(bbb.lifecycle_event(iid, "launch", LAUNCH_TOKEN))["outcome"] == "ignored"  # late
    [execution] = bbb.run_executions().values()

    assert execution.status == "SUCCEEDED", execution
    assert bbb.execution_count() == 2  # the launch and one drain, despite the duplicate
    # cordon -> meetings still running -> heartbeats -> meetings end -> recording transferred -> delete
    start = bbb.first("execution-start", kind="drain")
    order = [
        start,
        bbb.first("scalelite-updateServer", state="cordon"),
        bbb.first("RecordLifecycleActionHeartbeat"),
        bbb.first("meeting-ended", meeting="lecture"),
        bbb.first("recording", stage="transferred"),
        bbb.first("scalelite-deleteServer"),
        bbb.first("route53", action="DELETE", name=host),
        bbb.first("CompleteLifecycleAction", result="CONTINUE", after=start),
    ]
    assert order == sorted(order), [(i, bbb.events[i][1]) for i in order]
    assert bbb.when("scalelite-deleteServer") - bbb.when("execution-start", kind="drain") >= timedelta(minutes=56)
    # nobody's meeting was ended, and the host was only asked about recordings once it had no meeting
    assert "end" not in bbb.fake.hosts[host].calls
    assert bbb.first("ssm-command") > bbb.first("meeting-ended", meeting="lecture")
    assert bbb.fake.servers == {} and bbb.records() == []
    assert "Cordon" in execution.visited() and "ForceRemove" not in execution.visited()


def test_unreachable_instance_is_removed_with_panic_without_end_calls(bbb: World) -> None:
    iid = launched(bbb)
    host = bbb.host(iid)
    bbb.fake.start_meeting(host, "m1", 3)
    bbb.fake.start_meeting(host, "m2", 4)

    def crash() -> None:
        bbb.fake.hosts[host].down = True
        boto3.client("ec2").stop_instances(InstanceIds=[iid], Force=True)
        bbb.log("crash", {})

    bbb.at(5 * MINUTE, crash)
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    terminate(bbb, iid)
    [execution] = bbb.run_executions().values()

    assert execution.status == "SUCCEEDED", execution
    assert "ForceRemove" in execution.visited()
    actions = bbb.fake.scalelite_actions()
    assert actions.count("panicServer") == 3  # one meeting record dropped per failing end call, then done
    assert bbb.fake.meeting_server == {} and bbb.fake.servers == {}
    assert "end" not in bbb.fake.hosts[host].calls  # no end call ever reached the host
    assert bbb.records() == []
    assert bbb.first("crash") < bbb.first("scalelite-panicServer") < bbb.first("scalelite-deleteServer")


def test_silent_bbb_counts_as_unreachable_after_consecutive_checks(bbb: World) -> None:
    iid = launched(bbb)
    host = bbb.host(iid)
    bbb.fake.start_meeting(host, "m1", 3)
    bbb.at(2 * MINUTE, lambda: setattr(bbb.fake.hosts[host], "down", True))  # running, but BBB is dead
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    terminate(bbb, iid)
    [execution] = bbb.run_executions().values()
    assert execution.status == "SUCCEEDED"
    checks = [e for t, s, e in execution.history if s == "CheckDrained" and e == "entered"]
    assert len(checks) == 1 + 3  # one answered, then UNREACHABLE_AFTER_CHECKS=3 silent ones
    assert bbb.fake.servers == {}


@pytest.mark.slow
def test_maximum_reached_ends_remaining_meetings_and_alarms(
    world_factory: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Off the 30 s grid of the checks: the maximum is reached when a check finds it passed, not only on the dot.
    world = world_factory("bbb", DRAIN_MAX_SECONDS="1790")
    iid = launched(world)
    host = world.host(iid)
    world.fake.start_meeting(host, "endless", 8)
    world.expect_heartbeats(iid, TERMINATE, 2, TOKEN)  # 10 and 20 min; the check at 30 finds the maximum passed
    world.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    terminate(world, iid)
    [execution] = world.run_executions().values()
    assert execution.status == "SUCCEEDED"
    assert "ForceRemove" in execution.visited()
    assert world.fake.hosts[host].calls.count("end") == 1  # ended through Scalelite's panic at the maximum
    assert world.fake.servers == {} and world.records() == []
    assert emitted_metrics(capsys.readouterr().out).get("DrainMaxReached") == 1


@pytest.mark.slow
def test_scalelite_outage_during_the_drain_is_waited_out(bbb: World, capsys: pytest.CaptureFixture[str]) -> None:
    iid = launched(bbb)
    host = bbb.host(iid)
    bbb.fake.start_meeting(host, "m1", 3)
    bbb.at(3 * MINUTE, lambda: setattr(bbb.fake, "fail_status", 502))
    bbb.at(6 * MINUTE, lambda: end_meeting(bbb, iid, "m1"))
    bbb.at(9 * MINUTE, lambda: setattr(bbb.fake, "fail_status", None))
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    terminate(bbb, iid)
    [execution] = bbb.run_executions().values()
    assert execution.status == "SUCCEEDED"
    # not finished while Scalelite could not confirm the load
    assert bbb.when("scalelite-deleteServer") - bbb.when("execution-start", kind="drain") >= timedelta(minutes=9)
    assert emitted_metrics(capsys.readouterr().out).get("ScaleliteErrors", 0) >= 3
    assert bbb.fake.servers == {}


@pytest.mark.slow
def test_a_server_scalelite_lists_waits_for_its_meeting_even_without_its_ready_tag(bbb: World) -> None:
    """The "never became ready: nothing to wait for" shortcut only holds for a host Scalelite never listed: one
    whose ready tag is missing but that Scalelite placed a meeting on is drained like any other."""
    iid = launched(bbb)
    bbb.fake.start_meeting(bbb.host(iid), "m1", 4)
    boto3.client("ec2").delete_tags(Resources=[iid], Tags=[{"Key": "bbb-on-aws:ready"}])
    bbb.at(5 * MINUTE, lambda: end_meeting(bbb, iid, "m1"))
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    terminate(bbb, iid)
    [execution] = bbb.run_executions().values()
    assert execution.status == "SUCCEEDED", execution
    _completed_only_after_the_meeting_ended(bbb, iid, "m1")


@pytest.mark.slow
def test_the_drain_waits_until_scalelite_too_sees_the_meeting_gone(bbb: World) -> None:
    """BBB's meeting count reaches 0 while Scalelite's poller lags (stalled for a few minutes): Scalelite still
    counts load on the server, so the drain waits for its next poll instead of finishing on BBB's word."""
    iid = launched(bbb)
    bbb.fake.start_meeting(bbb.host(iid), "m1", 5)
    bbb.fake.poll()
    poll = bbb.fake.poll
    bbb.fake.poll = lambda: None  # type: ignore[method-assign]
    bbb.at(2 * MINUTE, lambda: end_meeting(bbb, iid, "m1"))
    bbb.at(6 * MINUTE, lambda: setattr(bbb.fake, "poll", poll))
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    terminate(bbb, iid)
    [execution] = bbb.run_executions().values()
    assert execution.status == "SUCCEEDED", execution
    assert bbb.when("scalelite-deleteServer") - bbb.when("execution-start", kind="drain") >= timedelta(minutes=6)
    assert bbb.fake.servers == {} and bbb.records() == []


@pytest.mark.slow
def test_an_idle_server_waits_while_scalelite_cannot_confirm_its_cordon(bbb: World) -> None:
    """Scalelite down from the drain's start: BBB has no meeting, but Scalelite may still place new ones on the
    server, so the drain waits for Scalelite instead of finishing on BBB's word alone."""
    iid = launched(bbb)
    bbb.fake.fail_status = 502
    bbb.at(5 * MINUTE, lambda: setattr(bbb.fake, "fail_status", None))
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    terminate(bbb, iid)
    [execution] = bbb.run_executions().values()
    assert execution.status == "SUCCEEDED", execution
    assert bbb.when("scalelite-deleteServer") - bbb.when("execution-start", kind="drain") >= timedelta(minutes=5)
    assert bbb.fake.servers == {} and bbb.records() == []


@pytest.mark.slow
def test_scalelite_down_at_the_end_still_frees_the_instance_and_fails_loudly(
    world_factory: Any,
) -> None:
    world = world_factory("bbb", DRAIN_MAX_SECONDS="1200")
    iid = launched(world)
    host = world.host(iid)
    world.fake.start_meeting(host, "m1", 3)
    world.at(2 * MINUTE, lambda: end_meeting(world, iid, "m1"))
    world.at(2 * MINUTE, lambda: setattr(world.fake, "fail_status", 500))
    world.expect_heartbeats(iid, TERMINATE, 1, TOKEN)
    world.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    terminate(world, iid)
    [execution] = world.run_executions().values()
    assert (execution.status, execution.error) == ("FAILED", "ScaleliteCleanupFailed")
    assert world.records() == []  # DNS removed and the hook completed regardless
    assert len(world.fake.servers) == 1  # left for the reconciler (see test_lc_reconciler)


def test_instance_that_never_became_ready_drains_at_once(bbb: World) -> None:
    [iid] = bbb.launch_instances(1, state="Terminating:Wait")
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    bbb.deliver(bbb.lifecycle_event(iid, "terminate", TOKEN))
    [execution] = bbb.run_executions().values()
    assert execution.status == "SUCCEEDED"
    assert execution.visited().count("CheckDrained") == 1
    assert "bbb-getMeetings" not in bbb.kinds()  # drained on the missing ready tag alone, not on a count of 0


def test_a_ready_server_scalelite_never_listed_drains_on_the_meeting_count(bbb: World) -> None:
    """Its registration never happened (say the launch was abandoned before it): no Scalelite load to wait for,
    only BBB's meeting count and the recordings."""
    [iid] = bbb.launch_instances(1, state="Terminating:Wait")
    bbb.tag_ready(iid)
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    bbb.deliver(bbb.lifecycle_event(iid, "terminate", TOKEN))
    [execution] = bbb.run_executions().values()
    assert execution.status == "SUCCEEDED"
    assert execution.visited().count("CheckDrained") == 1 and "bbb-getMeetings" in bbb.kinds()
    assert bbb.fake.servers == {}


def test_replayed_drain_steps_change_nothing(bbb: World) -> None:
    iid = launched(bbb)
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)
    terminate(bbb, iid)
    bbb.run_executions()
    [newer] = bbb.launch_instances(1, state="InService")  # a replacement with its own records
    bbb.fake.add_host(bbb.host(newer), "x")
    boto3.client("route53").change_resource_record_sets(
        HostedZoneId=bbb.zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": bbb.host(newer),
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "198.51.100.7"}],
                    },
                }
            ]
        },
    )
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN, active=False)
    payload = {
        "lifecycle": {"instance_id": iid, "group": bbb.group, "hook": TERMINATE, "token": TOKEN},
        "now": bbb.clock.iso(),
        "started": bbb.clock.iso(),
    }
    state: dict[str, Any] = {}
    for step in ("cordon", "check", "force_remove", "finish"):
        state = bbb.invoke_handler("bbb_drain.", {**payload, "step": step, "state": state})
    assert state["removed"] == [] and state["completed"] is False
    assert bbb.record_names() == {(bbb.host(newer), None)}
    assert [a for a in bbb.fake.scalelite_actions() if a not in ("getServers",)].count("deleteServer") == 1


def test_single_host_drain_never_removes_the_domain_of_its_replacement(
    world_factory: Any,
) -> None:
    world = world_factory("single")
    old = launched(world)
    [volume] = boto3.client("ec2").describe_volumes(
        Filters=[{"Name": "tag:bbb-on-aws:data-volume", "Values": ["lctest"]}]
    )["Volumes"]
    # the old host fails: its data volume is released (a replacement waits for it: lambdas/single_data)
    world.at(2 * MINUTE, lambda: boto3.client("ec2").detach_volume(VolumeId=volume["VolumeId"], InstanceId=old))
    new = launched(world)  # the replacement takes over the domain name
    domain = "meet.example.test"
    assert [r["ResourceRecords"] for r in world.records()] == [[{"Value": world.public_ip(new)}]]
    world.expect_complete(old, TERMINATE, "CONTINUE", TOKEN)
    terminate(world, old)
    [execution] = world.run_executions().values()
    assert execution.status == "SUCCEEDED"
    assert [(r["Name"].rstrip("."), r["ResourceRecords"]) for r in world.records()] == [
        (domain, [{"Value": world.public_ip(new)}])
    ]
    assert world.fake.servers == {}  # the single host never touches Scalelite
    world.expect_complete(new, TERMINATE, "CONTINUE", "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d")
    world.set_lifecycle_state(new, "Terminating:Wait")
    world.deliver(world.lifecycle_event(new, "terminate", "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"))
    world.run_executions()
    assert world.records() == []


def _completed_only_after_the_meeting_ended(world: World, iid: str, meeting: str) -> None:
    """The lifecycle action (and the DNS record's removal) came after the meeting ended, and nobody ended it."""
    start = world.first("execution-start", kind="drain")
    ended = world.first("meeting-ended", meeting=meeting)
    completed = world.first("CompleteLifecycleAction", result="CONTINUE", after=start)
    assert start < ended < completed, [(i, world.events[i][1]) for i in (start, ended, completed)]
    assert world.events[completed][0] >= world.events[ended][0]
    assert "end" not in world.fake.hosts[world.host(iid)].calls


@pytest.mark.slow
def test_single_host_waits_for_its_meeting_on_the_meeting_count_alone(world_factory: Any) -> None:
    """The single shape has no Scalelite: BBB's meeting count is the only guard against ending a live meeting
    (an off-by-one there, e.g. `meetings > 1`, would complete the scale-in at once)."""
    single = world_factory("single")
    iid = launched(single)
    host = single.host(iid)
    single.fake.hosts[host].meetings["only-meeting"] = 4  # Greenlight's room, straight on the host
    single.at(35 * MINUTE, lambda: end_meeting(single, iid, "only-meeting"))
    single.expect_heartbeats(iid, TERMINATE, 3, TOKEN)  # at 10, 20 and 30 min
    single.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)

    terminate(single, iid)
    [execution] = single.run_executions().values()

    assert execution.status == "SUCCEEDED", execution
    _completed_only_after_the_meeting_ended(single, iid, "only-meeting")
    start = single.first("execution-start", kind="drain")
    completed = single.first("CompleteLifecycleAction", result="CONTINUE", after=start)
    assert single.events[completed][0] - single.events[start][0] >= timedelta(minutes=35)
    assert single.first("route53", action="DELETE") > single.first("meeting-ended", meeting="only-meeting")
    assert single.records() == [] and single.fake.servers == {}
    assert "ForceRemove" not in execution.visited()


@pytest.mark.slow
def test_scalable_waits_for_a_meeting_scalelite_counts_as_no_load(bbb: World) -> None:
    """A meeting with nobody in it (all left, or waiting for the moderator) is load 0 to Scalelite, whose poller
    then disables the cordoned server: BBB's meeting count alone must keep the drain waiting."""
    iid = launched(bbb)
    host = bbb.host(iid)
    bbb.fake.start_meeting(host, "waiting-room", 0)
    bbb.fake.poll()
    bbb.at(25 * MINUTE, lambda: end_meeting(bbb, iid, "waiting-room"))
    bbb.expect_heartbeats(iid, TERMINATE, 2, TOKEN)  # at 10 and 20 min
    bbb.expect_complete(iid, TERMINATE, "CONTINUE", TOKEN)

    terminate(bbb, iid)
    [execution] = bbb.run_executions().values()

    assert execution.status == "SUCCEEDED", execution
    # Scalelite reported no load (and disabled the server) while BBB still had the meeting
    disabled = [i for i, (_, kind, states) in enumerate(bbb.events) if kind == "scalelite-poll"
                and "disabled" in states.values()]  # fmt: skip
    assert disabled and disabled[0] < bbb.first("meeting-ended", meeting="waiting-room")
    _completed_only_after_the_meeting_ended(bbb, iid, "waiting-room")
    assert bbb.first("scalelite-deleteServer") > bbb.first("meeting-ended", meeting="waiting-room")
    assert bbb.fake.servers == {} and bbb.records() == []
