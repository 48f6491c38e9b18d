"""Email (both shapes), in the SES region: the domain identity with Easy DKIM, a custom MAIL FROM and DMARC.

A stack of its own with its own `env`, so it can live in another region than the deployment when SES is not
offered there; it needs only the zone id/name and the domain from the config, hence no cross-region reference.
Route 53 is global, so the records are created from here whatever the region.

New SES accounts are in the sandbox (mail only to verified addresses): request production access once.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_ses as ses
from constructs import Construct

from cdk_constructs.monitoring.alarms import ses_alarms
from cdk_constructs.operator_topic import operator_topic
from settings import Config
from stacks.shared import import_zone, ses_region

SPF = "v=spf1 include:amazonses.com ~all"
# p=none only reports: a subdomain record never overrides what the operator enforces for the parent domain
# (DMARC falls back to the organizational domain's `sp=` only when the subdomain has no record of its own).
DMARC = "v=DMARC1; p=none;"


def mail_from_domain(config: Config) -> str:
    return f"mail.{config.domain.name}"


class EmailStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        domain = config.domain.name
        zone = import_zone(self, config)
        mail_from = mail_from_domain(config)
        self.identity = ses.EmailIdentity(
            self,
            "Identity",
            identity=ses.Identity.domain(domain),
            dkim_identity=ses.DkimIdentity.easy_dkim(ses.EasyDkimSigningKeyLength.RSA_2048_BIT),
            mail_from_domain=mail_from,
            # Keep sending (from amazonses.com) if the MX record ever breaks, rather than rejecting mail.
            mail_from_behavior_on_mx_failure=ses.MailFromBehaviorOnMxFailure.USE_DEFAULT_VALUE,
        )
        tokens = [
            (self.identity.dkim_dns_token_name1, self.identity.dkim_dns_token_value1),
            (self.identity.dkim_dns_token_name2, self.identity.dkim_dns_token_value2),
            (self.identity.dkim_dns_token_name3, self.identity.dkim_dns_token_value3),
        ]
        for index, (name, value) in enumerate(tokens, start=1):
            # SES returns the full name without the final dot; without it CDK would append the zone name again
            # (aws-cdk#26738).
            route53.CnameRecord(self, f"Dkim{index}", zone=zone, record_name=f"{name}.", domain_name=value,
                                ttl=Duration.minutes(30))
        route53.MxRecord(
            self,
            "MailFromMx",
            zone=zone,
            record_name=mail_from,
            values=[route53.MxRecordValue(host_name=f"feedback-smtp.{ses_region(config)}.amazonses.com", priority=10)],
            ttl=Duration.minutes(30),
        )
        route53.TxtRecord(self, "MailFromSpf", zone=zone, record_name=mail_from, values=[SPF],
                          ttl=Duration.minutes(30))
        # SES's reputation alarms must be in SES's region, with a topic of that region: the monitoring stack
        # has them when that is the deployment's region.
        if ses_region(config) != config.environment.region:
            topic = operator_topic(self, prefix=config.prefix, email=config.operator_email)
            ses_alarms(self, region=ses_region(config), thresholds=config.monitoring, topic=topic)
        # At the zone apex the operator very likely has a DMARC policy already (a second TXT record set of the
        # same name would fail the deployment); below it, the name is ours.
        if domain != config.domain.hosted_zone_name:
            route53.TxtRecord(self, "Dmarc", zone=zone, record_name=f"_dmarc.{domain}", values=[DMARC],
                              ttl=Duration.minutes(30))
