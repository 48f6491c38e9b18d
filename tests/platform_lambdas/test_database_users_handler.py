"""The database-users custom resource: exact Data API statements (botocore Stubber: moto's rds-data cannot run
SQL), secrets from moto, idempotent paths, retries, deletion per stage and refusal of unsafe input."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import boto3
import pytest
from botocore.stub import Stubber

from tests.platform_lambdas.conftest import load_handler

handler = load_handler("database_users")
from database_users import role_sql  # noqa: E402

CLUSTER = "arn:aws:rds:eu-west-1:123456789012:cluster:bbb-aurora"
ADMIN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-abc"
SALT = bytes(range(16))
PASSWORD = "Zq7rT2mW9xK4pL8vN3cB6hJ1dF5gS0aE"


@pytest.fixture
def world(aws, monkeypatch):
    secrets = boto3.client("secretsmanager")
    user_secret = secrets.create_secret(Name="greenlight-db", SecretString=json.dumps(
        {"username": "greenlight", "password": PASSWORD, "dbname": "greenlight", "host": "db", "port": 5432}))["ARN"]
    client = boto3.client("rds-data")
    stubber = Stubber(client)
    monkeypatch.setattr(handler, "_rds_data", lambda: client)
    monkeypatch.setattr(role_sql.os, "urandom", lambda n: SALT[:n])  # reproducible verifier
    slept: list[float] = []
    monkeypatch.setattr(handler, "sleep", slept.append)
    with stubber:
        yield {"stubber": stubber, "user_secret": user_secret, "slept": slept}
        stubber.assert_no_pending_responses()


def props(world, **changes):
    return {"ServiceToken": "arn:token", "ClusterArn": CLUSTER, "AdminSecretArn": ADMIN,
            "UserSecretArn": world["user_secret"], "DatabaseRole": "greenlight", "DatabaseName": "greenlight",
            "DropOnDelete": "false", **changes}


def event(request_type, properties, physical_id=None):
    found = {"RequestType": request_type, "ResourceProperties": properties, "LogicalResourceId": "GreenlightUser"}
    if physical_id:
        found["PhysicalResourceId"] = physical_id
    return found


def expect(world, sql, parameters=None, records=None):
    request = {"resourceArn": CLUSTER, "secretArn": ADMIN, "database": "postgres", "sql": sql}
    if parameters:
        request["parameters"] = [{"name": k, "value": {"stringValue": v}} for k, v in parameters.items()]
    world["stubber"].add_response("execute_statement", {"records": records or []}, request)


FOUND = [[{"longValue": 1}]]
VERIFIER = role_sql.scram_verifier(PASSWORD, salt=SALT)
OPTIONS = "LOGIN CREATEDB NOCREATEROLE"
CREATE_OPTIONS = f"{OPTIONS} NOSUPERUSER NOREPLICATION NOBYPASSRLS"


def test_verifier_in_the_sql_is_for_the_secrets_password():
    _, rest = VERIFIER.split("$", 1)
    _, keys = rest.split("$")
    stored_key = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert hashlib.sha256(client_key).digest() == stored_key and PASSWORD not in VERIFIER


def test_create_makes_role_and_database_when_missing(world, context):
    expect(world, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :role", {"role": "greenlight"})
    expect(world, f"CREATE ROLE \"greenlight\" WITH {CREATE_OPTIONS} PASSWORD '{VERIFIER}'")
    expect(world, 'GRANT "greenlight" TO CURRENT_USER')
    expect(world, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = :database", {"database": "greenlight"})
    expect(world, 'CREATE DATABASE "greenlight" OWNER "greenlight"')
    expect(world, 'REVOKE ALL ON DATABASE "greenlight" FROM PUBLIC')
    answer = handler.on_event(event("Create", props(world)), context)
    assert answer == {"PhysicalResourceId": "greenlight@greenlight"}


def test_rerun_brings_existing_role_and_database_back_to_the_wanted_state(world, context):
    expect(world, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :role", {"role": "greenlight"}, FOUND)
    expect(world, f"ALTER ROLE \"greenlight\" WITH {OPTIONS} PASSWORD '{VERIFIER}'")
    expect(world, 'GRANT "greenlight" TO CURRENT_USER')
    expect(world, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = :database", {"database": "greenlight"},
           FOUND)
    expect(world, 'ALTER DATABASE "greenlight" OWNER TO "greenlight"')
    expect(world, 'REVOKE ALL ON DATABASE "greenlight" FROM PUBLIC')
    answer = handler.on_event(event("Update", props(world), "greenlight@greenlight"), context)
    assert answer == {"PhysicalResourceId": "greenlight@greenlight"}


def test_resuming_database_is_waited_for(world, context):
    for code in ("DatabaseResumingException", "DatabaseUnavailableException"):
        world["stubber"].add_client_error("execute_statement", service_error_code=code, http_status_code=400)
    expect(world, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :role", {"role": "greenlight"}, FOUND)
    expect(world, f"ALTER ROLE \"greenlight\" WITH {OPTIONS} PASSWORD '{VERIFIER}'")
    expect(world, 'GRANT "greenlight" TO CURRENT_USER')
    expect(world, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = :database", {"database": "greenlight"},
           FOUND)
    expect(world, 'ALTER DATABASE "greenlight" OWNER TO "greenlight"')
    expect(world, 'REVOKE ALL ON DATABASE "greenlight" FROM PUBLIC')
    handler.on_event(event("Create", props(world)), context)
    assert world["slept"] == [handler.RETRY_DELAY_SECONDS] * 2


def test_a_database_error_fails_without_echoing_the_verifier(world, context):
    expect(world, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :role", {"role": "greenlight"})
    world["stubber"].add_client_error("execute_statement", service_error_code="DatabaseErrorException",
                                      service_message="permission denied to create role", http_status_code=400)
    with pytest.raises(RuntimeError, match='CREATE ROLE "greenlight" failed: DatabaseErrorException') as failure:
        handler.on_event(event("Create", props(world)), context)
    assert "SCRAM" not in str(failure.value)


def test_delete_keeps_data_in_stage_and_prod(world, context):
    handler.on_event(event("Delete", props(world, DropOnDelete="false"), "greenlight@greenlight"), context)
    # no statement was stubbed: any call would have failed the test


def test_delete_in_dev_drops_database_then_role(world, context):
    expect(world, 'DROP DATABASE IF EXISTS "greenlight" WITH (FORCE)')
    expect(world, 'DROP ROLE IF EXISTS "greenlight"')
    handler.on_event(event("Delete", props(world, DropOnDelete="true"), "greenlight@greenlight"), context)


def test_delete_of_a_create_that_never_finished_touches_nothing(world, context):
    handler.on_event(event("Delete", props(world, DropOnDelete="true"), "bbb-data-GreenlightUser-XYZ"), context)


def test_delete_of_a_create_that_failed_validation_succeeds(world, context):
    answer = handler.on_event(event("Delete", props(world, DatabaseRole="Bad Name"), "whatever"), context)
    assert answer == {"PhysicalResourceId": "whatever"}


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"DatabaseRole": 'greenlight"; DROP DATABASE scalelite; --'}, role_sql.UnsafeIdentifierError, "not allowed"),
    ({"DatabaseName": "postgres"}, role_sql.UnsafeIdentifierError, "reserved"),
    ({"DatabaseRole": "rds_superuser"}, role_sql.UnsafeIdentifierError, "reserved"),
    ({"DropOnDelete": "maybe"}, ValueError, "DropOnDelete must be"),
    ({"ClusterArn": ""}, ValueError, "ClusterArn are missing"),
])
def test_unsafe_or_missing_properties_are_refused_before_any_statement(world, context, changes, error, message):
    with pytest.raises(error, match=message):
        handler.on_event(event("Create", props(world, **changes)), context)


def test_secret_for_another_user_is_refused(world, context):
    with pytest.raises(ValueError, match="DatabaseRole and the secret's username must agree"):
        handler.on_event(event("Create", props(world, DatabaseRole="scalelite", DatabaseName="scalelite")), context)


def test_secret_without_json_password_is_refused(world, context):
    plain = boto3.client("secretsmanager").create_secret(Name="plain", SecretString="not-json")["ARN"]
    with pytest.raises(ValueError, match="must hold JSON with a 'password'"):
        handler.on_event(event("Create", props(world, UserSecretArn=plain)), context)
