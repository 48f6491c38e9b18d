"""The ECS cluster of the frontend and how its tasks are placed: EC2 instances (as the AWS sample) or Fargate.

EC2: an Auto Scaling group of ECS-optimized Amazon Linux 2023 instances (AMI from AWS's public SSM parameter,
resolved at deploy time: no lookup) behind a capacity provider with managed scaling and draining. Tasks use
`bridge` networking with dynamic host ports: `awsvpc` on EC2 costs one ENI per task, and the small instance
types this runs on have only two or three ENIs and no ENI trunking, so tasks could not be placed. Containers
cannot read the instance role (CDK's iptables rule; the IMDS hop limit is 1 as a second fence).

Fargate: `awsvpc` tasks, each service with its own security group.

`task_connections(service)` says which security group represents a service's tasks, so grants (database,
cache, EFS) are written once for both capacities.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.group_size import keep_running_size
from cdk_constructs.nag import acknowledge
from settings import Frontend

# Outbound ports tasks (and the EC2 instances under them) need beyond the data tier, which is opened per
# destination where it is granted: 443 for Docker Hub, the AWS APIs (ECS, ECR, Secrets Manager, CloudWatch
# Logs, EFS mount helper's IAM), and the BigBlueButton servers Scalelite's poller and api call; 587 for
# SES SMTP with STARTTLS (Greenlight's mail; the shared stack's SMTP secret names port 587).
OUTBOUND_TCP = {443: "HTTPS: images, AWS APIs, BigBlueButton servers", 587: "SES SMTP (STARTTLS)"}


def task_security_group(scope: Construct, construct_id: str, vpc: ec2.IVpc, description: str) -> ec2.SecurityGroup:
    """A group with no inbound rule and only the outbound ports the frontend needs."""
    group = ec2.SecurityGroup(scope, construct_id, vpc=vpc, allow_all_outbound=False, description=description)
    for port, why in OUTBOUND_TCP.items():
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(port), why)
    return group


class FrontendCluster(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        frontend: Frontend,
        notifications: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.subnets = subnets
        self.fargate = frontend.capacity == "fargate"
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENHANCED,
            enable_fargate_capacity_providers=self.fargate,
        )
        self.capacity_provider: ecs.AsgCapacityProvider | None = None
        self.instance_security_group: ec2.SecurityGroup | None = None
        if not self.fargate:
            self._add_instances(vpc, frontend, notifications)

    def _add_instances(self, vpc: ec2.IVpc, frontend: Frontend, notifications: sns.ITopic) -> None:
        self.instance_role = iam.Role(self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
                                      description="ECS container instances: the ECS agent's permissions")
        # No ingress here: the load balancer's rule is added where a service is attached to it.
        self.instance_security_group = task_security_group(
            self, "InstanceSecurityGroup", vpc, "ECS container instances (bridge-mode tasks share it)"
        )
        template = ec2.LaunchTemplate(
            self, "LaunchTemplate",
            machine_image=ecs.EcsOptimizedImage.amazon_linux2023(),
            instance_type=ec2.InstanceType(frontend.instance_type),
            security_group=self.instance_security_group,
            user_data=ec2.UserData.for_linux(),
            require_imdsv2=True,
            http_put_response_hop_limit=1,
            # CDK's cluster would add its standard container-instance policy to this role, including
            # logs:CreateLogStream/PutLogEvents on every log group; it sees a role that takes no policy, and the
            # agent's permissions are written below, the logs ones scoped to the tasks' log groups.
            role=self.instance_role.without_policy_updates(),
            block_devices=[ec2.BlockDevice(
                device_name="/dev/xvda",
                volume=ec2.BlockDeviceVolume.ebs(30, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3),
            )],
        )
        group = autoscaling.AutoScalingGroup(
            self, "Instances", vpc=vpc, vpc_subnets=self.subnets, launch_template=template,
            min_capacity=frontend.min_instances, max_capacity=frontend.max_instances,
            # The capacity provider owns the group's size after creation; CloudFormation only seeds it.
            desired_capacity=frontend.desired_instances,
            notifications=[autoscaling.NotificationConfiguration(topic=notifications)],
            cooldown=Duration.minutes(5),
        )
        self.capacity_provider = ecs.AsgCapacityProvider(
            self, "CapacityProvider", auto_scaling_group=group, enable_managed_scaling=True,
            enable_managed_termination_protection=True, enable_managed_draining=True, target_capacity_percent=100,
        )
        self.cluster.add_asg_capacity_provider(self.capacity_provider)
        keep_running_size(group, why="IgnoreUnmodifiedGroupSizeProperties keeps deploys from resetting the size "
                                     "ECS managed scaling chose")
        self._agent_permissions()
        self.auto_scaling_group = group

    def _agent_permissions(self) -> None:
        """The ECS agent's permissions, as CDK's standard container-instance policy grants them, minus the logs."""
        cluster_arn = self.cluster.cluster_arn
        for statement in (
            iam.PolicyStatement(
                actions=["ecs:DeregisterContainerInstance", "ecs:RegisterContainerInstance", "ecs:Submit*"],
                resources=[cluster_arn],
            ),
            iam.PolicyStatement(
                actions=["ecs:Poll", "ecs:StartTelemetrySession"], resources=["*"],
                conditions={"ArnEquals": {"ecs:cluster": cluster_arn}},
            ),
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken", "ecs:DiscoverPollEndpoint"], resources=["*"]),
        ):
            self.instance_role.add_to_principal_policy(statement)
        acknowledge(
            self.instance_role, "IAM5[Action::ecs:Submit*]",
            "The ECS agent reports task and container state changes (ecs:Submit*), on this cluster only",
        )
        acknowledge(
            self.instance_role, "IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and ecs:DiscoverPollEndpoint accept no resource ARN; ecs:Poll and "
            "ecs:StartTelemetrySession are conditioned on this cluster (ecs:cluster)",
        )

    def allow_task_logs(self, log_group: logs.ILogGroup) -> None:
        """The awslogs driver of bridge-mode tasks may write through the instance: this log group only (the
        tasks' execution roles get their own grant from CDK). Nothing to do on Fargate."""
        if not self.fargate:
            self.instance_role.add_to_principal_policy(iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn],
            ))

    # -- placement helpers --------------------------------------------------------------------------------

    def host_port(self, container_port: int) -> int:
        """The host port of a container port: the same on Fargate, 0 (Docker picks a dynamic one) in bridge mode."""
        return container_port if self.fargate else 0

    def task_definition(self, scope: Construct, construct_id: str, *, cpu: int, memory_mib: int) -> ecs.TaskDefinition:
        """A task definition for this capacity; `cpu`/`memory_mib` are the task totals (Fargate needs them)."""
        if self.fargate:
            return ecs.FargateTaskDefinition(scope, construct_id, cpu=cpu, memory_limit_mib=memory_mib)
        return ecs.Ec2TaskDefinition(scope, construct_id, network_mode=ecs.NetworkMode.BRIDGE)

    def service(
        self,
        scope: Construct,
        construct_id: str,
        *,
        task_definition: ecs.TaskDefinition,
        desired_count: int,
        min_healthy_percent: int,
        max_healthy_percent: int,
        description: str,
        health_check_grace_period: Duration | None = None,
    ) -> ecs.BaseService:
        common = {
            "cluster": self.cluster,
            "task_definition": task_definition,
            "desired_count": desired_count,
            "min_healthy_percent": min_healthy_percent,
            "max_healthy_percent": max_healthy_percent,
            "circuit_breaker": ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            "enable_execute_command": False,
            "propagate_tags": ecs.PropagatedTagSource.SERVICE,
            "health_check_grace_period": health_check_grace_period,
        }
        if self.fargate:
            group = task_security_group(scope, f"{construct_id}SecurityGroup", self.cluster.vpc, f"{description} tasks")
            return ecs.FargateService(
                scope, construct_id, security_groups=[group], vpc_subnets=self.subnets, assign_public_ip=False,
                **common,
            )
        assert self.capacity_provider is not None
        return ecs.Ec2Service(
            scope, construct_id,
            capacity_provider_strategies=[ecs.CapacityProviderStrategy(
                capacity_provider=self.capacity_provider.capacity_provider_name, weight=1
            )],
            placement_strategies=[ecs.PlacementStrategy.spread_across_instances()],
            **common,
        )

    def task_connections(self, service: ecs.BaseService) -> ec2.Connections:
        """The security group(s) a service's tasks send from: own (awsvpc) or the instances' (bridge)."""
        if self.fargate:
            return service.connections
        assert self.instance_security_group is not None
        return ec2.Connections(security_groups=[self.instance_security_group])
