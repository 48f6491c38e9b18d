"""SQL for an application's own PostgreSQL login role and database, safe against injection by construction.

Identifiers are validated against a strict pattern (and reserved prefixes) before they are double-quoted;
values go as Data API parameters where PostgreSQL accepts parameters. Role passwords cannot be parameters
(CREATE/ALTER ROLE are utility statements), so the plain password never enters SQL at all: the role gets
a salted SCRAM-SHA-256 verifier, which PostgreSQL stores as is (and which would be useless in a log).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from typing import Any

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_PREFIXES = ("pg_", "rds", "aws_")
RESERVED_NAMES = frozenset({"postgres", "template0", "template1", "public", "admin", "clusteradmin", "root"})
SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)
_VERIFIER = re.compile(r"^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$")


class UnsafeIdentifierError(ValueError):
    pass


def identifier(name: str, what: str) -> str:
    """`name` double-quoted, once it is known to be a plain lowercase identifier that is ours to manage."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise UnsafeIdentifierError(
            f"{what} {name!r} is not allowed: use 1-63 lowercase letters, digits or '_', starting with a letter"
        )
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        raise UnsafeIdentifierError(
            f"{what} {name!r} is reserved by PostgreSQL or RDS: choose an application name such as 'greenlight'"
        )
    return f'"{name}"'


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677 StoredKey and ServerKey)."""
    if not password or not password.isascii() or not password.isprintable():
        raise ValueError("the password must be non-empty printable ASCII (SASLprep is then the identity)")
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def _literal(verifier: str) -> str:
    # Only base64, digits, '$' and ':' can reach here; the check keeps it that way if the code ever changes.
    if not _VERIFIER.match(verifier):
        raise ValueError("refusing to put anything but a SCRAM verifier into a PASSWORD clause")
    return f"'{verifier}'"


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: dict[str, str] = field(default_factory=dict)

    def data_api_parameters(self) -> list[dict[str, Any]]:
        return [{"name": k, "value": {"stringValue": v}} for k, v in self.parameters.items()]


def role_exists(role: str) -> Statement:
    identifier(role, "role")
    return Statement("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :role", {"role": role})


def database_exists(database: str) -> Statement:
    identifier(database, "database")
    return Statement("SELECT 1 FROM pg_catalog.pg_database WHERE datname = :database", {"database": database})


# CREATEDB: Rails' `db:create` at container start must reach PostgreSQL's "already exists" check, which
# comes after the privilege check; without it Greenlight/Scalelite start-up fails on an existing database.
_ROLE_OPTIONS = "LOGIN CREATEDB NOCREATEROLE"
# Only a superuser may even name these in ALTER ROLE (Aurora's admin is not one); CREATE ROLE accepts them.
_CREATE_ONLY_OPTIONS = "NOSUPERUSER NOREPLICATION NOBYPASSRLS"


def create_role(role: str, verifier: str) -> Statement:
    return Statement(f"CREATE ROLE {identifier(role, 'role')} WITH {_ROLE_OPTIONS} {_CREATE_ONLY_OPTIONS} "
                     f"PASSWORD {_literal(verifier)}")


def alter_role(role: str, verifier: str) -> Statement:
    return Statement(f"ALTER ROLE {identifier(role, 'role')} WITH {_ROLE_OPTIONS} PASSWORD {_literal(verifier)}")


def grant_role_to_admin(role: str) -> Statement:
    # The admin must be able to SET ROLE to the owner it gives a database to (PostgreSQL 16+ no longer
    # grants that implicitly to the role's creator).
    return Statement(f"GRANT {identifier(role, 'role')} TO CURRENT_USER")


def create_database(database: str, owner: str) -> Statement:
    return Statement(f"CREATE DATABASE {identifier(database, 'database')} OWNER {identifier(owner, 'role')}")


def alter_database_owner(database: str, owner: str) -> Statement:
    return Statement(f"ALTER DATABASE {identifier(database, 'database')} OWNER TO {identifier(owner, 'role')}")


def revoke_public(database: str) -> Statement:
    # Without this every role of the cluster could connect to every application's database.
    return Statement(f"REVOKE ALL ON DATABASE {identifier(database, 'database')} FROM PUBLIC")


def drop_database(database: str) -> Statement:
    return Statement(f"DROP DATABASE IF EXISTS {identifier(database, 'database')} WITH (FORCE)")


def drop_role(role: str) -> Statement:
    return Statement(f"DROP ROLE IF EXISTS {identifier(role, 'role')}")
