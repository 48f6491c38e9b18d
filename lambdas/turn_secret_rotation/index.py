"""Secrets Manager rotation of the TURN REST shared secret, without refusing a credential BBB handed out.

Secrets Manager calls the four steps in order with the same ClientRequestToken (the new version id):

createSecret  AWSPENDING gets 40 random letters and digits. Refused while older credentials may still be
              in use (cdk_constructs/turn_secret_rotation.py, handoff.py): the rotation would take the label
              AWSPREVIOUS away from the secret they were made with.
setSecret     nothing to push: every TURN host polls the staging labels (bbb-turn-relay-secrets.timer,
              every HOST_POLL_SECONDS) and makes its relay accept AWSCURRENT, AWSPENDING and, until the
              handoff is done, AWSPREVIOUS (SIGHUP; live allocations keep their keys).
testSecret    the pending value is well-formed, and the function waits 2 poll periods plus a margin, so every
              TURN host has polled since the value exists: after this step the relays accept it.
finishSecret  AWSCURRENT moves to the new version (Secrets Manager moves AWSPREVIOUS to the old one). The
              BBB servers' timers then switch bbb-web to it, each at its first moment without meetings.

Every step is idempotent: Secrets Manager retries a failed rotation with the same token.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from common import aws, observability
from common.contract import TAG_TURN_SECRET as TAG

from turn_secret_rotation.handoff import handoff

logger, metrics = observability.tools()

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"
SECRET_LENGTH = 40  # docs/host-contract.md: 40 alphanumerics
_VALUE = re.compile(r"^[A-Za-z0-9]{16,128}$")  # what the hosts accept (userdata/common/lib.sh get_secret)
_POLL_MARGIN_SECONDS = 30
_TIMEOUT_RESERVE_MS = 10_000

# The clock, replaceable by the tests (they run hours of rotation in milliseconds).
clock = time.time
sleep = time.sleep


class RotationError(RuntimeError):
    """The rotation cannot go on; the message says what to do. Secrets Manager retries it later."""


def _setting(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise RotationError(f"environment variable {name} is not set; redeploy the stack (TurnSecretRotation sets it)")
    return value


def _seconds(name: str) -> int:
    raw = _setting(name)
    if not raw.isdigit() or int(raw) < 1:
        raise RotationError(f"environment variable {name}={raw!r} must be a positive whole number of seconds")
    return int(raw)


def _stages(secret_id: str) -> dict[str, list[str]]:
    meta = aws.client("secretsmanager").describe_secret(SecretId=secret_id)
    if not meta.get("RotationEnabled"):
        raise RotationError(f"secret {secret_id} does not have rotation enabled")
    return dict(meta.get("VersionIdsToStages") or {})


def _current_version(stages: dict[str, list[str]]) -> str:
    for version, labels in stages.items():
        if CURRENT in labels:
            return version
    raise RotationError("the secret has no AWSCURRENT version")


def _bbb_servers(environment: str) -> list[tuple[str, str | None]]:
    pages = (
        aws.client("ec2")
        .get_paginator("describe_instances")
        .paginate(
            Filters=[
                {"Name": "tag:bbb-on-aws:environment", "Values": [environment]},
                {"Name": "tag:bbb-on-aws:role", "Values": ["bbb", "single"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
    )
    servers: list[tuple[str, str | None]] = []
    for page in pages:
        for reservation in page.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                servers.append((instance["InstanceId"], tags.get(TAG)))
    return servers


def create_secret(secret_id: str, token: str, stages: dict[str, list[str]]) -> str:
    sm = aws.client("secretsmanager")
    try:
        sm.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage=PENDING)
        return "pending value exists already"
    except sm.exceptions.ResourceNotFoundException:
        pass
    current = _current_version(stages)
    state = handoff(
        current, _bbb_servers(_setting("ENVIRONMENT_NAME")), _seconds("CREDENTIAL_TTL_SECONDS"), int(clock())
    )
    if not state.done:
        raise RotationError(f"not rotating yet: {state.reason} (the previous secret must not be retired before)")
    value = sm.get_random_password(
        PasswordLength=SECRET_LENGTH, ExcludePunctuation=True, IncludeSpace=False, RequireEachIncludedType=True
    )["RandomPassword"]
    sm.put_secret_value(SecretId=secret_id, ClientRequestToken=token, SecretString=value, VersionStages=[PENDING])
    return "pending value created"


def test_secret(secret_id: str, token: str, context: LambdaContext) -> str:
    """Well-formed, and every relay has had two poll periods to fetch it. The wait starts here, not at the
    version's CreatedDate: RotateSecret creates the version (without a value) before createSecret, possibly in
    an attempt that failed days ago, so that date says nothing about when the hosts could first read the value."""
    sm = aws.client("secretsmanager")
    pending = sm.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage=PENDING)
    if not _VALUE.match(pending.get("SecretString") or ""):
        raise RotationError(f"version {token} is not 16-128 letters and digits; cancel the rotation and start again")
    wait = 2 * _seconds("HOST_POLL_SECONDS") + _POLL_MARGIN_SECONDS
    if wait * 1000 > context.get_remaining_time_in_millis() - _TIMEOUT_RESERVE_MS:
        raise RotationError(f"waiting {wait} s for the TURN hosts' polls would outlive this invocation")
    sleep(wait)
    return f"waited {wait} s: every relay has polled since the pending value exists"


def finish_secret(secret_id: str, token: str, stages: dict[str, list[str]]) -> str:
    current = _current_version(stages)
    aws.client("secretsmanager").update_secret_version_stage(
        SecretId=secret_id, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
    )
    return f"AWSCURRENT moved from {current}"


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    secret_id, token, step = event.get("SecretId"), event.get("ClientRequestToken"), event.get("Step")
    if not isinstance(secret_id, str) or not isinstance(token, str) or not isinstance(step, str):
        raise RotationError("the event must carry SecretId, ClientRequestToken and Step (a Secrets Manager rotation)")
    if secret_id != _setting("SECRET_ARN"):
        raise RotationError(f"this function rotates {_setting('SECRET_ARN')} only, not {secret_id}")
    logger.append_keys(step=step, version=token)
    stages = _stages(secret_id)
    if step == "createSecret" and token not in stages:
        # RotateSecret lists the new version before createSecret; moto does not, and nothing else differs.
        stages[token] = [PENDING]
    if token not in stages:
        raise RotationError(f"version {token} of the secret does not exist")
    if CURRENT in stages[token]:
        outcome = "version already current"
    elif PENDING not in stages[token]:
        raise RotationError(f"version {token} is not AWSPENDING")
    elif step == "finishSecret":
        outcome = finish_secret(secret_id, token, stages)
    elif step == "createSecret":
        outcome = create_secret(secret_id, token, stages)
    elif step == "setSecret":
        outcome = "the TURN hosts poll the staging labels themselves"
    elif step == "testSecret":
        outcome = test_secret(secret_id, token, context)
    else:
        raise RotationError(f"unknown step {step!r}")
    metrics.add_metric(name=f"TurnSecretRotation{step[0].upper()}{step[1:]}", unit="Count", value=1)
    logger.info("rotation step done", extra={"outcome": outcome})
