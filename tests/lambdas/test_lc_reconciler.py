"""The reconciler removes state whose instance no longer exists, leaves everything else, recovers lost
events, and does nothing on a second run; the deploy-time bootstrap starts what booted before the hooks."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from common import alarms, dns
from lc_world import World

GHOST = "i-0123456789abcdef0"  # never existed
DOMAIN = "meet.example.test"


def upsert(world: World, name: str, ip: str, **extra: Any) -> None:
    rrset = {"Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": ip}], **extra}
    boto3.client("route53").change_resource_record_sets(
        HostedZoneId=world.zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rrset}]}
    )


def reconcile(world: World) -> dict[str, Any]:
    return world.invoke_handler("fleet_reconciler.", {"source": "aws.events", "detail-type": "Scheduled Event"})


@pytest.mark.slow
def test_bbb_reconciler(world_factory: Any) -> None:
    world = world_factory("bbb")
    live, gone, waiting, leaving = world.launch_instances(4, state="InService")
    world.set_lifecycle_state(waiting, "Pending:Wait")
    world.set_lifecycle_state(leaving, "Terminating:Wait")
    boto3.client("ec2").terminate_instances(InstanceIds=[gone])
    for iid in (live, gone):
        upsert(world, world.host(iid), "203.0.113.10")
    upsert(world, f"bbb-{GHOST[2:]}.{DOMAIN}", "203.0.113.11")
    upsert(world, f"bbb-proxy.{DOMAIN}", "203.0.113.12")  # not a per-instance name: never touched
    upsert(world, f"turn-{GHOST[2:]}.{DOMAIN}", "203.0.113.13")  # the TURN fleet's reconciler owns it
    client = world.fake
    for iid in (live, gone):
        server = client._api_addServer(
            {"server": {"url": f"https://{world.host(iid)}/bigbluebutton/api", "secret": "s"}}
        )
        assert server[0] == 201
    for server in list(client.servers.values()):
        server.state = "enabled"
    world.fake.start_meeting(world.host(gone), "orphan-1", 4)
    world.fake.start_meeting(world.host(gone), "orphan-2", 2)
    world.fake.hosts[world.host(gone)].down = True
    client._api_addServer({"server": {"url": "https://bbb.elsewhere.org/bigbluebutton/api", "secret": "s"}})

    report = reconcile(world)

    assert sorted(report["removed"]["record"]) == sorted([world.host(gone), f"bbb-{GHOST[2:]}.{DOMAIN}"])
    [removed_server] = report["removed"]["scalelite-server"]
    assert world.host(gone) in removed_server
    assert sorted(report["recovered"]["started"]) == sorted([waiting, leaving])
    assert world.record_names() == {
        (world.host(live), None),
        (f"bbb-proxy.{DOMAIN}", None),
        (f"turn-{GHOST[2:]}.{DOMAIN}", None),
    }
    urls = sorted(s.url for s in world.fake.servers.values())
    assert urls == sorted(
        [f"https://{world.host(live)}/bigbluebutton/api", "https://bbb.elsewhere.org/bigbluebutton/api"]
    )
    assert world.fake.meeting_server == {}  # the dead server's meetings were cleared (panic, no end call)
    assert "end" not in world.fake.hosts[world.host(gone)].calls
    sfn = boto3.client("stepfunctions")
    names = {
        e["name"]
        for m in world.state_machines.values()
        for e in sfn.list_executions(stateMachineArn=m["arn"])["executions"]
    }
    assert names == {f"launch-{waiting}", f"drain-{leaving}"}

    again = reconcile(world)
    assert again["removed"] == {} and again["recovered"]["started"] == []
    assert sorted(again["recovered"]["duplicate"]) == sorted([waiting, leaving])
    assert world.execution_count() == 2


def test_turn_reconciler_removes_probe_state_of_dead_instances(world_factory: Any) -> None:
    world = world_factory("turn")
    live, gone = world.launch_instances(2, state="InService")
    boto3.client("ec2").terminate_instances(InstanceIds=[gone])
    checks = dns.HealthChecks("lctest")
    pool = f"turn.{DOMAIN}"
    for iid in (live, gone):
        alarm = alarms.put_probe_alarm("lctest", "BBBOnAWS/lctest", iid, world.topic_arn)
        check = checks.ensure(iid, "2026-01-01T00:00:00+00:00", alarm, "eu-west-1")
        upsert(world, world.host(iid), "203.0.113.20")
        upsert(world, pool, "203.0.113.20", SetIdentifier=iid, Weight=100, HealthCheckId=check)

    report = reconcile(world)

    assert set(report["removed"]) == {"record", "health-check", "alarm"}
    assert world.record_names() == {(world.host(live), None), (pool, live)}
    assert list(checks.by_instance()) == [live]
    assert list(alarms.probe_alarms("lctest")) == [live]
    assert reconcile(world)["removed"] == {}


def test_single_reconciler_only_removes_a_domain_record_pointing_nowhere(world_factory: Any) -> None:
    world = world_factory("single")
    [live] = world.launch_instances(1, state="InService")
    upsert(world, DOMAIN, "203.0.113.99")  # left behind by a host that crashed
    assert reconcile(world)["removed"] == {"record": [DOMAIN]}
    upsert(world, DOMAIN, world.public_ip(live))
    assert reconcile(world)["removed"] == {}
    assert world.record_names() == {(DOMAIN, None)}


def test_bootstrap_starts_the_instances_that_booted_before_the_hooks(world_factory: Any) -> None:
    world = world_factory("bbb")
    booted, pending = world.launch_instances(2, state="InService")
    world.set_lifecycle_state(pending, "Pending:Wait")
    event = {
        "RequestType": "Create",
        "LogicalResourceId": "Bootstrap",
        "StackId": "s",
        "RequestId": "r",
        "ResourceType": "Custom::BbbOnAwsFleetBootstrap",
        "ServiceToken": "t",
        "ResourceProperties": {"ServiceToken": "t", "Group": world.group},
    }
    created = world.invoke_handler("custom_resources.fleet_bootstrap.", event)
    assert created == {
        "PhysicalResourceId": f"bbb-on-aws-bootstrap-lctest-{world.group}",
        "Data": {"Started": 2, "AlreadyRunning": 0},
    }
    updated = world.invoke_handler(
        "custom_resources.fleet_bootstrap.",
        {
            **event,
            "RequestType": "Update",
            "PhysicalResourceId": created["PhysicalResourceId"],
            "OldResourceProperties": event["ResourceProperties"],
        },
    )
    assert updated["Data"] == {"Started": 0, "AlreadyRunning": 2}
    assert world.execution_count() == 2
    deleted = world.invoke_handler(
        "custom_resources.fleet_bootstrap.",
        {**event, "RequestType": "Delete", "PhysicalResourceId": created["PhysicalResourceId"]},
    )
    assert deleted == {"PhysicalResourceId": created["PhysicalResourceId"]}
    # the launches it started run like any other (InService: the action is no longer active)
    world.tag_ready(booted)
    world.tag_ready(pending)
    for iid in sorted((booted, pending)):  # executions run in name order
        world.expect_complete(iid, "bbb-on-aws-launch", "CONTINUE", active=iid == pending)
    runs = world.run_executions()
    assert {e.status for e in runs.values()} == {"SUCCEEDED"}
    assert {s.state for s in world.fake.servers.values()} == {"enabled"} and len(world.fake.servers) == 2
