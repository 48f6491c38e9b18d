"""Stand-in Shared and Data bundles built from real CDK resources, for synthesizing the frontend stack alone.

The real shared and data stacks are built by another part of the project; these stand-ins have exactly the
types and shapes of stacks/interfaces.py (secrets as Secrets Manager secrets, an EFS file system with the four
access points, a database cluster with a security group, a cache security group) so the frontend's own
constructs, grants and nag findings are exercised for real. One synthesis per variant, cached.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from cdk_nag import AwsSolutionsChecks

from cdk_constructs.nag import acknowledge
from stacks.config import Config, load_config
from stacks.deployment import effective_context
from stacks.frontend import FrontendStack
from stacks.interfaces import Data, PlatformSecrets, Shared
from stacks.network import NetworkStack
from tests.infra.synth import deployment

FRONTEND = "FrontendUnderTest"


class StandInStack(cdk.Stack):
    """What the shared and data stacks hand over, built from the same kinds of resources."""

    def __init__(self, scope: cdk.App, construct_id: str, *, config: Config, vpc: ec2.IVpc, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.domain.hosted_zone_id, zone_name=config.domain.hosted_zone_name
        )
        certificate = acm.Certificate(
            self, "Certificate", domain_name=config.domain.name, subject_alternative_names=[f"*.{config.domain.name}"],
            validation=acm.CertificateValidation.from_dns(zone),
        )

        def secret(name: str, template: dict[str, str] | None = None) -> secretsmanager.Secret:
            generator = (secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps(template), generate_string_key="password",
                exclude_punctuation=True) if template else secretsmanager.SecretStringGenerator(
                exclude_punctuation=True))
            return secretsmanager.Secret(self, name, generate_secret_string=generator)

        secrets = PlatformSecrets(
            turn=secret("Turn"), bbb_api=secret("BbbApi"), scalelite_loadbalancer=secret("LoadBalancer"),
            greenlight_key_base=secret("GreenlightKeyBase"), scalelite_key_base=secret("ScaleliteKeyBase"),
        )
        db_shape = {"username": "app", "host": "db.internal", "port": "5432", "dbname": "app"}
        self.shared = Shared(
            zone=zone, certificate=certificate, topic=sns.Topic(self, "Topic", enforce_ssl=True), secrets=secrets,
            smtp=secret("Smtp", {"username": "AKIA", "host": "email-smtp.eu-west-1.amazonaws.com", "port": "587"}),
            mail_from=f"noreply@{config.domain.name}",
        )
        db_group = ec2.SecurityGroup(self, "DatabaseSecurityGroup", vpc=vpc, allow_all_outbound=False)
        database = rds.DatabaseCluster.from_database_cluster_attributes(
            self, "Database", cluster_identifier="stand-in", security_groups=[db_group], port=5432,
        )
        cache_group = ec2.SecurityGroup(self, "CacheSecurityGroup", vpc=vpc, allow_all_outbound=False)
        file_system = efs.FileSystem(
            self, "Recordings", vpc=vpc, encrypted=True, removal_policy=cdk.RemovalPolicy.DESTROY,
            vpc_subnets=ec2.SubnetSelection(subnet_group_name="application"),
        )
        points = {
            name: file_system.add_access_point(
                name.capitalize(), path=f"/{name}", posix_user=efs.PosixUser(uid="1000", gid="2000"),
                create_acl=efs.Acl(owner_uid="1000", owner_gid="2000", permissions="775"),
            )
            for name in ("spool", "work", "published", "unpublished")
        }
        acknowledge(self, "SMG4", "Test stand-ins for the shared and data stacks' secrets, never deployed")
        self.data = Data(
            database=database, greenlight_db=secret("GreenlightDb", db_shape),
            scalelite_db=secret("ScaleliteDb", db_shape), cache_host="cache.internal", cache_port="6379",
            cache_auth=secret("CacheAuth"),
            cache_connections=ec2.Connections(security_groups=[cache_group], default_port=ec2.Port.tcp(6379)),
            file_system=file_system, access_points=points,
        )


@dataclass
class FrontendSynth:
    outdir: Path
    config: Config
    error: str | None

    @property
    def template(self) -> dict[str, Any]:
        return json.loads((self.outdir / f"{FRONTEND}.template.json").read_text())

    def findings(self) -> list[str]:
        """Unacknowledged cdk-nag findings on the frontend stack's constructs."""
        path = self.outdir / "validation-report.json"
        report = json.loads(path.read_text()) if path.exists() else {"pluginReports": []}
        return [
            f"{v['ruleName']} at {c['constructPath']}"
            for plugin in report["pluginReports"]
            for v in plugin["violations"]
            for c in v["violatingConstructs"]
            if c["constructPath"].startswith(f"{FRONTEND}/")
        ]

    def acknowledged(self) -> list[tuple[str, str, str]]:
        path = self.outdir / "validation-report.json"
        report = json.loads(path.read_text()) if path.exists() else {"pluginReports": []}
        return [
            (v["ruleName"], c["constructPath"], (v.get("acknowledgment") or v).get("reason", ""))
            for plugin in report["pluginReports"]
            for v in plugin.get("suppressedViolations", [])
            for c in v.get("violatingConstructs", [])
            if c["constructPath"].startswith(f"{FRONTEND}/")
        ]


_cache: dict[str, FrontendSynth] = {}


def frontend_synth(capacity: str = "ec2", stage: str = "dev") -> FrontendSynth:
    key = f"{capacity}-{stage}"
    if key in _cache:
        return _cache[key]
    changes: dict[str, Any] = {"environment.type": "scalable", "environment.stage": stage,
                               "frontend.capacity": capacity}
    if capacity == "fargate":  # Fargate needs valid task sizes: the api+nginx task becomes 1 vCPU / 2 GiB
        changes |= {"frontend.scaleliteApi": {"image": "blindsidenetwks/scalelite:v1.6-api", "cpu": 512,
                                              "memoryMib": 1024},
                    "frontend.greenlight": {"image": "bigbluebutton/greenlight:v3", "cpu": 512, "memoryMib": 1024}}
    context = effective_context({"deployment": deployment(**changes)})
    config = load_config(context)
    outdir = Path(tempfile.mkdtemp(prefix=f"synth-frontend-{key}-"))
    app = cdk.App(context=context, outdir=str(outdir))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    env = cdk.Environment(region=config.environment.region)
    network = NetworkStack(app, "NetworkUnderTest", config=config, env=env)
    stand_in = StandInStack(app, "StandIns", config=config, vpc=network.vpc, env=env)
    FrontendStack(app, FRONTEND, config=config, vpc=network.vpc, shared=stand_in.shared, data=stand_in.data, env=env)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # nag findings anywhere (the stand-ins' own are not ours to judge)
        error = str(exc)
    _cache[key] = FrontendSynth(outdir=outdir, config=config, error=error)
    return _cache[key]


if __name__ == "__main__":  # quick look while developing: python -m tests.infra.frontend_fixtures
    import sys

    result = frontend_synth(*(sys.argv[1:3] or ["ec2"]))
    print(result.outdir, result.error)
    print("\n".join(result.findings()) or "no findings on the frontend stack")
