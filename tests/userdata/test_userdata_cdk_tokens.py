"""Real CDK tokens (secret ARNs, asset bucket and key, log groups, region) survive rendering and synthesis."""

from __future__ import annotations

import pytest
from aws_cdk import App, Fn, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template

from userdata.render import BbbParams, EfsSpool, S3Object, bundle_sha256, render_bbb_user_data

pytestmark = pytest.mark.slow


def test_tokens_resolve_inside_the_quoted_parameters() -> None:
    stack = Stack(App(), "UserDataTokens")
    turn = secretsmanager.Secret(stack, "Turn")
    api = secretsmanager.Secret(stack, "Api")
    bucket = s3.Bucket(stack, "Assets")
    system, application = logs.LogGroup(stack, "System"), logs.LogGroup(stack, "Application")
    text = render_bbb_user_data(BbbParams(
        environment="bbb", domain="bbb.example.com", region=stack.region,
        bootstrap_bundle=S3Object(bucket.bucket_name, "bundle.tar"), turn_secret_arn=turn.secret_arn,
        system_log_group=system.log_group_name, application_log_group=application.log_group_name,
        operator_email="ops@example.com", bbb_secret_arn=api.secret_arn,
        spool=EfsSpool("fs-0123456789abcdef0", "fsap-0123456789abcdef0")))
    ec2.CfnLaunchTemplate(stack, "Template", launch_template_data=ec2.CfnLaunchTemplate.LaunchTemplateDataProperty(
        user_data=Fn.base64(ec2.UserData.custom(text).render())))
    template = Template.from_stack(stack).to_json()
    (resource,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::EC2::LaunchTemplate"]
    user_data = resource["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    parts = user_data["Fn::Join"][1]
    logical = list(template["Resources"])

    def after(literal_suffix: str) -> object:
        """The token that follows the string part ending with `literal_suffix`."""
        for index, part in enumerate(parts[:-1]):
            if isinstance(part, str) and part.endswith(literal_suffix):
                return parts[index + 1]
        raise AssertionError(f"no token after {literal_suffix!r} in {parts}")

    turn_id = next(k for k in logical if k.startswith("Turn"))
    api_id = next(k for k in logical if k.startswith("Api"))
    assert after("\nTURN_SECRET_ARN='") == {"Ref": turn_id}
    assert after("\nBBB_SECRET_ARN='") == {"Ref": api_id}
    assert after("\nAWS_REGION='") == {"Ref": "AWS::Region"}
    assert after("\nBUNDLE_BUCKET='") == {"Ref": next(k for k in logical if k.startswith("Assets"))}
    assert after("\nSYSTEM_LOG_GROUP='") == {"Ref": next(k for k in logical if k.startswith("System"))}
    joined = "".join(p for p in parts if isinstance(p, str))
    assert "${Token[" not in joined
    assert joined.startswith("#!/bin/bash\n")
    assert bundle_sha256("bbb") in joined
