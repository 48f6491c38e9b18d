"""Data (scalable shape): recordings on EFS, Aurora PostgreSQL for Greenlight and Scalelite, and the cache.

The stack composes the data tier (cdk_constructs/data_tier.py) and hands it on as `Data`. Every security
group here starts without an inbound rule: the frontend and fleet stacks grant access where they meet these
resources (`data.database.connections.allow_default_port_from(...)` etc.), so each open port is visible,
with its reason, next to the consumer that needs it.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_backup as backup
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk_constructs import data_tier
from cdk_constructs.backup import BackupRules, DeploymentBackup
from settings import Config
from settings.stage_rules import data_removal_policy
from stacks.interfaces import Data


class DataStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        vpc: ec2.IVpc,
        application_subnets: ec2.SubnetSelection,
        database_subnets: ec2.SubnetSelection,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        deployment = config.deployment
        zones = list(config.network.availability_zones)
        rules = config.backup_rules
        file_system, access_points = data_tier.recordings(
            self, vpc=vpc, subnets=application_subnets, deployment=deployment, backup_plan=rules.enabled
        )
        database = data_tier.aurora(
            self, vpc=vpc, subnets=database_subnets, database=config.database, availability_zones=zones,
            deployment=deployment,
        )
        app_secrets = data_tier.application_databases(self, cluster=database, deployment=deployment)
        cache, cache_auth, cache_connections = data_tier.cache(
            self, vpc=vpc, subnets=database_subnets, settings=config.cache, availability_zones=zones,
            deployment=deployment,
        )
        # Its member nodes, <replication group id>-001...: the CacheClusterId of their CloudWatch metrics.
        self.cache_nodes = [f"{cache.ref}-{n:03d}" for n in range(1, (cache.num_cache_clusters or 1) + 1)]
        # The state of the scalable shape: Aurora (Greenlight, Scalelite) and the recordings (docs/backup-restore.md).
        self.backup = (
            DeploymentBackup(self, "Backup", environment_name=config.environment.name,
                             rules=BackupRules(rules.daily_retention_days, rules.monthly_retention_days),
                             removal_policy=data_removal_policy(deployment))
            if rules.enabled else None
        )
        if self.backup is not None:
            self.backup.select("Database", [backup.BackupResource.from_rds_database_cluster(database)])
            self.backup.select("Recordings", [backup.BackupResource.from_efs_file_system(file_system)])
        self.data = Data(
            database=database,
            greenlight_db=app_secrets["greenlight"],
            scalelite_db=app_secrets["scalelite"],
            cache_host=cache.attr_primary_end_point_address,
            cache_port=cache.attr_primary_end_point_port,
            cache_auth=cache_auth,
            cache_connections=cache_connections,
            file_system=file_system,
            access_points=access_points,
        )
