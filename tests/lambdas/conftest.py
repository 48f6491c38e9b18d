"""Fixtures of the lifecycle tests: moto, the fake Scalelite/BBB server, the synthesized template."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for path in (ROOT / "lambdas", HERE / "support"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from aws_lambda_powertools.utilities import parameters  # noqa: E402
from common import aws  # noqa: E402
from moto import mock_aws  # noqa: E402

REGION = "eu-west-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh fake AWS (moto) per test, with fake credentials and no cached clients or secrets."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        aws.reset()
        parameters.clear_caches()
        yield
        aws.reset()
        parameters.clear_caches()


@pytest.fixture(scope="session")
def lifecycle_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The test stack's template (nag off: a finding must not break the template tests). LC_TEMPLATE names one
    synthesized before (scripts/mutation.py: one synth for every mutant instead of one per test run)."""
    if cached := os.environ.get("LC_TEMPLATE"):
        return json.loads(Path(cached).read_text())
    import lc_test_stack  # CDK: imported only by the tests that need a synth

    outdir = tmp_path_factory.mktemp("lifecycle-synth")
    app, _stack = lc_test_stack.build(outdir, nag=False)
    app.synth()
    return json.loads((outdir / f"{lc_test_stack.STACK_NAME}.template.json").read_text())


@pytest.fixture
def world_factory(
    aws_env: None, lifecycle_template: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """`world_factory(role, **env_overrides)`: the end-to-end world (see support/lc_world.py). At the end,
    every lifecycle-action call the test expected must have happened."""
    from lc_world import World

    worlds: list[World] = []

    def factory(role: str, **overrides: str) -> World:
        world = World(lifecycle_template, role, tmp_path / f"world{len(worlds)}", monkeypatch, env_overrides=overrides)
        worlds.append(world)
        return world

    yield factory
    for world in worlds:
        world.close()
    for world in worlds:
        world.stubber.assert_no_pending_responses()
