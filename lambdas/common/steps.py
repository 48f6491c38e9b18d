"""The payload every state machine Task sends, and what a step handler gets from it.

ASL passes `{"step", "lifecycle", "state", "now": $$.State.EnteredTime, "started": $$.Execution.StartTime}`
and stores the returned dict back at `$.state`, so all memory of a drain lives in its execution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from common import config, observability, timeutil
from common.lifecycle import LifecycleAction


@dataclass
class Step:
    name: str
    settings: config.Settings
    action: LifecycleAction
    state: dict[str, Any]
    now: str
    started: str

    @property
    def instance_id(self) -> str:
        return self.action.instance_id

    @property
    def elapsed(self) -> float:
        return timeutil.seconds_between(self.started, self.now)

    def heartbeat_due(self) -> bool:
        last = self.state.get("last_heartbeat") or self.started
        return timeutil.seconds_between(last, self.now) >= self.settings.heartbeat_interval_seconds

    def update(self, **changes: Any) -> dict[str, Any]:
        """The new state: the old one with `changes` applied."""
        return {**self.state, **changes}


def parse(event: Mapping[str, Any]) -> Step:
    missing = [key for key in ("step", "lifecycle", "state", "now", "started") if key not in event]
    if missing:
        raise ValueError(
            f"state machine payload lacks {', '.join(missing)}; this function is only invoked by its state machine"
        )
    state = event["state"] if isinstance(event["state"], dict) else {}
    return Step(
        name=str(event["step"]),
        settings=config.load(),
        action=LifecycleAction.from_state(event["lifecycle"]),
        state=dict(state),
        now=timeutil.iso(timeutil.parse(event["now"])),
        started=timeutil.iso(timeutil.parse(event["started"])),
    )


def dispatch(step: Step, table: Mapping[str, Callable[[Step], dict[str, Any]]]) -> dict[str, Any]:
    handler = table.get(step.name)
    if handler is None:
        raise ValueError(f"unknown step {step.name!r} (this function knows {', '.join(sorted(table))})")
    return handler(step)


def run(
    event: Mapping[str, Any],
    table: Mapping[str, Callable[[Step], dict[str, Any]]],
    *,
    logger: Logger,
    metrics: Metrics,
) -> dict[str, Any]:
    """One state machine Task: parse the payload, tag logs and metrics with the group, run the step."""
    step = parse(event)
    observability.group_dimension(metrics, step.settings.group)
    logger.append_keys(instance_id=step.instance_id, step=step.name, group=step.settings.group)
    return dispatch(step, table)
