"""The TURN fleet: our relay (`relay/`) on an Auto Scaling group, reachable three ways.

- `turn:turn.<domain>:3478` (UDP and TCP): straight to each instance's public IP. `turn.<domain>` is a set
  of weighted, health-checked A records, one per instance, written by the lifecycle launch handler.
- `turns:turns.<domain>:443`: an internet-facing NLB terminates TLS with the deployment's ACM certificate
  and forwards plain TCP with a PROXY protocol v2 header to the relay's port 3479. No certificate on any
  instance: nothing to issue per instance, no CA rate limit however often the fleet scales, no private key
  on a host, renewal by ACM.
- Relay ports (UDP range): straight to the instance that allocated them. A relayed address must be the
  instance's own (RFC 8656), so no load balancer can front them.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

import contract
from cdk_constructs.access_log_bucket import access_log_bucket
from cdk_constructs.fleet_host import HostBootstrap, HostLogs, HostRole, Volumes, host_group, launch_template
from cdk_constructs.nag import acknowledge
from cdk_constructs.relay_wheel import RelayWheel
from cdk_constructs.warm_pool import add_warm_pool
from contract import PROXY_PORT, TURN_PORT
from contract import TURNS_PORT as TLS_PORT
from settings import Deployment, Turn
from userdata.render import S3Object, TurnParams, render_turn_user_data

HOST_ROLE = "turn"
# The NLB only holds back the start of the lifecycle drain: existing TURN-over-TLS sessions stay up after
# deregistration (connection termination stays off) while the relay drains them; see README "TURN on 443".
DEREGISTRATION_DELAY = Duration.seconds(120)
CPU_TARGET_PERCENT = 60
# EC2 reports NetworkOut per minute with detailed monitoring (on: fleet_host.launch_template) but
# NetworkPacketsOut only per 5 minutes ("available for basic monitoring only"): each datapoint is a count over
# its period, so the targets are per-second figures times the period. (Target tracking's own alarm period,
# 60 s, cannot be set to 300: the packets policy reacts on each 5-minute datapoint; docs/scaling.md.)
BYTES_PERIOD = Duration.minutes(1)
PACKETS_PERIOD = Duration.minutes(5)
# TLS 1.3 and 1.2 with ECDHE and AEAD ciphers only ("Res"), hybrid post-quantum key exchange where offered.
TLS_POLICY = elbv2.SslPolicy.TLS13_12_RES_PQ


class TurnFleet(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, turn: Turn, deployment: Deployment, vpc: ec2.IVpc,
        zone: route53.IHostedZone, certificate: acm.ICertificate, turn_secret: secretsmanager.ISecret,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = turn
        self.deployment = deployment
        self._turn_secret_arn = turn_secret.secret_arn

        # --- Network ------------------------------------------------------------------------------------
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=True,
            description=f"{deployment.prefix} TURN relays: TURN/STUN 3478, relay ports, PROXY port from the NLB",
        )
        self.load_balancer_security_group = ec2.SecurityGroup(
            self, "LoadBalancerSecurityGroup", vpc=vpc, allow_all_outbound=False,
            description=f"{deployment.prefix} TURN NLB: TLS 443 from clients, PROXY TCP to the relays",
        )
        anywhere = ec2.Peer.any_ipv4()
        sg = self.security_group
        # Clients' TURN allocations and STUN binding requests, and the prober's checks, over UDP...
        sg.add_ingress_rule(anywhere, ec2.Port.udp(TURN_PORT), "TURN/STUN over UDP from clients")
        # ...and over TCP, for networks that block UDP but not port 3478.
        sg.add_ingress_rule(anywhere, ec2.Port.tcp(TURN_PORT), "TURN/STUN over TCP from clients")
        # Relayed media: peers (this deployment's BBB servers) and clients send to the relayed addresses; the
        # relay itself drops anything without a permission and any peer that is not one of our BBB servers.
        sg.add_ingress_rule(
            anywhere, ec2.Port.udp_range(turn.relay_ports.min, turn.relay_ports.max),
            "Relayed addresses (the relay enforces TURN permissions and the BBB-only peer list)",
        )
        # TURN over TLS, decrypted by the NLB: only the NLB may speak PROXY protocol to the relay.
        sg.add_ingress_rule(self.load_balancer_security_group, ec2.Port.tcp(PROXY_PORT),
                            "PROXY protocol v2 TCP from the TURN NLB only")
        self.load_balancer_security_group.add_ingress_rule(
            anywhere, ec2.Port.tcp(TLS_PORT), "TURN over TLS (turns:) from clients")
        self.load_balancer_security_group.add_egress_rule(
            sg, ec2.Port.tcp(PROXY_PORT), "Forward to the relays' PROXY protocol port")
        acknowledge(sg, "EC23", "TURN is a public service: clients anywhere reach UDP/TCP 3478 and the relay "
                                "ports; the relay authenticates every request and enforces permissions.")
        acknowledge(self.load_balancer_security_group, "EC23",
                    "turns.<domain> is a public TLS endpoint for clients behind firewalls that only allow 443.")

        # --- Hosts --------------------------------------------------------------------------------------
        self.logs = HostLogs(self, "Logs", deployment=deployment)
        host_role = HostRole(self, "HostRole", deployment=deployment, host_role=HOST_ROLE, host_logs=self.logs)
        self.role = host_role.role
        host_role.allow_secret_read(turn_secret)
        # The secret sync (every minute) reads the staging labels, then the values of the versions in use.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["secretsmanager:DescribeSecret"], resources=[turn_secret.secret_arn])
        )
        self.wheel = RelayWheel(self, "RelayWheel")
        self.wheel.grant_read(self.role)
        self.bootstrap = HostBootstrap(self, "Bootstrap", bundle="turn")
        self.bootstrap.grant_read(self.role)
        self.role.add_to_principal_policy(
            # The peer sync (every 20 s) lists this deployment's BBB servers; EC2 cannot scope Describe* calls.
            iam.PolicyStatement(actions=["ec2:DescribeInstances"], resources=["*"])
        )
        host_role.note_wildcard("ec2:DescribeInstances (the relay's allowed-peers and secret syncs read the BBB "
                                "servers and their TURN secret tags)")
        host_role.acknowledge_wildcards()

        self.user_data = render_turn_user_data(self.user_data_params())
        template = launch_template(
            self, "LaunchTemplate", instance_type=turn.instance_type, role=self.role, security_group=sg,
            user_data=self.user_data, volumes=Volumes(root_gib=turn.root_volume_gib),
        )
        self.group = host_group(
            self, "Group", deployment=deployment, host_role=HOST_ROLE, vpc=vpc, template=template,
            min_capacity=turn.min_instances, desired_capacity=turn.desired_instances,
            max_capacity=turn.max_instances, warmup=Duration.minutes(10),
            health_checks=autoscaling.HealthChecks.with_additional_checks(
                additional_types=[autoscaling.AdditionalHealthCheckType.ELB], grace_period=Duration.minutes(10)),
        )
        # Off by default (a relay boots in a minute); when on, turn/on_boot.sh re-announces the new address.
        self.warm_pool = add_warm_pool(self.group, turn.warm_pool)

        # --- TURN over TLS on 443 -------------------------------------------------------------------------
        self.load_balancer = elbv2.NetworkLoadBalancer(
            self, "LoadBalancer", vpc=vpc, internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[self.load_balancer_security_group],
            # Any node must reach any relay: with one instance, two of three zones have none.
            cross_zone_enabled=True,
        )
        self.load_balancer.log_access_logs(
            access_log_bucket(self, "AccessLogs", deployment=deployment), prefix="turn-nlb"
        )
        self.target_group = elbv2.NetworkTargetGroup(
            self, "ProxyTargets", vpc=vpc, port=PROXY_PORT, protocol=elbv2.Protocol.TCP,
            target_type=elbv2.TargetType.INSTANCE, targets=[self.group],
            proxy_protocol_v2=True,
            deregistration_delay=DEREGISTRATION_DELAY,
            connection_termination=False,
            health_check=elbv2.HealthCheck(
                protocol=elbv2.Protocol.TCP, port=str(PROXY_PORT), interval=Duration.seconds(10),
                healthy_threshold_count=3, unhealthy_threshold_count=3,
            ),
        )
        self.listener = self.load_balancer.add_listener(
            "Tls", port=TLS_PORT, protocol=elbv2.Protocol.TLS,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            ssl_policy=TLS_POLICY,
            default_target_groups=[self.target_group],
        )
        self.turns_record = route53.ARecord(
            self, "TurnsAlias", zone=zone, record_name=deployment.names.turns + ".",
            target=route53.RecordTarget.from_alias(route53_targets.LoadBalancerTarget(self.load_balancer)),
            comment=f"{deployment.prefix}: TURN over TLS (NLB)",
        )

        # --- Scaling ------------------------------------------------------------------------------------
        # Scale-in is safe: the terminating lifecycle hook drains the relay (wired by FleetLifecycle). What a
        # relay uses up (docs/scaling.md): relay ports (one per allocation), packets (CPU), bytes (bandwidth), CPU.
        # Auto Scaling scales out when any policy asks, and in only when all agree.
        self.allocations_policy = self.group.scale_to_track_metric(
            "AllocationsPerInstance",
            metric=self.allocations_metric(),
            target_value=turn.allocations_target,
            estimated_instance_warmup=Duration.minutes(10),
        )
        self.packets_policy = self.group.scale_to_track_metric(
            "PacketsPerInstance",
            metric=self.network_metric("NetworkPacketsOut", PACKETS_PERIOD),
            target_value=turn.relayed_packets_per_second * PACKETS_PERIOD.to_seconds(),
            estimated_instance_warmup=Duration.minutes(10),
        )
        self.bytes_policy = self.group.scale_to_track_metric(
            "BytesPerInstance",
            metric=self.network_metric("NetworkOut", BYTES_PERIOD),
            target_value=turn.relayed_bytes_per_second * BYTES_PERIOD.to_seconds(),
            estimated_instance_warmup=Duration.minutes(10),
        )
        self.cpu_policy = self.group.scale_on_cpu_utilization(
            "Cpu", target_utilization_percent=CPU_TARGET_PERCENT, estimated_instance_warmup=Duration.minutes(10)
        )

        # --- Alarm: no TURN instance passes its probe --------------------------------------------------
        # Each instance's own alarm (created with its health check by the launch handler) pages for one
        # instance; this one pages when the whole fleet is down, where Route 53 fails open and answers
        # unhealthy records anyway.
        self.no_healthy_alarm = cloudwatch.Alarm(
            self, "NoHealthyInstance",
            alarm_description=(
                f"{deployment.prefix}: no TURN instance passes the STUN probe; clients behind NAT cannot join "
                "audio/video. Check first: the relays' state in the TURN group and their journal (application "
                "log group). Guide: docs/troubleshooting.md#turn-alarm"
            ),
            metric=cloudwatch.MathExpression(
                expression="inService - FILL(unhealthy, 0)",
                using_metrics={
                    "inService": cloudwatch.Metric(
                        namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances",
                        dimensions_map={"AutoScalingGroupName": self.group.auto_scaling_group_name},
                        statistic="Minimum", period=Duration.minutes(1),
                    ),
                    "unhealthy": cloudwatch.Metric(
                        namespace=deployment.metric_namespace, metric_name=contract.UNHEALTHY_TURN_METRIC,
                        dimensions_map={"AutoScalingGroupName": self.group.auto_scaling_group_name},
                        statistic="Maximum", period=Duration.minutes(1),
                    ),
                },
                label="Healthy TURN instances", period=Duration.minutes(1),
            ),
            threshold=1, comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=3, datapoints_to_alarm=3,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.no_healthy_alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        self.no_healthy_alarm.add_ok_action(cloudwatch_actions.SnsAction(topic))

    def allocations_metric(self) -> cloudwatch.Metric:
        """The contract metric: live allocations, averaged over the instances reporting (per-instance load)."""
        return cloudwatch.Metric(
            namespace=self.deployment.metric_namespace, metric_name=contract.ALLOCATIONS_METRIC,
            dimensions_map={"AutoScalingGroupName": self.group.auto_scaling_group_name},
            statistic="Average", period=Duration.minutes(1),
        )

    def network_metric(self, name: str, period: Duration) -> cloudwatch.Metric:
        """EC2's own count per instance and period (bytes or packets sent), averaged over the group's instances:
        on a relay nearly every packet sent is a relayed one (each relayed datagram leaves once)."""
        return cloudwatch.Metric(
            namespace="AWS/EC2", metric_name=name,
            dimensions_map={"AutoScalingGroupName": self.group.auto_scaling_group_name},
            statistic="Average", period=period,
        )

    def user_data_params(self) -> TurnParams:
        turn = self.settings
        return TurnParams(
            environment=self.deployment.environment_name,
            domain=self.deployment.names.domain,
            region=Stack.of(self).region,
            bootstrap_bundle=self.bootstrap.s3_object,
            turn_secret_arn=self._turn_secret_arn,
            system_log_group=self.logs.system.log_group_name,
            application_log_group=self.logs.application.log_group_name,
            relay_wheel=S3Object(self.wheel.bucket_name, self.wheel.object_key),
            relay_wheel_filename=self.wheel.filename,
            min_port=turn.relay_ports.min,
            max_port=turn.relay_ports.max,
            total_quota=turn.total_quota,
            user_quota=turn.user_quota,
            max_bps=turn.max_bps,
            drain_timeout_seconds=turn.drain_max_minutes * 60,
        )
