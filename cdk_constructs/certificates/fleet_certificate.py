"""FleetCertificate: one wildcard certificate for the BBB fleet's subdomain, obtained and renewed centrally by
the issuer Lambda (lambdas/cert_issuer) with ACME DNS-01 through Route 53. See README.md next to this file."""

from __future__ import annotations

import re

from aws_cdk import CfnElement, CustomResource, Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.certificates.layer import AcmeLayer
from cdk_constructs.custom_resource_provider import framework_provider
from cdk_constructs.lambda_function import python_function
from cdk_constructs.nag import acknowledge

SERVICE = "cert-issuer"  # POWERTOOLS_SERVICE_NAME: Powertools adds it as the `service` dimension
METRIC = "DaysToExpiry"  # lambdas/cert_issuer/index.py
# Order polling (5 min) plus Route 53 INSYNC waits (up to 5 min) and the CA round trips.
TIMEOUT = Duration.minutes(12)
# Twice a day: between renewal (30 days left) and the alarm (20 days) the issuer gets 20 attempts.
SCHEDULE = Duration.hours(12)
_DNS = re.compile(r"^(?=.{4,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class FleetCertificate(Construct):
    """The issuer function, its schedule and first run at deploy time, the two secrets (KMS), the alarms.

    `certificate_secret` is what the BBB hosts read (BbbHosts grants them GetSecretValue); `first_issuance` is
    the deploy-time run that a fleet depends on, so no server boots before a certificate exists."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        hosted_zone: route53.IHostedZone,
        subdomain: str,
        acme_directory: str,
        acme_email: str,
        renew_days: int = 30,
        alarm_days: int = 20,
        schedule: Duration = SCHEDULE,
        operator_topic: sns.ITopic,
        metric_namespace: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, construct_id)
        _check(hosted_zone, subdomain, acme_directory, renew_days, alarm_days, schedule)
        self.subdomain = subdomain
        self.challenge_record = f"_acme-challenge.{subdomain}"

        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            description=f"bbb-on-aws: ACME account key and *.{subdomain} certificate",
        )
        placeholder = secretsmanager.SecretStringGenerator(
            secret_string_template="{}",
            generate_string_key="placeholder",
            exclude_punctuation=True,
        )
        self.account_secret = secretsmanager.Secret(
            self,
            "AcmeAccount",
            encryption_key=self.key,
            generate_secret_string=placeholder,
            removal_policy=removal_policy,
            description="bbb-on-aws: ACME account (key, URL, directory)",
        )
        self.certificate_secret = secretsmanager.Secret(
            self,
            "Certificate",
            encryption_key=self.key,
            generate_secret_string=placeholder,
            removal_policy=removal_policy,
            description=f"bbb-on-aws: *.{subdomain} certificate, key and chain",
        )
        for secret in (self.account_secret, self.certificate_secret):
            acknowledge(
                secret,
                "SMG4",
                "Secrets Manager rotation does not apply: the issuer function renews "
                "this value itself, 30 days before the certificate expires.",
            )

        self.layer = AcmeLayer(self, "AcmeLayer")
        self.function = python_function(
            self,
            "Issuer",
            handler="cert_issuer.index.handler",
            service=SERVICE,
            description=f"Obtains and renews the *.{subdomain} certificate (ACME DNS-01, Route 53)",
            role_description=f"bbb-on-aws certificate issuer: TXT {self.challenge_record}, its two secrets",
            timeout=TIMEOUT,
            log_retention=log_retention,
            retry_attempts=0,  # a failed order counts against the CA's failed-validation limit; next run in hours
            environment={
                "ACME_DIRECTORY_URL": acme_directory,
                "ACME_EMAIL": acme_email,
                "SUBDOMAIN": subdomain,
                "HOSTED_ZONE_ID": hosted_zone.hosted_zone_id,
                "ACCOUNT_SECRET_ARN": self.account_secret.secret_arn,
                "CERTIFICATE_SECRET_ARN": self.certificate_secret.secret_arn,
                "RENEW_DAYS": str(renew_days),
                "POWERTOOLS_METRICS_NAMESPACE": metric_namespace,
            },
        )
        self.function.add_layers(self.layer.layer)
        acknowledge(
            self.function,
            "L1",
            "Python 3.13 on purpose: the pinned Powertools layer (python313) and the "
            "acme layer's cp313 wheels are built for it; bumped together",
        )
        self._grant(hosted_zone)

        events.Rule(
            self,
            "Schedule",
            schedule=events.Schedule.rate(schedule),
            description=f"bbb-on-aws: renew *.{subdomain} when due",
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        self.first_issuance = self._first_issuance(subdomain, acme_directory, log_retention)
        self._alarms(operator_topic, metric_namespace, renew_days, alarm_days)

    def _first_issuance(self, subdomain: str, directory: str, retention: logs.RetentionDays) -> CustomResource:
        """The issuer as a custom resource (CDK Provider framework) at deploy time: it issues unless a valid
        certificate is stored, so the fleet (which depends on it) never boots without one, and a failed order
        fails the deployment with the issuer's error. It runs again only when the subdomain or the CA
        changes; renewals are the schedule's. The function is invoked unqualified, so the template does not
        change with the function's code."""
        provider, framework_role = framework_provider(
            self, self.function, ids=("FrameworkLogs", "FrameworkRole", "FirstIssuanceProvider"),
            retention=retention, removal_policy=RemovalPolicy.DESTROY,
        )
        handler = self.function.node.default_child
        assert isinstance(handler, CfnElement)
        acknowledge(
            framework_role,
            f"IAM5[Resource::<{Stack.of(self).get_logical_id(handler)}.Arn>:*]",
            "The Provider framework invokes its one handler function, any version of it (CDK-generated grant)",
        )
        acknowledge(provider, "L1", "The CDK Provider framework chooses its own Node.js runtime")
        return CustomResource(
            self,
            "FirstIssuance",
            service_token=provider.service_token,
            resource_type="Custom::FleetCertificate",
            properties={"Subdomain": subdomain, "AcmeDirectory": directory},
        )

    def _grant(self, zone: route53.IHostedZone) -> None:
        role = self.function.role
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ChallengeRecordOnly",
                actions=["route53:ChangeResourceRecordSets"],
                resources=[zone.hosted_zone_arn],
                conditions={
                    "ForAllValues:StringEquals": {
                        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [self.challenge_record.lower()],
                        "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
                        "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
                    }
                },
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ZoneNameCheck",
                actions=["route53:GetHostedZone"],
                resources=[zone.hosted_zone_arn],
            )
        )
        change = "arn:aws:route53:::change/*"
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WaitForInsync",
                actions=["route53:GetChange"],
                resources=[change],
            )
        )
        acknowledge(
            role,
            f"IAM5[Resource::{change}]",
            "Route 53 change ids are known only once the change is made; GetChange reveals nothing but INSYNC/PENDING.",
        )
        for secret in (self.account_secret, self.certificate_secret):
            secret.grant_read(role)
            secret.grant_write(role)

    def _alarms(self, topic: sns.ITopic, namespace: str, renew_days: int, alarm_days: int) -> None:
        action = cw_actions.SnsAction(topic)
        self.days_metric = cloudwatch.Metric(
            namespace=namespace,
            metric_name=METRIC,
            dimensions_map={"Subdomain": self.subdomain, "service": SERVICE},
            statistic="Minimum",
            period=Duration.days(1),
        )
        self.expiry_alarm = self.days_metric.create_alarm(
            self,
            "ExpiryAlarm",
            alarm_description=(
                f"The *.{self.subdomain} certificate the BBB servers serve expires in under {alarm_days} days "
                f"(renewal started {renew_days - alarm_days} days earlier and has failed since), or the issuer "
                "published nothing for a day. Check first: the issuer's log group (its error names the step). "
                "Guide: docs/troubleshooting.md#certificate-alarm"
            ),
            threshold=alarm_days,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.expiry_alarm.add_alarm_action(action)
        self.errors_alarm = self.function.metric_errors(period=Duration.minutes(5), statistic="Sum").create_alarm(
            self,
            "ErrorsAlarm",
            alarm_description=f"The *.{self.subdomain} certificate issuer: the function failed (see its log group)",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.errors_alarm.add_alarm_action(action)


def _check(
    zone: route53.IHostedZone, subdomain: str, directory: str, renew_days: int, alarm_days: int, schedule: Duration
) -> None:
    """Refuse what the issuer could never do; the settings package names the cdk.json keys."""
    problems = []
    if not _DNS.match(subdomain):
        problems.append(f"subdomain {subdomain!r} is not a lowercase DNS name")
    elif not Token.is_unresolved(zone.zone_name) and not subdomain.endswith("." + zone.zone_name.rstrip(".")):
        problems.append(f"subdomain {subdomain!r} is not inside the hosted zone {zone.zone_name!r}")
    if not directory.startswith("https://"):
        problems.append(f"ACME directory {directory!r} must be an https:// URL")
    if not 1 <= renew_days <= 60:
        problems.append(f"renew_days={renew_days} must be 1-60 (Let's Encrypt certificates last 90 days)")
    if not 1 <= alarm_days < renew_days:
        problems.append(
            f"alarm_days={alarm_days} must be at least 1 and below renew_days={renew_days}, "
            "so that renewal has had time to fail before the operator is alarmed"
        )
    if not Duration.hours(1).to_seconds() <= schedule.to_seconds() <= Duration.days(1).to_seconds():
        problems.append("schedule must be 1-24 hours: the expiry alarm expects a value every day")
    if problems:
        raise ValueError("FleetCertificate: " + "; ".join(problems))
