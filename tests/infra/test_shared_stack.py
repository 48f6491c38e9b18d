"""The shared stack: certificate, operator topic, generated secrets and SES SMTP credentials."""

from __future__ import annotations

import json
import re

import pytest

from tests.infra.platform_templates import OPTIONS_VARIANT, as_list, only, properties, resources, statements, text
from tests.infra.synth import SHAPES, synth

# The first test to ask for a deployment variant pays its synthesis (several seconds).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dev():
    return synth("scalable", "dev")


def test_both_shapes_have_a_shared_stack():
    for shape in SHAPES:
        result = synth(shape, "dev")
        assert f"{result.config.prefix}-shared" in result.stack_names()


def test_zone_is_imported_not_created_or_looked_up(dev):
    template = dev.template("shared")
    assert resources(template, "AWS::Route53::HostedZone") == {}
    manifest = json.loads((dev.outdir / "manifest.json").read_text())
    assert "missing" not in manifest  # no context lookup pending


def test_certificate_covers_the_domain_and_its_wildcard_validated_in_the_zone(dev):
    _, certificate = only(dev.template("shared"), "AWS::CertificateManager::Certificate")
    props = certificate["Properties"]
    domain = dev.config.domain.name
    assert props["DomainName"] == domain
    assert props["SubjectAlternativeNames"] == [f"*.{domain}"]
    assert props["ValidationMethod"] == "DNS"
    assert {o["HostedZoneId"] for o in props["DomainValidationOptions"]} == {dev.config.domain.hosted_zone_id}


def test_operator_topic_is_encrypted_ssl_only_and_mails_the_operator(dev):
    template = dev.template("shared")
    key_id, key = only(template, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    _, topic = only(template, "AWS::SNS::Topic")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    (subscription,) = properties(template, "AWS::SNS::Subscription")
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == dev.config.operator_email

    (policy,) = properties(template, "AWS::SNS::TopicPolicy")
    found = statements(policy["PolicyDocument"])
    deny = [s for s in found if s["Effect"] == "Deny"]
    assert deny and all(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in deny)
    (publish,) = [s for s in found if s["Effect"] == "Allow"]
    assert sorted(publish["Principal"]["Service"]) == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert publish["Action"] == "sns:Publish"
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_topic_key_lets_alarms_and_rules_publish(dev):
    _, key = only(dev.template("shared"), "AWS::KMS::Key")
    (service,) = [s for s in statements(key["Properties"]["KeyPolicy"]) if "Service" in s["Principal"]]
    assert sorted(service["Principal"]["Service"]) == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert sorted(service["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]


@pytest.mark.parametrize(
    ("logical_prefix", "length", "lowercase_only"),
    [("TurnSecret", 40, False), ("BbbApiSecret", 40, False), ("ScaleliteSecret", 64, False),
     ("GreenlightKeyBase", 128, True), ("ScaleliteKeyBase", 128, True)],
)
def test_platform_secrets_are_generated_by_secrets_manager(dev, logical_prefix, length, lowercase_only):
    secrets = resources(dev.template("shared"), "AWS::SecretsManager::Secret")
    (secret,) = [v for k, v in secrets.items() if k.startswith(logical_prefix)]
    props = secret["Properties"]
    assert "SecretString" not in props and "Name" not in props
    generator = props["GenerateSecretString"]
    assert generator["PasswordLength"] == length
    assert generator["ExcludePunctuation"] is True and generator["IncludeSpace"] is False
    assert generator.get("ExcludeUppercase", False) is lowercase_only


def test_no_secret_value_and_no_access_key_in_any_template(dev):
    for name, template in dev.templates().items():
        assert resources(template, "AWS::IAM::AccessKey") == {}, name
        for secret in properties(template, "AWS::SecretsManager::Secret"):
            assert "SecretString" not in secret, name
        assert "SecretAccessKey" not in text(template), name


def test_smtp_user_may_only_send_as_the_domain_from_its_identity(dev):
    template = dev.template("shared")
    user_id, _ = only(template, "AWS::IAM::User")
    user_policies = [p for p in properties(template, "AWS::IAM::Policy") if {"Ref": user_id} in p.get("Users", [])]
    (policy,) = user_policies
    (statement,) = statements(policy["PolicyDocument"])
    domain, region = dev.config.domain.name, dev.config.environment.region
    assert sorted(as_list(statement["Action"])) == ["ses:SendEmail", "ses:SendRawEmail"]
    resource = json.dumps(statement["Resource"])
    assert f":ses:{region}:" in resource and resource.endswith(f':identity/{domain}"]]}}')
    assert statement["Condition"] == {"StringLike": {"ses:FromAddress": f"*@{domain}"}}


def test_smtp_custom_resource_writes_the_secret_for_the_ses_endpoint(dev):
    template = dev.template("shared")
    user_id, _ = only(template, "AWS::IAM::User")
    _, resource = only(template, "Custom::SesSmtpCredentials")
    props = resource["Properties"]
    region = dev.config.environment.region
    assert props["UserName"] == {"Ref": user_id}
    assert (props["Region"], props["Host"], props["Port"]) == (region, f"email-smtp.{region}.amazonaws.com", "587")
    secret_id = props["SecretArn"]["Ref"]
    assert template["Resources"][secret_id]["Type"] == "AWS::SecretsManager::Secret"
    assert user_id in resource["DependsOn"]  # keys go before the user on delete


def test_smtp_handler_may_manage_only_that_users_keys(dev):
    template = dev.template("shared")
    user_id, _ = only(template, "AWS::IAM::User")
    iam_statements = [
        s for p in properties(template, "AWS::IAM::Policy") for s in statements(p["PolicyDocument"])
        if any(str(a).startswith("iam:") for a in as_list(s["Action"]))
    ]
    (statement,) = iam_statements
    assert sorted(statement["Action"]) == ["iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:ListAccessKeys"]
    assert statement["Resource"] == {"Fn::GetAtt": [user_id, "Arn"]}


def test_smtp_handler_runs_python_313_with_the_powertools_layer(dev):
    functions = resources(dev.template("shared"), "AWS::Lambda::Function")
    (handler,) = [f["Properties"] for k, f in functions.items() if k.startswith("SmtpCredentialsProviderHandler")]
    assert handler["Runtime"] == "python3.13" and handler["Handler"] == "smtp_credentials.index.on_event"
    (layer,) = handler["Layers"]
    assert re.search(r":017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:\d+", json.dumps(layer))


def test_ses_region_option_moves_the_smtp_endpoint_and_identity_arn():
    result = synth("scalable", "dev", **OPTIONS_VARIANT)
    template = result.template("shared")
    _, resource = only(template, "Custom::SesSmtpCredentials")
    assert resource["Properties"]["Region"] == "us-east-1"
    assert resource["Properties"]["Host"] == "email-smtp.us-east-1.amazonaws.com"
    assert ":ses:us-east-1:" in text(template)
