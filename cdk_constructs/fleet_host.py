"""What every host of a fleet (BBB, TURN, cluster proxy) shares: image, bootstrap bundle, logs, role, launch
template, group.

The contract these follow is docs/host-contract.md: instances are tagged by their Auto Scaling group
(`bbb-on-aws:environment`, `bbb-on-aws:role`, propagated at launch), read their secrets by ARN, publish
metrics into `BBBOnAWS/<environment>` and may write their own tags (`bbb-on-aws:ready`; BBB also
`bbb-on-aws:turn-secret`) on themselves only.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.group_size import keep_running_size
from cdk_constructs.nag import acknowledge, resource_finding
from contract import TAG_ENVIRONMENT as ENVIRONMENT_TAG
from contract import TAG_READY as READY_TAG
from contract import TAG_ROLE as ROLE_TAG
from settings import Deployment
from settings.stage_rules import log_removal_policy, log_retention
from userdata.render import Role as BundleRole
from userdata.render import S3Object, write_bundle

# Canonical's public SSM parameter, resolved by CloudFormation at deploy time (no lookup, no pinned AMI id).
UBUNTU_2204_AMI_PARAMETER = "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id"
ROOT_DEVICE = "/dev/sda1"  # Ubuntu's root device name
DATA_DEVICE = "/dev/sdf"  # userdata/bbb/lib.sh looks for exactly this mapping


def ubuntu_2204() -> ec2.IMachineImage:
    return ec2.MachineImage.from_ssm_parameter(UBUNTU_2204_AMI_PARAMETER, os=ec2.OperatingSystemType.LINUX)


_bundle_dir: Path | None = None


def _bundle_directory() -> Path:
    """One private directory per process for the bootstrap bundles (they are named by their own hash)."""
    global _bundle_dir
    if _bundle_dir is None:
        _bundle_dir = Path(tempfile.mkdtemp(prefix="bbb-on-aws-bundles-"))
        atexit.register(shutil.rmtree, _bundle_dir, ignore_errors=True)  # synth copies bundles into cdk.out
    return _bundle_dir


class HostBootstrap(Construct):
    """The bootstrap bundle of `userdata/` for one host role, as an S3 asset."""

    def __init__(self, scope: Construct, construct_id: str, *, bundle: BundleRole) -> None:
        super().__init__(scope, construct_id)
        self.asset = s3_assets.Asset(self, "Bundle", path=str(write_bundle(bundle, _bundle_directory())))

    @property
    def s3_object(self) -> S3Object:
        return S3Object(self.asset.s3_bucket_name, self.asset.s3_object_key)

    def grant_read(self, grantee: iam.IGrantable) -> None:
        # Exactly this object; Asset.grant_read would open the whole bootstrap bucket.
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[self.asset.bucket.arn_for_objects(self.asset.s3_object_key)]
            )
        )


class HostLogs(Construct):
    """The two log groups a fleet's CloudWatch agent ships to (it creates streams, never groups)."""

    def __init__(self, scope: Construct, construct_id: str, *, deployment: Deployment) -> None:
        super().__init__(scope, construct_id)
        props = {"retention": log_retention(deployment), "removal_policy": log_removal_policy(deployment)}
        self.system = logs.LogGroup(self, "System", **props)
        self.application = logs.LogGroup(self, "Application", **props)

    def grant_write(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.system.log_group_arn, self.application.log_group_arn],
            )
        )


class HostRole(Construct):
    """The instance role with what every host needs; fleets add their own grants through `role`."""

    def __init__(self, scope: Construct, construct_id: str, *, deployment: Deployment, host_role: str,
                 host_logs: HostLogs, own_tags: tuple[str, ...] = (READY_TAG,)) -> None:
        """`own_tags`: the tag keys the host may write on itself (docs/host-contract.md)."""
        super().__init__(scope, construct_id)
        self._own_tags = own_tags
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"{deployment.prefix} {host_role} hosts (docs/host-contract.md)",
        )
        host_logs.grant_write(self.role)
        self._own_instance_arn = Stack.of(self).format_arn(service="ec2", resource="instance", resource_name="*")
        statements = [
            # Metrics of the host and its CloudWatch agent, only into this deployment's namespace.
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"], resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": deployment.metric_namespace}},
            ),
            # The tags a host writes, on itself only (the ready tag; BBB: the TURN secret version it issues with).
            iam.PolicyStatement(
                actions=["ec2:CreateTags"],
                resources=[self._own_instance_arn],
                conditions={
                    "StringEquals": {
                        "aws:ARN": "${ec2:SourceInstanceARN}",
                        f"ec2:ResourceTag/{ENVIRONMENT_TAG}": deployment.environment_name,
                    },
                    "ForAllValues:StringEquals": {"aws:TagKeys": list(own_tags)},
                },
            ),
            # The CloudWatch agent's AutoScalingGroupName dimension (ec2tagger) and the bootstrap's fallback
            # when instance-metadata tags are unavailable. Read-only; EC2 offers no resource scoping for it.
            iam.PolicyStatement(actions=["ec2:DescribeTags"], resources=["*"]),
            # SSM Run Command (the lifecycle drain) and Session Manager (operators, no SSH port), the minimal
            # agent permissions instead of AmazonSSMManagedInstanceCore, which also reads every SSM parameter.
            iam.PolicyStatement(
                actions=[
                    "ssm:UpdateInstanceInformation",
                    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
                    "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
                    "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
                ],
                resources=["*"],
            ),
        ]
        for statement in statements:
            self.role.add_to_principal_policy(statement)
        self._wildcards = ["PutMetricData (pinned by its cloudwatch:namespace condition)",
                           "ec2:DescribeTags", "the SSM agent's message channels"]

    def allow_secret_read(self, *secrets: secretsmanager.ISecret) -> None:
        """GetSecretValue on exactly these secrets (and their key, through Secrets Manager only)."""
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[s.secret_arn for s in secrets])
        )
        keys = [s.encryption_key.key_arn for s in secrets if s.encryption_key is not None]
        if keys:  # customer-managed keys: usable only by Secrets Manager on the host's behalf
            via = f"secretsmanager.{Stack.of(self).region}.amazonaws.com"
            self.role.add_to_principal_policy(iam.PolicyStatement(
                actions=["kms:Decrypt"], resources=keys, conditions={"StringEquals": {"kms:ViaService": via}},
            ))

    def note_wildcard(self, what: str) -> None:
        self._wildcards.append(what)

    def acknowledge_wildcards(self) -> None:
        """One IAM5[Resource::*] acknowledgment listing every action that needs `*` (call after all grants)."""
        acknowledge(
            self.role, "IAM5[Resource::*]",
            "Actions without resource-level permissions in IAM: " + "; ".join(self._wildcards) + ".",
        )
        acknowledge(
            self.role, resource_finding(self, "IAM5", self._own_instance_arn),
            "ec2:CreateTags is limited by conditions to the calling instance itself (aws:ARN equals "
            f"ec2:SourceInstanceARN), this deployment's instances and the keys {', '.join(self._own_tags)}.",
        )


@dataclass(frozen=True)
class Volumes:
    root_gib: int
    data_gib: int | None = None  # BBB only: /var/bigbluebutton


def launch_template(
    scope: Construct, construct_id: str, *, instance_type: str, role: iam.IRole,
    security_group: ec2.ISecurityGroup, user_data: str, volumes: Volumes, public_ip: bool = True,
) -> ec2.LaunchTemplate:
    """Ubuntu 22.04, IMDSv2 only with hop limit 1 (containers on the host cannot reach IMDS), instance tags
    in IMDS (the bootstrap reads its Auto Scaling group there), encrypted gp3 volumes and, for hosts that
    serve the internet directly (BBB, TURN), a public IPv4."""
    devices = [ec2.BlockDevice(device_name=ROOT_DEVICE, volume=_gp3(volumes.root_gib))]
    if volumes.data_gib is not None:
        devices.append(ec2.BlockDevice(device_name=DATA_DEVICE, volume=_gp3(volumes.data_gib)))
    return ec2.LaunchTemplate(
        scope, construct_id,
        machine_image=ubuntu_2204(),
        instance_type=ec2.InstanceType(instance_type),
        role=role,
        security_group=security_group,
        user_data=ec2.UserData.custom(user_data),
        block_devices=devices,
        associate_public_ip_address=public_ip,
        http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
        http_put_response_hop_limit=1,
        http_endpoint=True,
        instance_metadata_tags=True,
        detailed_monitoring=True,
        instance_initiated_shutdown_behavior=ec2.InstanceInitiatedShutdownBehavior.TERMINATE,
    )


def _gp3(size_gib: int) -> ec2.BlockDeviceVolume:
    return ec2.BlockDeviceVolume.ebs(
        size_gib, encrypted=True, delete_on_termination=True, volume_type=ec2.EbsDeviceVolumeType.GP3
    )


def host_group(
    scope: Construct, construct_id: str, *, deployment: Deployment, host_role: str, vpc: ec2.IVpc,
    template: ec2.LaunchTemplate, min_capacity: int, desired_capacity: int, max_capacity: int,
    warmup: Duration, health_checks: autoscaling.HealthChecks | None = None,
    subnets: ec2.SubnetSelection | None = None,
) -> autoscaling.AutoScalingGroup:
    """The Auto Scaling group (public subnets unless told otherwise), tagged per the contract (tags propagated
    at launch).

    The configured sizes apply when the group is created and whenever the operator changes them in
    cdk.json; any other deploy leaves the running size alone (IgnoreUnmodifiedGroupSizeProperties), so a
    deploy never shrinks a fleet that scaled out for a busy morning.
    """
    group = autoscaling.AutoScalingGroup(
        scope, construct_id,
        vpc=vpc,
        vpc_subnets=subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        launch_template=template,
        min_capacity=min_capacity,
        desired_capacity=desired_capacity,
        max_capacity=max_capacity,
        default_instance_warmup=warmup,
        health_checks=health_checks or autoscaling.HealthChecks.ec2(grace_period=Duration.minutes(10)),
        group_metrics=[autoscaling.GroupMetrics(
            autoscaling.GroupMetric.IN_SERVICE_INSTANCES, autoscaling.GroupMetric.DESIRED_CAPACITY,
            autoscaling.GroupMetric.PENDING_INSTANCES, autoscaling.GroupMetric.TERMINATING_INSTANCES,
        )],
    )
    keep_running_size(group, why="IgnoreUnmodifiedGroupSizeProperties keeps deploys from resetting the running size")
    acknowledge(group, "AS3", "Auto Scaling notifications cannot reach the operator topic (SSE-KMS with a key the "
                              "Auto Scaling service-linked role has no grant on); the lifecycle automation alarms "
                              "on abandoned launches, failed drains and failed executions instead.")
    Tags.of(group).add(ENVIRONMENT_TAG, deployment.environment_name, apply_to_launched_instances=True)
    Tags.of(group).add(ROLE_TAG, host_role, apply_to_launched_instances=True)
    return group
