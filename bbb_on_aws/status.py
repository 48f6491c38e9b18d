"""`bbb-on-aws status`: the deployment as it is now, from the AWS APIs only (read-only calls).

Resources are found the way the automation finds them (docs/host-contract.md): Auto Scaling groups and
instances by the tags `bbb-on-aws:environment` and `bbb-on-aws:role`; state machines by the environment tag
CloudFormation propagates from the stacks; alarms by the stack-name prefix `<environment>-<stack>-` and the
TURN probe alarms' prefix; executions by their contract names `launch-<instance id>` / `drain-<instance id>`.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, field
from typing import Any

from bbb_on_aws.aws_clients import Clients
from lambdas.common.names import (
    TAG_ENVIRONMENT,
    TAG_READY,
    TAG_ROLE,
    instance_host,
    metric_namespace,
    probe_alarm_prefix,
    server_domain,
)

STACK_PARTS = ("network", "shared", "email", "data", "frontend", "fleets", "monitoring")
FAILED_WINDOW = datetime.timedelta(hours=24)

# Auto Scaling lifecycle state -> what it means for a BBB/TURN server here.
STATES = {
    "InService": "serving",
    "Pending": "launching",
    "Pending:Wait": "launching",
    "Pending:Proceed": "launching",
    "Terminating": "draining",
    "Terminating:Wait": "draining",
    "Terminating:Proceed": "leaving",
    "Standby": "standby",
    "EnteringStandby": "standby",
    "Detaching": "detaching",
    "Detached": "detaching",
}


def meaning(lifecycle_state: str) -> str:
    if lifecycle_state.startswith("Warmed:"):
        return "warm pool"
    return STATES.get(lifecycle_state, lifecycle_state.lower())


@dataclass
class Server:
    id: str
    lifecycle_state: str
    state: str
    health: str
    instance_type: str
    zone: str
    public_ip: str | None = None
    ready: bool = False
    since: str | None = None  # draining/launching since (execution start)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Fleet:
    group: str
    role: str
    min: int
    desired: int
    max: int
    servers: list[Server] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Snapshot:
    environment: str
    region: str
    time: str
    fleets: list[Fleet] = field(default_factory=list)
    alarms: list[dict[str, str]] = field(default_factory=list)
    running: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        out = [f"Deployment {self.environment} ({self.region}) at {self.time}"]
        if not self.fleets:
            out.append(f"  no Auto Scaling group tagged {TAG_ENVIRONMENT}={self.environment} in {self.region}")
        for fleet in self.fleets:
            figures = "".join(f", {k} {v:g}" for k, v in fleet.metrics.items())
            out.append(
                f"Fleet {fleet.role}: {fleet.group} desired {fleet.desired} (min {fleet.min}, max {fleet.max}){figures}"
            )
            for s in fleet.servers:
                since = f" since {s.since}" if s.since else ""
                if s.state == "draining" and not s.since:  # the hook fired but no drain runs: see troubleshooting
                    since = " (no drain execution running)"
                figures = "".join(f" {k} {v:g}" for k, v in s.metrics.items())
                out.append(
                    f"  {s.id}  {s.state}{since} ({s.lifecycle_state}, {s.health})  {s.instance_type} "
                    f"{s.zone}  {s.public_ip or '-'}{'' if s.ready else '  not ready'}{figures}"
                )
        out.append(f"Alarms in ALARM: {len(self.alarms) or 'none'}")
        out += [f"  {a['name']}: {a['reason']}" for a in self.alarms]
        out.append(f"Running executions: {len(self.running) or 'none'}")
        out += [f"  {e['name']} since {e['start']} ({e['machine']})" for e in self.running]
        out.append(f"Failed executions in the last 24 h: {len(self.failed) or 'none'}")
        out += [f"  {e['name']} {e['status']} at {e['stop']} ({e['machine']})" for e in self.failed]
        return "\n".join(out)


def _iso(value: Any) -> str:
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def collect(
    environment: str, region: str, clients: Clients | None = None, now: datetime.datetime | None = None
) -> Snapshot:
    aws = clients or Clients(region)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    snapshot = Snapshot(environment, region, _iso(now))
    running, failed = _executions(aws, environment, now)
    snapshot.running, snapshot.failed = running, failed
    started = {e["name"].split("-", 1)[1]: e["start"] for e in running}
    details = _instances(aws, environment)
    paginator = aws.autoscaling.get_paginator("describe_auto_scaling_groups")
    pages = paginator.paginate(Filters=[{"Name": f"tag:{TAG_ENVIRONMENT}", "Values": [environment]}])
    for page in pages:
        for group in page["AutoScalingGroups"]:
            tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
            fleet = Fleet(
                group["AutoScalingGroupName"],
                tags.get(TAG_ROLE, "other"),
                group["MinSize"],
                group["DesiredCapacity"],
                group["MaxSize"],
            )
            members = list(group.get("Instances", [])) + _warm_pool(aws, fleet.group)
            for member in sorted(members, key=lambda m: m["InstanceId"]):
                info = details.get(member["InstanceId"], {})
                fleet.servers.append(
                    Server(
                        id=member["InstanceId"],
                        lifecycle_state=member["LifecycleState"],
                        state=meaning(member["LifecycleState"]),
                        health=member.get("HealthStatus", "-"),
                        instance_type=member.get("InstanceType", info.get("InstanceType", "-")),
                        zone=member.get("AvailabilityZone", "-"),
                        public_ip=info.get("PublicIpAddress"),
                        ready=TAG_READY in {t["Key"] for t in info.get("Tags", [])},
                        since=started.get(member["InstanceId"]),
                    )
                )
            snapshot.fleets.append(fleet)
    snapshot.fleets.sort(key=lambda f: (f.role, f.group))
    _metrics(aws, environment, snapshot.fleets, now)
    snapshot.alarms = _alarms(aws, environment)
    return snapshot


def _instances(aws: Clients, environment: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    filters = [{"Name": f"tag:{TAG_ENVIRONMENT}", "Values": [environment]}]
    for page in aws.ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                found[instance["InstanceId"]] = instance
    return found


def _warm_pool(aws: Clients, group: str) -> list[dict[str, Any]]:
    """Warm-pool members (this deployment uses none; shown if an operator added one)."""
    return list(aws.autoscaling.describe_warm_pool(AutoScalingGroupName=group).get("Instances", []))


def _metrics(aws: Clients, environment: str, fleets: list[Fleet], now: datetime.datetime) -> None:
    """Latest minute of the contract metrics: BBB Meetings/Participants (per server when published with
    InstanceId, and the fleet's sum), TURN Allocations per instance and fleet."""
    namespace = metric_namespace(environment)
    queries: list[dict[str, Any]] = []
    targets: dict[str, tuple[Any, str]] = {}

    def query(target: Any, label: str, name: str, dimensions: dict[str, str], stat: str) -> None:
        qid = f"q{len(queries)}"
        targets[qid] = (target, label)
        queries.append(
            {
                "Id": qid,
                "ReturnData": True,
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                    },
                    "Period": 60,
                    "Stat": stat,
                },
            }
        )

    for fleet in fleets:
        group = {"AutoScalingGroupName": fleet.group}
        names = {
            "bbb": ("Meetings", "Participants"),
            "single": ("Meetings", "Participants"),
            "turn": ("Allocations",),
        }.get(fleet.role, ())
        for name in names:
            query(fleet, name.lower(), name, group, "Sum")
            for server in fleet.servers:
                query(server, name.lower(), name, {**group, "InstanceId": server.id}, "Maximum")
    for start in range(0, len(queries), 500):  # GetMetricData's limit per call
        response = aws.cloudwatch.get_metric_data(
            MetricDataQueries=queries[start : start + 500],
            StartTime=now - datetime.timedelta(minutes=5),
            EndTime=now,
            ScanBy="TimestampDescending",
        )
        for result in response["MetricDataResults"]:
            if result["Values"]:
                target, label = targets[result["Id"]]
                target.metrics[label] = result["Values"][0]


def _alarms(aws: Clients, environment: str) -> list[dict[str, str]]:
    prefixes = (*tuple(f"{environment}-{part}-" for part in STACK_PARTS), probe_alarm_prefix(environment))
    found = []
    for page in aws.cloudwatch.get_paginator("describe_alarms").paginate(StateValue="ALARM"):
        for alarm in page["MetricAlarms"] + page.get("CompositeAlarms", []):
            if alarm["AlarmName"].startswith(prefixes):
                found.append(
                    {
                        "name": alarm["AlarmName"],
                        "reason": alarm.get("StateReason", ""),
                        "since": _iso(alarm.get("StateUpdatedTimestamp")),
                    }
                )
    return found


def _executions(
    aws: Clients, environment: str, now: datetime.datetime
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    running: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    sfn = aws.stepfunctions
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            tags = {
                t["key"]: t["value"]
                for t in sfn.list_tags_for_resource(resourceArn=machine["stateMachineArn"]).get("tags", [])
            }
            if tags.get(TAG_ENVIRONMENT) != environment:
                continue
            for status in ("RUNNING", "FAILED", "TIMED_OUT", "ABORTED"):  # newest first, one page each
                listing = sfn.list_executions(
                    stateMachineArn=machine["stateMachineArn"], statusFilter=status, maxResults=100
                )
                for e in listing["executions"]:
                    if not e["name"].startswith(("launch-", "drain-")):
                        continue
                    row = {
                        "name": e["name"],
                        "machine": machine["name"],
                        "status": e["status"],
                        "start": _iso(e["startDate"]),
                        "stop": _iso(e.get("stopDate")),
                    }
                    if status == "RUNNING":
                        running.append(row)
                    elif e.get("stopDate") and now - e["stopDate"] < FAILED_WINDOW:
                        failed.append(row)
    return sorted(running, key=lambda r: r["start"]), sorted(failed, key=lambda r: r["stop"])


def serving_hosts(
    environment: str,
    region: str,
    domain: str,
    roles: tuple[str, ...] = ("bbb", "single"),
    clients: Clients | None = None,
) -> list[str]:
    """The DNS names (docs/host-contract.md) of the servers of `roles` that serve now (InService and tagged
    ready), for `probe --discover`: BBB servers by default, TURN servers with roles=("turn",)."""
    aws = clients or Clients(region)
    ready = {
        iid
        for iid, info in _instances(aws, environment).items()
        if TAG_READY in {t["Key"] for t in info.get("Tags", [])}
    }
    hosts = []
    pages = aws.autoscaling.get_paginator("describe_auto_scaling_groups").paginate(
        Filters=[{"Name": f"tag:{TAG_ENVIRONMENT}", "Values": [environment]}]
    )
    for page in pages:
        for group in page["AutoScalingGroups"]:
            role = {t["Key"]: t["Value"] for t in group.get("Tags", [])}.get(TAG_ROLE)
            if role not in roles:
                continue
            for member in group.get("Instances", []):
                if member["LifecycleState"] == "InService" and member["InstanceId"] in ready:
                    hosts.append(instance_host(role, member["InstanceId"], server_domain(role, domain)))
    return sorted(hosts)
