"""FleetCertificate's template: least privilege on Route 53 (the one TXT record), the secrets under a CMK,
the schedule, the deploy-time first issuance, the alarms to the operator topic; cdk-nag clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack, Validations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_sns as sns
from cdk_nag import AwsSolutionsChecks

from cdk_constructs.certificates import FleetCertificate
from cdk_constructs.certificates.layer import layer_pins
from settings.model import LETS_ENCRYPT, LETS_ENCRYPT_STAGING

ZONE_ID = "Z0CERTTEST"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:operator"
SUBDOMAIN = "fleet.meet.example.org"


def build(outdir: Path, **overrides: Any) -> tuple[App, Stack, FleetCertificate]:
    app = App(outdir=str(outdir))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = Stack(app, "CertTest")
    zone = route53.HostedZone.from_hosted_zone_attributes(
        stack, "Zone", hosted_zone_id=ZONE_ID, zone_name="example.org"
    )
    settings = {
        "hosted_zone": zone,
        "subdomain": SUBDOMAIN,
        "acme_email": "operator@example.org",
        "operator_topic": sns.Topic.from_topic_arn(stack, "Topic", TOPIC),
        "acme_directory": LETS_ENCRYPT,
        "metric_namespace": "BBBOnAWS/test",
        "log_retention": logs.RetentionDays.ONE_MONTH,
        **overrides,
    }
    certificate = FleetCertificate(stack, "FleetCertificate", **settings)
    return app, stack, certificate


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    outdir = tmp_path_factory.mktemp("cert-synth")
    app, _stack, _cert = build(outdir)
    app.synth()  # cdk-nag findings fail here
    return json.loads((outdir / "CertTest.template.json").read_text()), outdir


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == kind}


def issuer(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(lid, props)] = [
        (k, p)
        for k, p in of_type(template, "AWS::Lambda::Function").items()
        if p.get("Handler") == "cert_issuer.index.handler"
    ]
    return lid, props


def policy_statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Roles"]
        for s in p["PolicyDocument"]["Statement"]
    ]


def test_issuer_function_settings_and_layer(synthesized) -> None:
    template, outdir = synthesized
    _lid, function = issuer(template)
    env = function["Environment"]["Variables"]
    assert env["ACME_DIRECTORY_URL"] == LETS_ENCRYPT
    assert (env["SUBDOMAIN"], env["HOSTED_ZONE_ID"], env["RENEW_DAYS"]) == (SUBDOMAIN, ZONE_ID, "30")
    assert env["POWERTOOLS_SERVICE_NAME"] == "cert-issuer" and env["POWERTOOLS_METRICS_NAMESPACE"] == "BBBOnAWS/test"
    secrets = of_type(template, "AWS::SecretsManager::Secret")
    assert {env["ACCOUNT_SECRET_ARN"]["Ref"], env["CERTIFICATE_SECRET_ARN"]["Ref"]} == set(secrets)
    # No reserved concurrency: a new account cannot reserve any (Lambda keeps 100 unreserved), and two runs at
    # once only store two valid certificates, the last one winning.
    assert function["Runtime"] == "python3.13" and "ReservedConcurrentExecutions" not in function
    assert function["Timeout"] == 720
    layers = of_type(template, "AWS::Lambda::LayerVersion")
    [(layer_id, layer)] = layers.items()
    assert {"Ref": layer_id} in function["Layers"] and len(function["Layers"]) == 2  # + Powertools
    assert layer["CompatibleRuntimes"] == ["python3.13"] and layer["CompatibleArchitectures"] == ["x86_64"]
    # The staged layer asset holds the pinned distributions under python/ (Lambda's /opt/python).
    asset_hash = layer["Content"]["S3Key"].removesuffix(".zip")
    manifest = json.loads((outdir / "CertTest.assets.json").read_text())
    staged = outdir / manifest["files"][asset_hash]["source"]["path"] / "python"
    for pin in layer_pins():
        name, version = pin.split("==")
        assert list(staged.glob(f"{name.replace('-', '_')}-{version}.dist-info")), pin
    invoke = of_type(template, "AWS::Lambda::EventInvokeConfig")
    assert [c["MaximumRetryAttempts"] for c in invoke.values()] == [0]


def test_route53_permission_is_the_challenge_txt_record_only(synthesized) -> None:
    template, _ = synthesized
    _lid, function = issuer(template)
    statements = policy_statements(template, function["Role"]["Fn::GetAtt"][0])
    route53_statements = [s for s in statements if any(a.startswith("route53:") for a in _list(s["Action"]))]
    change = next(s for s in route53_statements if s["Action"] == "route53:ChangeResourceRecordSets")
    zone_arn = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":route53:::hostedzone/{ZONE_ID}"]]}
    assert change["Resource"] == zone_arn
    assert change["Condition"] == {
        "ForAllValues:StringEquals": {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": [f"_acme-challenge.{SUBDOMAIN}"],
            "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
            "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
        }
    }
    others = {s["Action"]: s["Resource"] for s in route53_statements if s is not change}
    assert others == {"route53:GetHostedZone": zone_arn, "route53:GetChange": "arn:aws:route53:::change/*"}


def test_secrets_are_under_a_rotating_cmk_and_written_by_the_issuer_only(synthesized) -> None:
    template, _ = synthesized
    [(key_id, key)] = of_type(template, "AWS::KMS::Key").items()
    assert key["EnableKeyRotation"] is True
    secrets = of_type(template, "AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    for secret in secrets.values():
        assert secret["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        assert secret["GenerateSecretString"]["SecretStringTemplate"] == "{}"  # JSON placeholder (store.py)
    _lid, function = issuer(template)
    writers = {
        role["Ref"]
        for policy in of_type(template, "AWS::IAM::Policy").values()
        for statement in policy["PolicyDocument"]["Statement"]
        if "secretsmanager:PutSecretValue" in _list(statement["Action"])
        for role in policy["Roles"]
    }
    assert writers == {function["Role"]["Fn::GetAtt"][0]}


def test_schedule_and_first_issuance_at_deploy_time(synthesized) -> None:
    template, _ = synthesized
    lid, _function = issuer(template)
    [rule] = of_type(template, "AWS::Events::Rule").values()
    assert rule["ScheduleExpression"] == "rate(12 hours)"
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [lid, "Arn"]}
    [issuance] = [v for v in template["Resources"].values() if v["Type"] == "Custom::FleetCertificate"]
    assert issuance["Properties"]["Subdomain"] == SUBDOMAIN
    assert issuance["Properties"]["AcmeDirectory"] == LETS_ENCRYPT  # a CA switch issues again at deploy time
    # The Provider framework invokes the unqualified issuer: no version whose id changes with every code change.
    framework = [
        f
        for f in of_type(template, "AWS::Lambda::Function").values()
        if f.get("Environment", {}).get("Variables", {}).get("USER_ON_EVENT_FUNCTION_ARN")
    ]
    assert [f["Environment"]["Variables"]["USER_ON_EVENT_FUNCTION_ARN"] for f in framework] == [
        {"Fn::GetAtt": [lid, "Arn"]}
    ]
    assert not of_type(template, "AWS::Lambda::Version")


def test_alarms_watch_what_the_handler_publishes(synthesized) -> None:
    template, _ = synthesized
    lid, function = issuer(template)
    alarms = of_type(template, "AWS::CloudWatch::Alarm")
    assert all(a["AlarmActions"] == [TOPIC] for a in alarms.values())
    [expiry] = [a for a in alarms.values() if a["MetricName"] == "DaysToExpiry"]
    assert (expiry["Threshold"], expiry["ComparisonOperator"]) == (20, "LessThanThreshold")
    assert expiry["TreatMissingData"] == "breaching" and expiry["Statistic"] == "Minimum"
    assert expiry["Namespace"] == function["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    # Powertools adds `service` (POWERTOOLS_SERVICE_NAME) to every metric; the alarm must name both.
    assert sorted((d["Name"], d["Value"]) for d in expiry["Dimensions"]) == [
        ("Subdomain", SUBDOMAIN),
        ("service", function["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]),
    ]
    [errors] = [a for a in alarms.values() if a["MetricName"] == "Errors"]
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": lid}}]


def test_staging_directory_by_configuration(tmp_path) -> None:
    app, stack, _ = build(tmp_path, acme_directory=LETS_ENCRYPT_STAGING, renew_days=45, alarm_days=30)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    env = issuer(template)[1]["Environment"]["Variables"]
    assert (env["ACME_DIRECTORY_URL"], env["RENEW_DAYS"]) == (LETS_ENCRYPT_STAGING, "45")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"subdomain": "fleet.example.net"}, "'fleet.example.net' is not inside the hosted zone 'example.org'"),
        ({"acme_directory": "http://ca/dir"}, "ACME directory 'http://ca/dir' must be an https:// URL"),
        ({"renew_days": 20, "alarm_days": 20}, "alarm_days=20 must be at least 1 and below renew_days=20"),
        ({"renew_days": 90}, "renew_days=90 must be 1-60"),
        ({"schedule": Duration.days(2)}, "schedule must be 1-24 hours"),
    ],
)
def test_bad_settings_fail_synth_naming_them(tmp_path, overrides, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(tmp_path, **overrides)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
