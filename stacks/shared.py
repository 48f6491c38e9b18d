"""Shared (both shapes): hosted zone, certificate, operator topic, generated platform secrets, SES SMTP credentials.

Nothing here has a physical name: CloudFormation names every resource after the stack, so two environments in
one account and region never collide. No secret value appears in the template: Secrets Manager generates the
platform secrets, and the SMTP credentials are derived and written by a custom resource (see
lambdas/smtp_credentials) that creates the IAM access key itself.
"""

from __future__ import annotations

from aws_cdk import Aws, CustomResource, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.custom_resource_provider import PythonCustomResourceProvider
from cdk_constructs.nag import acknowledge
from cdk_constructs.operator_topic import operator_topic
from cdk_constructs.turn_secret_rotation import TurnSecretRotation
from settings import Config
from stacks.interfaces import PlatformSecrets, Shared

SMTP_PORT = "587"  # STARTTLS; Greenlight: SMTP_STARTTLS_AUTO=true


def ses_region(config: Config) -> str:
    return config.ses_region or config.environment.region


def import_zone(scope: Construct, config: Config) -> route53.IHostedZone:
    """The operator's hosted zone, by id and name (no lookup, so synth needs no AWS account)."""
    return route53.HostedZone.from_hosted_zone_attributes(
        scope, "Zone", hosted_zone_id=config.domain.hosted_zone_id, zone_name=config.domain.hosted_zone_name
    )


class SharedStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._config = config
        domain = config.domain.name
        zone = import_zone(self, config)
        certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=domain,
            subject_alternative_names=[f"*.{domain}"],
            validation=acm.CertificateValidation.from_dns(zone),
        )
        self.shared = Shared(
            zone=zone,
            certificate=certificate,
            topic=self._operator_topic(),
            secrets=self._platform_secrets(),
            smtp=self._smtp_credentials(),
            mail_from=f"no-reply@{domain}",
        )

    # -- operator notifications ------------------------------------------------------------------------------

    def _operator_topic(self) -> sns.ITopic:
        return operator_topic(self, prefix=self._config.prefix, email=self._config.operator_email)

    # -- generated secrets -----------------------------------------------------------------------------------

    def _generated(self, construct_id: str, description: str, *, length: int, hex_like: bool = False,
                   rotation: str | None) -> secretsmanager.ISecret:
        secret = secretsmanager.Secret(
            self,
            construct_id,
            description=f"{self._config.prefix}: {description}",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=length,
                exclude_punctuation=True,  # every consumer puts these into URLs, shell and XML unquoted
                include_space=False,
                exclude_uppercase=hex_like,
            ),
        )
        if rotation is not None:  # why this secret has no rotation schedule
            acknowledge(secret, "SMG4", rotation)
        return secret

    def _turn_secret(self) -> secretsmanager.ISecret:
        """Rotated on the turn.secretRotationDays schedule without refusing a credential BBB handed out
        (cdk_constructs/turn_secret_rotation.py)."""
        secret = self._generated("TurnSecret", "TURN REST shared secret (relay, BBB hosts, prober)", length=40,
                                 rotation=None)
        TurnSecretRotation(
            self, "TurnSecretRotation", secret=secret, rotation_days=self._config.turn.secret_rotation_days,
            deployment=self._config.deployment,
        )
        return secret

    def _platform_secrets(self) -> PlatformSecrets:
        return PlatformSecrets(
            turn=self._turn_secret(),
            bbb_api=self._generated(
                "BbbApiSecret", "BigBlueButton API secret (securitySalt) of every BBB server", length=40,
                rotation="The BBB securitySalt is set by bbb-conf at boot and registered in Scalelite; rotating it "
                         "means re-registering every server, done by replacing the fleet, not by a Lambda",
            ),
            scalelite_loadbalancer=self._generated(
                "ScaleliteSecret", "Scalelite LOADBALANCER_SECRET (= Greenlight's BIGBLUEBUTTON_SECRET)",
                length=64,
                rotation="LOADBALANCER_SECRET is shared by Scalelite and Greenlight tasks read at start; rotation "
                         "needs Scalelite's LOADBALANCER_SECRETS overlap and a redeploy, not a Lambda",
            ),
            # Rails: any string of 64+ characters; 128 of [a-z0-9] carries more entropy than `rails secret`.
            greenlight_key_base=self._generated(
                "GreenlightKeyBase", "Greenlight Rails SECRET_KEY_BASE", length=128, hex_like=True,
                rotation="Rotating SECRET_KEY_BASE invalidates every Greenlight session and encrypted value; "
                         "it is an operator decision with a redeploy, never an automatic rotation",
            ),
            scalelite_key_base=self._generated(
                "ScaleliteKeyBase", "Scalelite Rails SECRET_KEY_BASE", length=128, hex_like=True,
                rotation="Rotating SECRET_KEY_BASE invalidates Scalelite's signed values (protected recording "
                         "tokens); it is an operator decision with a redeploy, never an automatic rotation",
            ),
        )

    # -- SES SMTP --------------------------------------------------------------------------------------------

    def _smtp_credentials(self) -> secretsmanager.ISecret:
        config = self._config
        region = ses_region(config)
        domain = config.domain.name
        identity_arn = f"arn:{Aws.PARTITION}:ses:{region}:{Aws.ACCOUNT_ID}:identity/{domain}"
        user = iam.User(self, "SmtpUser")
        # SES SMTP authorizes as ses:SendRawEmail; only this domain's identity, only senders inside the domain.
        user.add_to_policy(
            iam.PolicyStatement(
                actions=["ses:SendRawEmail", "ses:SendEmail"],
                resources=[identity_arn],
                conditions={"StringLike": {"ses:FromAddress": f"*@{domain}"}},
            )
        )
        secret = secretsmanager.Secret(
            self,
            "SmtpCredentials",
            description=f"{config.prefix}: SES SMTP credentials for Greenlight (username, password, host, port)",
        )
        acknowledge(
            secret,
            "SMG4",
            "Rotated by its own custom resource (new IAM key on every region/host change); a Secrets Manager "
            "rotation Lambda could not derive the SES SMTP password without the IAM secret key",
        )
        provider = PythonCustomResourceProvider(
            self, "SmtpCredentialsProvider", deployment=config.deployment, folder="smtp_credentials",
            description="Creates the SES SMTP user's access key and stores the derived SMTP password",
        )
        handler = provider.handler.function
        handler.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:ListAccessKeys"],
                resources=[user.user_arn],
            )
        )
        secret.grant_read(handler)
        secret.grant_write(handler)
        resource = CustomResource(
            self,
            "SmtpCredentialsResource",
            service_token=provider.service_token,
            resource_type="Custom::SesSmtpCredentials",
            properties={
                "UserName": user.user_name,
                "SecretArn": secret.secret_arn,
                "Region": region,
                "Host": f"email-smtp.{region}.amazonaws.com",
                "Port": SMTP_PORT,
            },
        )
        # Keys are deleted before the user (CloudFormation cannot delete a user that still has keys).
        resource.node.add_dependency(user)
        return secret
