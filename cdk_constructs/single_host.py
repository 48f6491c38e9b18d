"""The `single` shape's one BigBlueButton host, with Greenlight installed by bbb-install (`-g`).

An Auto Scaling group of exactly one instance, for self-healing: EC2 replaces a failed host and the
launch handler points `<domain>` at the new one. No Scalelite, so no recordings spool and no scaling.
Greenlight's database and the recordings live on a data volume that outlives the instance: the launch
automation attaches it (or moves or restores it across AZs), userdata/bbb/data.sh mounts it.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.bbb_fleet import BbbHosts
from settings import Bbb, Deployment

HOST_ROLE = "single"


class SingleHost(BbbHosts):
    def __init__(
        self, scope: Construct, construct_id: str, *, bbb: Bbb, deployment: Deployment, operator_email: str,
        vpc: ec2.IVpc, turn_secret: secretsmanager.ISecret, bbb_secret: secretsmanager.ISecret,
    ) -> None:
        super().__init__(
            scope, construct_id, bbb=bbb, deployment=deployment, operator_email=operator_email, vpc=vpc,
            host_role=HOST_ROLE, turn_secret=turn_secret, bbb_secret=bbb_secret, spool=None,
            min_capacity=1, desired_capacity=1, max_capacity=1,
        )
