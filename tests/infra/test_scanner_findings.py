"""The two gaps checkov found (issue 14, item 5): the ECS container instances' log permissions and Aurora's
Enhanced Monitoring, checked on the synthesized templates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.synth import synth


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def statements_of(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    role = next(k for k in resources(template, "AWS::IAM::Role") if k.startswith(role_prefix))
    return [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_ecs_instances_write_logs_only_to_the_tasks_log_groups() -> None:
    template = synth("scalable", "prod").template("frontend")
    statements = statements_of(template, "EcsInstanceRole")
    logs = [s for s in statements if any(a.startswith("logs:") for a in actions(s))]
    assert len(logs) == 1
    (statement,) = logs
    assert sorted(actions(statement)) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    groups = {
        k for k in resources(template, "AWS::Logs::LogGroup") if k.startswith(("GreenlightLogs", "ScaleliteLogs"))
    }
    assert sorted(r["Fn::GetAtt"][0] for r in statement["Resource"]) == sorted(groups)
    # The ECS agent keeps what it needs, the cluster-scoped calls still scoped to this cluster.
    granted = {a for s in statements for a in actions(s)}
    assert {
        "ecs:RegisterContainerInstance",
        "ecs:DeregisterContainerInstance",
        "ecs:Submit*",
        "ecs:Poll",
        "ecs:StartTelemetrySession",
        "ecs:DiscoverPollEndpoint",
        "ecr:GetAuthorizationToken",
    } <= granted
    wildcard = {a for s in statements if s["Resource"] == "*" and "Condition" not in s for a in actions(s)}
    assert wildcard == {"ecs:DiscoverPollEndpoint", "ecr:GetAuthorizationToken"}


@pytest.mark.parametrize(("stage", "interval"), [("dev", 60), ("stage", 30), ("prod", 15)])
def test_aurora_instances_have_enhanced_monitoring_per_stage(stage: str, interval: int) -> None:
    template = synth("scalable", stage).template("data")
    instances = resources(template, "AWS::RDS::DBInstance")
    assert instances and len(instances) == (1 if stage == "dev" else 2)
    role = next(k for k in resources(template, "AWS::IAM::Role") if k.startswith("DatabaseMonitoringRole"))
    for instance in instances.values():
        assert instance["Properties"]["MonitoringInterval"] == interval
        assert instance["Properties"]["MonitoringRoleArn"] == {"Fn::GetAtt": [role, "Arn"]}
    trust = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "monitoring.rds.amazonaws.com"}]
    assert "ManagedPolicyArns" not in template["Resources"][role]["Properties"]
    for statement in statements_of(template, "DatabaseMonitoringRole"):
        joined = "".join(p if isinstance(p, str) else "" for p in statement["Resource"]["Fn::Join"][1])
        assert ":log-group:RDSOSMetrics" in joined  # never RDS* or every log group
