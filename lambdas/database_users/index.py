"""Custom resource: an application's own login role and database on the Aurora cluster, via the RDS Data API.

No VPC, no driver, no bundling: statements go through `rds-data` with the cluster's admin secret. Idempotent:
the role and database are created when missing, otherwise brought back to the wanted state (password from the
application's secret, options, ownership), so re-running after a secret rotation re-applies the password.

Create/Update  role (SCRAM verifier of the secret's password), admin membership, database owned by the
               role, CONNECT revoked from PUBLIC. A changed role or database name is a new physical resource.
Delete         drops database and role only when DropOnDelete is "true" (dev); otherwise the data stays.

Properties: ClusterArn, AdminSecretArn, UserSecretArn (JSON with "username" and "password"), DatabaseRole,
DatabaseName, DropOnDelete ("true" | "false").
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from common import observability
from common.custom_resource import CustomResource, Request, Result

from database_users import role_sql

logger, metrics = observability.tools()

# Serverless v2 at 0 ACU resumes in up to ~15 s; a cluster still starting answers "unavailable" for a while.
RETRYABLE = frozenset({"DatabaseResumingException", "DatabaseUnavailableException"})
RETRY_DELAY_SECONDS = 10.0
RETRY_ATTEMPTS = 18
ADMIN_DATABASE = "postgres"


@dataclass(frozen=True)
class Target:
    cluster_arn: str
    admin_secret_arn: str
    user_secret_arn: str
    role: str
    database: str
    drop_on_delete: bool

    @classmethod
    def of(cls, properties: Mapping[str, Any]) -> Target:
        keys = ("ClusterArn", "AdminSecretArn", "UserSecretArn", "DatabaseRole", "DatabaseName", "DropOnDelete")
        missing = [k for k in keys if not properties.get(k)]
        if missing:
            raise ValueError(f"custom resource properties {', '.join(missing)} are missing: set them in the stack")
        drop = str(properties["DropOnDelete"]).lower()
        if drop not in ("true", "false"):
            raise ValueError(f"DropOnDelete must be 'true' or 'false', got {properties['DropOnDelete']!r}")
        role, database = str(properties["DatabaseRole"]), str(properties["DatabaseName"])
        role_sql.identifier(role, "DatabaseRole")  # reject before any statement runs
        role_sql.identifier(database, "DatabaseName")
        return cls(str(properties["ClusterArn"]), str(properties["AdminSecretArn"]),
                   str(properties["UserSecretArn"]), role, database, drop == "true")

    @property
    def physical_id(self) -> str:
        return f"{self.role}@{self.database}"


def _rds_data() -> Any:
    return boto3.client("rds-data")


def _secrets() -> Any:
    return boto3.client("secretsmanager")


def sleep(seconds: float) -> None:  # module-level so tests can skip the waiting
    time.sleep(seconds)


def execute(client: Any, target: Target, statement: role_sql.Statement) -> list[list[dict[str, Any]]]:
    """Run one statement in autocommit (CREATE DATABASE cannot run in a transaction); returns its records."""
    request: dict[str, Any] = {
        "resourceArn": target.cluster_arn,
        "secretArn": target.admin_secret_arn,
        "database": ADMIN_DATABASE,
        "sql": statement.sql,
    }
    if statement.parameters:
        request["parameters"] = statement.data_api_parameters()
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return client.execute_statement(**request).get("records", [])
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code not in RETRYABLE or attempt == RETRY_ATTEMPTS:
                # The SQL holds no secret (see role_sql), but keep errors short and about the statement kind.
                raise RuntimeError(f"{statement.sql.split(' WITH ')[0]} failed: {code}: "
                                   f"{exc.response['Error'].get('Message', '')}") from None
            logger.info("Database not ready, retrying", extra={"error": code, "attempt": attempt})
            sleep(RETRY_DELAY_SECONDS)
    raise AssertionError("unreachable")


def _password(target: Target) -> str:
    raw = _secrets().get_secret_value(SecretId=target.user_secret_arn).get("SecretString") or ""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not value.get("password"):
        raise ValueError(f"secret {target.user_secret_arn} must hold JSON with a 'password' (RDS secret shape)")
    if value.get("username") != target.role:
        raise ValueError(f"secret {target.user_secret_arn} is for user {value.get('username')!r}, not for role "
                         f"{target.role!r}: DatabaseRole and the secret's username must agree")
    return str(value["password"])


def ensure(target: Target) -> None:
    client = _rds_data()
    verifier = role_sql.scram_verifier(_password(target))
    if execute(client, target, role_sql.role_exists(target.role)):
        execute(client, target, role_sql.alter_role(target.role, verifier))
    else:
        execute(client, target, role_sql.create_role(target.role, verifier))
    execute(client, target, role_sql.grant_role_to_admin(target.role))
    if execute(client, target, role_sql.database_exists(target.database)):
        execute(client, target, role_sql.alter_database_owner(target.database, target.role))
    else:
        execute(client, target, role_sql.create_database(target.database, target.role))
    execute(client, target, role_sql.revoke_public(target.database))
    logger.info("Role and database ready", extra={"role": target.role, "database": target.database})


def remove(target: Target) -> None:
    if not target.drop_on_delete:
        logger.info("Keeping role and database (DropOnDelete is false)",
                    extra={"role": target.role, "database": target.database})
        return
    client = _rds_data()
    execute(client, target, role_sql.drop_database(target.database))
    execute(client, target, role_sql.drop_role(target.role))
    logger.info("Dropped role and database", extra={"role": target.role, "database": target.database})


def create_or_update(request: Request) -> Result:
    target = Target.of(request.properties)
    ensure(target)
    return {"PhysicalResourceId": target.physical_id}


def delete(request: Request) -> Result:
    physical_id = request.physical_id or ""
    try:
        target = Target.of(request.properties)
    except ValueError as exc:  # a Create that failed validation left nothing behind to delete
        logger.warning("Nothing to delete", extra={"reason": str(exc)})
        return {"PhysicalResourceId": physical_id}
    if physical_id != target.physical_id:  # a Create that never finished
        logger.info("Delete of a resource that was never created", extra={"physical_id": physical_id})
        return {"PhysicalResourceId": physical_id}
    remove(target)
    return {"PhysicalResourceId": physical_id}


resource = CustomResource(create=create_or_update, update=create_or_update, delete=delete, logger=logger)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def on_event(event: Mapping[str, Any], context: LambdaContext) -> Result:
    return resource(event, context)
