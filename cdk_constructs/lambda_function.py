"""How this project builds every Python Lambda function: Python 3.13 on x86_64, AWS's public Powertools
layer, an own log group and an own role that may write only to that log group.

Code: a plain directory asset of `lambdas/` holding only the shared library `common/` and the folders the
function needs (no Docker, no network at synth). A handler is named from that root
(`smtp_credentials.index.on_event`) and imports `common` the way the lifecycle handlers do. Other folders
and bytecode are excluded, so an asset's hash changes only with its own source and the shared library.

Powertools: the layer is referenced by an ARN built from `Aws.REGION` (no lookup at synth). Its version is
pinned here, the one place, and bumped together with `aws-lambda-powertools` in requirements-dev.txt.
UNVERIFIED which layer version carries exactly aws-lambda-powertools 3.37.0 (no AWS lookup is possible
here); 37 is the newest version seen in public templates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
SHARED_LIBRARY = "common"
POWERTOOLS_LAYER_VERSION = 37
POWERTOOLS_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_ARN = (
    f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{POWERTOOLS_ACCOUNT}:layer:"
    f"AWSLambdaPowertoolsPythonV3-python313-x86_64:{POWERTOOLS_LAYER_VERSION}"
)
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.X86_64  # the layer above is the x86_64 build
MEMORY_MB = 256


def code(folders: Sequence[str]) -> lambda_.Code:
    """`lambdas/` with only `common/` and `folders`. The other entries are listed at synth time: CDK's
    negated ("!folder") exclude patterns are very slow to fingerprint and do not re-include directories."""
    keep = {SHARED_LIBRARY, *folders}
    unknown = sorted(folder for folder in keep if not (LAMBDAS_DIR / folder).is_dir())
    if unknown:
        raise ValueError(f"Lambda code folders {unknown} do not exist under {LAMBDAS_DIR}; create them or fix the name")
    others = sorted(entry.name for entry in LAMBDAS_DIR.iterdir() if entry.name not in keep)
    return lambda_.Code.from_asset(str(LAMBDAS_DIR), exclude=[*others, "__pycache__", "**/__pycache__", "*.pyc"])


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
    handler: str,
    service: str,
    description: str,
    role_description: str,
    timeout: Duration,
    log_retention: logs.RetentionDays,
    code_asset: lambda_.Code | None = None,
    environment: Mapping[str, str] | None = None,
    retry_attempts: int | None = None,
) -> lambda_.Function:
    """A function whose role can only write its own logs (add grants to `.role`).

    `handler` is `<folder>.<module>.<function>` under `lambdas/`; `code_asset` defaults to `code([<folder>])`
    (pass one `code(...)` to share an asset between functions). `service` names the function in its logs
    and metrics (POWERTOOLS_SERVICE_NAME)."""
    module = handler.rsplit(".", 1)[0].replace(".", "/")
    if "/" not in module or not (LAMBDAS_DIR / f"{module}.py").is_file():
        raise ValueError(
            f"handler {handler!r}: {LAMBDAS_DIR / module}.py does not exist; name it <folder>.<module>.<function> "
            "from lambdas/ and put the handler module there"
        )
    log_group = logs.LogGroup(
        scope, f"{construct_id}Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
    )
    role = iam.Role(
        scope,
        f"{construct_id}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=role_description,
    )
    # Instead of AWSLambdaBasicExecutionRole (any log group): this function's own log group only.
    role.add_to_policy(
        iam.PolicyStatement(
            sid="OwnLogGroupOnly",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    return lambda_.Function(
        scope,
        construct_id,
        description=description,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        code=code_asset or code([module.split("/", 1)[0]]),
        handler=handler,
        layers=[powertools_layer(scope)],
        memory_size=MEMORY_MB,
        timeout=timeout,
        role=role,
        log_group=log_group,
        retry_attempts=retry_attempts,
        environment={**(environment or {}), "POWERTOOLS_SERVICE_NAME": service},
    )
