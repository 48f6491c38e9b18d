"""What the stacks hand to each other: typed bundles, passed as keyword arguments in stacks/deployment.py.

A stack that consumes one of these grants access where it meets the resource (e.g. the frontend stack calls
`data.cache_connections.allow_default_port_from(service)`), so permissions are visible at the meeting point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns


@dataclass(frozen=True)
class PlatformSecrets:
    """Generated secrets (Secrets Manager). Plain-string SecretString unless noted."""

    turn: secretsmanager.ISecret  # TURN REST API shared secret (relay, BBB hosts, prober)
    bbb_api: secretsmanager.ISecret  # fleet-wide BBB securitySalt (BBB hosts, Scalelite registration, drain)
    scalelite_loadbalancer: secretsmanager.ISecret  # Scalelite LOADBALANCER_SECRET (= Greenlight's BBB secret)
    greenlight_key_base: secretsmanager.ISecret  # Rails SECRET_KEY_BASE of Greenlight
    scalelite_key_base: secretsmanager.ISecret  # Rails SECRET_KEY_BASE of Scalelite


@dataclass(frozen=True)
class Shared:
    """From the shared stack: used by every shape."""

    zone: route53.IHostedZone  # imported by id and name, no lookup
    certificate: acm.ICertificate  # <domain> and *.<domain>, DNS-validated, in the deployment region
    topic: sns.ITopic  # operator notifications; the operator's e-mail is subscribed
    secrets: PlatformSecrets
    smtp: secretsmanager.ISecret  # JSON {"username", "password", "host", "port"} for SES SMTP
    mail_from: str  # sender address inside the SES-verified domain


@dataclass(frozen=True)
class Data:
    """From the data stack (scalable shape only)."""

    database: rds.IDatabaseCluster  # grant with database.connections.allow_default_port_from(...)
    greenlight_db: secretsmanager.ISecret  # JSON {"username","password","host","port","dbname"}: own user + db
    scalelite_db: secretsmanager.ISecret  # same shape, Scalelite's own user and database
    cache_host: str  # primary endpoint (TLS on cache_port)
    cache_port: str
    cache_auth: secretsmanager.ISecret  # AUTH token, plain string
    cache_connections: ec2.Connections
    file_system: efs.IFileSystem  # grant with file_system.connections / grant_read_write
    access_points: Mapping[str, efs.IAccessPoint]  # keys: spool, work, published, unpublished
