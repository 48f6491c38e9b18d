"""The optional cluster proxy (seed 001): every BBB server's HTML5 client under https://bbb-proxy.<domain>,
so browsers ask for camera and microphone permission once, whichever server Scalelite picked.

Browser -> ALB (TLS with the deployment's ACM certificate, `bbb-proxy.<domain>` only) -> nginx hosts in the
private subnets (userdata/proxy) -> `https://bbb-<id>.<domain>` with the server's certificate verified.
The hosts rebuild their nginx locations every 30 s from this deployment's running, ready BBB servers (EC2
tags), one literal location per server and a 404 for anything else, so the proxy follows the fleet and can
never be steered to another host. Media and WebSockets still go straight to the BBB server.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from constructs import Construct

from cdk_constructs.fleet_host import HostBootstrap, HostLogs, HostRole, Volumes, host_group, launch_template
from cdk_constructs.https_alb import HttpsLoadBalancer
from settings import ClusterProxy as ClusterProxySettings
from settings import Deployment
from userdata.render import ProxyParams, render_proxy_user_data

HOST_ROLE = "proxy"
HTTP_PORT = 80  # nginx on the proxy hosts, reachable from the ALB only
ROOT_VOLUME_GIB = 10
HEALTH_PATH = "/healthz"


class ClusterProxy(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: ClusterProxySettings, deployment: Deployment,
        vpc: ec2.IVpc, zone: route53.IHostedZone, certificate: acm.ICertificate,
    ) -> None:
        """Only for the scalable shape (a fleet of BBB servers): settings/rules.py refuses it for `single`."""
        super().__init__(scope, construct_id)
        # Two hosts in two zones where an outage matters (the proxy is on every join's path), one in dev.
        capacity = 2 if deployment.is_production_like else 1

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False,
            description=f"{deployment.prefix} cluster proxy hosts: HTTP from their ALB, HTTPS out to the BBB servers",
        )
        sg = self.security_group
        # The BBB servers (by their public names, TLS verified) and the AWS APIs the host calls.
        sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to the BBB servers and AWS APIs")
        # Ubuntu's package mirrors (apt verifies signatures) for nginx and updates.
        sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(80), "HTTP to Ubuntu's package mirrors")

        self.logs = HostLogs(self, "Logs", deployment=deployment)
        host = HostRole(self, "HostRole", deployment=deployment, host_role=HOST_ROLE, host_logs=self.logs)
        self.role = host.role
        self.bootstrap = HostBootstrap(self, "Bootstrap", bundle="proxy")
        self.bootstrap.grant_read(self.role)
        # The location sync lists this deployment's ready BBB servers; EC2 cannot scope Describe* calls.
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["ec2:DescribeInstances"], resources=["*"]))
        host.note_wildcard("ec2:DescribeInstances (the proxy's location sync reads the ready BBB servers)")
        host.acknowledge_wildcards()

        self.user_data = render_proxy_user_data(ProxyParams(
            environment=deployment.environment_name,
            domain=deployment.names.domain,
            region=Stack.of(self).region,
            bootstrap_bundle=self.bootstrap.s3_object,
            system_log_group=self.logs.system.log_group_name,
            application_log_group=self.logs.application.log_group_name,
        ))
        template = launch_template(
            self, "LaunchTemplate", instance_type=settings.instance_type, role=self.role,
            security_group=sg, user_data=self.user_data, volumes=Volumes(root_gib=ROOT_VOLUME_GIB), public_ip=False,
        )
        self.group = host_group(
            self, "Group", deployment=deployment, host_role=HOST_ROLE, vpc=vpc, template=template,
            min_capacity=capacity, desired_capacity=capacity, max_capacity=capacity, warmup=Duration.minutes(5),
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            health_checks=autoscaling.HealthChecks.with_additional_checks(
                additional_types=[autoscaling.AdditionalHealthCheckType.ELB], grace_period=Duration.minutes(10)),
        )

        self.load_balancer = HttpsLoadBalancer(
            self, "LoadBalancer", vpc=vpc, subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            certificate=certificate, deployment=deployment,
        )
        self.target_group = elbv2.ApplicationTargetGroup(
            self, "Targets", vpc=vpc, port=HTTP_PORT, protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.INSTANCE, targets=[self.group],
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(path=HEALTH_PATH, healthy_http_codes="200",
                                           interval=Duration.seconds(15)),
        )
        self.load_balancer.route("ProxyHost", host=deployment.names.cluster_proxy, priority=10,
                                 target_group=self.target_group)
        self.record = route53.ARecord(
            self, "Alias", zone=zone, record_name=deployment.names.cluster_proxy + ".",
            target=route53.RecordTarget.from_alias(route53_targets.LoadBalancerTarget(self.load_balancer.alb)),
            comment=f"{deployment.prefix}: BBB cluster proxy (seed 001)",
        )
