"""SQL building blocks of the database-users handler: identifiers, SCRAM verifiers, statements."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from tests.platform_lambdas.conftest import load_handler

load_handler("database_users")
from database_users import role_sql  # noqa: E402


def rfc7677_server_check(verifier: str) -> None:
    """Play the server side of RFC 7677 section 3's exchange (user "user", password "pencil") against `verifier`."""
    method, rest = verifier.split("$", 1)
    params, keys = rest.split("$")
    iterations, salt = params.split(":")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    assert method == "SCRAM-SHA-256" and iterations == "4096" and salt == "W22ZaJ0SNY7soEsUEjb6gQ=="
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s={salt},i=4096,c=biws,r={nonce}").encode()
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")  # the client's, from the RFC
    client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key  # the server accepts the client's proof
    server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_verifier_authenticates_the_rfc_7677_exchange():
    verifier = role_sql.scram_verifier("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    rfc7677_server_check(verifier)


def test_verifier_for_another_password_is_rejected():
    verifier = role_sql.scram_verifier("pencil2", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    with pytest.raises(AssertionError):
        rfc7677_server_check(verifier)


def test_verifiers_are_salted_freshly():
    assert role_sql.scram_verifier("same") != role_sql.scram_verifier("same")


@pytest.mark.parametrize("password", ["", "pässword", "tab\there"])
def test_verifier_refuses_passwords_outside_printable_ascii(password):
    with pytest.raises(ValueError, match="printable ASCII"):
        role_sql.scram_verifier(password)


@pytest.mark.parametrize("name", ["greenlight", "scalelite", "app_2", "a"])
def test_plain_identifiers_are_quoted(name):
    assert role_sql.identifier(name, "role") == f'"{name}"'


@pytest.mark.parametrize("name", [
    'x"; DROP DATABASE greenlight; --', "Greenlight", "1abc", "", "a-b", "a b", "é", "x" * 64, "_hidden",
    "a'b", 'a"b', "a;b",
])
def test_unsafe_identifiers_are_refused(name):
    with pytest.raises(role_sql.UnsafeIdentifierError, match="is not allowed"):
        role_sql.identifier(name, "role")


@pytest.mark.parametrize("name", ["postgres", "rdsadmin", "rds_superuser", "pg_monitor", "template1", "public",
                                  "aws_s3", "clusteradmin"])
def test_reserved_names_are_refused(name):
    with pytest.raises(role_sql.UnsafeIdentifierError, match="reserved"):
        role_sql.identifier(name, "database")


def test_password_clause_accepts_only_a_verifier():
    with pytest.raises(ValueError, match="SCRAM verifier"):
        role_sql.create_role("greenlight", "secret' LOGIN SUPERUSER --")
    statement = role_sql.create_role("greenlight", role_sql.scram_verifier("pw"))
    assert statement.sql.startswith('CREATE ROLE "greenlight" WITH LOGIN CREATEDB NOCREATEROLE NOSUPERUSER')
    assert statement.parameters == {}


def test_lookups_pass_names_as_parameters():
    statement = role_sql.role_exists("greenlight")
    assert statement.sql == "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :role"
    assert statement.data_api_parameters() == [{"name": "role", "value": {"stringValue": "greenlight"}}]
