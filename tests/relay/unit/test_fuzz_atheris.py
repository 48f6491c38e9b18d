"""A short coverage-guided (atheris/libFuzzer) run of every relay fuzz target; the longer run is
`python tests/relay/atheris_fuzz.py --runs N`."""

from __future__ import annotations

import atheris  # noqa: F401 (pinned in requirements-dev.txt: missing is a failure, not a skip)
import pytest
from atheris_fuzz import TARGETS, run_all

RUNS = 4000


@pytest.mark.slow
def test_atheris_targets_survive_coverage_guided_inputs(record_property) -> None:
    counts = run_all(RUNS)
    assert set(counts) == set(TARGETS)
    for name, count in counts.items():
        record_property(f"fuzz:atheris_{name}", count)
        assert count >= RUNS
