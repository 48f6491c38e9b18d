"""The SES SMTP password derivation, against published vectors and an independent reading of AWS's spec."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pytest

from tests.platform_lambdas.conftest import load_handler

load_handler("smtp_credentials")
from smtp_credentials.smtp_password import smtp_password  # noqa: E402

# terraform-provider-aws, internal/service/iam/access_key_test.go (TestSESSMTPPasswordFromSecretKeySigV4): a
# second implementation of the same derivation, whose output authenticates against SES.
VECTORS = [
    ("eu-central-1", "some+secret+key", "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2"),
    ("eu-central-1", "another+secret+key", "BBbphbrQmrKMx42d1N6+C7VINYEBGI5v9VsZeTxwskfh"),
    ("us-west-1", "some+secret+key", "BH+jbMzper5WwlwUar9E1ySBqHa9whi0GPo+sJ0mVYJj"),
    ("us-west-1", "another+secret+key", "BKVmjjMDFk/qqw8EROW99bjCS65PF8WKvK5bSr4Y6EqF"),
]


@pytest.mark.parametrize(("region", "secret", "expected"), VECTORS)
def test_known_vectors(region, secret, expected):
    assert smtp_password(secret, region) == expected


def spec_password(secret: str, region: str) -> str:
    """AWS SES developer guide, 'Obtaining SES SMTP credentials', step by step."""
    key = ("AWS4" + secret).encode()
    for message in ("11111111", region, "ses", "aws4_request", "SendRawEmail"):
        key = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.b64encode(bytes([0x04]) + key).decode()


def test_matches_the_documented_algorithm_for_random_keys():
    for region in ("eu-west-1", "us-east-1", "ap-southeast-2", "us-gov-west-1"):
        secret = secrets.token_urlsafe(30)
        password = smtp_password(secret, region)
        assert password == spec_password(secret, region)
        raw = base64.b64decode(password)
        assert raw[0] == 4 and len(raw) == 33  # version byte + SHA-256


def test_password_depends_on_the_region():
    assert smtp_password("k", "eu-west-1") != smtp_password("k", "eu-west-2")


@pytest.mark.parametrize(("secret", "region", "message"), [
    ("", "eu-west-1", "secret access key is empty"),
    ("k", "Europe", "is not an AWS region"),
    ("k", "eu-west-1a", "is not an AWS region"),
])
def test_bad_input_is_named(secret, region, message):
    with pytest.raises(ValueError, match=message):
        smtp_password(secret, region)
