"""Monitoring: the deployment's dashboard and the operator alarms (cdk_constructs/monitoring).

The last stack: it reads the other stacks' resources (by name, through weak cross-stack references) and
nothing reads it, so it can be changed, or removed, without touching a running service.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from cdk_constructs.lifecycle import FleetLifecycle
from cdk_constructs.monitoring import DataTier, Fleet, Frontend, OperationsDashboard, OperatorAlarms, TurnEdge, Watched
from settings import Config
from stacks.data import DataStack
from stacks.fleets import FleetsStack
from stacks.frontend import FrontendStack
from stacks.interfaces import Shared


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        shared: Shared,
        fleets: FleetsStack,
        ses_region: str,
        frontend: FrontendStack | None = None,
        data: DataStack | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if (frontend is None) != (data is None):
            raise ValueError(
                "MonitoringStack: the scalable shape passes both `frontend` and `data`, the single shape neither"
            )
        turn = fleets.turn
        watched = Watched(
            namespace=config.metric_namespace,
            turn=_fleet("TURN", turn.group, fleets.turn_lifecycle, config.turn.allocations_target, "Allocations"),
            turn_edge=TurnEdge(
                load_balancer=turn.load_balancer.load_balancer_full_name,
                target_group=turn.target_group.target_group_full_name,
            ),
            bbb=_fleet(
                "BBB", fleets.bbb.group, fleets.bbb_lifecycle, config.bbb.load_target, "Load"
            ),
            certificate_arn=shared.certificate.certificate_arn,
            ses_region=ses_region,
            frontend=None if frontend is None else _frontend(frontend),
            data=None
            if data is None
            else DataTier(
                database_cluster=data.data.database.cluster_identifier,
                serverless=config.database.capacity == "serverless",
                cache_nodes=data.cache_nodes,
                file_system=data.data.file_system.file_system_id,
            ),
            existing_alarms=[c for c in fleets.node.find_all() if isinstance(c, cloudwatch.Alarm)],
        )
        self.alarms = OperatorAlarms(self, "Alarms", watched=watched, thresholds=config.monitoring, topic=shared.topic)
        self.dashboard = OperationsDashboard(
            self,
            "Operations",
            watched=watched,
            # Dashboard names are account-wide (their ARNs carry no region): the region keeps two deployments of
            # one environment name in two regions apart.
            dashboard_name=f"bbb-on-aws-{config.prefix}-{config.environment.region}",
            alarms=[*self.alarms.alarms, *watched.existing_alarms],
        )


def _fleet(
    title: str, group: autoscaling.AutoScalingGroup, lifecycle: FleetLifecycle, target: float, load_metric: str
) -> Fleet:
    cfn = group.node.default_child
    assert isinstance(cfn, autoscaling.CfnAutoScalingGroup)
    return Fleet(
        title=title,
        group_name=group.auto_scaling_group_name,
        max_instances=int(cfn.max_size),
        per_server_target=target,
        load_metric=load_metric,
        launch=lifecycle.launch_state_machine,
        drain=lifecycle.drain_state_machine,
    )


def _frontend(stack: FrontendStack) -> Frontend:
    web = {"Greenlight": stack.greenlight.web, "Scalelite": stack.scalelite.web}
    services = {title: service.service.service_name for title, service in web.items()}
    services.update({"Poller": stack.scalelite.poller.service_name, "Importer": stack.scalelite.importer.service_name})
    return Frontend(
        load_balancer=stack.lb.alb.load_balancer_full_name,
        target_groups={title: service.target_group.target_group_full_name for title, service in web.items()},
        cluster_name=stack.cluster.cluster.cluster_name,
        services=services,
        importer="Importer",
    )
