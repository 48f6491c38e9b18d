"""The metrics the dashboard and the alarms read, one builder per source.

Host and Lambda metrics use the names of docs/host-contract.md ("Metrics"); AWS metrics the names and
dimensions of each service's CloudWatch documentation. tests/infra/test_monitoring.py checks every metric of
the dashboard against both.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_stepfunctions as sfn

from cdk_constructs.monitoring.watched import DataTier, Fleet, Frontend, TurnEdge

MINUTE = Duration.minutes(1)  # the hosts publish every 60 s
FIVE_MINUTES = Duration.minutes(5)  # AWS services' alarms and graphs
HOUR = Duration.hours(1)
GROUP = "AutoScalingGroupName"


def host(
    namespace: str,
    name: str,
    group: str,
    *,
    statistic: str = "Sum",
    label: str | None = None,
    period: Duration = MINUTE,
) -> cloudwatch.Metric:
    """A figure the hosts publish per group (docs/host-contract.md)."""
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map={GROUP: group},
        statistic=statistic,
        period=period,
        label=label,
    )


def per_server(namespace: str, name: str, group: str, *, label: str) -> cloudwatch.MathExpression:
    """One line per server of the group (the hosts' {group, InstanceId} series), found by SEARCH: instances come
    and go, the dashboard follows them without a deploy."""
    query = f'{{{namespace},{GROUP},InstanceId}} MetricName="{name}" {GROUP}="{group}"'
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{query}', 'Maximum', 60)", using_metrics={}, label=label, period=MINUTE
    )


def disk(namespace: str, group: str, path: str, *, label: str | None = None) -> cloudwatch.Metric:
    """The CloudWatch agent's disk use of one mount point; the fleet's fullest (its hosts share the series:
    the agent's only instance dimension is the group). Every disk of the hosts is ext4."""
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name="disk_used_percent",
        dimensions_map={GROUP: group, "path": path, "fstype": "ext4"},
        statistic="Maximum",
        period=FIVE_MINUTES,
        label=label or f"disk % {path} (fullest)",
    )


def lifecycle(namespace: str, name: str, service: str, group: str) -> cloudwatch.Metric:
    """Outcomes the lifecycle Lambdas count (Powertools: dimensions service and the group)."""
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map={"service": service, GROUP: group},
        statistic="Sum",
        period=FIVE_MINUTES,
        label=name,
    )


def auto_scaling(fleet: Fleet, name: str, label: str) -> cloudwatch.Metric:
    """Group metrics (collected for these groups: fleet_host.host_group)."""
    return cloudwatch.Metric(
        namespace="AWS/AutoScaling",
        metric_name=name,
        dimensions_map={GROUP: fleet.group_name},
        statistic="Maximum",
        period=MINUTE,
        label=label,
    )


def ec2(fleet: Fleet, name: str, *, statistic: str = "Average", label: str | None = None) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/EC2",
        metric_name=name,
        dimensions_map={GROUP: fleet.group_name},
        statistic=statistic,
        period=FIVE_MINUTES,
        label=label or f"{fleet.title} {name}",
    )


def executions(machine: sfn.IStateMachine, name: str, label: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/States",
        metric_name=name,
        dimensions_map={"StateMachineArn": machine.state_machine_arn},
        statistic="Sum",
        period=FIVE_MINUTES,
        label=label,
    )


def nlb(edge: TurnEdge, name: str, *, statistic: str = "Sum", per_target_group: bool = False) -> cloudwatch.Metric:
    dims = {"LoadBalancer": edge.load_balancer}
    if per_target_group:
        dims["TargetGroup"] = edge.target_group
    return cloudwatch.Metric(
        namespace="AWS/NetworkELB",
        metric_name=name,
        dimensions_map=dims,
        statistic=statistic,
        period=FIVE_MINUTES,
        label=name,
    )


def alb(
    frontend: Frontend, name: str, *, statistic: str = "Sum", target_group: str | None = None, label: str | None = None
) -> cloudwatch.Metric:
    dims = {"LoadBalancer": frontend.load_balancer}
    if target_group is not None:
        dims["TargetGroup"] = frontend.target_groups[target_group]
    return cloudwatch.Metric(
        namespace="AWS/ApplicationELB",
        metric_name=name,
        dimensions_map=dims,
        statistic=statistic,
        period=FIVE_MINUTES,
        label=label or name,
    )


def ecs(
    frontend: Frontend, service: str, name: str, *, insights: bool = False, statistic: str = "Average"
) -> cloudwatch.Metric:
    """AWS/ECS utilization, or Container Insights (enabled on the cluster) for task counts."""
    return cloudwatch.Metric(
        namespace="ECS/ContainerInsights" if insights else "AWS/ECS",
        metric_name=name,
        dimensions_map={"ClusterName": frontend.cluster_name, "ServiceName": frontend.services[service]},
        statistic=statistic,
        period=MINUTE if insights else FIVE_MINUTES,
        label=f"{service} {name}",
    )


def database(data: DataTier, name: str, *, statistic: str = "Average") -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/RDS",
        metric_name=name,
        dimensions_map={"DBClusterIdentifier": data.database_cluster},
        statistic=statistic,
        period=FIVE_MINUTES,
        label=name,
    )


def cache(node: str, name: str, *, statistic: str = "Average", label: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/ElastiCache",
        metric_name=name,
        dimensions_map={"CacheClusterId": node},
        statistic=statistic,
        period=FIVE_MINUTES,
        label=label,
    )


def file_system(
    data: DataTier, name: str, *, statistic: str = "Sum", storage_class: str | None = None, label: str | None = None
) -> cloudwatch.Metric:
    dims = {"FileSystemId": data.file_system}
    if storage_class:
        dims["StorageClass"] = storage_class
    return cloudwatch.Metric(
        namespace="AWS/EFS",
        metric_name=name,
        dimensions_map=dims,
        statistic=statistic,
        period=FIVE_MINUTES,
        label=label or name,
    )


def days_to_expiry(certificate_arn: str) -> cloudwatch.Metric:
    """ACM publishes it once a day per certificate."""
    return cloudwatch.Metric(
        namespace="AWS/CertificateManager",
        metric_name="DaysToExpiry",
        dimensions_map={"CertificateArn": certificate_arn},
        statistic="Minimum",
        period=Duration.days(1),
        label="Days to expiry",
    )


def ses(region: str, name: str, *, statistic: str = "Sum", period: Duration = HOUR) -> cloudwatch.Metric:
    """Account-wide SES figures of the SES region (which may not be the deployment's)."""
    return cloudwatch.Metric(
        namespace="AWS/SES", metric_name=name, statistic=statistic, period=period, region=region, label=name
    )
