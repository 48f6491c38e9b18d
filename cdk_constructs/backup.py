"""DeploymentBackup: an AWS Backup vault encrypted with its own customer-managed KMS key, and one plan with
a daily and a monthly rule, selecting what holds this deployment's state.

- scalable shape (data stack): the Aurora cluster and the recordings file system, by ARN.
- single shape (fleets stack): the single host's data volume, by its tag `bbb-on-aws:data-volume=<env>`
  (the volume is created, moved and restored at runtime: lambdas/single_data; no template ARN exists).

The restore procedure of each is docs/backup-restore.md; tests/infra/test_backup.py checks the names it
uses against the templates. Aurora keeps its own automated backups as well (point-in-time restore inside
their shorter retention); this plan adds the long retention.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_backup as backup
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

import contract
from cdk_constructs.nag import acknowledge

DATA_VOLUME_TAG = contract.TAG_DATA_VOLUME
DAILY_HOUR_UTC = 3  # after the evening's meetings, before the morning's
MONTHLY_DAY = 1


@dataclass(frozen=True)
class BackupRules:
    """Retention per rule in days; `monthly_retention_days` 0 = no monthly rule."""

    daily_retention_days: int
    monthly_retention_days: int = 0

    def check(self) -> list[str]:
        """Problems, each naming the setting (the caller prefixes the cdk.json key)."""
        problems = []
        if not 1 <= self.daily_retention_days <= 36500:
            problems.append(f"dailyRetentionDays {self.daily_retention_days} must be 1 to 36500")
        if self.monthly_retention_days and not 28 <= self.monthly_retention_days <= 36500:
            problems.append(
                f"monthlyRetentionDays {self.monthly_retention_days} must be 0 (no monthly rule) or 28 to 36500"
            )
        return problems


def vault_name(environment: str) -> str:
    return f"{environment}-backup"


def plan_name(environment: str) -> str:
    return f"{environment}-backup"


class DeploymentBackup(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        rules: BackupRules,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        problems = rules.check()
        if problems:
            raise ValueError(f"DeploymentBackup {construct_id}: " + "; ".join(problems))
        self.environment_name = environment_name
        self.key = kms.Key(
            self,
            "Key",
            description=f"bbb-on-aws {environment_name}: AWS Backup vault",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.vault = backup.BackupVault(
            self,
            "Vault",
            backup_vault_name=vault_name(environment_name),
            encryption_key=self.key,
            removal_policy=removal_policy,
        )
        plan_rules = [
            backup.BackupPlanRule(
                rule_name="Daily",
                backup_vault=self.vault,
                schedule_expression=events.Schedule.cron(minute="0", hour=str(DAILY_HOUR_UTC)),
                start_window=Duration.hours(1),
                completion_window=Duration.hours(8),
                delete_after=Duration.days(rules.daily_retention_days),
            )
        ]
        if rules.monthly_retention_days:
            plan_rules.append(
                backup.BackupPlanRule(
                    rule_name="Monthly",
                    backup_vault=self.vault,
                    schedule_expression=events.Schedule.cron(
                        minute="0", hour=str(DAILY_HOUR_UTC), day=str(MONTHLY_DAY)
                    ),
                    start_window=Duration.hours(1),
                    completion_window=Duration.hours(8),
                    delete_after=Duration.days(rules.monthly_retention_days),
                )
            )
        self.plan = backup.BackupPlan(
            self, "Plan", backup_plan_name=plan_name(environment_name), backup_plan_rules=plan_rules
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("backup.amazonaws.com"),
            description=f"bbb-on-aws {environment_name}: AWS Backup takes and restores the selected resources",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSBackupServiceRolePolicyForBackup"),
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSBackupServiceRolePolicyForRestores"),
            ],
        )
        acknowledge(
            self.role,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]",
            "AWS Backup's documented service role policy; the selections below limit what it is used on",
        )
        acknowledge(
            self.role,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores]",
            "AWS Backup's documented restore policy, so that the restore procedure needs no extra role",
        )

    def select(self, construct_id: str, resources: list[backup.BackupResource]) -> backup.BackupSelection:
        return self.plan.add_selection(
            construct_id,
            resources=resources,
            role=self.role,
            backup_selection_name=f"{self.environment_name}-{construct_id.lower()}",
        )

    def select_data_volume(self) -> backup.BackupSelection:
        """The single host's data volume, wherever it lives now (by its tag)."""
        return self.select("DataVolume", [backup.BackupResource.from_tag(DATA_VOLUME_TAG, self.environment_name)])
