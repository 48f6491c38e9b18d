"""The TURN secret rotation construct: schedule, least-privilege IAM, cdk-nag clean, and the numbers it shares
with the hosts (poll period, credential lifetime)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import AwsSolutionsChecks

from cdk_constructs.turn_secret_rotation import TurnSecretRotation
from contract import TURN_CREDENTIAL_TTL_SECONDS, TURN_SECRET_POLL_SECONDS, TURN_SECRET_ROTATION_MIN_DAYS
from settings import load_config
from stacks.deployment import effective_context
from tests.infra.synth import deployment as deployment_section
from tests.infra.synth import synth

ROOT = Path(__file__).resolve().parents[2]


def build(tmp_path: Path, days: int = 30) -> tuple[dict[str, Any], dict[str, Any]]:
    app = cdk.App(outdir=str(tmp_path))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = cdk.Stack(app, "Rotation", env=cdk.Environment(account="123456789012", region="eu-west-1"))
    secret = secretsmanager.Secret(stack, "TurnSecret")
    config = load_config(effective_context({"deployment": deployment_section(**{"environment.name": "prod"})}))
    TurnSecretRotation(stack, "TurnSecretRotation", secret=secret, rotation_days=days, deployment=config.deployment)
    app.synth()  # raises on any cdk-nag finding
    template = json.loads((tmp_path / "Rotation.template.json").read_text())
    report_path = tmp_path / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"pluginReports": []}
    return template, report


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_schedule_rotates_the_turn_secret_and_a_deploy_never_does(tmp_path: Path) -> None:
    template, _ = build(tmp_path, days=30)
    (schedule,) = of_type(template, "AWS::SecretsManager::RotationSchedule").values()
    props = schedule["Properties"]
    assert props["SecretId"] == {"Ref": next(iter(of_type(template, "AWS::SecretsManager::Secret")))}
    assert props["RotationRules"] == {"ScheduleExpression": "rate(30 days)"}
    assert props["RotateImmediatelyOnUpdate"] is False
    (function_id,) = of_type(template, "AWS::Lambda::Function")
    assert props["RotationLambdaARN"] == {"Fn::GetAtt": [function_id, "Arn"]}
    function = template["Resources"][function_id]["Properties"]
    assert function["Handler"] == "turn_secret_rotation.index.handler"
    assert function["Timeout"] == 300
    env = function["Environment"]["Variables"]
    assert env["CREDENTIAL_TTL_SECONDS"] == str(TURN_CREDENTIAL_TTL_SECONDS)
    assert env["HOST_POLL_SECONDS"] == str(TURN_SECRET_POLL_SECONDS)
    assert env["ENVIRONMENT_NAME"] == "prod"
    (permission,) = of_type(template, "AWS::Lambda::Permission").values()
    assert permission["Properties"]["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["Properties"]["SourceAccount"] == {"Ref": "AWS::AccountId"}  # no confused deputy


def test_the_function_may_touch_only_this_secret_and_read_tags(tmp_path: Path) -> None:
    template, report = build(tmp_path)
    secret_ref = {"Ref": next(iter(of_type(template, "AWS::SecretsManager::Secret")))}
    (policy,) = of_type(template, "AWS::IAM::Policy").values()
    granted: dict[str, set[str]] = {}
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            granted.setdefault(action, set()).add(json.dumps(statement["Resource"], sort_keys=True))
    assert granted == {
        "logs:CreateLogStream": {
            json.dumps({"Fn::GetAtt": [next(iter(of_type(template, "AWS::Logs::LogGroup"))), "Arn"]}, sort_keys=True)
        },
        "logs:PutLogEvents": {
            json.dumps({"Fn::GetAtt": [next(iter(of_type(template, "AWS::Logs::LogGroup"))), "Arn"]}, sort_keys=True)
        },
        **{
            action: {json.dumps(secret_ref)}
            for action in (
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            )
        },
        "secretsmanager:GetRandomPassword": {'"*"'},
        "ec2:DescribeInstances": {'"*"'},
    }
    (role,) = of_type(template, "AWS::IAM::Role").values()
    assert "ManagedPolicyArns" not in role["Properties"]
    suppressed = [v["ruleName"] for p in report["pluginReports"] for v in p.get("suppressedViolations", [])]
    # Only the two actions without resource-level permissions, and the pinned runtime of every function here.
    assert set(suppressed) == {"AwsSolutions-IAM5[Resource::*]", "AwsSolutions-L1"}


@pytest.mark.parametrize("days", [0, TURN_SECRET_ROTATION_MIN_DAYS - 1, 366])
def test_an_interval_shorter_than_the_handoff_is_refused(tmp_path: Path, days: int) -> None:
    with pytest.raises(ValueError, match=r"rotation interval must be \d+-365 days"):
        build(tmp_path, days=days)


@pytest.mark.parametrize("timer", ["turn/units/bbb-turn-relay-secrets.timer", "bbb/units/bbb-on-aws-turn-secret.timer"])
def test_the_hosts_poll_as_often_as_test_secret_assumes(timer: str) -> None:
    text = (ROOT / "userdata" / timer).read_text()
    assert re.search(rf"^OnUnitActiveSec={TURN_SECRET_POLL_SECONDS}s$", text, re.MULTILINE), text


def test_the_shared_stack_rotates_the_turn_secret_on_the_configured_schedule() -> None:
    template = synth("scalable", "prod", **{"turn.secretRotationDays": 45}).template("shared")
    (schedule,) = of_type(template, "AWS::SecretsManager::RotationSchedule").values()
    secrets = of_type(template, "AWS::SecretsManager::Secret")
    turn = next(k for k, v in secrets.items() if "TURN REST" in v["Properties"]["Description"])
    assert schedule["Properties"]["SecretId"] == {"Ref": turn}
    assert schedule["Properties"]["RotationRules"] == {"ScheduleExpression": "rate(45 days)"}
    assert len(of_type(template, "AWS::SecretsManager::RotationSchedule")) == 1  # no other secret rotates here


@pytest.mark.parametrize(("days", "problem"), [(1, "must be at least 2"), (400, "must be at most 365")])
def test_a_wrong_rotation_interval_in_cdk_json_names_the_key(days: int, problem: str) -> None:
    from settings import ConfigError

    with pytest.raises(ConfigError, match=rf"deployment\.turn\.secretRotationDays: {days} {problem}"):
        load_config(effective_context({"deployment": deployment_section(**{"turn.secretRotationDays": days})}))
