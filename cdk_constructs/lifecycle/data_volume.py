"""The single host's data volume step (lambdas/single_data): a function of the launch state machine that
attaches, moves or restores the volume holding Greenlight's database and the recordings.

The volume is created and owned at runtime (tag `bbb-on-aws:data-volume=<environment>`), not by
CloudFormation: a move to another AZ replaces it with a copy, which a template resource could not follow.
Deleting the stack therefore keeps the data; AWS Backup selects the volume by that tag (backup.py).
Every EC2 permission below is pinned to this environment's tags.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

import contract
from cdk_constructs.lambda_function import code, python_function
from cdk_constructs.lifecycle import permissions
from cdk_constructs.lifecycle.functions import FunctionKit
from cdk_constructs.nag import acknowledge, resource_finding

TAG_DATA = contract.TAG_DATA_VOLUME
TAG_RETIRED = contract.TAG_DATA_VOLUME_RETIRED
TAG_ENVIRONMENT = contract.TAG_ENVIRONMENT
# A data volume still held by an instance in another AZ for this long counts as lost with its AZ.
DATA_WAIT_SECONDS = 900


def _ec2(resource: str) -> str:
    return f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:{resource}"


def statements(environment: str, group_name: str) -> list[iam.PolicyStatement]:
    own = {f"aws:ResourceTag/{TAG_DATA}": environment}
    snapshot_any_owner = f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}::snapshot/*"
    return [
        iam.PolicyStatement(
            sid="DescribeVolumesSnapshotsInstances",
            actions=["ec2:DescribeVolumes", "ec2:DescribeSnapshots", "ec2:DescribeInstances"],
            resources=["*"],
        ),
        # Each resource of a request needs its own grant: the new volume or snapshot must carry the data tag
        # from birth; the source snapshot must be this environment's, the source volume its data volume.
        iam.PolicyStatement(
            sid="NewVolumeTagged",
            actions=["ec2:CreateVolume"],
            resources=[_ec2("volume/*")],
            conditions={"StringEquals": {f"aws:RequestTag/{TAG_DATA}": environment}},
        ),
        iam.PolicyStatement(
            sid="FromOwnSnapshot",
            actions=["ec2:CreateVolume"],
            resources=[snapshot_any_owner],
            conditions={"StringEquals": {f"aws:ResourceTag/{TAG_ENVIRONMENT}": environment}},
        ),
        iam.PolicyStatement(
            sid="SnapshotOfDataVolume",
            actions=["ec2:CreateSnapshot"],
            resources=[_ec2("volume/*")],
            conditions={"StringEquals": own},
        ),
        iam.PolicyStatement(
            sid="NewSnapshotTagged",
            actions=["ec2:CreateSnapshot"],
            resources=[snapshot_any_owner],
            conditions={"StringEquals": {f"aws:RequestTag/{TAG_DATA}": environment}},
        ),
        iam.PolicyStatement(
            sid="TagOnCreate",
            actions=["ec2:CreateTags"],
            resources=[_ec2("volume/*"), snapshot_any_owner],
            conditions={"StringEquals": {"ec2:CreateAction": ["CreateVolume", "CreateSnapshot"]}},
        ),
        iam.PolicyStatement(
            sid="RetireOwnDataVolume",
            actions=["ec2:CreateTags", "ec2:DeleteTags"],
            resources=[_ec2("volume/*")],
            conditions={
                "StringEquals": {f"aws:ResourceTag/{TAG_ENVIRONMENT}": environment},
                "ForAllValues:StringEquals": {"aws:TagKeys": [TAG_DATA, TAG_RETIRED]},
            },
        ),
        iam.PolicyStatement(
            sid="AttachOwnDataVolume",
            actions=["ec2:AttachVolume"],
            resources=[_ec2("volume/*")],
            conditions={"StringEquals": own},
        ),
        iam.PolicyStatement(
            sid="ToOwnSingleHost",
            actions=["ec2:AttachVolume"],
            resources=[_ec2("instance/*")],
            conditions={
                "StringEquals": {
                    f"aws:ResourceTag/{TAG_ENVIRONMENT}": environment,
                    f"aws:ResourceTag/{contract.TAG_ROLE}": "single",
                }
            },
        ),
        iam.PolicyStatement(  # only originals a completed move copied
            sid="DeleteMovedOriginals",
            actions=["ec2:DeleteVolume"],
            resources=[_ec2("volume/*")],
            conditions={
                "StringEquals": {
                    f"aws:ResourceTag/{TAG_RETIRED}": "moved",
                    f"aws:ResourceTag/{TAG_ENVIRONMENT}": environment,
                }
            },
        ),
        iam.PolicyStatement(
            sid="SuspendAzRebalance",
            actions=["autoscaling:SuspendProcesses"],
            resources=permissions.lifecycle_actions(group_name).resources,
        ),
        permissions.lifecycle_actions(group_name),
    ]


def data_volume_function(
    scope: Construct, *, kit: FunctionKit, group_name: str, environment: str, size_gib: int
) -> lambda_.Function:
    if not 1 <= size_gib <= 16384:
        raise ValueError(f"data volume size {size_gib} GiB must be 1 to 16384 (gp3)")
    function = python_function(
        scope,
        "DataVolumeFunction",
        handler="single_data.index.handler",
        service="lifecycle-data-volume",
        description=f"{environment} single host: attach, move or restore its data volume",
        role_description="single host data volume (bbb-on-aws lifecycle)",
        timeout=Duration.minutes(2),
        log_retention=kit.log_retention,
        code_asset=code(["single_data"]),
        environment={
            **kit.base_environment,
            "POWERTOOLS_METRICS_NAMESPACE": kit.base_environment["METRICS_NAMESPACE"],
            "DATA_VOLUME_GIB": str(size_gib),
            "DATA_WAIT_SECONDS": str(DATA_WAIT_SECONDS),
        },
    )
    for statement in statements(environment, group_name):
        function.add_to_role_policy(statement)
    kit.alarm(
        scope,
        "DataVolumeFunctionErrors",
        function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
        f"{environment} single host data volume: the function failed (see its log group)",
    )
    for resource in ("volume/*", "instance/*"):
        acknowledge(
            scope,
            f"IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:{resource}]",
            "volume and instance ids are created at runtime; every statement is pinned by this "
            "environment's tags (data volume, environment, role single)",
        )
    acknowledge(
        scope,
        resource_finding(scope, "IAM5", f"{function.function_arn}:*"),
        "Step Functions' LambdaInvoke grant covers the data volume function's versions; only this function",
    )
    acknowledge(
        scope,
        "IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*]",
        "snapshots (AWS Backup's or a move's) are created at runtime; creation needs the data tag, use needs "
        "this environment's tag",
    )
    acknowledge(function, "L1", "Python 3.13 on purpose: AWS's Powertools layer is built for python313")
    return function
