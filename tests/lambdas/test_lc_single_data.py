"""The single host's data volume, end to end on the synthesized launch state machine (AttachData loop) with
moto's EC2 volumes and snapshots: first launch, reattachment, a move to another AZ, a restore when the old
AZ keeps the volume, and the states only an operator can resolve."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest
from lc_world import World

from tests.servers import wait_until

LAUNCH = "bbb-on-aws-launch"
TOKEN = "6c5d4e3f-2a1b-4c0d-9e8f-7a6b5c4d3e2f"
TAG = "bbb-on-aws:data-volume"
ENV = "lctest"
MINUTE = 60


@pytest.fixture
def single(world_factory: Any) -> World:
    return world_factory("single")


def zone_of(iid: str) -> str:
    [reservation] = boto3.client("ec2").describe_instances(InstanceIds=[iid])["Reservations"]
    return reservation["Instances"][0]["Placement"]["AvailabilityZone"]


def other_zone(zone: str) -> str:
    return "eu-west-1b" if zone != "eu-west-1b" else "eu-west-1c"


def data_volume(zone: str, *, size: int = 100) -> str:
    """A data volume as an earlier single host left it."""
    return boto3.client("ec2").create_volume(
        AvailabilityZone=zone,
        Size=size,
        VolumeType="gp3",
        Encrypted=True,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [
                    {"Key": TAG, "Value": ENV},
                    {"Key": "bbb-on-aws:environment", "Value": ENV},
                    {"Key": "bbb-on-aws:role", "Value": "single"},
                ],
            }
        ],
    )["VolumeId"]


def volumes(**filters: str) -> list[dict[str, Any]]:
    found = boto3.client("ec2").describe_volumes(
        Filters=[{"Name": f"tag:{k}", "Values": [v]} for k, v in filters.items()]
    )["Volumes"]
    return [v for v in found if v["State"] != "deleted"]


def launch(world: World, *, result: str = "CONTINUE", heartbeats: int = 0) -> tuple[str, Any]:
    [iid] = world.launch_instances(1)
    world.tag_ready(iid)  # the host itself would wait for /dev/sdf first (userdata/bbb/data.sh)
    world.expect_heartbeats(iid, LAUNCH, heartbeats, TOKEN)
    world.expect_complete(iid, LAUNCH, result, TOKEN)
    world.deliver(world.lifecycle_event(iid, "launch", TOKEN))
    [execution] = world.run_executions().values()
    return iid, execution


def attached_to(volume_id: str) -> list[tuple[str, str]]:
    [volume] = boto3.client("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"]
    return [(a["InstanceId"], a["Device"]) for a in volume["Attachments"]]


def test_first_launch_creates_the_volume_in_the_hosts_zone_and_attaches_it(single: World) -> None:
    iid, execution = launch(single)
    assert execution.status == "SUCCEEDED", execution
    visited = execution.visited()
    assert visited.index("AttachData") < visited.index("WaitForHost") < visited.index("Complete")
    [volume] = volumes(**{TAG: ENV})
    assert volume["AvailabilityZone"] == zone_of(iid)
    assert (volume["Size"], volume["VolumeType"], volume["Encrypted"]) == (100, "gp3", True)
    assert "SnapshotId" not in volume or not volume["SnapshotId"]  # blank: the host formats it (data.sh)
    assert attached_to(volume["VolumeId"]) == [(iid, "/dev/sdf")]
    [group] = boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["lctest-single"])[
        "AutoScalingGroups"
    ]
    assert [p["ProcessName"] for p in group["SuspendedProcesses"]] == ["AZRebalance"]


def test_replacement_in_the_same_zone_waits_for_the_old_host_then_reattaches_the_same_volume(
    single: World,
) -> None:
    old, _ = launch(single)
    [volume] = volumes(**{TAG: ENV})
    ec2 = boto3.client("ec2")

    def old_host_gone() -> None:  # its drain ended: Auto Scaling terminates it, the volume is released
        ec2.detach_volume(VolumeId=volume["VolumeId"], InstanceId=old)
        ec2.terminate_instances(InstanceIds=[old])
        single.log("old-host-gone", {})

    single.at(7 * MINUTE, old_host_gone)
    new, execution = launch(single)
    assert execution.status == "SUCCEEDED", execution
    assert zone_of(new) == zone_of(old)
    assert attached_to(volume["VolumeId"]) == [(new, "/dev/sdf")]  # the very volume: nothing lost
    assert [v["VolumeId"] for v in volumes(**{TAG: ENV})] == [volume["VolumeId"]]
    assert ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume["VolumeId"]]}])["Snapshots"] == []
    assert ec2.describe_snapshots(Filters=[{"Name": f"tag:{TAG}", "Values": [ENV]}])["Snapshots"] == []
    attach_rounds = [e for _t, state, e in execution.history if state == "AttachData" and e == "entered"]
    assert len(attach_rounds) >= 7 * 2  # every 30 s while the old host held it


def test_replacement_in_another_zone_moves_a_complete_copy_and_deletes_the_original(single: World) -> None:
    ec2 = boto3.client("ec2")
    probe, _ = launch(single)  # learn the group's zone, then pretend the data lived elsewhere
    ec2.detach_volume(VolumeId=volumes(**{TAG: ENV})[0]["VolumeId"], InstanceId=probe)
    ec2.delete_volume(VolumeId=volumes(**{TAG: ENV})[0]["VolumeId"])
    ec2.terminate_instances(InstanceIds=[probe])
    original = data_volume(other_zone(zone_of(probe)))

    new, execution = launch(single)
    assert execution.status == "SUCCEEDED", execution
    [copy] = volumes(**{TAG: ENV})
    assert copy["AvailabilityZone"] == zone_of(new) and copy["VolumeId"] != original
    [snapshot] = ec2.describe_snapshots(SnapshotIds=[copy["SnapshotId"]])["Snapshots"]
    assert snapshot["VolumeId"] == original  # taken of the original once nobody held it: a complete copy
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]}[TAG] == ENV  # kept, and found by a later restore
    assert attached_to(copy["VolumeId"]) == [(new, "/dev/sdf")]
    assert ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [original]}])["Volumes"] == []


def test_volume_held_in_a_failing_zone_is_restored_from_the_newest_backup_after_the_wait(single: World) -> None:
    ec2 = boto3.client("ec2")
    probe, _ = launch(single)
    ec2.detach_volume(VolumeId=volumes(**{TAG: ENV})[0]["VolumeId"], InstanceId=probe)
    ec2.delete_volume(VolumeId=volumes(**{TAG: ENV})[0]["VolumeId"])
    ec2.terminate_instances(InstanceIds=[probe])
    far = other_zone(zone_of(probe))
    original = data_volume(far)
    # AWS Backup's snapshots (daily): found by the volume they were taken of
    older = ec2.create_snapshot(VolumeId=original, Description="AWS Backup daily")["SnapshotId"]
    # moto stamps StartTime in whole seconds of real time (not the world's clock): the next one must be later.
    stamped = ec2.describe_snapshots(SnapshotIds=[older])["Snapshots"][0]["StartTime"]
    wait_until(lambda: dt.datetime.now(dt.timezone.utc) >= stamped + dt.timedelta(seconds=1), "the next second")
    newest = ec2.create_snapshot(VolumeId=original, Description="AWS Backup daily")["SnapshotId"]
    subnet = next(s for s in ec2.describe_subnets()["Subnets"] if s["AvailabilityZone"] == far)
    stuck = ec2.run_instances(ImageId="ami-03cf127a", MinCount=1, MaxCount=1, SubnetId=subnet["SubnetId"])
    holder = stuck["Instances"][0]["InstanceId"]
    ec2.attach_volume(VolumeId=original, InstanceId=holder, Device="/dev/sdf")  # its AZ is failing

    new, execution = launch(single, heartbeats=1)  # the hook is kept alive while waiting (10 min)
    assert execution.status == "SUCCEEDED", execution
    [restored] = volumes(**{TAG: ENV})
    assert restored["SnapshotId"] == newest != older
    assert restored["AvailabilityZone"] == zone_of(new)
    assert attached_to(restored["VolumeId"]) == [(new, "/dev/sdf")]
    # the original is kept (it holds what was written after the backup), marked for the operator
    [kept] = ec2.describe_volumes(VolumeIds=[original])["Volumes"]
    assert {t["Key"]: t["Value"] for t in kept["Tags"]}["bbb-on-aws:data-volume-retired"] == "stranded"
    waited = [t for t, kind, e in single.events if kind == "task" and e.get("step") == "attach"]
    assert (waited[-1] - waited[0]).total_seconds() >= 15 * MINUTE  # DATA_WAIT_SECONDS before giving it up


def test_two_tagged_volumes_abandon_the_launch_without_touching_either(single: World) -> None:
    first, second = data_volume("eu-west-1a"), data_volume("eu-west-1b")
    _iid, execution = launch(single, result="ABANDON")
    assert execution.status == "FAILED" and "Abandon" in execution.visited()
    assert ("AttachData", "caught DataVolumeError") in [(state, event) for _t, state, event in execution.history]
    assert attached_to(first) == [] and attached_to(second) == []
    assert len(volumes(**{TAG: ENV})) == 2
