"""Helpers shared by the end-to-end lifecycle tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lc_world import World


def make_world(role: str, template: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               **overrides: str) -> Iterator[World]:
    world = World(template, role, tmp_path, monkeypatch, env_overrides=overrides)
    try:
        yield world
        world.stubber.assert_no_pending_responses()
    finally:
        world.close()


def emitted_metrics(stdout: str) -> dict[str, float]:
    """Sum of every Powertools (EMF) metric printed on stdout, by name."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + float(sum(values))
    return totals
