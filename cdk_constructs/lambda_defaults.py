"""A Python Lambda function as a construct, with the log retention taken from the config; built by the
project's one Lambda builder (cdk_constructs/lambda_function.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from constructs import Construct

from cdk_constructs.lambda_function import python_function
from settings.stage_rules import StageFacts
from settings.stage_rules import log_retention as stage_log_retention


class PythonFunction(Construct):
    """A function (`.function`) of `lambdas/<folder>/<handler>` whose role can only write its own logs (add
    grants to `.role`); its asset is `<folder>` with the shared library `common`, with the log retention of
    the stage (`config`: the settings.Config or the settings.Deployment a construct received)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageFacts,
        folder: str,
        description: str,
        handler: str = "index.handler",
        timeout: Duration | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = python_function(
            self,
            "Function",
            handler=f"{folder}.{handler}",
            service=folder.replace("_", "-"),
            description=description,
            role_description="Function: writes its own log group; further grants are added where it is used",
            timeout=timeout or Duration.minutes(1),
            environment=environment,
            log_retention=stage_log_retention(config),
        )
        self.role = self.function.role
