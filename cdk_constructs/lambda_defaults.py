"""How this project builds a Python Lambda function: Python 3.13, AWS's public Powertools layer, an own
log group with the stage's retention and an own role that may write only to that log group.

Code is a plain directory asset `lambdas/<folder>` (no Docker, no network at synth); bytecode is excluded so
the asset hash changes only with the source. The Powertools layer is referenced by an ARN built from
`Aws.REGION` (no lookup); its version is pinned here and bumped together with `aws-lambda-powertools` in
requirements-dev.txt (the same version as cdk_constructs/lifecycle/functions.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from settings.stage_rules import StageFacts
from settings.stage_rules import log_retention as stage_log_retention

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
POWERTOOLS_LAYER_VERSION = 37
POWERTOOLS_LAYER_ARN = (
    f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:017000801446:layer:"
    f"AWSLambdaPowertoolsPythonV3-python313-x86_64:{POWERTOOLS_LAYER_VERSION}"
)
RUNTIME = lambda_.Runtime.PYTHON_3_13


def powertools_layer(scope: Construct) -> lambda_.ILayerVersion:
    """The layer, imported once per stack."""
    stack = Stack.of(scope)
    existing = stack.node.try_find_child("PowertoolsLayer")
    if existing is not None:
        return existing  # type: ignore[return-value]
    return lambda_.LayerVersion.from_layer_version_arn(stack, "PowertoolsLayer", POWERTOOLS_LAYER_ARN)


def python_function(
    scope: Construct,
    construct_id: str,
    *,
    code_dir: str,
    handler: str,
    timeout: Duration,
    environment: Mapping[str, str] | None = None,
    log_retention: logs.RetentionDays,
    description: str = "",
) -> lambda_.Function:
    """A function from `lambdas/<code_dir>` whose role can only write its own logs (add grants to `.role`)."""
    module = handler.rsplit(".", 1)[0].replace(".", "/")
    source = LAMBDAS_DIR / code_dir
    if not (source / f"{module}.py").is_file():
        raise ValueError(f"handler {handler!r}: {source / module}.py does not exist; put the handler module there")
    log_group = logs.LogGroup(
        scope, f"{construct_id}Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
    )
    role = iam.Role(
        scope, f"{construct_id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{construct_id}: writes its own log group; further grants are added where it is used",
    )
    role.add_to_policy(iam.PolicyStatement(
        actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
    ))
    return lambda_.Function(
        scope,
        construct_id,
        runtime=RUNTIME,
        code=lambda_.Code.from_asset(str(source), exclude=["__pycache__", "*.pyc", "**/__pycache__"]),
        handler=handler,
        timeout=timeout,
        memory_size=256,
        role=role,
        log_group=log_group,
        layers=[powertools_layer(scope)],
        description=description,
        environment={"POWERTOOLS_SERVICE_NAME": construct_id, **(environment or {})},
    )


class PythonFunction(Construct):
    """The same function as a construct (`.function`), with the log retention of the stage (`config`: the
    settings.Config or the settings.Deployment a construct received)."""

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
            self, "Function", code_dir=folder, handler=handler, timeout=timeout or Duration.minutes(1),
            environment=environment,
            log_retention=stage_log_retention(config), description=description,
        )
        self.role = self.function.role
