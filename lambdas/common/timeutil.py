"""Times handed over by Step Functions (`$$.State.EnteredTime`, `$$.Execution.StartTime`).

The handlers take "now" from the state machine instead of the Lambda clock, so a drain's decisions depend
only on its execution (and the tests' interpreter can run hours of drain in milliseconds).
"""

from __future__ import annotations

from datetime import datetime, timezone


def parse(value: str) -> datetime:
    """ISO 8601 as Step Functions writes it (e.g. 2026-01-02T03:04:05.678Z)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def seconds_between(start: str, end: str) -> float:
    return (parse(end) - parse(start)).total_seconds()
