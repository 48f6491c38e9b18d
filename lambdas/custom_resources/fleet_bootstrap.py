"""Deploy-time bootstrap of a fleet's lifecycle automation (custom resource, Provider framework).

On the first deploy the Auto Scaling group launches its instances before the lifecycle hooks, rule and
state machines exist, so those instances never produce the events that give them DNS records and a
Scalelite registration. Create/Update start the launch state machine for every InService or
Pending:Wait instance (and the drain for Terminating:Wait ones); execution names make a repeat a no-op,
and the launch steps themselves are idempotent. Delete does nothing: the instances and their records
belong to the fleet, whose own teardown drains them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from common import config, executions, observability
from common.custom_resource import CustomResource, Request, Result

logger, metrics = observability.tools()


def _physical_id() -> str:
    settings = config.load()
    return f"bbb-on-aws-bootstrap-{settings.environment}-{settings.group}"


def create_or_update(request: Request) -> Result:
    outcome = executions.recover(config.load(), include_in_service=True)
    logger.info("fleet bootstrap", extra={"request": request.request_type, **outcome})
    return {
        "PhysicalResourceId": _physical_id(),
        "Data": {"Started": len(outcome["started"]), "AlreadyRunning": len(outcome["duplicate"])},
    }


def delete(request: Request) -> Result:
    return {"PhysicalResourceId": request.physical_id or _physical_id()}


resource = CustomResource(create=create_or_update, update=create_or_update, delete=delete, logger=logger)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def on_event(event: dict[str, Any], context: LambdaContext) -> Result:
    return resource(event, context)
