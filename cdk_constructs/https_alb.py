"""An internet-facing Application Load Balancer that speaks HTTPS only and routes by host name.

- 443: TLS 1.3/1.2 policy, the given certificate; unknown host names get a 404 (default action).
- 80: nothing but a 301 redirect to https://<same host><same path>.
- Invalid header fields are dropped; access logs go to an own S3 bucket (SSE-S3, which is what ALB log
  delivery supports; TLS enforced; expiry and removal per stage).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from cdk_constructs.access_log_bucket import access_log_bucket
from cdk_constructs.nag import acknowledge
from settings import Deployment

TLS_POLICY = elbv2.SslPolicy.RECOMMENDED_TLS  # ELBSecurityPolicy-TLS13-1-2-2021-06


class HttpsLoadBalancer(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        certificate: acm.ICertificate,
        deployment: Deployment,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False,
            description="Internet-facing ALB: browsers on 443, and 80 only to be redirected to 443",
        )
        # Browsers and API clients (Greenlight users, BBB servers' callbacks, the lifecycle handlers).
        self.security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS from browsers")
        # Port 80 answers only with a 301 to HTTPS (typed-in http:// links).
        self.security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(80), "HTTP, redirected to HTTPS")
        acknowledge(
            self.security_group, "EC23",
            "Public web entry point: 443 (and 80, which only redirects) must be reachable from any browser",
        )
        self.alb = elbv2.ApplicationLoadBalancer(
            self, "Alb", vpc=vpc, vpc_subnets=subnets, internet_facing=True, security_group=self.security_group,
            drop_invalid_header_fields=True, idle_timeout=Duration.seconds(60),
        )
        self.log_bucket = access_log_bucket(self, "AccessLogs", deployment=deployment)
        self.alb.log_access_logs(self.log_bucket, prefix="alb")
        self.https = self.alb.add_listener(
            "Https", port=443, protocol=elbv2.ApplicationProtocol.HTTPS, certificates=[certificate],
            ssl_policy=TLS_POLICY, open=False,
            default_action=elbv2.ListenerAction.fixed_response(404, content_type="text/plain",
                                                               message_body="Not found"),
        )
        self.http = self.alb.add_listener(
            "HttpRedirect", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False,
            default_action=elbv2.ListenerAction.redirect(protocol="HTTPS", port="443", permanent=True),
        )

    def route(
        self, construct_id: str, *, host: str, priority: int, target_group: elbv2.IApplicationTargetGroup
    ) -> None:
        """Send requests for `host` to `target_group`."""
        self.https.add_action(
            construct_id, priority=priority, conditions=[elbv2.ListenerCondition.host_headers([host])],
            action=elbv2.ListenerAction.forward([target_group]),
        )
