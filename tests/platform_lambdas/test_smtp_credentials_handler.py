"""The SMTP credentials custom resource against moto: key lifecycle, secret contents, idempotency, no leaks."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.platform_lambdas.conftest import REGION, load_handler

handler = load_handler("smtp_credentials")
from smtp_credentials.smtp_password import smtp_password  # noqa: E402

USER = "bbb-shared-SmtpUser"
HOST = f"email-smtp.{REGION}.amazonaws.com"


@pytest.fixture
def world(aws, monkeypatch):
    """An IAM user, the CDK-created secret (placeholder value) and every secret key IAM handed out."""
    iam = boto3.client("iam")
    iam.create_user(UserName=USER)
    secret_arn = boto3.client("secretsmanager").create_secret(Name="smtp", SecretString="placeholderXYZ")["ARN"]
    issued: dict[str, str] = {}
    real_client = boto3.client

    def client(service, *args, **kwargs):
        made = real_client(service, *args, **kwargs)
        if service == "iam":
            def capture(parsed, **_):
                key = parsed["AccessKey"]
                issued[key["AccessKeyId"]] = key["SecretAccessKey"]
            made.meta.events.register("after-call.iam.CreateAccessKey", capture)
        return made

    monkeypatch.setattr(handler.boto3, "client", client)
    return {"secret_arn": secret_arn, "issued": issued}


def props(world, **changes):
    return {"ServiceToken": "arn:token", "UserName": USER, "SecretArn": world["secret_arn"], "Region": REGION,
            "Host": HOST, "Port": "587", **changes}


def event(request_type, properties, physical_id=None, old=None):
    found = {"RequestType": request_type, "ResourceProperties": properties, "LogicalResourceId": "Smtp",
             "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/bbb-shared/1"}
    if physical_id:
        found["PhysicalResourceId"] = physical_id
    if old:
        found["OldResourceProperties"] = old
    return found


def keys():
    return sorted(k["AccessKeyId"] for k in boto3.client("iam").list_access_keys(UserName=USER)["AccessKeyMetadata"])


def held(world):
    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=world["secret_arn"])["SecretString"])


def test_create_makes_a_key_and_stores_the_derived_password(world, context):
    answer = handler.on_event(event("Create", props(world)), context)
    key_id = answer["PhysicalResourceId"]
    assert keys() == [key_id]
    assert set(answer) == {"PhysicalResourceId"}  # no Data: nothing secret travels back to CloudFormation
    stored = held(world)
    assert stored == {"username": key_id, "password": smtp_password(world["issued"][key_id], REGION),
                      "host": HOST, "port": "587", "region": REGION}


def test_create_again_reuses_the_working_key(world, context):
    first = handler.on_event(event("Create", props(world)), context)["PhysicalResourceId"]
    again = handler.on_event(event("Create", props(world)), context)["PhysicalResourceId"]
    assert again == first and keys() == [first] and len(world["issued"]) == 1


def test_create_clears_orphan_keys_from_an_interrupted_attempt(world, context):
    iam = boto3.client("iam")
    orphans = [iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"] for _ in range(2)]  # IAM's max
    key_id = handler.on_event(event("Create", props(world)), context)["PhysicalResourceId"]
    assert keys() == [key_id] and key_id not in orphans


def test_update_without_change_keeps_everything(world, context):
    key_id = handler.on_event(event("Create", props(world)), context)["PhysicalResourceId"]
    before = held(world)
    answer = handler.on_event(event("Update", props(world), key_id, old=props(world)), context)
    assert answer["PhysicalResourceId"] == key_id and held(world) == before and keys() == [key_id]


def test_region_change_rotates_and_leaves_the_old_key_to_cloudformations_cleanup(world, context):
    old_id = handler.on_event(event("Create", props(world)), context)["PhysicalResourceId"]
    moved = props(world, Region="us-east-1", Host="email-smtp.us-east-1.amazonaws.com")
    new_id = handler.on_event(event("Update", moved, old_id, old=props(world)), context)["PhysicalResourceId"]
    assert new_id != old_id and keys() == sorted([old_id, new_id])
    assert held(world)["password"] == smtp_password(world["issued"][new_id], "us-east-1")
    assert held(world)["host"] == "email-smtp.us-east-1.amazonaws.com"
    # CloudFormation then deletes the old physical resource with the old properties.
    handler.on_event(event("Delete", props(world), old_id), context)
    assert keys() == [new_id]


def test_update_replaces_a_key_deleted_behind_our_back(world, context):
    key_id = handler.on_event(event("Create", props(world)), context)["PhysicalResourceId"]
    boto3.client("iam").delete_access_key(UserName=USER, AccessKeyId=key_id)
    new_id = handler.on_event(event("Update", props(world), key_id, old=props(world)), context)["PhysicalResourceId"]
    assert new_id != key_id and keys() == [new_id] and held(world)["username"] == new_id


def test_inactive_key_is_not_reused(world, context):
    key_id = handler.on_event(event("Create", props(world)), context)["PhysicalResourceId"]
    boto3.client("iam").update_access_key(UserName=USER, AccessKeyId=key_id, Status="Inactive")
    new_id = handler.on_event(event("Update", props(world), key_id, old=props(world)), context)["PhysicalResourceId"]
    assert new_id != key_id and held(world)["username"] == new_id


def test_delete_removes_the_key_so_the_user_can_go(world, context):
    key_id = handler.on_event(event("Create", props(world)), context)["PhysicalResourceId"]
    handler.on_event(event("Delete", props(world), key_id), context)
    assert keys() == []
    boto3.client("iam").delete_user(UserName=USER)  # CloudFormation's next step succeeds
    handler.on_event(event("Delete", props(world), key_id), context)  # a repeated Delete is harmless


def test_delete_after_a_create_that_never_finished_removes_every_key(world, context):
    boto3.client("iam").create_access_key(UserName=USER)
    handler.on_event(event("Delete", props(world), "bbb-shared-SmtpCredentials-1X2Y3Z"), context)
    assert keys() == []


def test_secret_material_never_reaches_the_logs(world, context, caplog):
    # Our own logger at its most verbose; libraries at INFO as in Lambda (botocore's DEBUG wire logs would print
    # any response, and nothing in the function turns them on).
    caplog.set_level("INFO")
    caplog.set_level("DEBUG", logger=handler.logger.name)
    key_id = handler.on_event(event("Create", props(world)), context)["PhysicalResourceId"]
    handler.on_event(event("Delete", props(world), key_id), context)
    # Every field of every record, extras included (what Powertools would print as JSON).
    logged = "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert key_id in logged  # the key id is an identifier, logged for the audit trail
    for secret_key in world["issued"].values():
        assert secret_key not in logged
        assert smtp_password(secret_key, REGION) not in logged


@pytest.mark.parametrize(("changes", "message"), [
    ({"Host": "smtp.evil.example"}, "is not an SES SMTP endpoint"),
    ({"Port": "2525"}, "is not an SES SMTP port"),
    ({"UserName": ""}, "UserName are missing"),
    ({"Region": "moon-1"}, "is not an AWS region"),
])
def test_bad_properties_are_named_and_create_nothing(world, context, changes, message):
    with pytest.raises(ValueError, match=message):
        handler.on_event(event("Create", props(world, **changes)), context)
    assert keys() == []


def test_unknown_request_type_is_refused(world, context):
    with pytest.raises(ValueError, match="not Create, Update or Delete"):
        handler.on_event(event("Poke", props(world)), context)
