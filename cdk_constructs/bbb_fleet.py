"""BigBlueButton 3.0 hosts: the autoscaled fleet behind Scalelite (`BbbFleet`) and what it shares with the
single-shape host (`BbbHosts`, see cdk_constructs/single_host.py).

Ports are exactly what BBB 3.0 documents for a server with an external TURN fleet: TCP 80 (Let's Encrypt's
HTTP-01 challenge, then a redirect), TCP 443 (HTTPS, WebSockets) and UDP 16384-32768 (WebRTC media,
from browsers and from the TURN relays). No SSH: operators use Session Manager.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

import contract
from cdk_constructs.bbb_scaling import LeastLoadedTermination, add_schedule, load_weights_json
from cdk_constructs.fleet_host import HostBootstrap, HostLogs, HostRole, Volumes, host_group, launch_template
from cdk_constructs.nag import acknowledge
from cdk_constructs.warm_pool import add_warm_pool
from settings import Bbb, Deployment
from userdata.render import BbbParams, EfsSpool, render_bbb_user_data

MEDIA_PORTS = (16384, 32768)  # BBB 3.0: FreeSWITCH and bbb-webrtc-sfu (mediasoup) media
# bbb-install takes 20-40 min; a new server publishes meaningful Participants only after that.
BBB_WARMUP = Duration.minutes(30)


@dataclass(frozen=True)
class Spool:
    """Where recordings go (scalable shape): the EFS file system and its spool access point."""

    file_system: efs.IFileSystem
    access_point: efs.IAccessPoint


class BbbHosts(Construct):
    """Security group, role, launch template and Auto Scaling group of BBB hosts of one role."""

    def __init__(
        self, scope: Construct, construct_id: str, *, bbb: Bbb, deployment: Deployment, operator_email: str,
        vpc: ec2.IVpc, host_role: str, turn_secret: secretsmanager.ISecret, bbb_secret: secretsmanager.ISecret,
        spool: Spool | None, min_capacity: int, desired_capacity: int, max_capacity: int, cluster_proxy: bool = False,
        certificate_secret: secretsmanager.ISecret | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = bbb
        self.deployment = deployment
        self.host_role = host_role

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=True,
            description=f"{deployment.prefix} BigBlueButton {host_role} hosts: HTTP(S) and WebRTC media",
        )
        anywhere = ec2.Peer.any_ipv4()
        sg = self.security_group
        # Let's Encrypt's HTTP-01 challenge (bbb-install's certbot) and nginx's redirect to HTTPS.
        sg.add_ingress_rule(anywhere, ec2.Port.tcp(80), "HTTP: Let's Encrypt HTTP-01 and redirect to HTTPS")
        # The HTML5 client, the API (Scalelite, the lifecycle handlers) and the WebSockets.
        sg.add_ingress_rule(anywhere, ec2.Port.tcp(443), "HTTPS: client, API, WebSockets")
        # WebRTC media from browsers and from the TURN relays (which reach us on our public IP).
        sg.add_ingress_rule(anywhere, ec2.Port.udp_range(*MEDIA_PORTS), "WebRTC media (browsers, TURN relays)")
        acknowledge(sg, "EC23", "BigBlueButton serves browsers anywhere: HTTPS and WebRTC media must be open "
                                "to the internet (BBB 3.0 firewall documentation).")
        Validations.of(sg).acknowledge(Acknowledgment(
            id="CloudFormation-Validate::W2508",
            reason="The flagged 'sensitive port' 27017 is MongoDB over TCP; this rule opens UDP only, BBB's "
                   "WebRTC media range 16384-32768, where nothing but FreeSWITCH and mediasoup listen.",
        ))

        self.logs = HostLogs(self, "Logs", deployment=deployment)
        self.host = HostRole(self, "HostRole", deployment=deployment, host_role=host_role, host_logs=self.logs,
                             own_tags=(contract.TAG_READY, contract.TAG_TURN_SECRET))
        self.role = self.host.role
        self.host.allow_secret_read(turn_secret, bbb_secret)
        if certificate_secret is not None:  # the fleet's wildcard certificate (cdk_constructs/certificates)
            self.host.allow_secret_read(certificate_secret)
        self.bootstrap = HostBootstrap(self, "Bootstrap", bundle="bbb")
        self.bootstrap.grant_read(self.role)
        if spool is not None:
            self._allow_spool(spool)
        self.host.acknowledge_wildcards()

        self.user_data = render_bbb_user_data(BbbParams(
            environment=deployment.environment_name,
            domain=deployment.names.domain,
            region=Stack.of(self).region,
            bootstrap_bundle=self.bootstrap.s3_object,
            turn_secret_arn=turn_secret.secret_arn,
            system_log_group=self.logs.system.log_group_name,
            application_log_group=self.logs.application.log_group_name,
            operator_email=operator_email,
            bbb_secret_arn=bbb_secret.secret_arn,
            single=host_role == "single",
            spool=None if spool is None else EfsSpool(spool.file_system.file_system_id,
                                                      spool.access_point.access_point_id),
            cluster_proxy=cluster_proxy,
            certificate_secret_arn=None if certificate_secret is None else certificate_secret.secret_arn,
            bbb_install_sha256=bbb.install_sha256,
            load_weights=load_weights_json(bbb),
        ))
        template = launch_template(
            self, "LaunchTemplate", instance_type=bbb.instance_type, role=self.role, security_group=sg,
            user_data=self.user_data,
            # The single host's data volume outlives the instance: the launch automation attaches it (not the
            # template, whose volumes die with their instance): cdk_constructs/lifecycle/data_volume.py.
            volumes=Volumes(root_gib=bbb.root_volume_gib,
                            data_gib=None if host_role == "single" else bbb.data_volume_gib),
        )
        self.group = host_group(
            self, "Group", deployment=deployment, host_role=host_role, vpc=vpc, template=template,
            min_capacity=min_capacity, desired_capacity=desired_capacity, max_capacity=max_capacity,
            warmup=BBB_WARMUP,
        )

    def _allow_spool(self, spool: Spool) -> None:
        """Mount and write the recordings spool, through its access point only, over TLS from this group."""
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            resources=[spool.file_system.file_system_arn],
            conditions={
                "StringEquals": {"elasticfilesystem:AccessPointArn": spool.access_point.access_point_arn},
                "Bool": {"aws:SecureTransport": "true"},
            },
        ))
        # The rule lives in this stack (remote_rule), next to the servers it admits: the data stack must not
        # depend on the fleets (that would be a cycle: the fleets read the file system from it).
        for efs_group in spool.file_system.connections.security_groups:
            efs_group.add_ingress_rule(self.security_group, ec2.Port.tcp(2049), "NFS (TLS) from the BBB servers",
                                       remote_rule=True)


class BbbFleet(BbbHosts):
    """The scalable shape's BBB servers: sized by load, pre-warmed by the timetable, the least-loaded server
    offered on scale-in and drained (never cut) (cdk_constructs/bbb_scaling.py, docs/scaling.md)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, bbb: Bbb, deployment: Deployment, operator_email: str,
        vpc: ec2.IVpc, turn_secret: secretsmanager.ISecret, bbb_secret: secretsmanager.ISecret, spool: Spool,
        cluster_proxy: bool, certificate_secret: secretsmanager.ISecret | None = None,
    ) -> None:
        super().__init__(
            scope, construct_id, bbb=bbb, deployment=deployment, operator_email=operator_email, vpc=vpc,
            host_role="bbb", turn_secret=turn_secret, bbb_secret=bbb_secret, spool=spool,
            min_capacity=bbb.min_instances, desired_capacity=bbb.desired_instances, max_capacity=bbb.max_instances,
            cluster_proxy=cluster_proxy, certificate_secret=certificate_secret,
        )
        # Prepared servers (installed, then stopped): a scale-out wakes one instead of running bbb-install.
        self.warm_pool = add_warm_pool(self.group, bbb.warm_pool)
        self.load_policy: autoscaling.TargetTrackingScalingPolicy | None = None
        self.scale_in_enabled = False
        self.schedule = add_schedule(self.group, bbb)
        self.termination = LeastLoadedTermination(self, "Termination", group=self.group, deployment=deployment)

    @property
    def load_target(self) -> float:
        """Load units per server to track: the instance type's capacity times bbb.loadTargetPercent."""
        return self.settings.load_target

    def scale_on_load(self, *, drained_by: autoscaling.LifecycleHook | None) -> None:
        """Target tracking on load per server. Scale-in is enabled only with a terminating lifecycle hook on this
        group whose drain (Scalelite cordon, wait for meetings and recordings) makes any choice safe; the
        termination policy makes the choice cheap (the least-loaded server). Without it an operator scales in."""
        if self.load_policy is not None:
            raise ValueError("scale_on_load was already called for this fleet")
        if drained_by is not None:
            hook = drained_by.node.default_child
            if not (
                isinstance(hook, autoscaling.CfnLifecycleHook)
                and hook.lifecycle_transition == "autoscaling:EC2_INSTANCE_TERMINATING"
                and hook.auto_scaling_group_name == self.group.auto_scaling_group_name
            ):
                raise ValueError("drained_by must be the terminating lifecycle hook of this fleet's own group")
        self.scale_in_enabled = drained_by is not None
        self.load_policy = self.group.scale_to_track_metric(
            "LoadPerServer",
            metric=self.load_metric(),
            target_value=self.load_target,
            estimated_instance_warmup=BBB_WARMUP,
            disable_scale_in=not self.scale_in_enabled,
        )

    def load_metric(self) -> cloudwatch.Metric:
        """The contract metric: each server's load figure; Average = load per reporting server."""
        return cloudwatch.Metric(
            namespace=self.deployment.metric_namespace, metric_name=contract.LOAD_METRIC,
            dimensions_map={"AutoScalingGroupName": self.group.auto_scaling_group_name},
            statistic="Average", period=Duration.minutes(1),
        )
