"""bbb.warmPool / turn.warmPool: defaults, and every bad value fails naming its key."""

from __future__ import annotations

import pytest

from settings import load_config, parameters
from tests.unit.test_config_model import ctx, one_problem


def test_defaults_bbb_pool_on_turn_pool_off() -> None:
    config = load_config(ctx())
    assert (config.bbb.warm_pool.enabled, config.bbb.warm_pool.min_size) == (True, 0)
    assert config.bbb.warm_pool.pool_state == "Stopped" and config.bbb.warm_pool.reuse_on_scale_in
    assert config.bbb.warm_pool.max_prepared_capacity is None
    assert config.turn.warm_pool.enabled is False
    documented = {key: default for key, default, _ in parameters()}
    assert documented["deployment.turn.warmPool.enabled"] == "false"  # the section's default, not the class's
    assert documented["deployment.bbb.warmPool.enabled"] == "true"


def test_a_partial_pool_section_enables_the_pool() -> None:
    config = load_config(ctx(**{"turn.warmPool": {"minSize": 1}}))
    assert config.turn.warm_pool.enabled and config.turn.warm_pool.min_size == 1


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"bbb.warmPool.minSize": -1}, "deployment.bbb.warmPool.minSize: -1 must be at least 0"),
        ({"bbb.warmPool.minSize": 3}, "deployment.bbb.warmPool.minSize: 3 prepared servers, but the group can only "
                                      "grow by 2"),
        ({"bbb.warmPool.maxPreparedCapacity": -1}, "deployment.bbb.warmPool.maxPreparedCapacity: -1 must not be "
                                                   "negative"),
        ({"bbb.warmPool.maxPreparedCapacity": 4}, "deployment.bbb.warmPool.maxPreparedCapacity: 4 exceeds "
                                                  "deployment.bbb.maxInstances=3"),
        ({"bbb.warmPool.minSize": 2, "bbb.warmPool.maxPreparedCapacity": 1},
         "deployment.bbb.warmPool.maxPreparedCapacity: 1 is below deployment.bbb.warmPool.minSize=2"),
        ({"turn.warmPool.enabled": True, "turn.warmPool.minSize": 4},
         "deployment.turn.warmPool.minSize: 4 prepared servers, but the group can only grow by 3"),
        ({"bbb.warmPool.poolState": "Hibernated"}, "deployment.bbb.warmPool.poolState: 'Hibernated' is not allowed"),
        ({"bbb.warmPool.minSise": 1}, "deployment.bbb.warmPool.minSise: unknown key; did you mean 'minSize'?"),
    ],
)
def test_bad_pool_values_name_the_key(changes: dict, expected: str) -> None:
    assert one_problem(**changes).startswith(expected)


def test_a_disabled_pool_is_not_checked_against_the_group() -> None:
    assert load_config(ctx(**{"turn.warmPool.minSize": 50})).turn.warm_pool.min_size == 50
