"""Network: the VPC across the configured availability zones, NAT per stage, flow logs.

Security groups live with the resources they protect (data, frontend, fleets); this stack only provides
the subnets they sit in.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_constructs.explicit_subnets import ExplicitSubnetCidrs
from settings import Config
from settings.stage_rules import log_removal_policy, log_retention

PUBLIC, APPLICATION, DATABASE = "public", "application", "database"


class NetworkStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        net = config.network
        scalable = config.environment.type == "scalable"
        # The single shape runs only internet-facing hosts: no private tiers, hence no NAT gateway to pay for.
        # Public IPs are asked for by each launch template, not handed to everything in the subnet.
        groups = [
            ec2.SubnetConfiguration(name=PUBLIC, subnet_type=ec2.SubnetType.PUBLIC, map_public_ip_on_launch=False)
        ]
        cidrs = {PUBLIC: net.public_subnets}
        if scalable:
            groups += [
                ec2.SubnetConfiguration(name=APPLICATION, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                ec2.SubnetConfiguration(name=DATABASE, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            ]
            cidrs |= {APPLICATION: net.application_subnets, DATABASE: net.database_subnets}

        flow_log_group = logs.LogGroup(
            self, "FlowLogs", retention=log_retention(config), removal_policy=log_removal_policy(config)
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ExplicitSubnetCidrs(net.vpc_cidr, cidrs),
            availability_zones=list(net.availability_zones),
            nat_gateways=config.nat_gateways if scalable else 0,
            subnet_configuration=groups,
            restrict_default_security_group=True,
            flow_logs={
                "all": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )

    @property
    def public_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_group_name=PUBLIC)

    @property
    def application_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_group_name=APPLICATION)

    @property
    def database_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_group_name=DATABASE)
