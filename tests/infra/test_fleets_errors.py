"""Settings the fleets cannot honour fail before anything is built, naming the cdk.json key."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError
from stacks.deployment import build_app
from tests.infra.synth import deployment


def build(**changes):
    return build_app(context={"deployment": deployment(**changes)}, nag=False)


def test_a_turn_drain_longer_than_a_lifecycle_hook_can_wait_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        build(**{"turn.drainMaxMinutes": 2880})
    (problem,) = error.value.problems
    assert problem.startswith("deployment.turn.drainMaxMinutes: drain_max=172800s must be between 60 s and")


def test_the_cluster_proxy_needs_the_scalable_shape():
    with pytest.raises(ConfigError) as error:
        build(**{"environment.type": "single", "clusterProxy.enabled": True})
    (problem,) = error.value.problems
    assert problem.startswith("deployment.clusterProxy.enabled: the cluster proxy serves a fleet of BBB servers")
    assert "deployment.environment.type 'scalable'" in problem
