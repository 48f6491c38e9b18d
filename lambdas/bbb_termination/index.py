"""BBB fleet: Auto Scaling's custom termination policy (Lambda-based), least-loaded first.

Auto Scaling invokes this function synchronously whenever it is about to terminate instances (Cause
SCALE_IN, INSTANCE_REFRESH, MAX_INSTANCE_LIFETIME or REBALANCE) with the instances it suggests
(`Instances`) and how many it needs per zone (`CapacityToTerminate`); the answer is `{"InstanceIDs": [...]}`
(AWS: "Create a custom termination policy with Lambda").

Why this returns exactly the number needed, in a chosen set: AWS does not honour the order of the list. If
more instances come back than it needs, it picks among them with the group's other (here: the default)
policies. So the choice is made here: servers known to hold no meeting first (then servers without a recent
figure, then servers with meetings), and within each group the lowest load first, preferring the zones Auto
Scaling asked for (zone balance yields to meetings: an imbalance is fixed by Auto Scaling later, a busy server
would drain for hours).

Why CloudWatch and not BBB itself: the function must answer within 2 seconds (AWS's limit). One GetMetricData
call reads every candidate's latest Load and Meetings (published each minute by the server itself,
userdata/bbb/load_figure.py); asking each server's getMeetings would need the API secret, HTTPS to every
server and could not finish in time for a large fleet. A figure up to a minute old is enough: the choice only
decides which server drains first; the drain itself (the terminating hook) never ends a meeting.

Failing safe: if CloudWatch cannot be read, the function returns Auto Scaling's own suggestion unchanged.
An empty list would make Auto Scaling retry without terminating anything (for an instance refresh only for an
hour, then the refresh fails); the suggestion keeps scale-in and refreshes going, and the drain keeps them
harmless.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from common import aws, contract, observability

logger, _metrics = observability.tools()

# A server's figures older than this count as unknown (it publishes every 60 s).
FRESH = timedelta(minutes=5)
# GetMetricData: at most 500 queries per call; two per instance.
INSTANCES_PER_CALL = 250

IDLE, UNKNOWN, BUSY = 0, 1, 2


@dataclass(frozen=True)
class Candidate:
    instance_id: str
    zone: str
    load: float | None
    meetings: float | None

    @property
    def tier(self) -> int:
        if self.meetings is None or self.load is None:
            return UNKNOWN
        return BUSY if self.meetings > 0 else IDLE

    def rank(self) -> tuple[int, float, str]:
        return self.tier, self.load if self.load is not None else 0.0, self.instance_id


def capacity_by_zone(event: dict[str, Any]) -> dict[str, int]:
    wanted: dict[str, int] = {}
    for entry in event.get("CapacityToTerminate") or []:
        zone = str(entry.get("AvailabilityZone", ""))
        wanted[zone] = wanted.get(zone, 0) + int(entry.get("Capacity", 0))
    return wanted


def choose(candidates: list[Candidate], wanted: dict[str, int]) -> list[str]:
    """`sum(wanted)` instance ids: by tier (idle, unknown, busy); within a tier, wanted zones first, lowest load."""
    count = sum(wanted.values())
    remaining = dict(wanted)
    chosen: list[str] = []
    for tier in (IDLE, UNKNOWN, BUSY):
        members = sorted((c for c in candidates if c.tier == tier), key=Candidate.rank)
        in_wanted_zone = []
        elsewhere = []
        for member in members:
            if remaining.get(member.zone, 0) > 0:
                remaining[member.zone] -= 1
                in_wanted_zone.append(member)
            else:
                elsewhere.append(member)
        for member in in_wanted_zone + elsewhere:
            if len(chosen) < count:
                chosen.append(member.instance_id)
    return chosen


def latest_figures(group: str, instance_ids: list[str], namespace: str, now: datetime) -> dict[str, dict[str, float]]:
    """instance id -> {"Load": x, "Meetings": y} from each series' newest datapoint within FRESH."""
    figures: dict[str, dict[str, float]] = {}
    cloudwatch = aws.client("cloudwatch")
    for start in range(0, len(instance_ids), INSTANCES_PER_CALL):
        chunk = instance_ids[start : start + INSTANCES_PER_CALL]
        queries, keys = [], {}
        for index, instance_id in enumerate(chunk):
            for prefix, metric in (("l", contract.LOAD_METRIC), ("m", contract.MEETINGS_METRIC)):
                query_id = f"{prefix}{index}"
                keys[query_id] = (instance_id, metric)
                queries.append(
                    {
                        "Id": query_id,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": namespace,
                                "MetricName": metric,
                                "Dimensions": [
                                    {"Name": "AutoScalingGroupName", "Value": group},
                                    {"Name": "InstanceId", "Value": instance_id},
                                ],
                            },
                            "Period": 60,
                            "Stat": "Maximum",
                        },
                        "ReturnData": True,
                    }
                )
        token = None
        while True:
            request: dict[str, Any] = {
                "MetricDataQueries": queries,
                "StartTime": now - FRESH,
                "EndTime": now,
                "ScanBy": "TimestampDescending",
            }
            if token:
                request["NextToken"] = token
            response = cloudwatch.get_metric_data(**request)
            for result in response.get("MetricDataResults", []):
                values = result.get("Values") or []
                if values and result["Id"] in keys:
                    instance_id, metric = keys[result["Id"]]
                    figures.setdefault(instance_id, {}).setdefault(metric, float(values[0]))
            token = response.get("NextToken")
            if not token:
                break
    return figures


def decide(event: dict[str, Any], namespace: str, now: datetime) -> dict[str, list[str]]:
    instances = [i for i in event.get("Instances") or [] if i.get("InstanceId")]
    suggested = [str(i["InstanceId"]) for i in instances]
    wanted = capacity_by_zone(event)
    if not suggested or sum(wanted.values()) <= 0:
        return {"InstanceIDs": suggested}
    try:
        figures = latest_figures(str(event["AutoScalingGroupName"]), suggested, namespace, now)
    except (ClientError, BotoCoreError, KeyError) as exc:
        logger.warning("cannot read the servers' load; returning Auto Scaling's suggestion", extra={"error": str(exc)})
        return {"InstanceIDs": suggested}
    candidates = [
        Candidate(
            instance_id=str(i["InstanceId"]),
            zone=str(i.get("AvailabilityZone", "")),
            load=figures.get(str(i["InstanceId"]), {}).get(contract.LOAD_METRIC),
            meetings=figures.get(str(i["InstanceId"]), {}).get(contract.MEETINGS_METRIC),
        )
        for i in instances
    ]
    chosen = choose(candidates, wanted)
    logger.info(
        "termination choice",
        extra={
            "cause": event.get("Cause"),
            "wanted": wanted,
            "chosen": chosen,
            "has_more": bool(event.get("HasMoreInstances")),
            "candidates": {c.instance_id: {"zone": c.zone, "load": c.load, "meetings": c.meetings} for c in candidates},
        },
    )
    return {"InstanceIDs": chosen}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[str]]:
    namespace = os.environ.get("METRICS_NAMESPACE", "")
    if not namespace:
        logger.error("METRICS_NAMESPACE is not set; redeploy the stack (returning Auto Scaling's suggestion)")
        return {"InstanceIDs": [str(i["InstanceId"]) for i in event.get("Instances") or [] if i.get("InstanceId")]}
    return decide(event, namespace, datetime.now(timezone.utc))
