"""Fleets: the TURN relays, the BigBlueButton servers (scalable) or the single BBB+Greenlight host (single),
their lifecycle automation and, optionally, the cluster proxy.

Inputs come from the network stack (VPC), the shared stack (zone, certificate, operator topic, secrets) and,
in the scalable shape, the data stack (the recordings spool on EFS). Every permission on those is granted
here, where the fleets meet them.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

import contract
from cdk_constructs.backup import BackupRules, DeploymentBackup
from cdk_constructs.bbb_fleet import BbbFleet, BbbHosts, Spool
from cdk_constructs.certificates import FleetCertificate
from cdk_constructs.cluster_proxy import ClusterProxy
from cdk_constructs.lifecycle import FleetLifecycle, LifecycleTimings
from cdk_constructs.lifecycle.rollout import FleetRollout, RolloutSettings
from cdk_constructs.single_host import SingleHost
from cdk_constructs.turn_fleet import TurnFleet
from settings import CONTEXT_KEY, Config, ConfigError
from settings.stage_rules import data_removal_policy, log_retention
from stacks.interfaces import Data, Shared

# bbb-install (20-40 min) after a data volume move or restore (snapshot and copy, up to ~1 h for a large
# first snapshot); the hook is heartbeated meanwhile.
SINGLE_LAUNCH_MAX = Duration.hours(2)


class FleetsStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: Config, vpc: ec2.IVpc, shared: Shared,
        data: Data | None = None, **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.shared = shared
        scalable = config.environment.type == "scalable"
        if scalable and data is None:
            raise ValueError("FleetsStack: the scalable shape needs `data` (the recordings spool on EFS)")
        if not scalable and data is not None:
            raise ValueError("FleetsStack: the single shape has no data stack; pass data=None")
        secrets = shared.secrets
        turn_timings, bbb_timings = _checked_timings(config)

        self.turn = TurnFleet(
            self, "Turn", turn=config.turn, deployment=config.deployment, vpc=vpc, zone=shared.zone,
            certificate=shared.certificate, turn_secret=secrets.turn, topic=shared.topic,
        )
        self.turn_lifecycle = self._lifecycle(
            "TurnLifecycle", self.turn.group, role="turn", timings=turn_timings,
        )
        self.rollouts = [self._rollout("TurnRollout", self.turn_lifecycle, self.turn.group,
                                       RolloutSettings(config.turn.rollout.min_healthy_percent,
                                                       config.turn.rollout.batch_percent))]

        self.bbb: BbbHosts
        self.backup: DeploymentBackup | None = None  # the single host's data volume (scalable: the data stack)
        if scalable:
            assert data is not None
            certificates = config.bbb.certificates
            self.fleet_certificate = FleetCertificate(
                self, "FleetCertificate", hosted_zone=shared.zone, subdomain=config.names.bbb_fleet,
                acme_directory=certificates.acme_directory, acme_email=config.operator_email,
                renew_days=certificates.renew_days, alarm_days=certificates.alarm_days, operator_topic=shared.topic,
                metric_namespace=config.metric_namespace, log_retention=log_retention(config),
                removal_policy=data_removal_policy(config),
            )
            fleet = BbbFleet(
                self, "Bbb", bbb=config.bbb, deployment=config.deployment, operator_email=config.operator_email,
                vpc=vpc, turn_secret=secrets.turn, bbb_secret=secrets.bbb_api,
                spool=Spool(file_system=data.file_system, access_point=data.access_points["spool"]),
                cluster_proxy=config.cluster_proxy.enabled,
                certificate_secret=self.fleet_certificate.certificate_secret,
            )
            # No server boots before the first certificate exists (the deploy-time issuance).
            fleet.group.node.add_dependency(self.fleet_certificate.first_issuance)
            self.bbb_lifecycle = self._lifecycle("BbbLifecycle", fleet.group, role="bbb", timings=bbb_timings)
            # Scale-in only because the drain above is wired to this very group's terminating hook.
            fleet.scale_on_load(drained_by=self.bbb_lifecycle.terminate_hook)
            self.rollouts.append(self._rollout("BbbRollout", self.bbb_lifecycle, fleet.group, RolloutSettings(
                config.bbb.rollout.min_healthy_percent, config.bbb.rollout.batch_percent)))
            self.bbb = fleet
            self.cluster_proxy = (
                ClusterProxy(self, "ClusterProxy", settings=config.cluster_proxy, deployment=config.deployment,
                             vpc=vpc, zone=shared.zone, certificate=shared.certificate)
                if config.cluster_proxy.enabled else None
            )
        else:
            self.cluster_proxy = None
            self.bbb = SingleHost(
                self, "Single", bbb=config.bbb, deployment=config.deployment, operator_email=config.operator_email,
                vpc=vpc, turn_secret=secrets.turn, bbb_secret=secrets.bbb_api,
            )
            self.bbb_lifecycle = self._lifecycle("SingleLifecycle", self.bbb.group, role="single",
                                                 timings=bbb_timings)
            # One data volume serves one instance: the old host drains before its replacement launches.
            self.rollouts.append(self._rollout("SingleRollout", self.bbb_lifecycle, self.bbb.group,
                                               RolloutSettings(min_healthy_percent=0, batch_percent=100)))
            rules = config.backup_rules
            self.backup = (
                DeploymentBackup(self, "Backup", environment_name=config.environment.name,
                                 rules=BackupRules(rules.daily_retention_days, rules.monthly_retention_days),
                                 removal_policy=data_removal_policy(config))
                if rules.enabled else None
            )
            if self.backup is not None:
                self.backup.select_data_volume()

    def _lifecycle(self, construct_id: str, group: autoscaling.AutoScalingGroup, *, role: str,
                   timings: LifecycleTimings) -> FleetLifecycle:
        """The one place the fleets meet cdk_constructs/lifecycle (hooks, DNS, Scalelite, drain, prober)."""
        config, shared = self.config, self.shared
        bbb_role = role in ("bbb", "single")
        return FleetLifecycle(
            self, construct_id,
            auto_scaling_group=group,
            role=role,
            hosted_zone=shared.zone,
            # The fleet's servers are named under fleet.<domain> (their certificate's wildcard); the single
            # host is <domain> and TURN servers stay under <domain>.
            domain_name=config.names.bbb_fleet if role == "bbb" else config.names.domain,
            environment_name=config.environment.name,
            operator_topic=shared.topic,
            bbb_secret=shared.secrets.bbb_api if bbb_role else None,
            scalelite_secret=shared.secrets.scalelite_loadbalancer if role == "bbb" else None,
            scalelite_api_url=f"https://{config.names.scalelite}/scalelite/api" if role == "bbb" else None,
            timings=timings,
            turn_port=contract.TURN_PORT,
            log_retention=log_retention(config),
            data_volume_gib=config.bbb.data_volume_gib if role == "single" else None,
        )

    def _rollout(self, construct_id: str, lifecycle: FleetLifecycle, group: autoscaling.AutoScalingGroup,
                 settings: RolloutSettings) -> FleetRollout:
        """A deploy that changes the group's launch template rolls it, batch by batch, through its drain."""
        return FleetRollout(self, construct_id, lifecycle=lifecycle, auto_scaling_group=group, settings=settings)


def _checked_timings(config: Config) -> tuple[LifecycleTimings, LifecycleTimings]:
    """The lifecycle timings from cdk.json, checked against Auto Scaling's hook limits before anything is built,
    and the settings only the scalable shape can honour; problems name the cdk.json key."""
    problems = []
    bbb_role = "bbb" if config.environment.type == "scalable" else "single"
    wanted = {
        "turn.drainMaxMinutes": ("turn", Duration.minutes(config.turn.drain_max_minutes)),
        "bbb.drainMaxHours": (bbb_role, Duration.minutes(round(config.bbb.drain_max_hours * 60))),
    }
    timings = {}
    for key, (role, drain_max) in wanted.items():
        # The single host may first wait for its data volume to be moved or restored (lifecycle/data_volume.py).
        launch_max = SINGLE_LAUNCH_MAX if role == "single" else None
        timings[key] = LifecycleTimings(drain_max=drain_max, launch_max=launch_max)
        try:
            timings[key].resolve(role)
        except ValueError as error:
            problems.append(f"{CONTEXT_KEY}.{key}: {error}")
    if problems:
        raise ConfigError(problems)
    return timings["turn.drainMaxMinutes"], timings["bbb.drainMaxHours"]
