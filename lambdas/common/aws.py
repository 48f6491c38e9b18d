"""boto3 clients, one per service and purpose, created on first use and reused while the container lives.

Timeouts and retries fit Lambda: short connect/read timeouts and botocore's adaptive retry mode, so a
throttled call backs off inside the invocation instead of failing the state machine step at once.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"mode": "adaptive", "max_attempts": 5})


@functools.cache
def client(service: str, purpose: str = "default") -> Any:
    """A client for `service`. `purpose` separates clients that tests replace one by one (e.g. the
    lifecycle-action calls moto lacks are stubbed while the rest of Auto Scaling runs on moto)."""
    del purpose  # part of the cache key only
    return boto3.client(service, config=_CONFIG)


def reset() -> None:
    """Forget cached clients (tests start a fresh fake AWS per test)."""
    client.cache_clear()


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", str(exc)))


def region() -> str:
    """The function's region (Lambda sets AWS_REGION)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
