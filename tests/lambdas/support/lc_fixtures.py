"""Helpers shared by the end-to-end lifecycle tests."""

from __future__ import annotations

import json


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
