"""A custom resource provider: one Python handler (lambda_defaults.PythonFunction) behind the CDK Provider
framework, which reports to CloudFormation, retries and times out for the handler.
"""

from __future__ import annotations

from aws_cdk import CfnElement, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from cdk_constructs.lambda_defaults import PythonFunction
from cdk_constructs.nag import acknowledge
from settings import Deployment
from settings.stage_rules import log_removal_policy, log_retention


def framework_provider(
    scope: Construct,
    handler: lambda_.IFunction,
    *,
    ids: tuple[str, str, str],
    retention: logs.RetentionDays,
    removal_policy: RemovalPolicy,
) -> tuple[cr.Provider, iam.Role]:
    """The CDK Provider framework in front of `handler`, with its own log group and a role that writes only
    there (instead of AWSLambdaBasicExecutionRole). `ids`: the (log group, role, provider) construct ids, kept
    as each caller had them so logical IDs do not change."""
    logs_id, role_id, provider_id = ids
    framework_logs = logs.LogGroup(scope, logs_id, retention=retention, removal_policy=removal_policy)
    framework_role = iam.Role(scope, role_id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    framework_logs.grant_write(framework_role)
    provider = cr.Provider(
        scope, provider_id, on_event_handler=handler, log_group=framework_logs, framework_on_event_role=framework_role
    )
    return provider, framework_role


class PythonCustomResourceProvider(Construct):
    """`service_token` for `CustomResource`s served by `lambdas/<folder>/index.on_event`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: Deployment,
        folder: str,
        description: str,
        timeout: Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = PythonFunction(
            self, "Handler", config=deployment, folder=folder, description=description, handler="index.on_event",
            timeout=timeout or Duration.minutes(5),
        )
        self.provider, framework_role = framework_provider(
            self, self.handler.function, ids=("FrameworkLogs", "FrameworkRole", "Provider"),
            retention=log_retention(deployment), removal_policy=log_removal_policy(deployment),
        )
        handler_resource = self.handler.function.node.default_child
        assert isinstance(handler_resource, CfnElement)
        acknowledge(
            framework_role,
            f"IAM5[Resource::<{Stack.of(self).get_logical_id(handler_resource)}.Arn>:*]",
            "The Provider framework invokes its one handler function, any version of it (CDK-generated grant)",
        )
        acknowledge(
            self.handler,
            "L1",
            "Python 3.13 on purpose: AWS's public Powertools layer is pinned for python313 (lambda_function.py)",
        )

    @property
    def service_token(self) -> str:
        return self.provider.service_token
