"""The SES SMTP password of an IAM secret access key (AWS's documented SigV4 derivation, version 0x04).

The password is region-specific: HMAC-SHA256 chained over a fixed date, the SES region, "ses", "aws4_request"
and the message "SendRawEmail", keyed first with "AWS4" + secret; base64 of 0x04 followed by the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_DATE = "11111111"
_SERVICE = "ses"
_TERMINAL = "aws4_request"
_MESSAGE = "SendRawEmail"
_VERSION = b"\x04"
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")


def _sign(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def smtp_password(secret_access_key: str, region: str) -> str:
    if not secret_access_key:
        raise ValueError("the secret access key is empty: cannot derive an SES SMTP password from it")
    if not _REGION.match(region):
        raise ValueError(f"{region!r} is not an AWS region such as eu-west-1: SMTP passwords are per SES region")
    signature = _sign(("AWS4" + secret_access_key).encode("utf-8"), _DATE)
    for part in (region, _SERVICE, _TERMINAL, _MESSAGE):
        signature = _sign(signature, part)
    return base64.b64encode(_VERSION + signature).decode("ascii")
