"""What the issuer keeps in Secrets Manager: the ACME account and the certificate, each one JSON secret.

The stack creates both secrets with a generated placeholder (`{"placeholder": "..."}`), so "nothing issued
yet" is a JSON object without the expected keys; anything that is not a JSON object is refused with the
secret's ARN, never overwritten, because it was written by somebody else.

Certificate secret (read by the BBB hosts, docs/host-contract.md)::

    {"names": ["*.fleet.example.org"], "fullchain": "<PEM: leaf then intermediates>",
     "privateKey": "<PEM PKCS#8>", "notAfter": "2026-03-01T12:00:00Z", "serial": "<hex>",
     "directory": "<ACME directory URL>", "issuedAt": "<ISO 8601>"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError
from common import aws
from cryptography import x509


class StoreError(RuntimeError):
    """A secret cannot be read or written, or holds something the issuer did not write."""


@dataclass(frozen=True)
class StoredAccount:
    directory: str
    uri: str
    key_json: dict[str, Any]  # the account key as a JWK (private)


@dataclass(frozen=True)
class StoredCertificate:
    names: tuple[str, ...]
    fullchain: str
    private_key: str
    directory: str
    issued_at: str

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.fullchain.encode())

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc

    @property
    def serial(self) -> str:
        return format(self.leaf.serial_number, "x")

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400

    def to_json(self) -> str:
        return json.dumps(
            {
                "names": list(self.names),
                "fullchain": self.fullchain,
                "privateKey": self.private_key,
                "notAfter": _iso(self.not_after),
                "serial": self.serial,
                "directory": self.directory,
                "issuedAt": self.issued_at,
            }
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_object(arn: str) -> dict[str, Any]:
    try:
        value = aws.client("secretsmanager").get_secret_value(SecretId=arn)
    except ClientError as exc:
        raise StoreError(f"cannot read secret {arn}: {aws.error_code(exc)} {aws.error_message(exc)}") from None
    try:
        data = json.loads(value.get("SecretString") or "")
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise StoreError(
            f"secret {arn} does not hold a JSON object; the issuer writes only secrets its stack created "
            "(a JSON placeholder), so check that the function points at the right secret"
        )
    return data


def _write(arn: str, text: str) -> None:
    try:
        aws.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=text)
    except ClientError as exc:
        raise StoreError(f"cannot write secret {arn}: {aws.error_code(exc)} {aws.error_message(exc)}") from None


def load_account(arn: str) -> StoredAccount | None:
    data = _read_object(arn)
    if not {"directory", "uri", "key"} <= data.keys():
        return None
    return StoredAccount(directory=data["directory"], uri=data["uri"], key_json=data["key"])


def save_account(arn: str, account: StoredAccount) -> None:
    _write(arn, json.dumps({"directory": account.directory, "uri": account.uri, "key": account.key_json}))


def load_certificate(arn: str) -> StoredCertificate | None:
    data = _read_object(arn)
    if not {"names", "fullchain", "privateKey"} <= data.keys():
        return None
    try:
        stored = StoredCertificate(
            names=tuple(data["names"]),
            fullchain=data["fullchain"],
            private_key=data["privateKey"],
            directory=data.get("directory", ""),
            issued_at=data.get("issuedAt", ""),
        )
        stored.leaf  # noqa: B018 - parse now: a broken PEM is a problem of this secret, not of a later step
    except (ValueError, TypeError) as exc:
        raise StoreError(f"secret {arn} holds a certificate that cannot be parsed: {exc}") from None
    return stored


def save_certificate(arn: str, certificate: StoredCertificate) -> None:
    _write(arn, certificate.to_json())
