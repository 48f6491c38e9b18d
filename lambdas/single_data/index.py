"""Launch step `attach` of the single host: give the new instance the data volume (state machine "launch").

The single host keeps Greenlight's database and the recordings on one EBS volume that outlives any
instance (userdata/bbb/data.sh mounts it). Exactly one volume carries `bbb-on-aws:data-volume=<env>`; this
step, repeated every 30 s by the launch state machine until it answers `attached`, makes that volume the
new instance's /dev/sdf:

- none yet (first launch): a blank volume, or one from the newest snapshot if a previous one was lost.
- same AZ: attach it once the old instance let go (the old host drains first: its refresh is 0/100).
  Recovery point: nothing lost. Recovery time: the old host's drain plus one launch (bbb-install).
- another AZ, volume available: snapshot it now (the old host is gone, so the copy is complete), create
  a copy in this AZ, retire the original (deleted once the copy is attached; the snapshot stays).
  Recovery point: nothing lost. Recovery time: + the snapshot (incremental on the last backup) and copy.
- another AZ, volume still held by an instance or broken after DATA_WAIT_SECONDS (its AZ is failing):
  restore the newest completed snapshot (AWS Backup's, or an earlier move's) in this AZ and retire the
  original as `stranded` (never deleted: it holds what was written after that snapshot). Recovery point:
  the last backup. Recovery time: DATA_WAIT_SECONDS + volume creation + one launch.

AZRebalance is suspended on the group (once per launch, idempotent): a rebalancing launch-before-terminate
would leave the new instance waiting for a volume the old one keeps.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from common import aws, contract, lifecycle, observability, steps, timeutil
from common.config import ConfigurationError

logger, metrics = observability.tools()

TAG_DATA = contract.TAG_DATA_VOLUME  # value: the environment; on exactly one volume, and on our snapshots
TAG_RETIRED = contract.TAG_DATA_VOLUME_RETIRED  # "moved" (copied: deleted after attach) | "stranded" (kept)
DEVICE = contract.DATA_DEVICE
LIVE = ["creating", "available", "in-use"]


class DataVolumeError(RuntimeError):
    """A state only an operator can resolve; the message says what to do."""


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default)).strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"{name}={raw!r} must be a whole number above 0")
    return int(raw)


def _ec2() -> Any:
    return aws.client("ec2")


def _tags(environment: str, **extra: str) -> list[dict[str, Any]]:
    tags = {TAG_DATA: environment, contract.TAG_ENVIRONMENT: environment, contract.TAG_ROLE: "single", **extra}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def data_volumes(environment: str) -> list[dict[str, Any]]:
    return _ec2().describe_volumes(
        Filters=[{"Name": f"tag:{TAG_DATA}", "Values": [environment]}, {"Name": "status", "Values": LIVE}]
    )["Volumes"]


def newest_snapshot(environment: str, volume_ids: list[str]) -> dict[str, Any] | None:
    """The newest completed snapshot of the data: tagged by us or AWS Backup, or taken of a known volume."""
    found: dict[str, dict[str, Any]] = {}
    completed = {"Name": "status", "Values": ["completed"]}
    queries = [[{"Name": f"tag:{TAG_DATA}", "Values": [environment]}, completed]]
    if volume_ids:
        queries.append([{"Name": "volume-id", "Values": volume_ids}, completed])
    for filters in queries:
        for snapshot in _ec2().describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"]:
            found[snapshot["SnapshotId"]] = snapshot
    return max(found.values(), key=lambda s: s["StartTime"], default=None)


def _create(step: steps.Step, zone: str, snapshot: dict[str, Any] | None, why: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "AvailabilityZone": zone,
        "VolumeType": "gp3",
        "Encrypted": True,
        "TagSpecifications": [{"ResourceType": "volume", "Tags": _tags(step.settings.environment)}],
        # one volume per instance and source, however often this step is retried
        "ClientToken": f"{step.instance_id}-{snapshot['SnapshotId'] if snapshot else 'blank'}",
    }
    if snapshot is None:
        params["Size"] = _int_env("DATA_VOLUME_GIB", 100)
    else:
        params["SnapshotId"] = snapshot["SnapshotId"]
        params["Size"] = max(snapshot["VolumeSize"], _int_env("DATA_VOLUME_GIB", 100))
    volume = _ec2().create_volume(**params)
    logger.info("data volume created", extra={"volume": volume["VolumeId"], "zone": zone, "why": why})
    return {"created": volume["VolumeId"], "source": snapshot["SnapshotId"] if snapshot else "blank"}


def _retire(volume: dict[str, Any], how: str) -> None:
    _ec2().delete_tags(Resources=[volume["VolumeId"]], Tags=[{"Key": TAG_DATA}])
    _ec2().create_tags(Resources=[volume["VolumeId"]], Tags=[{"Key": TAG_RETIRED, "Value": how}])
    logger.warning("data volume retired", extra={"volume": volume["VolumeId"], "how": how})


def _delete_moved_volumes(environment: str) -> list[str]:
    """Originals copied by a move (their data is in the move's completed snapshot and the copy)."""
    moved = _ec2().describe_volumes(
        Filters=[
            {"Name": f"tag:{TAG_RETIRED}", "Values": ["moved"]},
            {"Name": f"tag:{contract.TAG_ENVIRONMENT}", "Values": [environment]},
            {"Name": "status", "Values": ["available"]},
        ]
    )["Volumes"]
    for volume in moved:
        _ec2().delete_volume(VolumeId=volume["VolumeId"])
    return [v["VolumeId"] for v in moved]


def _same_zone(step: steps.Step, volume: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    attachments = volume.get("Attachments") or []
    holder = attachments[0]["InstanceId"] if attachments else None
    if holder == step.instance_id:
        if attachments[0]["State"] != "attached":
            return {**data, "status": "waiting", "reason": f"{volume['VolumeId']} is {attachments[0]['State']}"}
        deleted = _delete_moved_volumes(step.settings.environment)
        return {**data, "status": "attached", "volume": volume["VolumeId"], "deleted": deleted}
    if holder is not None:
        return {**data, "status": "waiting", "reason": f"{volume['VolumeId']} is still attached to {holder}"}
    if volume["State"] != "available":
        return {**data, "status": "waiting", "reason": f"{volume['VolumeId']} is {volume['State']}"}
    _ec2().attach_volume(VolumeId=volume["VolumeId"], InstanceId=step.instance_id, Device=DEVICE)
    logger.info("data volume attached", extra={"volume": volume["VolumeId"]})
    return {**data, "status": "waiting", "reason": "attaching"}


def _other_zone(step: steps.Step, volume: dict[str, Any], zone: str, data: dict[str, Any]) -> dict[str, Any]:
    environment = step.settings.environment
    held_since = data.get("held_since") or step.now
    if volume["State"] == "available" and not data.get("move_failed"):
        snapshot_id = data.get("move_snapshot")
        if snapshot_id is None:
            snapshot = _ec2().create_snapshot(
                VolumeId=volume["VolumeId"],
                Description=f"bbb-on-aws {environment}: single host data moving to {zone}",
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(environment)}],
            )
            return {**data, "status": "waiting", "move_snapshot": snapshot["SnapshotId"], "reason": "snapshot"}
        [snapshot] = _ec2().describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        if snapshot["State"] == "pending":
            return {**data, "status": "waiting", "reason": f"snapshot {snapshot_id} {snapshot.get('Progress', '')}"}
        if snapshot["State"] == "completed":
            created = _create(step, zone, snapshot, "moved to the instance's AZ")
            _retire(volume, "moved")
            return {**data, **created, "status": "waiting", "reason": "copy created"}
        logger.error("move snapshot failed", extra={"snapshot": snapshot_id, "state": snapshot["State"]})
        data = {**data, "move_failed": True}
    waited = timeutil.seconds_between(held_since, step.now)
    if volume["State"] != "error" and not data.get("move_failed") and waited < _int_env("DATA_WAIT_SECONDS", 900):
        return {**data, "status": "waiting", "held_since": held_since, "reason": f"{volume['VolumeId']} held"}
    snapshot = newest_snapshot(environment, [volume["VolumeId"]])
    if snapshot is None:
        raise DataVolumeError(
            f"the data volume {volume['VolumeId']} in {volume['AvailabilityZone']} is unusable from {zone} and "
            "has no snapshot: restore it by hand (docs/backup-restore.md) or let the instance launch in its AZ"
        )
    created = _create(step, zone, snapshot, "restored: the original stayed unusable")
    _retire(volume, "stranded")
    metrics.add_metric(name="DataRestoredFromSnapshot", unit=MetricUnit.Count, value=1)
    return {**data, **created, "status": "waiting", "reason": f"restored {snapshot['SnapshotId']}"}


def attach(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    if settings.role != "single":
        raise ConfigurationError(f"the data volume step serves the single host only, not role {settings.role!r}")
    data = dict(step.state.get("data") or {})
    reservations = _ec2().describe_instances(InstanceIds=[step.instance_id])["Reservations"]
    instance = reservations[0]["Instances"][0] if reservations else None
    if instance is None or instance["State"]["Name"] in ("shutting-down", "terminated", "stopping", "stopped"):
        return step.update(status="gone", proceed=False, reason="the instance is gone", data=data)
    if not data.get("rebalance_suspended"):
        aws.client("autoscaling").suspend_processes(
            AutoScalingGroupName=settings.group, ScalingProcesses=["AZRebalance"]
        )
        data["rebalance_suspended"] = True
    changes: dict[str, Any] = {}
    if step.heartbeat_due():
        lifecycle.heartbeat(step.action)
        changes["last_heartbeat"] = step.now
    if step.elapsed >= settings.launch_max_seconds:
        return step.update(status="expired", reason="the data volume was not attached in time", data=data, **changes)
    zone = instance["Placement"]["AvailabilityZone"]
    volumes = data_volumes(settings.environment)
    created = data.get("created")
    if len(volumes) > 1 and created in {v["VolumeId"] for v in volumes}:  # a retire interrupted last time
        for volume in volumes:
            if volume["VolumeId"] != created:
                _retire(volume, "moved" if data.get("move_snapshot") else "stranded")
        volumes = [v for v in volumes if v["VolumeId"] == created]
    if len(volumes) > 1:
        raise DataVolumeError(
            f"{len(volumes)} volumes carry {TAG_DATA}={settings.environment} "
            f"({', '.join(v['VolumeId'] for v in volumes)}): keep the tag on the one holding the current data"
        )
    if not volumes:
        snapshot = newest_snapshot(settings.environment, [])
        data |= _create(step, zone, snapshot, "first launch" if snapshot is None else "no volume left")
        outcome = {**data, "status": "waiting", "reason": "volume created"}
    elif volumes[0]["AvailabilityZone"] == zone:
        outcome = _same_zone(step, volumes[0], data)
    else:
        outcome = _other_zone(step, volumes[0], zone, data)
    status = outcome.pop("status")
    logger.info("data volume step", extra={"status": status, "reason": outcome.get("reason"), "zone": zone})
    return step.update(status=status, data=outcome, **changes)


STEPS = {"attach": attach}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.run(event, STEPS, logger=logger, metrics=metrics)
