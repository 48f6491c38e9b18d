"""Run one ECS task at deploy time and wait for it (custom resource, Provider framework with is_complete).

Used for Greenlight's first administrator (`lambdas/greenlight_admin/`): the task runs the command given
here (no secret in it; secrets come from the task definition), CloudFormation waits until the task stops
and fails the deployment with the task's exit code, reason and log tail if it did not exit 0.

The handler may start tasks only from this task definition in this cluster, pass only its two roles to
ECS, read only tasks of this cluster and only this task's log group.
"""

from __future__ import annotations

from aws_cdk import Arn, ArnFormat, CustomResource, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from cdk_constructs.ecs_cluster import FrontendCluster
from cdk_constructs.lambda_defaults import PythonFunction
from cdk_constructs.nag import acknowledge
from settings import Deployment
from settings.stage_rules import log_removal_policy, log_retention


class RunTaskOnce(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: Deployment,
        cluster: FrontendCluster,
        task_definition: ecs.TaskDefinition,
        container_name: str,
        command: list[str],
        admin_email: str,
        log_group: logs.ILogGroup,
        log_stream_prefix: str,
        security_group: ec2.ISecurityGroup | None,
        timeout: Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        on_event = PythonFunction(
            self, "OnEvent", config=deployment, folder="greenlight_admin", handler="index.on_event",
            description="Starts the one-off Greenlight admin task", timeout=Duration.minutes(1),
        ).function
        is_complete = PythonFunction(
            self, "IsComplete", config=deployment, folder="greenlight_admin", handler="index.is_complete",
            description="Waits for the one-off Greenlight admin task", timeout=Duration.minutes(1),
        ).function

        cluster_arn = cluster.cluster.cluster_arn
        on_event.add_to_role_policy(iam.PolicyStatement(
            actions=["ecs:RunTask"], resources=[task_definition.task_definition_arn],
            conditions={"ArnEquals": {"ecs:cluster": cluster_arn}},
        ))
        roles = [task_definition.task_role.role_arn]
        if task_definition.execution_role is not None:
            roles.append(task_definition.execution_role.role_arn)
        on_event.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=roles,
            conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        ))
        tasks_of_cluster = Arn.format(
            {"service": "ecs", "resource": "task", "resource_name": f"{cluster.cluster.cluster_name}/*",
             "arn_format": ArnFormat.SLASH_RESOURCE_NAME}, stack,
        )
        is_complete.add_to_role_policy(iam.PolicyStatement(
            actions=["ecs:DescribeTasks"], resources=[tasks_of_cluster],
            conditions={"ArnEquals": {"ecs:cluster": cluster_arn}},
        ))
        is_complete.add_to_role_policy(iam.PolicyStatement(
            actions=["logs:GetLogEvents"], resources=[f"{log_group.log_group_arn}"],
        ))
        acknowledge(
            is_complete.role, f"IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/"
            f"<{stack.get_logical_id(cluster.cluster.node.default_child)}>/*]",  # type: ignore[arg-type]
            "Task ids are only known at run time; the statement is limited to tasks of this one cluster",
        )

        framework_logs = logs.LogGroup(
            self, "FrameworkLogs", retention=log_retention(deployment), removal_policy=log_removal_policy(deployment)
        )
        provider = cr.Provider(
            self, "Provider", on_event_handler=on_event, is_complete_handler=is_complete,
            query_interval=Duration.seconds(20), total_timeout=timeout or Duration.minutes(30),
            log_group=framework_logs,
        )
        self._acknowledge_framework(provider, stack, on_event, is_complete)

        properties: dict[str, object] = {
            "Cluster": cluster_arn,
            "TaskDefinition": task_definition.task_definition_arn,
            "ContainerName": container_name,
            "Command": command,
            "AdminEmail": admin_email,
            "LogGroup": log_group.log_group_name,
            "LogStreamPrefix": log_stream_prefix,
            "Subnets": [],
            "SecurityGroups": [],
        }
        if cluster.fargate:
            assert security_group is not None
            properties |= {
                "LaunchType": "FARGATE",
                "Subnets": cluster.cluster.vpc.select_subnets(**_selection(cluster.subnets)).subnet_ids,
                "SecurityGroups": [security_group.security_group_id],
            }
        else:
            assert cluster.capacity_provider is not None
            properties["CapacityProvider"] = cluster.capacity_provider.capacity_provider_name
        self.resource = CustomResource(
            self, "Resource", service_token=provider.service_token, resource_type="Custom::GreenlightAdmin",
            properties=properties,
        )

    @staticmethod
    def _acknowledge_framework(
        provider: cr.Provider, stack: Stack, *functions: lambda_.Function
    ) -> None:
        framework = [c for c in provider.node.find_all() if isinstance(c, lambda_.CfnFunction)]
        handlers = [fn.node.default_child for fn in functions]
        for cfn in framework + handlers:
            acknowledge(
                provider, f"IAM5[Resource::<{stack.get_logical_id(cfn)}.Arn>:*]",  # type: ignore[arg-type]
                "The Provider framework invokes its own functions and this resource's two handlers (any version)",
            )
        acknowledge(provider, "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole]",
                    "The Provider framework's own functions: CDK gives their roles the basic logging policy")
        acknowledge(provider, "SF1", "The Provider framework's internal waiter state machine (CDK-generated); "
                    "the handlers log every step to their own log groups")
        acknowledge(provider, "SF2", "The Provider framework's internal waiter state machine (CDK-generated); "
                    "a few polls at deploy time need no X-Ray tracing")
        for fn in functions:
            acknowledge(fn, "L1", "Project standard runtime Python 3.13, the build the pinned Powertools layer "
                        "(python313) targets; bumped together with the layer")


def _selection(selection: object) -> dict[str, object]:
    """SubnetSelection as keyword arguments of Vpc.select_subnets."""
    return {"subnet_group_name": getattr(selection, "subnet_group_name", None),
            "subnet_type": getattr(selection, "subnet_type", None)}
