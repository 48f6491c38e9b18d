"""docs/operations.md is true: its commands run or call real AWS APIs, its deploy order is the CDK's, its quota
figures follow from cdk.json, and every file it cites exists."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from cdk_json import read_cdk_json
from tests.conftest import ROOT
from tests.docs.aws_cli_model import check
from tests.docs.doc_blocks import OPERATIONS, RELAY_README, aws_invocations, marked_blocks

TEXT = OPERATIONS.read_text()
BLOCKS = marked_blocks(OPERATIONS)
DEPLOYMENT = read_cdk_json(ROOT / "cdk.json")["context"]["deployment"]
# vCPUs of the instance types cdk.json uses by default (AWS's published figures).
VCPUS = {"t3a.large": 2, "c5a.2xlarge": 8, "t3.small": 2}
NONE = "\N{EN DASH}"  # an empty table cell


def run(command: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"source scripts/env.sh; {command}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ},
    )


def test_the_marked_commands_are_there() -> None:
    assert set(BLOCKS) == {"check-cdk-json", "synth", "deploy"}
    assert BLOCKS["synth"].strip() == "./scripts/synth.sh"  # run on a copy of the repo: tests/infra/test_scripts.py
    assert "npx cdk deploy --all" in BLOCKS["deploy"]


def test_the_cdk_json_check_runs() -> None:
    result = run(BLOCKS["check-cdk-json"])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("doc", [OPERATIONS, RELAY_README], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_aws_command_matches_the_api_model(doc) -> None:
    calls = aws_invocations(doc)
    for words in calls:
        check(words)
    assert len(calls) >= (30 if doc == OPERATIONS else 0)


def test_the_api_model_check_can_fail() -> None:
    for wrong, problem in [
        (["aws", "ec2", "describe-instance"], "no such operation"),
        (
            ["aws", "rds", "modify-db-cluster", "--db-cluster-identifier", "x", "--no-deletion-protectio"],
            "unknown parameter --no-deletion-protectio",
        ),
        (["aws", "sns", "list-subscriptions-by-topic"], "missing required ['topic-arn']"),
        (
            [
                "aws",
                "autoscaling",
                "start-instance-refresh",
                "--auto-scaling-group-name",
                "g",
                "--preferences",
                '{"MinHealthy": 100}',
            ],
            "'MinHealthy' is not one of",
        ),
    ]:
        with pytest.raises(AssertionError, match=re.escape(problem)):
            check(wrong)


@pytest.mark.slow
def test_the_deploy_order_table_is_the_cdk_order(tmp_path) -> None:
    listed = run(f"npx cdk ls --no-notices -o {tmp_path}", timeout=600)
    assert listed.returncode == 0, listed.stderr
    name = DEPLOYMENT["environment"]["name"]
    order = re.findall(r"^\| \d \| `<env>-(\w+)` \| ([^|]+) \|", TEXT, re.M)
    assert [f"{name}-{stack}" for stack, _ in order] == listed.stdout.split()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for stack, depends in order:
        artifact = manifest["artifacts"][f"{name}-{stack}"]
        wanted = {f"{name}-{d.strip()}" for d in depends.split(",") if d.strip() != NONE}
        assert {d for d in artifact.get("dependencies", []) if not d.endswith(".assets")} == wanted, stack


def _vcpus(section: str, count: str) -> int:
    part = DEPLOYMENT[section]
    return part[count] * VCPUS[part["instanceType"]]


def _quota_row(label: str) -> list[str]:
    row = next(line for line in TEXT.splitlines() if line.startswith(f"| {label}"))
    return [cell.strip() for cell in row.strip("|").split("|")][1:]


def test_quota_figures_follow_from_cdk_json() -> None:
    frontend, bbb, turn = DEPLOYMENT["frontend"], DEPLOYMENT["bbb"], DEPLOYMENT["turn"]
    assert frontend["capacity"] == "ec2" and not DEPLOYMENT["clusterProxy"]["enabled"]
    scalable = [sum(_vcpus(s, f"{kind}Instances") for s in ("frontend", "bbb", "turn")) for kind in ("desired", "max")]
    single = [VCPUS[bbb["instanceType"]] + _vcpus("turn", f"{kind}Instances") for kind in ("desired", "max")]
    assert _quota_row("EC2: Running On-Demand Standard") == [
        f"{scalable[0]} / {scalable[1]}",
        f"{single[0]} / {single[1]}",
    ]
    zones = len(DEPLOYMENT["network"]["availabilityZones"])
    assert _quota_row("EC2-VPC Elastic IPs") == [f"dev 1, stage/prod {zones}", "0"]
    checks = f"{turn['desiredInstances']} / {turn['maxInstances']}"
    assert _quota_row("Route 53 health checks") == [checks, checks]
    # Fargate: task CPU units / 1024 per task; Greenlight and Scalelite web scale to 3x their tasks (frontend.py).
    web = (frontend["scaleliteApi"]["cpu"] + frontend["scaleliteNginx"]["cpu"]) / 1024
    greenlight = frontend["greenlight"]["cpu"] / 1024
    background = (frontend["scalelitePoller"]["cpu"] + frontend["scaleliteImporter"]["cpu"]) / 1024
    desired = greenlight * frontend["greenlightTasks"] + web * frontend["scaleliteApiTasks"] + background
    most = greenlight * frontend["greenlightTasks"] * 3 + web * frontend["scaleliteApiTasks"] * 3 + background
    assert _quota_row("Fargate On-Demand vCPU") == [f"{desired:g} / {most:g}", NONE]
    for section, label in (("frontend", "ECS container instances"), ("bbb", "BBB servers"), ("turn", "TURN relays")):
        cells = _quota_row(label)
        part = DEPLOYMENT[section]
        assert f"`{part['instanceType']}`" in next(line for line in TEXT.splitlines() if line.startswith(f"| {label}"))
        assert cells[0] == str(VCPUS[part["instanceType"]])
        assert cells[1].startswith(f"{part['desiredInstances']} / {part['maxInstances']}")
    assert f"({scalable[1] + VCPUS[bbb['instanceType']]} for the" in TEXT  # the suggested request: max + one BBB


def test_every_cited_repository_path_exists() -> None:
    cited = set(re.findall(r"`((?:stacks|cdk_constructs|lambdas|userdata|scripts|docs|relay)/[\w./-]+)`", TEXT))
    cited |= set(re.findall(r"\]\(\.\./([\w./-]+?)(?:#[\w-]+)?\)", TEXT))
    assert len(cited) >= 10
    missing = sorted(path for path in cited if not (ROOT / path).exists())
    assert not missing, missing


def _kept(shape: str, stage: str) -> dict[str, set[str]]:
    """DeletionPolicy (other than Delete) -> resource types, over every stack of one variant."""
    from tests.infra.synth import synth  # the infra tests' cached synthesis

    kept: dict[str, set[str]] = {}
    for template in synth(shape, stage).templates().values():
        for resource in template["Resources"].values():
            if resource.get("DeletionPolicy", "Delete") != "Delete":
                kept.setdefault(resource["DeletionPolicy"], set()).add(resource["Type"])
    return kept


@pytest.mark.slow
def test_destroy_table_matches_the_templates() -> None:
    assert _kept("scalable", "dev") == {} and _kept("single", "dev") == {}
    assert _kept("scalable", "prod") == {
        "Retain": {"AWS::EFS::FileSystem", "AWS::Logs::LogGroup", "AWS::S3::Bucket", "AWS::SecretsManager::Secret",
                   "AWS::Backup::BackupVault", "AWS::KMS::Key"},
        "Snapshot": {"AWS::RDS::DBCluster", "AWS::ElastiCache::ReplicationGroup"},
    }
    assert _kept("single", "prod") == {
        "Retain": {"AWS::Logs::LogGroup", "AWS::S3::Bucket", "AWS::Backup::BackupVault", "AWS::KMS::Key"}
    }
    rows = {
        "| Aurora cluster | deleted, no final snapshot | a final snapshot is kept",
        "| Valkey replication group | deleted | a final snapshot is kept |",
        "| EFS recordings file system | deleted | **retained**",
        "| Greenlight and Scalelite database login secrets | deleted | retained |",
        "| S3 access-log buckets of the ALB and the NLB | emptied and deleted | retained |",
        "| AWS Backup vault and its KMS key (the recovery points) | none in dev (no plan) | **retained**",
        "| The single host's data volume | **retained** | **retained**",
    }
    assert all(row in TEXT for row in rows)


def test_the_readme_links_both_guides() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "](docs/operations.md)" in readme and "](relay/README.md)" in readme
