"""The database-users handler's statements against a real PostgreSQL server started by the test.

Only the transport is stood in: a small client with the RDS Data API's `execute_statement` shape runs each
statement through psql in autocommit, as the Data API does outside a transaction. PostgreSQL itself decides
whether the SQL is valid, idempotent, and whether the SCRAM verifier lets the application log in with the
password from its secret. The admin is a CREATEROLE/CREATEDB role without superuser, like Aurora's master user.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.platform_lambdas.conftest import load_handler
from tests.servers import free_port

handler = load_handler("database_users")

pytestmark = pytest.mark.slow
ADMIN = "clusteradmin"


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if not found:
        pytest.fail("PostgreSQL server binaries not found: install the Debian package 'postgresql' "
                    "(./scripts/install.sh --test-tools does)")
    return Path(found).resolve().parent


class Server:
    def __init__(self, root: Path) -> None:
        self.bin = _bin_dir()
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        # PostgreSQL refuses to run as root: run the server as the package's own user then.
        self.as_server = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run_server_tool(self, *args: str) -> None:
        result = subprocess.run([*self.as_server, *args], capture_output=True, text=True, timeout=120, check=False)
        if result.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> None:
        self.root.chmod(0o777)
        if self.as_server:
            shutil.chown(self.root, "postgres")
        self.run_server_tool(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                             "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        options = f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run_server_tool(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                             "-l", str(self.root / "server.log"), "-w", "start")
        self.psql("postgres", "postgres", f"CREATE ROLE {ADMIN} WITH LOGIN CREATEROLE CREATEDB")

    def stop(self) -> None:
        self.run_server_tool(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def psql(self, user: str, database: str, sql: str) -> list[str]:
        """As `user` over the local socket (trust): the admin's session, as the Data API opens it."""
        result = subprocess.run(
            ["psql",
             "-h", str(self.root), "-p", str(self.port), "-U", user, "-d", database, "-X", "-q", "-tA",
             "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if result.returncode:
            raise RuntimeError(result.stderr.strip())
        return [line for line in result.stdout.splitlines() if line]

    def login(self, user: str, password: str, database: str, sql: str = "SELECT current_user") -> list[str]:
        """Over TCP, where pg_hba demands scram-sha-256: proves the stored verifier matches the password."""
        result = subprocess.run(
            ["psql", f"host=127.0.0.1 port={self.port} user={user} dbname={database} password={password}",
             "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "PGPASSFILE": "/dev/null"},
        )
        if result.returncode:
            raise PermissionError(result.stderr.strip())
        return [line for line in result.stdout.splitlines() if line]


class PsqlDataApi:
    """`execute_statement` of the rds-data client, backed by psql; records in the Data API's shape."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.statements: list[str] = []

    def execute_statement(self, *, resourceArn: str, secretArn: str, database: str, sql: str,
                          parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        for parameter in parameters or []:
            value = parameter["value"]["stringValue"]
            assert re.fullmatch(r"[a-z0-9_]+", value), "test stand-in quotes only plain names"
            sql = sql.replace(f":{parameter['name']}", f"'{value}'")
        self.statements.append(sql)
        try:
            rows = self.server.psql(ADMIN, database, sql)
        except RuntimeError as exc:
            raise ClientError({"Error": {"Code": "DatabaseErrorException", "Message": str(exc)}},
                              "ExecuteStatement") from None
        return {"records": [[{"stringValue": row}] for row in rows]}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # Not under pytest's tmp_path: its parents are private to the test user, and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="bbb-postgres-"))
    running = Server(root)
    try:
        running.start()
        yield running
    finally:
        if (root / "data" / "postmaster.pid").exists():
            running.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def world(aws, server, monkeypatch):
    api = PsqlDataApi(server)
    monkeypatch.setattr(handler, "_rds_data", lambda: api)
    secrets = boto3.client("secretsmanager")

    def app_secret(name: str, password: str) -> str:
        return secrets.create_secret(Name=f"{name}-db", SecretString=json.dumps(
            {"username": name, "password": password, "dbname": name}))["ARN"]

    return {"server": server, "api": api, "secret": app_secret, "secrets": secrets}


def props(secret_arn: str, name: str, drop: str = "true") -> dict[str, str]:
    return {"ClusterArn": "arn:aws:rds:eu-west-1:123456789012:cluster:bbb-aurora",
            "AdminSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster",
            "UserSecretArn": secret_arn, "DatabaseRole": name, "DatabaseName": name, "DropOnDelete": drop}


def run(request_type: str, properties: dict[str, str], context: Any, physical_id: str | None = None) -> str:
    event = {"RequestType": request_type, "ResourceProperties": properties, "LogicalResourceId": "User"}
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return handler.on_event(event, context)["PhysicalResourceId"]


def test_application_logs_in_to_its_own_database_with_its_secret(world, context):
    server = world["server"]
    arn = world["secret"]("greenlight", "Gl0wingPassw0rdAlnum32charsXYZab")
    physical = run("Create", props(arn, "greenlight"), context)
    assert physical == "greenlight@greenlight"
    assert server.login("greenlight", "Gl0wingPassw0rdAlnum32charsXYZab", "greenlight") == ["greenlight"]
    with pytest.raises(PermissionError, match="password authentication failed"):
        server.login("greenlight", "wrong-password", "greenlight")
    assert not any("Gl0wingPassw0rd" in sql for sql in world["api"].statements)  # verifier only
    # What the application does at start: migrations create tables in its own database; Rails' db:create
    # reaches PostgreSQL's "already exists" rather than a permission error.
    server.login("greenlight", "Gl0wingPassw0rdAlnum32charsXYZab", "greenlight", "CREATE TABLE users (id int)")
    with pytest.raises(PermissionError, match='database "greenlight" already exists'):
        server.login("greenlight", "Gl0wingPassw0rdAlnum32charsXYZab", "greenlight", "CREATE DATABASE greenlight")
    run("Delete", props(arn, "greenlight"), context, physical)


def test_rerun_is_idempotent_and_applies_a_rotated_password(world, context):
    server = world["server"]
    arn = world["secret"]("scalelite", "FirstPassw0rdAlnumOnly32charsAbc")
    physical = run("Create", props(arn, "scalelite"), context)
    assert run("Create", props(arn, "scalelite"), context) == physical  # a retried Create changes nothing
    world["secrets"].put_secret_value(SecretId=arn, SecretString=json.dumps(
        {"username": "scalelite", "password": "SecondPassw0rdAlnumOnly32charsXy", "dbname": "scalelite"}))
    assert run("Update", props(arn, "scalelite"), context, physical) == physical
    assert server.login("scalelite", "SecondPassw0rdAlnumOnly32charsXy", "scalelite") == ["scalelite"]
    with pytest.raises(PermissionError):
        server.login("scalelite", "FirstPassw0rdAlnumOnly32charsAbc", "scalelite")
    owner = server.psql(ADMIN, "postgres",
                        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'scalelite'")
    assert owner == ["scalelite"]
    run("Delete", props(arn, "scalelite"), context, physical)


def test_applications_cannot_enter_each_others_database(world, context):
    server = world["server"]
    greenlight = world["secret"]("greenlight", "GreenPassw0rdAlnumOnly32charsAbc")
    scalelite = world["secret"]("scalelite", "ScalePassw0rdAlnumOnly32charsAbc")
    run("Create", props(greenlight, "greenlight"), context)
    run("Create", props(scalelite, "scalelite"), context)
    with pytest.raises(PermissionError, match="permission denied for database"):
        server.login("scalelite", "ScalePassw0rdAlnumOnly32charsAbc", "greenlight")
    run("Delete", props(greenlight, "greenlight"), context, "greenlight@greenlight")
    run("Delete", props(scalelite, "scalelite"), context, "scalelite@scalelite")


def test_delete_drops_in_dev_and_keeps_otherwise(world, context):
    server = world["server"]
    kept = world["secret"]("greenlight", "KeepPassw0rdAlnumOnly32charsAbcd")
    run("Create", props(kept, "greenlight", drop="false"), context)
    run("Delete", props(kept, "greenlight", drop="false"), context, "greenlight@greenlight")
    assert server.login("greenlight", "KeepPassw0rdAlnumOnly32charsAbcd", "greenlight") == ["greenlight"]
    run("Delete", props(kept, "greenlight", drop="true"), context, "greenlight@greenlight")
    assert server.psql(ADMIN, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'greenlight'") == ["0"]
    assert server.psql(ADMIN, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'greenlight'") == ["0"]
