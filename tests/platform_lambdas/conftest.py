"""Fixtures of the shared/data custom-resource handler tests: moto with fake credentials, handler loading."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from moto import mock_aws

LAMBDAS = Path(__file__).resolve().parent.parent.parent / "lambdas"
REGION = "eu-west-1"


def load_handler(folder: str) -> ModuleType:
    """lambdas/<folder>/index.py imported as Lambda imports it: `lambdas/` is the code root (the asset holds
    the folder and the shared library `common`), the handler is `<folder>.index`."""
    if str(LAMBDAS) not in sys.path:
        sys.path.insert(0, str(LAMBDAS))
    return importlib.import_module(f"{folder}.index")


@dataclass
class LambdaContext:
    function_name: str = "handler-under-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:handler-under-test"
    aws_request_id: str = "7f1b2c3d-0000-4000-8000-000000000000"


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield
