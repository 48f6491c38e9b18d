"""Fixtures of the shared/data custom-resource handler tests: moto with fake credentials, handler loading."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent.parent
REGION = "eu-west-1"


def load_handler(folder: str) -> ModuleType:
    """lambdas/<folder>/index.py under a unique module name, with its folder importable as Lambda makes it."""
    source = ROOT / "lambdas" / folder
    if str(source) not in sys.path:
        sys.path.insert(0, str(source))
    name = f"platform_handler_{folder}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, source / "index.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


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
