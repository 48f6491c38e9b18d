"""An ECS service behind the shared HTTPS load balancer: its target group and health check, the host-name
rule that routes to it, the one ingress rule its tasks need, rolling deployments with rollback, and target
tracking on CPU and on requests per task.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from cdk_constructs.ecs_cluster import FrontendCluster
from cdk_constructs.https_alb import HttpsLoadBalancer

EPHEMERAL_PORTS = ec2.Port.tcp_range(32768, 65535)  # Docker's dynamic host ports (bridge mode)


@dataclass(frozen=True)
class Scaling:
    min_tasks: int
    max_tasks: int
    cpu_percent: int = 60
    requests_per_task_per_minute: int = 600


@dataclass(frozen=True)
class Exposure:
    host: str  # the host name the listener rule matches
    priority: int  # listener rule priority, unique per listener
    container_name: str  # the container the load balancer sends to
    container_port: int
    health_check_path: str
    grace_period: Duration  # time a new task gets to start before failed checks count


class WebService(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: FrontendCluster,
        load_balancer: HttpsLoadBalancer,
        task_definition: ecs.TaskDefinition,
        exposure: Exposure,
        scaling: Scaling,
        description: str,
    ) -> None:
        super().__init__(scope, construct_id)
        if not scaling.min_tasks <= scaling.max_tasks:
            raise ValueError(f"{construct_id}: min_tasks {scaling.min_tasks} > max_tasks {scaling.max_tasks}")
        self.service = cluster.service(
            self, "Service", task_definition=task_definition, desired_count=scaling.min_tasks,
            # Rolling deployments start the new tasks first, so capacity never drops below the desired count.
            min_healthy_percent=100, max_healthy_percent=200, description=description,
            health_check_grace_period=exposure.grace_period,
        )
        self.target_group = elbv2.ApplicationTargetGroup(
            self, "Targets", vpc=cluster.cluster.vpc, port=exposure.container_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP if cluster.fargate else elbv2.TargetType.INSTANCE,
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path=exposure.health_check_path, port="traffic-port", healthy_http_codes="200",
                interval=Duration.seconds(30), timeout=Duration.seconds(10),
                healthy_threshold_count=2, unhealthy_threshold_count=3,
            ),
        )
        self.target_group.add_target(self.service.load_balancer_target(
            container_name=exposure.container_name, container_port=exposure.container_port
        ))
        # Tasks accept connections from the load balancer only, on the port the task is reached on: the
        # container port (awsvpc) or Docker's dynamic host ports on the instance (bridge).
        if cluster.fargate:
            port, who = ec2.Port.tcp(exposure.container_port), f"{description} tasks"
        else:  # one rule serves every service on the instances
            port, who = EPHEMERAL_PORTS, "Tasks on the ECS instances (dynamic host ports)"
        cluster.task_connections(self.service).allow_from(
            load_balancer.security_group, port, f"{who}: from the load balancer only"
        )
        load_balancer.route(
            construct_id, host=exposure.host, priority=exposure.priority, target_group=self.target_group
        )

        if scaling.max_tasks > scaling.min_tasks:
            count = self.service.auto_scale_task_count(min_capacity=scaling.min_tasks, max_capacity=scaling.max_tasks)
            count.scale_on_cpu_utilization(
                "Cpu", target_utilization_percent=scaling.cpu_percent,
                scale_in_cooldown=Duration.minutes(5), scale_out_cooldown=Duration.minutes(1),
            )
            count.scale_on_request_count(
                "Requests", requests_per_target=scaling.requests_per_task_per_minute, target_group=self.target_group,
                scale_in_cooldown=Duration.minutes(5), scale_out_cooldown=Duration.minutes(1),
            )
