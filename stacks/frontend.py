"""Frontend (scalable shape): Greenlight v3 and Scalelite on ECS behind one HTTPS-only load balancer.

The stack composes the cluster, the load balancer, Greenlight and Scalelite (cdk_constructs/frontend/), opens
the data tier to their tasks where they meet it, and publishes the DNS names and outputs. Greenlight's first
administrator is created once at deploy time, after the grants (cdk_constructs/frontend/greenlight.py).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.ecs_cluster import FrontendCluster
from cdk_constructs.frontend.greenlight import Greenlight, GreenlightEnvironment
from cdk_constructs.frontend.scalelite import Scalelite, ScaleliteEnvironment, api_url
from cdk_constructs.frontend.tasks import Cache, Recordings
from cdk_constructs.https_alb import HttpsLoadBalancer
from settings import Config
from stacks.interfaces import Data, Shared


class FrontendStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        vpc: ec2.IVpc,
        shared: Shared,
        data: Data,
        public_subnets: ec2.SubnetSelection | None = None,
        application_subnets: ec2.SubnetSelection | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if config.environment.type != "scalable":
            raise ValueError("FrontendStack belongs to the scalable shape; the single shape runs Greenlight on "
                             "its BBB host (deployment.environment.type)")
        recordings = Recordings(file_system=data.file_system, access_points=data.access_points)
        self.data = data
        names = config.names
        fe = config.frontend
        deployment = config.deployment
        secrets = shared.secrets
        cache = Cache(host=data.cache_host, port=data.cache_port, auth=data.cache_auth)
        public = public_subnets or ec2.SubnetSelection(subnet_group_name="public")
        application = application_subnets or ec2.SubnetSelection(subnet_group_name="application")

        self.cluster = FrontendCluster(
            self, "Ecs", vpc=vpc, subnets=application, frontend=fe, notifications=shared.topic
        )
        self.lb = HttpsLoadBalancer(
            self, "Web", vpc=vpc, subnets=public, certificate=shared.certificate,
            deployment=deployment,
        )
        self.greenlight = Greenlight(
            self, cluster=self.cluster, load_balancer=self.lb, container=fe.greenlight, tasks=fe.greenlight_tasks,
            host=names.greenlight, deployment=deployment,
            environment=GreenlightEnvironment(
                bbb_endpoint=api_url(names.scalelite), mail_from=shared.mail_from, key_base=secrets.greenlight_key_base,
                bbb_secret=secrets.scalelite_loadbalancer, smtp=shared.smtp, database=data.greenlight_db, cache=cache,
            ),
        )
        self.scalelite = Scalelite(
            self, cluster=self.cluster, load_balancer=self.lb, frontend=fe, deployment=deployment,
            environment=ScaleliteEnvironment(
                host=names.scalelite, key_base=secrets.scalelite_key_base, loadbalancer=secrets.scalelite_loadbalancer,
                database=data.scalelite_db, cache=cache, recordings=recordings,
            ),
        )

        # -- network access to the data tier ---------------------------------------------------------------
        scalelite = self.scalelite
        if self.cluster.fargate:
            for name, service in (("Greenlight", self.greenlight.service), ("Scalelite web", scalelite.web.service),
                                  ("Scalelite poller", scalelite.poller), ("Scalelite importer", scalelite.importer)):
                self._allow_data_access(name, service.connections,
                                        efs=service in (scalelite.web.service, scalelite.importer))
        else:  # bridge mode: every task sends from the instances' group
            self._allow_data_access("ECS instances (Greenlight and Scalelite tasks)",
                                    self.cluster.task_connections(self.greenlight.service), efs=True)

        self.admin = self.greenlight.add_first_admin(
            operator_email=config.operator_email, deployment=deployment,
            allow_data_access=lambda name, tasks: self._allow_data_access(name, tasks, efs=False),
        )

        # -- DNS and outputs -------------------------------------------------------------------------------
        alias = route53.RecordTarget.from_alias(targets.LoadBalancerTarget(self.lb.alb))
        route53.ARecord(self, "GreenlightRecord", zone=shared.zone, record_name=names.greenlight, target=alias)
        route53.ARecord(self, "ScaleliteRecord", zone=shared.zone, record_name=names.scalelite, target=alias)
        CfnOutput(self, "GreenlightUrl", value=f"https://{names.greenlight}/", description="Greenlight")
        CfnOutput(self, "ScaleliteApiUrl", value=scalelite.api_url,
                  description="Scalelite's BigBlueButton API endpoint (what Greenlight and other front ends call)")
        CfnOutput(self, "AdminSecretName", value=self.greenlight.admin_secret.secret_name,
                  description=f"Secrets Manager secret with the password of Greenlight's administrator "
                              f"{config.operator_email}")
        CfnOutput(self, "ScaleliteSecretName", value=secret_identifier(self, secrets.scalelite_loadbalancer),
                  description="Secrets Manager secret (name, or ARN if the shared stack lets CloudFormation name "
                              "it) with Scalelite's LOADBALANCER_SECRET")

    def _allow_data_access(self, name: str, tasks: ec2.Connections, *, efs: bool) -> None:
        # allow_to_default_port puts the ingress rule on the data tier's group into THIS stack, so the data
        # stack never references the frontend (no cycle) and the rule lives with the service that needs it.
        # PostgreSQL: each application reads and writes its own database.
        tasks.allow_to_default_port(self.data.database, f"{name} tasks: PostgreSQL")
        # Redis/Valkey (TLS + AUTH): Greenlight's Action Cable and cache, Scalelite's meeting state.
        tasks.allow_to_default_port(self.data.cache_connections, f"{name} tasks: Redis")
        if efs:  # NFS over TLS: Scalelite reads and writes recordings.
            tasks.allow_to_default_port(self.data.file_system, f"{name} tasks: EFS")


def secret_identifier(scope: Construct, secret: secretsmanager.ISecret) -> str:
    """The secret's name, or its ARN when it lives in another stack under a generated name (both work as
    `--secret-id`): such a name is only known as a split of the ARN, which cfn-lint rejects in an Output
    when the reference is a (weak) cross-stack one."""
    if Stack.of(secret) is Stack.of(scope) or not Token.is_unresolved(secret.secret_name):
        return secret.secret_name
    return secret.secret_arn
