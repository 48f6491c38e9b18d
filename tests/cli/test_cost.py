"""`bbb-on-aws cost` against figures computed by hand from bbb_on_aws/prices.json (730 h a month, GB = 2^30
bytes), for the default configuration and for a single-shape one in another region; one changed value changes
exactly the lines it should; what the table cannot price is an error, never a zero."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bbb_on_aws import cost
from bbb_on_aws.cli import main

SNAPSHOTS = Path(__file__).resolve().parent.parent / "infra" / "__snapshots__" / "test_quality_gates"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict | str]:
    code = main(["cost", "--json", *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else captured.err


def table(result: dict) -> dict[str, tuple[float, float, float]]:
    return {line["component"]: (line["min"], line["desired"], line["max"]) for line in result["lines"]}


# eu-west-1, scalable, dev (cdk.json as committed). Per line: price x quantity x 730 h, rounded to cents.
DEFAULT = {
    "EC2 TURN servers": (16.64, 33.29, 66.58),  # t3.small 0.0228 x 730 = 16.644, x1/x2/x4
    "EBS TURN servers": (0.88, 1.76, 3.52),  # gp3 0.088 x 10 GiB
    "EC2 BBB servers": (254.04, 254.04, 762.12),  # c5a.2xlarge 0.348 x 730, x1/x1/x3
    "EBS BBB servers": (12.32, 12.32, 36.96),  # 0.088 x (40 + 100) GiB
    # Stopped prepared servers: volumes only; max(minSize 0, maxInstances 3 - servers) = 2/2/0 of them.
    "EBS BBB servers warm pool": (24.64, 24.64, 0.00),
    "EC2 ECS instances": (59.57, 119.14, 238.27),  # t3a.large 0.0816 x 730 = 59.568, x1/x2/x4
    "EBS ECS instances": (2.64, 5.28, 10.56),  # 0.088 x 30 GiB
    "Public IPv4": (32.85, 36.50, 51.10),  # 0.005 x 730 = 3.65 x (1 NAT + 3 ALB + 3 NLB + TURN + BBB) = 9/10/14
    "NAT gateways": (37.44,) * 3,  # 0.048 x 730 + 50 GB x 0.048
    "Application Load Balancer": (24.24,) * 3,  # (0.0252 + 1 LCU x 0.008) x 730 = 24.236
    "Network Load Balancer (turns:443)": (22.78,) * 3,  # (0.0252 + 0.006) x 730 = 22.776
    "Aurora PostgreSQL (Serverless v2)": (47.45, 47.45, 379.60),  # 0.13 x 730 x 0.5/0.5/4 ACU, one instance
    "Aurora storage": (1.10,) * 3,  # 0.11 x 10 GB
    "ElastiCache (valkey)": (10.04,) * 3,  # cache.t4g.micro 0.0172 x (1 - 0.2) x 730 = 10.0448
    "EFS recordings": (33.00,) * 3,  # 0.33 x 100 GB
    "Secrets Manager": (4.80,) * 3,  # 12 x 0.40
    "KMS": (2.00,) * 3,  # 2 x 1.00 (shared stack, fleet certificate)
    "CloudWatch alarms": (5.20, 5.30, 5.50),  # (51 + TURN servers) x 0.10
    "CloudWatch custom metrics": (13.20, 13.80, 16.20),  # (40 + 2 x TURN servers + 2 x BBB servers) x 0.30
    "CloudWatch dashboard + logs": (5.85,) * 3,  # 3 + 5 GB x 0.57
    "Route 53 hosted zone": (0.50,) * 3,
    "Route 53 health checks": (0.50, 1.00, 2.00),  # 0.50 per TURN server
    "Data transfer out (media)": (398.31,) * 3,  # 8800 h x 3600 s x 150 kB/s / 2^30 = 4425.66 GB x 0.09
    "Relayed TURN traffic (TURN <-> BBB hop)": (22.13,) * 3,  # 20% x 8800 h x 187.5 kB/s = 1106.4 GB x 0.01 x 2
}

SINGLE = {
    "EC2 TURN servers": (7.59, 15.18, 30.37),  # t3.micro 0.0104 x 730 = 7.592, x1/x2/x4
    "EBS TURN servers": (0.80, 1.60, 3.20),  # gp3 0.08 x 10 GiB
    "EC2 BBB+Greenlight host": (224.84,) * 3,  # c5a.2xlarge 0.308 x 730
    "EBS BBB+Greenlight host": (11.20,) * 3,  # 0.08 x 140 GiB
    "Public IPv4": (18.25, 21.90, 29.20),  # 3.65 x (3 NLB + host + TURN) = 5/6/8; no NAT, no ALB
    "Network Load Balancer (turns:443)": (20.81,) * 3,  # (0.0225 + 0.006) x 730 = 20.805
    "Secrets Manager": (2.40,) * 3,  # 6 x 0.40
    "KMS": (1.00,) * 3,
    "CloudWatch alarms": (4.30, 4.40, 4.60),  # (42 + TURN servers) x 0.10
    "CloudWatch custom metrics": (13.20, 13.80, 15.00),  # (40 + 2 x TURN servers + 2 x 1 host) x 0.30
    "CloudWatch dashboard + logs": (5.50,) * 3,  # 3 + 5 GB x 0.50
    "Route 53 hosted zone": (0.50,) * 3,
    "Route 53 health checks": (0.50, 1.00, 2.00),
    "Data transfer out (media)": (398.31,) * 3,
    "Relayed TURN traffic (TURN <-> BBB hop)": (22.13,) * 3,
}
SINGLE_ARGS = [
    "-c", "deployment.environment.type=single", "-c", "deployment.environment.region=us-east-1",
    "-c", 'deployment.network.availabilityZones=["us-east-1a","us-east-1b","us-east-1c"]',
    "-c", "deployment.turn.instanceType=t3.micro",
]  # fmt: skip


def test_default_configuration(capsys):
    code, result = run(capsys)
    assert code == 0
    assert result["region"] == "eu-west-1" and result["currency"] == "USD"
    assert table(result) == DEFAULT
    assert result["total"] == pytest.approx(1116.71, abs=0.005)
    assert result["total"] == pytest.approx(sum(v[1] for v in DEFAULT.values()), abs=0.005)
    assert result["total_min"] == pytest.approx(sum(v[0] for v in DEFAULT.values()), abs=0.005)
    assert result["total_max"] == pytest.approx(sum(v[2] for v in DEFAULT.values()), abs=0.005)
    assert result["prices"]["date"] == "2026-12-06" and set(result["prices"]["sources"]) == {"A", "R"}


def test_single_shape_in_us_east_1(capsys):
    code, result = run(capsys, *SINGLE_ARGS)
    assert code == 0
    assert result["region"] == "us-east-1"
    assert table(result) == SINGLE
    assert result["total"] == pytest.approx(744.57, abs=0.005)


@pytest.mark.parametrize(
    ("override", "changed"),
    [
        (
            "deployment.bbb.maxInstances=5",
            {
                ("EC2 BBB servers", 2),
                ("EBS BBB servers", 2),
                ("Public IPv4", 2),
                ("CloudWatch custom metrics", 2),
                ("EBS BBB servers warm pool", 0),  # the pool prepares up to the maximum: 4/4/0
                ("EBS BBB servers warm pool", 1),
            },
        ),
        # Running prepared servers cost the instance and keep a public IPv4 (2/2/0 of them).
        (
            "deployment.bbb.warmPool.poolState=Running",
            {("EC2 BBB servers warm pool", i) for i in (0, 1)} | {("Public IPv4", i) for i in (0, 1)},
        ),
        # A TURN pool (off by default): 4 - 1/2/4 servers stopped, volumes only.
        ("deployment.turn.warmPool.enabled=true", {("EBS TURN servers warm pool", i) for i in (0, 1)}),
        ("deployment.bbb.warmPool.enabled=false", {("EBS BBB servers warm pool", i) for i in (0, 1)}),
        (
            "deployment.turn.desiredInstances=3",
            {
                ("EC2 TURN servers", 1),
                ("EBS TURN servers", 1),
                ("Public IPv4", 1),
                ("CloudWatch alarms", 1),
                ("CloudWatch custom metrics", 1),
                ("Route 53 health checks", 1),
            },
        ),
        (
            "deployment.cache.engine=redis",
            {("ElastiCache (redis)", 0), ("ElastiCache (redis)", 1), ("ElastiCache (redis)", 2)},
        ),
        (
            "deployment.bbb.dataVolumeGib=200",
            {("EBS BBB servers", i) for i in range(3)} | {("EBS BBB servers warm pool", i) for i in (0, 1)},
        ),
    ],
)
def test_one_value_changes_exactly_its_lines(capsys, override, changed):
    _, before = run(capsys)
    code, after = run(capsys, "-c", override)
    assert code == 0
    old, new = table(before), table(after)
    renamed = {"ElastiCache (valkey)": "ElastiCache (redis)"} if "engine" in override else {}
    old = {renamed.get(k, k): v for k, v in old.items()}
    zero = (0.0, 0.0, 0.0)  # a line only one side has
    diff = {(name, i) for name in {*new, *old} for i in range(3) if new.get(name, zero)[i] != old.get(name, zero)[i]}
    assert diff == changed
    assert after["total_max"] >= before["total_max"]


def test_usage_flags_change_only_usage_lines(capsys):
    _, before = run(capsys)
    code, after = run(capsys, "--participant-hours", "17600", "--recordings-gb", "0")
    assert code == 0
    old, new = table(before), table(after)
    assert {k for k in new if new[k] != old[k]} == {
        "Data transfer out (media)",
        "Relayed TURN traffic (TURN <-> BBB hop)",
        "EFS recordings",
    }
    assert new["Data transfer out (media)"][1] == pytest.approx(8851.32 * 0.09, abs=0.01)  # twice the GB, first tier
    assert new["EFS recordings"] == (0.0, 0.0, 0.0)


def test_tiers_apply_beyond_ten_terabytes():
    tiers = [[10240, 0.09], [40960, 0.085], [102400, 0.07], [None, 0.05]]
    assert cost.tiered(20000, tiers) == pytest.approx(10240 * 0.09 + 9760 * 0.085)
    assert cost.tiered(200000, tiers) == pytest.approx(10240 * 0.09 + 30720 * 0.085 + 61440 * 0.07 + 97600 * 0.05)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "-c",
                "deployment.environment.region=ap-south-1",
                "-c",
                'deployment.network.availabilityZones=["ap-south-1a","ap-south-1b","ap-south-1c"]',
            ],
            "no prices for region 'ap-south-1'",
        ),
        (["-c", "deployment.bbb.instanceType=c5a.2xlarg"], "'c5a.2xlarg' is not an EC2 instance type"),
        (["-c", "deployment.turn.instanceType=m5.large"], "no price for instance type 'm5.large' in eu-west-1"),
        (
            ["-c", "deployment.database.capacity=provisioned", "-c", "deployment.database.instanceClass=db.x2g.large"],
            "deployment.database.instanceClass: no price for auroraInstance['db.x2g.large']",
        ),
        (["-c", "deployment.bbb.minInstances=9"], "minInstances <= desiredInstances <= maxInstances"),
        (["-c", "deployment.bbb"], "expected KEY=VALUE"),
    ],
)
def test_what_cannot_be_priced_is_an_error(capsys, args, message):
    code, error = run(capsys, *args)
    assert code == 2
    assert message in error
    if "c5a.2xlarg'" in message:
        assert "did you mean c5a.2xlarge" in error and "deployment.bbb.instanceType" in error


def test_text_table_has_every_line_and_the_total(capsys):
    assert main(["cost"]) == 0
    out = capsys.readouterr().out
    for component in DEFAULT:
        assert component in out
    assert out.splitlines()[len(DEFAULT) + 2].split()[-3:] == ["1,032.12", "1,116.71", "2,134.60"]


@pytest.mark.parametrize("shape", ["scalable", "single"])
def test_resource_counts_match_the_synthesized_templates(shape):
    """The counts cost.py keeps (secrets, alarms) are those of the snapshot templates of each shape."""
    counts: Counter[str] = Counter()
    for path in SNAPSHOTS.glob(f"*[[]{shape}-dev[]]*.json"):
        counts.update(resource["Type"] for resource in json.loads(path.read_text())["Resources"].values())
    assert counts["AWS::SecretsManager::Secret"] == cost.SECRETS[shape]
    assert counts["AWS::CloudWatch::Alarm"] == cost.STATIC_ALARMS[shape]
    assert counts["AWS::KMS::Key"] == cost.KMS_KEYS[shape]


def test_fargate_frontend_replaces_the_ecs_instances(capsys):
    code, result = run(capsys, "-c", "deployment.frontend.capacity=fargate")
    assert code == 0
    lines = table(result)
    assert "EC2 ECS instances" not in lines and "EBS ECS instances" not in lines
    # eu-west-1 Fargate: 0.04048 per vCPU-h + 0.004445 per GB-h, 730 h
    assert lines["Fargate greenlight"] == (36.04,) * 3  # 2 x (0.5 x 0.04048 + 1 x 0.004445) x 730 = 36.040
    assert lines["Fargate scalelite web"] == (72.08,) * 3  # 2 x (1 x 0.04048 + 2 x 0.004445) x 730 = 72.080
    assert lines["Fargate scalelite poller"] == (9.01,) * 3  # 0.25 x 0.04048 + 0.5 x 0.004445 = 0.0123425 x 730
    assert lines["Fargate scalelite importer"] == (9.01,) * 3
