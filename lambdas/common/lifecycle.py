"""Completing and heartbeating Auto Scaling lifecycle actions, idempotently.

A replayed completion or a heartbeat after the action ended gets "No active Lifecycle Action found": that
is the state we want, not an error. The instance id is always sent, the token when we have it (actions
recovered by the reconciler have none; the instance id alone identifies the action then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from common import aws

_NO_ACTION = "No active Lifecycle Action found"


@dataclass(frozen=True)
class LifecycleAction:
    instance_id: str
    group: str
    hook: str
    token: str | None = None

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> LifecycleAction:
        try:
            return cls(
                instance_id=str(data["instance_id"]),
                group=str(data["group"]),
                hook=str(data["hook"]),
                token=data.get("token") or None,
            )
        except KeyError as exc:
            raise ValueError(f"lifecycle action is missing {exc.args[0]!r} (got keys {sorted(data)})") from None

    def to_state(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "group": self.group, "hook": self.hook, "token": self.token}

    def _params(self) -> dict[str, str]:
        params = {"AutoScalingGroupName": self.group, "LifecycleHookName": self.hook, "InstanceId": self.instance_id}
        if self.token:
            params["LifecycleActionToken"] = self.token
        return params


def _client() -> Any:
    return aws.client("autoscaling", "lifecycle-actions")


def _no_active_action(exc: ClientError) -> bool:
    return aws.error_code(exc) == "ValidationError" and _NO_ACTION in aws.error_message(exc)


def complete(action: LifecycleAction, result: str) -> bool:
    """CONTINUE or ABANDON. False if there was no active action any more (already completed or expired)."""
    if result not in ("CONTINUE", "ABANDON"):
        raise ValueError(f"lifecycle action result {result!r} must be CONTINUE or ABANDON")
    try:
        _client().complete_lifecycle_action(LifecycleActionResult=result, **action._params())
        return True
    except ClientError as exc:
        if _no_active_action(exc):
            return False
        raise


def heartbeat(action: LifecycleAction) -> bool:
    """Restart the hook's heartbeat timeout. False if the action is no longer active."""
    try:
        _client().record_lifecycle_action_heartbeat(**action._params())
        return True
    except ClientError as exc:
        if _no_active_action(exc):
            return False
        raise
