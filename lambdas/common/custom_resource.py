"""A small, reusable pattern for idempotent custom resources behind `aws_cdk.custom_resources.Provider`.

The Provider framework calls `on_event` with Create / Update / Delete and reports success or failure to
CloudFormation itself; a handler only has to make each operation idempotent:

- Create may run again after a timeout: look the thing up before creating it, and return a stable
  PhysicalResourceId derived from the resource's properties, not a random one.
- Update returns the same PhysicalResourceId unless the thing was really replaced (a different id makes
  CloudFormation send a Delete for the old one after the update).
- Delete must succeed when the thing is already gone, and also for a resource whose Create failed (its
  PhysicalResourceId is then whatever the framework made up).

`CustomResource` below wires these three callables, validates the event and adds the request to every log
line of the invocation, so a handler module is three functions, `resource = CustomResource(create=...,
update=..., delete=..., logger=logger)` and an `on_event` with the Powertools decorators that calls it.
`parse` also serves an `is_complete` handler (the Provider framework passes it the event plus on_event's
answer in `Data`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

Properties = Mapping[str, Any]
Result = dict[str, Any]


@dataclass(frozen=True)
class Request:
    request_type: str
    properties: dict[str, Any]
    old_properties: dict[str, Any]
    physical_id: str | None
    logical_id: str
    stack_id: str
    data: dict[str, Any]


def parse(event: Mapping[str, Any]) -> Request:
    request_type = event.get("RequestType")
    if request_type not in ("Create", "Update", "Delete"):
        raise ValueError(f"RequestType {request_type!r} is not Create, Update or Delete: not a custom resource event")
    properties = dict(event.get("ResourceProperties") or {})
    properties.pop("ServiceToken", None)
    old = dict(event.get("OldResourceProperties") or {})
    old.pop("ServiceToken", None)
    return Request(
        request_type=str(request_type),
        properties=properties,
        old_properties=old,
        physical_id=event.get("PhysicalResourceId"),
        logical_id=str(event.get("LogicalResourceId", "")),
        stack_id=str(event.get("StackId", "")),
        data=dict(event.get("Data") or {}),
    )


class CustomResource:
    """Callable `on_event`: routes to create/update/delete and shapes the Provider framework's answer."""

    def __init__(
        self,
        *,
        create: Callable[[Request], Result],
        update: Callable[[Request], Result] | None = None,
        delete: Callable[[Request], Result] | None = None,
        logger: Logger | None = None,
    ) -> None:
        self._create = create
        self._update = update or create
        self._delete = delete
        self._logger = logger

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> Result:
        request = parse(event)
        if self._logger is not None:
            self._logger.append_keys(
                request_type=request.request_type, logical_id=request.logical_id, physical_id=request.physical_id
            )
            self._logger.info("custom resource request")
        if request.request_type == "Create":
            result = self._create(request)
        elif request.request_type == "Update":
            result = self._update(request)
        else:
            result = self._delete(request) if self._delete else {}
        physical_id = result.get("PhysicalResourceId") or request.physical_id
        if not physical_id:
            raise ValueError(f"{request.request_type} of {request.logical_id} returned no PhysicalResourceId")
        answer: Result = {"PhysicalResourceId": str(physical_id)}
        data = result.get("Data")
        if data:
            answer["Data"] = {str(k): v for k, v in data.items()}
        return answer
