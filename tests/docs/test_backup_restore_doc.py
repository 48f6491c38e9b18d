"""docs/backup-restore.md is true: the names its table promises exist in the synthesized templates of each
shape and stage (and nothing is backed up where it says "off"), its plan table is cdk.json's, and every
`aws` command in it calls a real API with real parameters."""

from __future__ import annotations

import re
from typing import Any

import pytest

import contract
from cdk_json import read_cdk_json
from tests.conftest import ROOT
from tests.docs.aws_cli_model import check
from tests.docs.doc_blocks import aws_invocations
from tests.infra.synth import synth

DOC = ROOT / "docs" / "backup-restore.md"
TEXT = DOC.read_text()
DEPLOYMENT = read_cdk_json(ROOT / "cdk.json")["context"]["deployment"]
ENV = DEPLOYMENT["environment"]["name"]
ROW = re.compile(r"^\| (?P<what>[^|`]+?) \| `(?P<name>[^`]+)` \|$", re.M)


def promised() -> dict[str, str]:
    section = TEXT.split("## What the templates create", 1)[1].split("\n## ", 1)[0]
    rows = {m["what"]: m["name"].replace("<env>", ENV) for m in ROW.finditer(section)}
    assert len(rows) == 7, rows
    return rows


def resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


def backup_parts(shape: str, stage: str) -> dict[str, Any]:
    found: dict[str, Any] = {"vaults": [], "plans": [], "selections": {}, "templates": {}}
    for name, template in synth(shape, stage).templates().items():
        found["templates"][name] = template
        found["vaults"] += [v["BackupVaultName"] for v in resources(template, "AWS::Backup::BackupVault")]
        found["plans"] += resources(template, "AWS::Backup::BackupPlan")
        for selection in resources(template, "AWS::Backup::BackupSelection"):
            found["selections"][selection["BackupSelection"]["SelectionName"]] = (name, selection["BackupSelection"])
    return found


def _logical_id(template: dict[str, Any], kind: str, **props: Any) -> str:
    [lid] = [
        lid
        for lid, r in template["Resources"].items()
        if r["Type"] == kind and all(r["Properties"].get(k) == v for k, v in props.items())
    ]
    return lid


@pytest.mark.parametrize("stage", ["stage", "prod"])
def test_the_scalable_shape_backs_up_aurora_and_the_recordings_as_documented(stage: str) -> None:
    rows = promised()
    parts = backup_parts("scalable", stage)
    assert parts["vaults"] == [rows["vault"]]
    [plan] = parts["plans"]
    assert plan["BackupPlan"]["BackupPlanName"] == rows["plan"]
    documented = {rows["Aurora selection (data stack)"], rows["recordings selection (data stack)"]}
    assert set(parts["selections"]) == documented
    stack, database = parts["selections"][rows["Aurora selection (data stack)"]]
    assert stack == f"{ENV}-data"
    data = parts["templates"][stack]
    cluster = _logical_id(data, "AWS::RDS::DBCluster", DBClusterIdentifier=rows["Aurora cluster identifier"])
    assert cluster in str(database["Resources"])
    _stack, recordings = parts["selections"][rows["recordings selection (data stack)"]]
    [file_system] = [lid for lid, r in data["Resources"].items() if r["Type"] == "AWS::EFS::FileSystem"]
    assert file_system in str(recordings["Resources"])
    # one plan, one vault: EFS's own automatic backup is off when the plan is on
    [efs] = resources(data, "AWS::EFS::FileSystem")
    assert "BackupPolicy" not in efs  # CreateFileSystem's default: no automatic backup
    # the vault's key is the deployment's own, and rotates
    [vault] = resources(data, "AWS::Backup::BackupVault")
    key = vault["EncryptionKeyArn"]["Fn::GetAtt"][0]
    assert data["Resources"][key]["Type"] == "AWS::KMS::Key"
    assert data["Resources"][key]["Properties"]["EnableKeyRotation"] is True


@pytest.mark.parametrize("stage", ["stage", "prod"])
def test_the_single_shape_backs_up_its_data_volume_by_the_documented_tag(stage: str) -> None:
    rows = promised()
    parts = backup_parts("single", stage)
    assert parts["vaults"] == [rows["vault"]]
    stack, selection = parts["selections"][rows["single data volume selection (fleets stack)"]]
    assert stack == f"{ENV}-fleets" and len(parts["selections"]) == 1
    key, value = rows["single data volume tag"].split("=")
    assert selection["ListOfTags"] == [{"ConditionKey": key, "ConditionValue": value, "ConditionType": "STRINGEQUALS"}]
    # the volume the selection finds is the one the data volume function creates and attaches
    fleets = parts["templates"][stack]
    functions = [
        f for f in resources(fleets, "AWS::Lambda::Function") if f.get("Handler") == "single_data.index.handler"
    ]
    assert len(functions) == 1
    assert key == contract.TAG_DATA_VOLUME  # the tag lambdas/single_data puts on the volume it attaches


@pytest.mark.parametrize("stage", ["stage", "prod"])
def test_the_plan_table_is_cdk_json(stage: str) -> None:
    settings = DEPLOYMENT["backup"][stage]
    [plan] = backup_parts("scalable", stage)["plans"]
    rules = {r["RuleName"]: r for r in plan["BackupPlan"]["BackupPlanRule"]}
    assert rules["Daily"]["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert rules["Daily"]["Lifecycle"]["DeleteAfterDays"] == settings["dailyRetentionDays"]
    assert rules["Monthly"]["ScheduleExpression"] == "cron(0 3 1 * ? *)"
    assert rules["Monthly"]["Lifecycle"]["DeleteAfterDays"] == settings["monthlyRetentionDays"]
    row = f"| {stage} | on | {settings['dailyRetentionDays']} days | {settings['monthlyRetentionDays']} days |"
    assert row in TEXT


@pytest.mark.parametrize("shape", ["scalable", "single"])
def test_dev_has_no_plan_as_documented(shape: str) -> None:
    assert DEPLOYMENT["backup"]["dev"]["enabled"] is False
    assert "| dev | off (`enabled: false`) |" in TEXT
    parts = backup_parts(shape, "dev")
    assert parts["vaults"] == [] and parts["plans"] == [] and parts["selections"] == {}


def test_every_aws_command_matches_the_api_model() -> None:
    calls = aws_invocations(DOC)
    for words in calls:
        check(words)
    assert len(calls) >= 12
