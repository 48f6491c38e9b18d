"""The dashboard's rows per area (TURN, BBB, frontend, data, certificate and e-mail); each area's heading links
the troubleshooting guide's sections for what its widgets show."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aws_cdk import aws_cloudwatch as cloudwatch

from cdk_constructs.monitoring import metrics
from cdk_constructs.monitoring.watched import DataTier, Fleet, Frontend, Watched

GUIDE = "docs/troubleshooting.md"
WIDTH = 24  # the dashboard grid's width
HEIGHT = 6
BBB_DISKS = ("/", "/var/bigbluebutton")  # the CloudWatch agent's disks on BBB hosts (cw_agent_config.py)


def _heading(text: str, *anchors: str) -> cloudwatch.TextWidget:
    links = " · ".join(f"[{a}]({GUIDE}#{a})" for a in anchors)
    return cloudwatch.TextWidget(
        markdown=f"## {text}" + (f"  \nGuide: {links}" if links else ""), width=WIDTH, height=2
    )


def _graph(
    title: str,
    left: Sequence[cloudwatch.IMetric],
    *,
    right: Sequence[cloudwatch.IMetric] = (),
    width: int = 8,
    annotations: Sequence[cloudwatch.HorizontalAnnotation] = (),
    stacked: bool = False,
) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title,
        left=list(left),
        right=list(right),
        width=width,
        height=HEIGHT,
        left_annotations=list(annotations),
        stacked=stacked,
    )


class AreaRows:
    """Adds each area's rows through `row` (a dashboard's add_widgets: one call, one row)."""

    def __init__(self, watched: Watched, row: Callable[..., None]) -> None:
        self._w = watched
        self._ns = watched.namespace
        self._row = row

    def host(self, fleet: Fleet, name: str, *, statistic: str = "Sum", label: str | None = None) -> cloudwatch.Metric:
        return metrics.host(self._ns, name, fleet.group_name, statistic=statistic, label=label or name)

    def _mbits(self, fleet: Fleet, name: str, label: str) -> cloudwatch.MathExpression:
        """Bytes per minute (the relay's counter increases) as Mbit/s, the unit operators size links in."""
        return cloudwatch.MathExpression(
            expression=f"{name.lower()} * 8 / 60 / 1000000",
            label=label,
            period=metrics.MINUTE,
            using_metrics={name.lower(): self.host(fleet, name)},
        )

    # -- areas -----------------------------------------------------------------------------------

    def turn(self, turn: Fleet) -> None:
        edge = self._w.turn_edge
        self._row(_heading("TURN relays", "turn-alarm", "ice-failures-1007-1020"))
        target = cloudwatch.HorizontalAnnotation(value=turn.per_server_target, label="scaling target per relay")
        self._row(
            _graph(
                "Allocations per relay",
                [metrics.per_server(self._ns, "Allocations", turn.group_name, label="")],
                right=[self.host(turn, "Allocations", label="Fleet total")],
                annotations=[target],
            ),
            _graph(
                "Relayed Mbit/s (fleet)",
                [
                    self._mbits(turn, "BytesClientToPeer", "client to peer"),
                    self._mbits(turn, "BytesPeerToClient", "peer to client"),
                ],
            ),
            _graph(
                "Refusals and errors per minute",
                [
                    self.host(turn, name)
                    for name in (
                        "AuthFailures",
                        "DeniedPeers",
                        "QuotaRejections",
                        "BandwidthDrops",
                        "MalformedPackets",
                        "RateLimited",
                        "ServerErrors",
                    )
                ],
            ),
        )
        self._row(
            _graph(
                "Relays",
                [
                    metrics.auto_scaling(turn, "GroupInServiceInstances", "in service"),
                    metrics.auto_scaling(turn, "GroupDesiredCapacity", "desired"),
                    self.host(turn, "UnhealthyTurnInstances", statistic="Maximum", label="failing the STUN probe"),
                    self.host(turn, "Draining", label="draining"),
                ],
                width=6,
            ),
            _graph(
                "Connections and new allocations",
                [
                    self.host(turn, "TcpConnections", label="TCP connections"),
                    self.host(turn, "TlsConnections", label="TLS connections"),
                ],
                right=[self.host(turn, "AllocationsCreated", label="allocations created")],
                width=6,
            ),
            _graph(
                "turns: load balancer (443)",
                [
                    metrics.nlb(edge, "ActiveFlowCount", statistic="Average"),
                    metrics.nlb(edge, "NewFlowCount"),
                    metrics.nlb(edge, "ClientTLSNegotiationErrorCount"),
                ],
                right=[metrics.nlb(edge, "HealthyHostCount", statistic="Minimum", per_target_group=True)],
                width=6,
            ),
            _graph(
                "CPU and network out",
                [
                    metrics.ec2(turn, "CPUUtilization", label="CPU % (average)"),
                    metrics.ec2(turn, "CPUUtilization", statistic="Maximum", label="CPU % (busiest)"),
                ],
                right=[metrics.ec2(turn, "NetworkOut", statistic="Sum", label="bytes out")],
                width=6,
            ),
        )

    def bbb(self, bbb: Fleet) -> None:
        self._row(
            _heading(
                "BigBlueButton servers",
                "server-not-receiving-meetings",
                "drain-does-not-finish",
                "recording-never-appears",
            )
        )
        target = cloudwatch.HorizontalAnnotation(value=bbb.per_server_target, label="scaling target per server")
        self._row(
            _graph(
                "Load per server (the scaling signal)",
                [metrics.per_server(self._ns, "Load", bbb.group_name, label="")],
                right=[self.host(bbb, "Participants", label="Participants (fleet)")],
                annotations=[target],
            ),
            _graph(
                "Meetings per server",
                [metrics.per_server(self._ns, "Meetings", bbb.group_name, label="")],
                right=[
                    self.host(bbb, "Meetings", label="Fleet total"),
                    self.host(bbb, "VideoStreams", label="Video streams"),
                ],
            ),
            _graph(
                "Servers",
                [
                    metrics.auto_scaling(bbb, name, label)
                    for name, label in (
                        ("GroupInServiceInstances", "in service"),
                        ("GroupPendingInstances", "launching"),
                        ("GroupTerminatingInstances", "draining or terminating"),
                        ("GroupDesiredCapacity", "desired"),
                    )
                ],
            ),
        )
        outcomes = [
            metrics.lifecycle(self._ns, "LaunchAbandoned", "lifecycle-launch", bbb.group_name),
            metrics.lifecycle(self._ns, "DrainMaxReached", "lifecycle-drain", bbb.group_name),
        ]
        if self._w.frontend is not None:  # Scalelite exists in the scalable shape only
            outcomes.append(metrics.lifecycle(self._ns, "ScaleliteErrors", "lifecycle-drain", bbb.group_name))
        self._row(
            _graph(
                "Launch and drain executions (BBB and TURN)",
                [
                    metrics.executions(
                        fleet.launch if kind == "launch" else fleet.drain, name, f"{fleet.title} {kind} {label}"
                    )
                    for fleet in (bbb, self._w.turn)
                    for kind in ("launch", "drain")
                    for name, label in (
                        ("ExecutionsStarted", "started"),
                        ("ExecutionsFailed", "failed"),
                        ("ExecutionsTimedOut", "timed out"),
                    )
                ],
                width=6,
            ),
            _graph("Lifecycle failures", outcomes, width=6),
            _graph(
                "CPU, memory and disks",
                [
                    metrics.ec2(bbb, "CPUUtilization", label="CPU % (average)"),
                    metrics.ec2(bbb, "CPUUtilization", statistic="Maximum", label="CPU % (busiest)"),
                    self.host(bbb, "mem_used_percent", statistic="Maximum", label="memory % (fullest)"),
                    *[metrics.disk(self._ns, bbb.group_name, path) for path in BBB_DISKS],
                ],
                width=6,
            ),
            _graph(
                "Recordings",
                [
                    self.host(bbb, "RecordingsWaiting", label="waiting"),
                    self.host(bbb, "RecordingsFailed", label="failed"),
                ],
                right=[self.host(bbb, "RecordingSpoolAge", statistic="Maximum", label="spool age (s)")]
                if self._w.data is not None
                else [],
                width=6,
            ),
        )

    def frontend(self, frontend: Frontend) -> None:
        self._row(_heading("Greenlight and Scalelite (load balancer, ECS)", "server-not-receiving-meetings"))
        self._row(
            _graph(
                "Requests and 5xx",
                [metrics.alb(frontend, "RequestCount")],
                right=[
                    metrics.alb(frontend, "HTTPCode_Target_5XX_Count"),
                    metrics.alb(frontend, "HTTPCode_ELB_5XX_Count"),
                ],
                width=6,
            ),
            _graph(
                "Response time (p95, s)",
                [
                    metrics.alb(frontend, "TargetResponseTime", statistic="p95", target_group=title, label=title)
                    for title in frontend.target_groups
                ],
                width=6,
            ),
            _graph(
                "Healthy targets",
                [
                    metrics.alb(
                        frontend, "HealthyHostCount", statistic="Minimum", target_group=title, label=f"{title} healthy"
                    )
                    for title in frontend.target_groups
                ],
                width=6,
            ),
            _graph(
                "Running tasks",
                [
                    metrics.ecs(frontend, title, "RunningTaskCount", insights=True, statistic="Minimum")
                    for title in frontend.services
                ],
                width=6,
            ),
        )
        self._row(
            _graph(
                "ECS CPU %", [metrics.ecs(frontend, title, "CPUUtilization") for title in frontend.services], width=12
            ),
            _graph(
                "ECS memory %",
                [metrics.ecs(frontend, title, "MemoryUtilization") for title in frontend.services],
                width=12,
            ),
        )

    def data(self, data: DataTier) -> None:
        self._row(_heading("Data (Aurora, cache, recordings file system)", "recording-never-appears"))
        database = [metrics.database(data, "CPUUtilization")]
        if data.serverless:
            database.append(metrics.database(data, "ACUUtilization"))
        self._row(
            _graph(
                "Aurora", database, right=[metrics.database(data, "DatabaseConnections", statistic="Maximum")], width=6
            ),
            _graph(
                "Cache",
                [
                    metrics.cache(node, name, label=f"node {i} {label}")
                    for i, node in enumerate(data.cache_nodes, start=1)
                    for name, label in (
                        ("EngineCPUUtilization", "engine CPU %"),
                        ("DatabaseMemoryUsagePercentage", "memory %"),
                    )
                ],
                right=[
                    metrics.cache(node, "Evictions", statistic="Sum", label=f"node {i} evictions")
                    for i, node in enumerate(data.cache_nodes, start=1)
                ],
                width=6,
            ),
            _graph(
                "Recordings file system",
                [
                    metrics.file_system(data, "MeteredIOBytes", label="I/O bytes"),
                    metrics.file_system(data, "PercentIOLimit", statistic="Maximum", label="I/O limit %"),
                ],
                right=[
                    metrics.file_system(
                        data, "StorageBytes", statistic="Average", storage_class="Total", label="stored bytes"
                    )
                ],
                width=6,
            ),
            _graph(
                "Recordings waiting and spool age",
                [self.host(self._w.bbb, "RecordingsWaiting", label="waiting")],
                right=[self.host(self._w.bbb, "RecordingSpoolAge", statistic="Maximum", label="spool age (s)")],
                width=6,
            ),
        )

    def certificate_and_email(self) -> None:
        region = self._w.ses_region
        self._row(_heading(f"Certificates and e-mail (SES metrics are in {region})", "certificate-alarm"))
        self._row(
            _graph(
                "ACM certificate (ALB, NLB): days to expiry",
                [metrics.days_to_expiry(self._w.certificate_arn)],
                annotations=[cloudwatch.HorizontalAnnotation(value=60, label="ACM renews from here")],
                width=6,
            ),
            _graph(
                "BBB servers' Let's Encrypt certificates: days left",
                [self.host(self._w.bbb, "CertificateDaysLeft", statistic="Minimum", label="soonest expiry")],
                annotations=[cloudwatch.HorizontalAnnotation(value=30, label="certbot renews from here")],
                width=6,
            ),
            _graph(
                "E-mail sent",
                [metrics.ses(region, name) for name in ("Send", "Delivery", "Bounce", "Complaint")],
                width=6,
            ),
            _graph(
                "E-mail reputation (rate, 0-1)",
                [
                    metrics.ses(region, "Reputation.BounceRate", statistic="Maximum"),
                    metrics.ses(region, "Reputation.ComplaintRate", statistic="Maximum"),
                ],
                annotations=[
                    cloudwatch.HorizontalAnnotation(value=0.05, label="bounce review (5 %)"),
                    cloudwatch.HorizontalAnnotation(value=0.1, label="bounce pause (10 %)"),
                ],
                width=6,
            ),
        )
