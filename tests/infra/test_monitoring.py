"""The dashboard and the operator alarms (stacks/monitoring.py, cdk_constructs/monitoring): every metric they
read is one the hosts, the Lambdas or an AWS service publishes; every alarm notifies the operator and says what
to check first; thresholds come from cdk.json."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cdk_constructs.monitoring.rows import BBB_DISKS
from settings import ConfigError, load_config
from tests.infra.synth import Synth, deployment, synth
from tests.infra.test_quality_gates import cfn_lint

ROOT = Path(__file__).resolve().parents[2]
GUIDE_ANCHORS = {
    "turn-alarm",
    "certificate-alarm",
    "drain-does-not-finish",
    "recording-never-appears",
    "server-not-receiving-meetings",
    "ice-failures-1007-1020",
}
ASG = "AutoScalingGroupName"


def load(relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(relative.replace("/", "_")[:-3], ROOT / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- what is published --------------------------------------------------------------------------------------

# AWS metrics this project reads, with their dimensions, as each service's CloudWatch documentation lists them.
AWS_PUBLISHED: dict[str, tuple[set[str], list[set[str]]]] = {
    "AWS/AutoScaling": (
        {
            "GroupInServiceInstances",
            "GroupDesiredCapacity",
            "GroupPendingInstances",
            "GroupTerminatingInstances",
            "GroupMaxSize",
            "GroupMinSize",
            "GroupTotalInstances",
        },
        [{ASG}],
    ),
    "AWS/EC2": ({"CPUUtilization", "NetworkIn", "NetworkOut", "StatusCheckFailed"}, [{ASG}, {"InstanceId"}]),
    "AWS/States": (
        {
            "ExecutionsStarted",
            "ExecutionsSucceeded",
            "ExecutionsFailed",
            "ExecutionsTimedOut",
            "ExecutionsAborted",
            "ExecutionTime",
        },
        [{"StateMachineArn"}],
    ),
    "AWS/NetworkELB": (
        {
            "ActiveFlowCount",
            "NewFlowCount",
            "ProcessedBytes",
            "ClientTLSNegotiationErrorCount",
            "TargetTLSNegotiationErrorCount",
            "TCP_Client_Reset_Count",
        },
        [{"LoadBalancer"}],
    ),
    "AWS/NetworkELB#tg": ({"HealthyHostCount", "UnHealthyHostCount"}, [{"LoadBalancer", "TargetGroup"}]),
    "AWS/ApplicationELB": (
        {"RequestCount", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "TargetResponseTime"},
        [{"LoadBalancer"}, {"LoadBalancer", "TargetGroup"}],
    ),
    "AWS/ApplicationELB#tg": ({"HealthyHostCount", "UnHealthyHostCount"}, [{"LoadBalancer", "TargetGroup"}]),
    "AWS/ECS": ({"CPUUtilization", "MemoryUtilization"}, [{"ClusterName", "ServiceName"}]),
    "ECS/ContainerInsights": (
        {"RunningTaskCount", "DesiredTaskCount", "PendingTaskCount"},
        [{"ClusterName", "ServiceName"}],
    ),
    "AWS/RDS": (
        {"CPUUtilization", "DatabaseConnections", "ACUUtilization", "ServerlessDatabaseCapacity", "FreeableMemory"},
        [{"DBClusterIdentifier"}],
    ),
    "AWS/ElastiCache": (
        {"EngineCPUUtilization", "CPUUtilization", "DatabaseMemoryUsagePercentage", "Evictions", "CurrConnections"},
        [{"CacheClusterId"}],
    ),
    "AWS/EFS": ({"MeteredIOBytes", "TotalIOBytes", "PercentIOLimit", "ClientConnections"}, [{"FileSystemId"}]),
    "AWS/EFS#storage": ({"StorageBytes"}, [{"FileSystemId", "StorageClass"}]),
    "AWS/CertificateManager": ({"DaysToExpiry"}, [{"CertificateArn"}]),
    "AWS/SES": (
        {"Send", "Delivery", "Bounce", "Complaint", "Reject", "Reputation.BounceRate", "Reputation.ComplaintRate"},
        [set()],
    ),
}


def published(namespace: str) -> set[tuple[str, str, frozenset[str]]]:
    """(namespace, metric, dimension names) of everything the deployment's sources publish."""
    known: set[tuple[str, str, frozenset[str]]] = set()
    for key, (names, dimension_sets) in AWS_PUBLISHED.items():
        for name in names:
            for dims in dimension_sets:
                known.add((key.split("#")[0], name, frozenset(dims)))
    metric_data = load("userdata/common/metric_data.py")
    for name in [*metric_data.BBB_METRICS, *metric_data.RELAY_METRICS]:
        known.add((namespace, name, frozenset({ASG})))
        if name in metric_data.PER_INSTANCE:
            known.add((namespace, name, frozenset({ASG, "InstanceId"})))
    load_figure = load("userdata/bbb/load_figure.py")  # the BBB scaling signal (docs/scaling.md)
    weights = dict.fromkeys(
        ("participant", "voice", "listener", "webcam", "webcamViewer", "screenShareViewer"), 1.0
    )
    empty = "<response><returncode>SUCCESS</returncode><meetings/></response>"
    for datum in load_figure.metric_data(empty, weights, "g", "i-0"):
        known.add((namespace, datum["MetricName"], frozenset(d["Name"] for d in datum["Dimensions"])))
    agent = load("userdata/common/cw_agent_config.py").agent_config("bbb", "s", "a", namespace)["metrics"]
    assert agent["append_dimensions"] == {ASG: "${aws:AutoScalingGroupName}"}
    known.add((namespace, "mem_used_percent", frozenset({ASG})))
    known.add((namespace, "disk_used_percent", frozenset({ASG, "path", "fstype"})))
    prober = (ROOT / "lambdas" / "turn_prober" / "index.py").read_text()
    assert '"MetricName": "UnhealthyTurnInstances"' in prober
    known.add((namespace, "UnhealthyTurnInstances", frozenset({ASG})))
    for source in (ROOT / "lambdas").rglob("*.py"):  # Powertools metrics: dimensions service and the group
        for name in re.findall(r'add_metric\(\s*name="(\w+)"', source.read_text()):
            known.add((namespace, name, frozenset({"service", ASG})))
    return known


# --- what the templates read --------------------------------------------------------------------------------


def resolved(value: Any) -> str:
    """A template string with every token replaced by TOKEN (tokens are resolved by CloudFormation)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(resolved(part) for part in value["Fn::Join"][1])
    return "TOKEN"


def dashboard(s: Synth) -> dict[str, Any]:
    (body,) = [
        r["Properties"]["DashboardBody"]
        for r in s.template("monitoring")["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    return json.loads(resolved(body))


SEARCH = re.compile(r"SEARCH\('\{([^}]*)\} MetricName=\\?\"(\w+)\\?\"")


def widget_metrics(widget: dict[str, Any]) -> list[tuple[str, str, frozenset[str], str | None]]:
    """(namespace, metric, dimension names, region) of each metric of a widget, SEARCH expressions included."""
    found = []
    properties = widget["properties"]
    for row in properties.get("metrics", []):
        options = row[-1] if isinstance(row[-1], dict) else {}
        if "expression" in options:
            for match in SEARCH.finditer(options["expression"]):
                namespace, *dims = match.group(1).split(",")
                found.append((namespace, match.group(2), frozenset(dims), properties.get("region")))
            continue
        namespace, name, *rest = [item for item in row if not isinstance(item, dict)]
        found.append((namespace, name, frozenset(rest[0::2]), options.get("region", properties.get("region"))))
    return found


def alarms(s: Synth, part: str = "monitoring") -> dict[str, dict[str, Any]]:
    return {
        k: r["Properties"] for k, r in s.template(part)["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, frozenset[str]]]:
    stats = [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m]
    if "MetricName" in alarm:
        stats.append(alarm)
    return [(m["Namespace"], m["MetricName"], frozenset(d["Name"] for d in m.get("Dimensions", []))) for m in stats]


# --- tests --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["scalable", "single"])
def test_every_widget_and_alarm_reads_a_published_metric(shape: str) -> None:
    s = synth(shape, "dev")
    known = published(s.config.metric_namespace)
    body = dashboard(s)
    read = [m for w in body["widgets"] for m in widget_metrics(w)]
    assert len(read) > (60 if shape == "scalable" else 40)
    unknown = {m[:3] for m in read} - known
    assert not unknown, f"widgets read metrics nobody publishes: {sorted(unknown)}"
    ses_regions = {region for namespace, _, _, region in read if namespace == "AWS/SES"}
    assert ses_regions == {s.config.environment.region}  # sesRegion null: SES in the deployment's region
    for name, alarm in alarms(s).items():
        assert set(alarm_metrics(alarm)) <= known, name


def test_disks_watched_are_the_ones_the_agent_measures() -> None:
    disks = load("userdata/common/cw_agent_config.py").DISKS
    assert tuple(disks["bbb"]) == BBB_DISKS
    s = synth("scalable", "dev")
    watched = {
        (resolved(d["Value"]))
        for alarm in alarms(s).values()
        for m in alarm.get("Metrics", [{"MetricStat": {"Metric": alarm}}])
        if m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "disk_used_percent"
        for d in m["MetricStat"]["Metric"]["Dimensions"]
        if d["Name"] == "path"
    }
    assert watched == set(disks["bbb"]) | set(disks["turn"])


def test_group_metrics_read_are_collected_by_the_fleets() -> None:
    s = synth("scalable", "dev")
    read = {m[1] for w in dashboard(s)["widgets"] for m in widget_metrics(w) if m[0] == "AWS/AutoScaling"}
    read |= {m[1] for a in alarms(s).values() for m in alarm_metrics(a) if m[0] == "AWS/AutoScaling"}
    groups = [
        r["Properties"]
        for r in s.template("fleets")["Resources"].values()
        if r["Type"] == "AWS::AutoScaling::AutoScalingGroup"
    ]
    assert len(groups) == 2
    for group in groups:
        assert read <= set(group["MetricsCollection"][0]["Metrics"])
    clusters = [
        r["Properties"] for r in s.template("frontend")["Resources"].values() if r["Type"] == "AWS::ECS::Cluster"
    ]
    assert clusters[0]["ClusterSettings"] == [{"Name": "containerInsights", "Value": "enhanced"}]


@pytest.mark.parametrize("shape", ["scalable", "single"])
def test_every_alarm_notifies_the_operator_and_says_what_to_check(shape: str) -> None:
    s = synth(shape, "dev")
    topic = "OperatorTopic"
    own = alarms(s)
    for name, alarm in own.items():
        for key in ("AlarmActions", "OKActions"):
            assert len(alarm[key]) == 1 and topic in json.dumps(alarm[key]), f"{name} {key}"
        description = alarm["AlarmDescription"]
        assert "Check first: " in description, name
        anchor = description.rsplit("Guide: docs/troubleshooting.md", 1)[1]
        assert anchor == "" or anchor[1:] in GUIDE_ANCHORS, f"{name}: unknown guide section {anchor}"
    # The alarms made elsewhere have an action too, and the status widget shows every alarm of the deployment.
    existing = alarms(s, "fleets")
    assert existing and all(a.get("AlarmActions") for a in existing.values())
    # The fleets' own alarms say what to check too; a Lambda's Errors alarm points at its own log group.
    for name, alarm in existing.items():
        description = resolved(alarm["AlarmDescription"])
        if description.endswith("the function failed (see its log group)"):
            continue
        assert "Check first: " in description, name
        assert description.rsplit("Guide: docs/troubleshooting.md#", 1)[1] in GUIDE_ANCHORS, name
    (status,) = [w for w in dashboard(s)["widgets"] if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == len(own) + len(existing)


def by_id(s: Synth) -> dict[str, dict[str, Any]]:
    """Alarms by construct id (the logical id without CDK's hash)."""
    return {re.sub(r"^Alarms|[0-9A-F]{8}$", "", k): v for k, v in alarms(s).items()}


def test_the_alarm_list_by_shape_and_stage() -> None:
    common = {
        "TurnAtCapacity",
        "BbbAtCapacity",
        "CertificateExpiry",
        "ServerCertificateExpiry",
        "SesBounceRate",
        "SesComplaintRate",
        "BbbDiskData",
        "BbbDiskRoot",
        "TurnDiskRoot",
    }
    scalable = {"Frontend5xxRate", "ImporterNotRunning", "DatabaseCpu", "DatabaseCapacity", "RecordingSpoolAge"}
    assert set(by_id(synth("single", "dev"))) == common
    assert set(by_id(synth("scalable", "dev"))) == common | scalable | {"CacheCpu1", "CacheMemory1"}
    prod = by_id(synth("scalable", "prod"))
    assert set(prod) == common | scalable | {"CacheCpu1", "CacheMemory1", "CacheCpu2", "CacheMemory2"}
    nodes = {
        resolved(prod[f"CacheCpu{n}"]["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"][0]["Value"]) for n in (1, 2)
    }
    assert nodes == {"TOKEN-001", "TOKEN-002"}  # <replication group id>-00n: the member nodes


def test_thresholds_come_from_cdk_json_and_ses_elsewhere_gets_graphs_not_alarms() -> None:
    default = by_id(synth("scalable", "dev"))
    assert default["TurnAtCapacity"]["Threshold"] == 90
    # TURN: 80 % (relayPortsTargetPercent) of the 10,000 allocations totalQuota allows; BBB: 70 %
    # (loadTargetPercent) of an 8-vCPU c5a.2xlarge's 400 load units.
    assert default["TurnAtCapacity"]["Metrics"][0]["Expression"] == "IF(desired >= 4, 100 * load / 8000, 0)"
    assert default["BbbAtCapacity"]["Metrics"][0]["Expression"] == "IF(desired >= 3, 100 * load / 280.0, 0)"
    assert default["SesBounceRate"]["Threshold"] == 0.05
    assert default["RecordingSpoolAge"]["Threshold"] == 3600
    assert default["CertificateExpiry"]["ComparisonOperator"] == "LessThanThreshold"
    assert default["ServerCertificateExpiry"]["Threshold"] == 10
    assert default["ImporterNotRunning"]["TreatMissingData"] == "breaching"
    changed = synth(
        "scalable",
        "dev",
        **{
            "monitoring.capacityPercent": 75,
            "monitoring.spoolAgeMinutes": 15,
            "turn.maxInstances": 6,
            "sesRegion": "us-east-1",
        },
    )
    other = by_id(changed)
    assert other["TurnAtCapacity"]["Threshold"] == 75
    assert other["TurnAtCapacity"]["Metrics"][0]["Expression"] == "IF(desired >= 6, 100 * load / 8000, 0)"
    assert other["RecordingSpoolAge"]["Threshold"] == 900
    assert not {"SesBounceRate", "SesComplaintRate"} & set(other)  # an alarm reads its own region only...
    # ...so they are in the SES region's stack, with that region's own operator topic, cdk-nag and cfn-lint clean.
    assert changed.error is None, changed.error
    email = alarms(changed, "email")
    assert sorted(re.sub(r"[0-9A-F]{8}$", "", k) for k in email) == ["SesBounceRate", "SesComplaintRate"]
    topics = [k for k, r in changed.template("email")["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    for alarm in email.values():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topics[0]}]
        assert alarm["Metrics"][0]["MetricStat"]["Metric"]["Namespace"] == "AWS/SES"
    lint = cfn_lint([str(changed.outdir / f"{changed.config.prefix}-email.template.json")], "us-east-1")
    assert lint.returncode & 3 == 0, lint.stdout + lint.stderr
    ses = {m[3] for w in dashboard(changed)["widgets"] for m in widget_metrics(w) if m[0] == "AWS/SES"}
    assert ses == {"us-east-1"}


def test_a_bad_threshold_fails_synth_naming_the_key() -> None:
    section = deployment(**{"monitoring.capacityPercent": 5, "monitoring.sesBouncePercent": "high"})
    with pytest.raises(ConfigError) as info:
        load_config({"deployment": section})
    assert info.value.problems == [
        "deployment.monitoring.capacityPercent: 5 must be at least 10",
        "deployment.monitoring.sesBouncePercent: expected a number, got 'high'",
    ]
