"""How every lifecycle function is built: the project's one Lambda builder (cdk_constructs/lambda_function.py)
with one code asset shared by the lifecycle functions, the automation's base environment, and an Errors
alarm to the operator topic.

Code: `common` and the lifecycle folders of `lambdas/`; each function picks its handler
(`bbb_drain.index.handler`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.lambda_function import code, python_function

CODE_FOLDERS = (
    "lifecycle_dispatch",
    "lifecycle_launch",
    "bbb_drain",
    "turn_drain",
    "fleet_reconciler",
    "turn_prober",
    "custom_resources",
)


class FunctionKit(Construct):
    """Shared pieces (asset, topic, base environment) and a factory for the functions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        operator_topic: sns.ITopic,
        base_environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = operator_topic
        self.base_environment = dict(base_environment)
        self.log_retention = log_retention
        self.code = code(CODE_FOLDERS)

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
        function = python_function(
            scope,
            construct_id,
            handler=handler,
            service=service,
            description=description,
            role_description=f"{description} (bbb-on-aws lifecycle)",
            timeout=timeout,
            log_retention=self.log_retention,
            code_asset=self.code,
            environment={
                **self.base_environment,
                **(environment or {}),
                "POWERTOOLS_METRICS_NAMESPACE": self.base_environment["METRICS_NAMESPACE"],
            },
            retry_attempts=retry_attempts,
        )
        for statement in statements:
            function.add_to_role_policy(statement)
        self.alarm(
            scope,
            f"{construct_id}Errors",
            function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            f"{description}: the function failed (see its log group)",
        )
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
