"""How every lifecycle function is built: one code asset, the Powertools layer, an own role and log group,
and an Errors alarm to the operator topic.

Code: one asset of the lifecycle folders of `lambdas/` (no Docker, no network at synth); each function
picks its handler (`bbb_drain.index.handler`, ...) and imports the shared `common` package from the same
asset. Other folders of `lambdas/` and bytecode are excluded, so the asset hash changes only with this
automation's source.

Powertools: AWS's public layer by ARN, built from `Aws.REGION` (no lookup at synth); the version is pinned
here and bumped together with `aws-lambda-powertools` in requirements-dev.txt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"
CODE_FOLDERS = (
    "common",
    "lifecycle_dispatch",
    "lifecycle_launch",
    "bbb_drain",
    "turn_drain",
    "fleet_reconciler",
    "turn_prober",
    "custom_resources",
)


def code_exclude() -> list[str]:
    """Every other entry of lambdas/ (other features' handlers), and bytecode. Listed at synth time:
    CDK's negated ("!folder") exclude patterns are very slow to fingerprint and do not re-include
    directories."""
    others = sorted(entry.name for entry in LAMBDAS_DIR.iterdir() if entry.name not in CODE_FOLDERS)
    return [*others, "__pycache__", "**/__pycache__", "*.pyc"]


# Powertools for AWS Lambda (Python) v3 layer for python3.13/x86_64. UNVERIFIED which layer version
# carries exactly aws-lambda-powertools 3.37.0 (no AWS lookup is possible here); 37 is the newest version
# seen in public templates. Override with FleetLifecycle(powertools_layer_version=...).
POWERTOOLS_LAYER_VERSION = 37
POWERTOOLS_ACCOUNT = "017000801446"


def powertools_layer_arn(version: int) -> str:
    return (
        f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{POWERTOOLS_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-python313-x86_64:{version}"
    )


class FunctionKit(Construct):
    """Shared pieces (asset, layer, topic, base environment) and a factory for the functions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        operator_topic: sns.ITopic,
        base_environment: Mapping[str, str],
        powertools_layer_version: int,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = operator_topic
        self.base_environment = dict(base_environment)
        self.log_retention = log_retention
        self.code = lambda_.Code.from_asset(str(LAMBDAS_DIR), exclude=code_exclude())
        self.layer = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", powertools_layer_arn(powertools_layer_version)
        )

    def function(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        service: str,
        description: str,
        timeout: Duration,
        statements: Sequence[iam.PolicyStatement],
        environment: Mapping[str, str] | None = None,
        retry_attempts: int | None = None,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            scope, f"{construct_id}Logs", retention=self.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        role = iam.Role(
            scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description} (bbb-on-aws lifecycle)",
        )
        # Instead of AWSLambdaBasicExecutionRole (any log group): this function's own log group only.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroupOnly",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        for statement in statements:
            role.add_to_policy(statement)
        function = lambda_.Function(
            scope,
            construct_id,
            description=description,
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.X86_64,
            code=self.code,
            handler=handler,
            layers=[self.layer],
            memory_size=256,
            timeout=timeout,
            role=role,
            log_group=log_group,
            retry_attempts=retry_attempts,
            environment={
                **self.base_environment,
                **(environment or {}),
                "POWERTOOLS_SERVICE_NAME": service,
                "POWERTOOLS_METRICS_NAMESPACE": self.base_environment["METRICS_NAMESPACE"],
            },
        )
        alarm = function.metric_errors(period=Duration.minutes(5), statistic="Sum").create_alarm(
            scope,
            f"{construct_id}Errors",
            alarm_description=f"{description}: the function failed (see its log group)",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        return function

    def alarm(
        self,
        scope: Construct,
        construct_id: str,
        metric: cloudwatch.IMetric,
        description: str,
        *,
        threshold: float = 1,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        """An alarm to the operator topic when `metric` reaches `threshold`."""
        alarm = metric.create_alarm(
            scope,
            construct_id,
            alarm_description=description,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        return alarm
