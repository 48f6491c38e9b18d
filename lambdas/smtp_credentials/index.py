"""Custom resource: SES SMTP credentials for one IAM user, kept only in a Secrets Manager secret.

The handler creates the IAM access key itself, so the secret access key never passes through CloudFormation
(no template, no stack events, no `Fn::GetAtt`) and is never logged; it only lives long enough to derive the
SMTP password. The secret then holds {"username", "password", "host", "port", "region"}; `username` is the
access key id, which is also the resource's PhysicalResourceId.

Create/Update  reuse the key the secret already holds if it still exists, is active and the region, host and
               port are unchanged; otherwise create a new key, write the secret, and delete stale keys. On
               Update the previous key is left for CloudFormation's cleanup (Delete of the old physical id),
               so running consumers keep working until the update has succeeded.
Delete         delete the physical id's key and every key the secret does not hold; after a Create that never
               finished (no key id as physical id), delete all of the user's keys so the user can be deleted.

Properties: UserName, SecretArn, Region (the SES region), Host, Port.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from common import observability
from common.custom_resource import CustomResource, Request, Result

from smtp_credentials.smtp_password import smtp_password

logger, metrics = observability.tools()

_ACCESS_KEY_ID = re.compile(r"^AKIA[A-Z0-9]{12,124}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_HOST = re.compile(r"^email-smtp(-fips)?\.[a-z0-9-]+\.amazonaws\.com$")


@dataclass(frozen=True)
class Settings:
    user_name: str
    secret_arn: str
    region: str
    host: str
    port: str

    @classmethod
    def of(cls, properties: Mapping[str, Any]) -> Settings:
        missing = [k for k in ("UserName", "SecretArn", "Region", "Host", "Port") if not properties.get(k)]
        if missing:
            raise ValueError(f"custom resource properties {', '.join(missing)} are missing: set them in the stack")
        host, port, region = str(properties["Host"]), str(properties["Port"]), str(properties["Region"])
        if not _REGION.match(region):
            raise ValueError(f"Region {region!r} is not an AWS region such as eu-west-1 (the SES region)")
        if not _HOST.match(host):
            raise ValueError(f"Host {host!r} is not an SES SMTP endpoint such as email-smtp.eu-west-1.amazonaws.com")
        if port not in ("25", "465", "587", "2465", "2587"):
            raise ValueError(f"Port {port!r} is not an SES SMTP port (25, 465, 587, 2465 or 2587)")
        return cls(str(properties["UserName"]), str(properties["SecretArn"]), region, host, port)


def _iam() -> Any:
    return boto3.client("iam")


def _secrets() -> Any:
    return boto3.client("secretsmanager")


def _held_credentials(secret_arn: str) -> dict[str, Any]:
    """The JSON the secret holds, or {} for the placeholder CloudFormation generated at creation."""
    value = _secrets().get_secret_value(SecretId=secret_arn).get("SecretString") or ""
    try:
        held = json.loads(value)
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def _active_keys(user_name: str) -> dict[str, str]:
    """Access key id -> status of every key of the user."""
    pages = _iam().get_paginator("list_access_keys").paginate(UserName=user_name)
    return {k["AccessKeyId"]: k["Status"] for page in pages for k in page["AccessKeyMetadata"]}


def _delete_key(user_name: str, key_id: str) -> None:
    try:
        _iam().delete_access_key(UserName=user_name, AccessKeyId=key_id)
        logger.info("Deleted access key", extra={"user": user_name, "access_key_id": key_id})
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise


def _usable(held: Mapping[str, Any], settings: Settings, keys: Mapping[str, str]) -> bool:
    return (
        keys.get(str(held.get("username"))) == "Active"
        and bool(held.get("password"))
        and (held.get("region"), held.get("host"), str(held.get("port"))) == (settings.region, settings.host,
                                                                               settings.port)
    )


def _ensure(settings: Settings, keep: str | None) -> str:
    """Make the secret hold working credentials; `keep` is a key CloudFormation will delete itself later."""
    held = _held_credentials(settings.secret_arn)
    keys = _active_keys(settings.user_name)
    if _usable(held, settings, keys):
        logger.info("Secret already holds working SMTP credentials", extra={"access_key_id": held["username"]})
        return str(held["username"])
    # IAM allows two keys per user: make room, sparing only the key still in use until CloudFormation's cleanup.
    for key_id in keys:
        if key_id != keep:
            _delete_key(settings.user_name, key_id)
    created = _iam().create_access_key(UserName=settings.user_name)["AccessKey"]
    key_id = created["AccessKeyId"]
    credentials = {
        "username": key_id,
        "password": smtp_password(created["SecretAccessKey"], settings.region),
        "host": settings.host,
        "port": settings.port,
        "region": settings.region,
    }
    _secrets().put_secret_value(SecretId=settings.secret_arn, SecretString=json.dumps(credentials))
    logger.info("Wrote new SMTP credentials", extra={"access_key_id": key_id, "region": settings.region})
    return key_id


def create(request: Request) -> Result:
    return {"PhysicalResourceId": _ensure(Settings.of(request.properties), keep=None)}


def update(request: Request) -> Result:
    settings = Settings.of(request.properties)
    physical_id = request.physical_id or ""
    keep = physical_id if _ACCESS_KEY_ID.match(physical_id) else None
    return {"PhysicalResourceId": _ensure(settings, keep=keep)}


def delete(request: Request) -> Result:
    properties, physical_id = request.properties, request.physical_id or ""
    user_name = str(properties.get("UserName") or "")
    if not user_name:
        logger.warning("Delete without UserName: nothing to clean up")
        return {"PhysicalResourceId": physical_id}
    try:
        keys = _active_keys(user_name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchEntity":  # the user is already gone, and its keys with it
            return {"PhysicalResourceId": physical_id}
        raise
    if _ACCESS_KEY_ID.match(physical_id):
        try:
            current = str(_held_credentials(str(properties.get("SecretArn"))).get("username", ""))
        except ClientError:
            current = ""  # the secret is gone: nothing references any key any more
        doomed = {k for k in keys if k == physical_id or k != current}
    else:
        doomed = set(keys)
    for key_id in sorted(doomed):
        _delete_key(user_name, key_id)
    return {"PhysicalResourceId": physical_id}


resource = CustomResource(create=create, update=update, delete=delete, logger=logger)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def on_event(event: Mapping[str, Any], context: LambdaContext) -> Result:
    return resource(event, context)
