"""Alarms to the operator topic for what needs a human, each saying what to check first and where the
troubleshooting guide explains it. Alarms that already exist are not made again: no healthy TURN instance
(cdk_constructs/turn_fleet.py), launch/drain executions failed, timed out or aborted, a drain that reached its
maximum, an abandoned launch and Lambda errors (cdk_constructs/lifecycle/).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.monitoring import metrics
from cdk_constructs.monitoring.watched import DataTier, Fleet, Frontend, Watched
from settings import Monitoring

GUIDE = "docs/troubleshooting.md"
# Below this many requests in 5 minutes a few errors are noise, not a rate (a health check's 503 at night).
MIN_REQUESTS = 50
GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LT = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD


class OperatorAlarms(Construct):
    """Every alarm of `alarms` sends ALARM and OK to the operator topic."""

    def __init__(
        self, scope: Construct, construct_id: str, *, watched: Watched, thresholds: Monitoring, topic: sns.ITopic
    ) -> None:
        super().__init__(scope, construct_id)
        self._topic = topic
        self._namespace = watched.namespace
        self.alarms: list[cloudwatch.Alarm] = []
        t = thresholds
        self._capacity(
            watched.turn,
            t.capacity_percent,
            "turn-alarm",
            "the TURN group's maximum size (turn.maxInstances) and the instance type; the dashboard's "
            "TURN row shows whether one relay or all are full",
        )
        self._capacity(
            watched.bbb,
            t.capacity_percent,
            "server-not-receiving-meetings",
            "the BBB group's maximum size (bbb.maxInstances) and whether a server is cordoned or "
            "draining in Scalelite (`bbb-on-aws status`)",
        )
        self._certificates(watched, t)
        self._disks(watched, t)
        if watched.frontend is not None:
            self._frontend(watched.frontend, t)
        if watched.data is not None:
            self._data(watched.data, t)
            self._alarm(
                "RecordingSpoolAge",
                metrics.host(self._namespace, "RecordingSpoolAge", watched.bbb.group_name, statistic="Maximum"),
                threshold=t.spool_age_minutes * 60,
                periods=3,
                what=f"A recording has waited more than {t.spool_age_minutes} minutes in the Scalelite spool",
                check="the recording importer's log (Scalelite log group, stream importer) for the refused tarball",
                anchor="recording-never-appears",
            )
        # SES in another region: its alarms are in that region's stack (stacks/email.py), its graphs here.
        if watched.ses_region == Stack.of(self).region:
            self.alarms += ses_alarms(self, region=watched.ses_region, thresholds=t, topic=topic)

    # -- per area ------------------------------------------------------------------------------------------

    def _certificates(self, watched: Watched, t: Monitoring) -> None:
        """The ACM certificate (ALB, NLB) and the BBB servers' own Let's Encrypt certificates."""
        self._alarm(
            "CertificateExpiry",
            metrics.days_to_expiry(watched.certificate_arn),
            threshold=t.certificate_days,
            comparison=LT,
            periods=1,
            what=f"The ACM certificate expires in fewer than {t.certificate_days} days: ACM's automatic renewal "
            "is stuck",
            check="the certificate's renewal status in ACM and that its DNS validation CNAMEs are still in the "
            "hosted zone",
            anchor="certificate-alarm",
        )
        self._alarm(
            "ServerCertificateExpiry",
            metrics.host(
                self._namespace,
                "CertificateDaysLeft",
                watched.bbb.group_name,
                statistic="Minimum",
                period=Duration.hours(1),
            ),
            threshold=t.server_certificate_days,
            comparison=LT,
            periods=1,
            what=f"A BBB server's Let's Encrypt certificate expires in fewer than {t.server_certificate_days} days: "
            "certbot's renewal fails",
            check="that port 80 of the BBB servers is open to the internet and `certbot renew --dry-run` on the "
            "server (Session Manager)",
            anchor="certificate-alarm",
        )

    def _disks(self, watched: Watched, t: Monitoring) -> None:
        """The disks the CloudWatch agent measures (userdata/common/cw_agent_config.py)."""
        for fleet, path, anchor in (
            (watched.bbb, "/var/bigbluebutton", "recording-never-appears"),
            (watched.bbb, "/", None),
            (watched.turn, "/", "turn-alarm"),
        ):
            self._alarm(
                f"{fleet.title.capitalize()}Disk{'Data' if path != '/' else 'Root'}",
                metrics.disk(self._namespace, fleet.group_name, path),
                threshold=t.disk_percent,
                periods=3,
                what=f"A {fleet.title} server's {path} is {t.disk_percent} % full or more",
                check=f"`df -h {path}` and `du -xsh {path}/*` on the fullest server (Session Manager); "
                + ("unfinished or failed recordings under /var/bigbluebutton/recording" if path != "/" else "logs"),
                anchor=anchor,
            )

    def _capacity(self, fleet: Fleet, percent: int, anchor: str, check: str) -> None:
        """The fleet cannot grow (desired = maximum) and its servers carry `percent` of their scaling target."""
        load = metrics.host(self._namespace, fleet.load_metric, fleet.group_name, statistic="Average")
        desired = metrics.auto_scaling(fleet, "GroupDesiredCapacity", "Desired")
        expression = cloudwatch.MathExpression(
            expression=f"IF(desired >= {fleet.max_instances}, 100 * load / {fleet.per_server_target}, 0)",
            using_metrics={"load": load, "desired": desired},
            period=metrics.MINUTE,
            label=f"{fleet.load_metric} per server, % of target, at maximum size",
        )
        self._alarm(
            f"{fleet.title.capitalize()}AtCapacity",
            expression,
            threshold=percent,
            periods=5,
            what=f"The {fleet.title} fleet is at its maximum size ({fleet.max_instances}) and its servers carry "
            f"{percent} % or more of its target of {fleet.per_server_target:g} "
            f"{'load units' if fleet.load_metric == 'Load' else fleet.load_metric.lower()}: new users may be refused",
            check=check,
            anchor=anchor,
        )

    def _frontend(self, frontend: Frontend, t: Monitoring) -> None:
        requests = metrics.alb(frontend, "RequestCount")
        rate = cloudwatch.MathExpression(
            expression=f"IF(requests >= {MIN_REQUESTS}, 100 * (FILL(target, 0) + FILL(elb, 0)) / requests, 0)",
            using_metrics={
                "requests": requests,
                "target": metrics.alb(frontend, "HTTPCode_Target_5XX_Count"),
                "elb": metrics.alb(frontend, "HTTPCode_ELB_5XX_Count"),
            },
            period=metrics.FIVE_MINUTES,
            label="5xx, % of requests",
        )
        self._alarm(
            "Frontend5xxRate",
            rate,
            threshold=t.alb_5xx_percent,
            periods=3,
            what=f"{t.alb_5xx_percent:g} % or more of Greenlight's and Scalelite's requests fail with a 5xx",
            check="the ALB's healthy targets and the Greenlight/Scalelite task logs on the dashboard's frontend row",
            anchor="server-not-receiving-meetings",
        )
        running = metrics.ecs(frontend, frontend.importer, "RunningTaskCount", insights=True, statistic="Minimum")
        self._alarm(
            "ImporterNotRunning",
            running,
            threshold=1,
            comparison=LT,
            periods=5,
            missing=cloudwatch.TreatMissingData.BREACHING,
            what="The Scalelite recording importer is not running: recordings stay in the spool",
            check="the importer service's events in ECS (stopped tasks and their reason)",
            anchor="recording-never-appears",
        )

    def _data(self, data: DataTier, t: Monitoring) -> None:
        self._alarm(
            "DatabaseCpu",
            metrics.database(data, "CPUUtilization"),
            threshold=t.database_cpu_percent,
            periods=3,
            what=f"Aurora's CPU is at {t.database_cpu_percent} % or more",
            check="the top SQL in Performance Insights, and database.serverlessMaxAcu / database.instanceClass",
            anchor=None,
        )
        if data.serverless:
            self._alarm(
                "DatabaseCapacity",
                metrics.database(data, "ACUUtilization"),
                threshold=t.database_cpu_percent,
                periods=3,
                what=f"Aurora Serverless uses {t.database_cpu_percent} % or more of its maximum capacity",
                check="raise database.serverlessMaxAcu, or find the load in Performance Insights",
                anchor=None,
            )
        for index, node in enumerate(data.cache_nodes, start=1):
            self._alarm(
                f"CacheCpu{index}",
                metrics.cache(node, "EngineCPUUtilization", label=f"node {index} engine CPU"),
                threshold=t.cache_cpu_percent,
                periods=3,
                what=f"Cache node {index}'s engine CPU is at {t.cache_cpu_percent} % or more",
                check="the commands per second on the dashboard's data row; a larger cache.nodeType",
                anchor=None,
            )
            self._alarm(
                f"CacheMemory{index}",
                metrics.cache(node, "DatabaseMemoryUsagePercentage", label=f"node {index} memory"),
                threshold=t.cache_memory_percent,
                periods=3,
                what=f"Cache node {index} uses {t.cache_memory_percent} % or more of its memory: keys get evicted",
                check="evictions on the dashboard's data row; a larger cache.nodeType",
                anchor=None,
            )

    # -- one alarm -----------------------------------------------------------------------------------------

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, **settings: Any) -> None:
        self.alarms.append(operator_alarm(self, construct_id, metric, topic=self._topic, **settings))


def operator_alarm(
    scope: Construct,
    construct_id: str,
    metric: cloudwatch.IMetric,
    *,
    topic: sns.ITopic,
    threshold: float,
    periods: int,
    what: str,
    check: str,
    anchor: str | None,
    comparison: cloudwatch.ComparisonOperator = GTE,
    missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
) -> cloudwatch.Alarm:
    """An alarm whose ALARM and OK go to `topic`, its description saying what happened, what to check first and
    which section of the troubleshooting guide explains it."""
    guide = f"{GUIDE}#{anchor}" if anchor else GUIDE
    alarm = cloudwatch.Alarm(
        scope,
        construct_id,
        metric=metric,
        threshold=threshold,
        comparison_operator=comparison,
        evaluation_periods=periods,
        datapoints_to_alarm=periods,
        treat_missing_data=missing,
        alarm_description=f"{what}. Check first: {check}. Guide: {guide}",
    )
    alarm.add_alarm_action(actions.SnsAction(topic))
    alarm.add_ok_action(actions.SnsAction(topic))
    return alarm


def ses_alarms(scope: Construct, *, region: str, thresholds: Monitoring, topic: sns.ITopic) -> list[cloudwatch.Alarm]:
    """SES's account-wide bounce and complaint rates. An alarm reads metrics of its own region and notifies a
    topic of its own region, so these live in the SES region's stack when SES is not in the deployment's."""
    t = thresholds
    return [
        operator_alarm(
            scope,
            f"Ses{name}",
            metrics.ses(region, f"Reputation.{name}", statistic="Maximum"),
            topic=topic,
            threshold=percent / 100,
            periods=1,
            what=f"The SES {name[:-4].lower()} rate reached {percent:g} % (AWS reviews the account at "
            f"{review:g} % and may pause sending at {pause:g} %)",
            check="the addresses Greenlight sends to (invitations, sign-ups) in the SES console's reputation page",
            anchor=None,
        )
        for name, percent, review, pause in (
            ("BounceRate", t.ses_bounce_percent, 5, 10),
            ("ComplaintRate", t.ses_complaint_percent, 0.1, 0.5),
        )
    ]
