"""The deployment's one CloudWatch dashboard: a first row that answers "is everything fine?" (every alarm of
the deployment and the key numbers), then a row per area (rows.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from cdk_constructs.monitoring import metrics
from cdk_constructs.monitoring.rows import GUIDE, WIDTH, AreaRows
from cdk_constructs.monitoring.watched import Watched

MAX_ALARMS = 100  # CloudWatch's limit for one alarm status widget


class OperationsDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        watched: Watched,
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        self._w = watched
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name, default_interval=Duration.hours(6)
        )
        self._rows = AreaRows(watched, self._row)
        self._summary(dashboard_name, alarms)
        self._rows.turn(watched.turn)
        self._rows.bbb(watched.bbb)
        if watched.frontend is not None:
            self._rows.frontend(watched.frontend)
        if watched.data is not None:
            self._rows.data(watched.data)
        self._rows.certificate_and_email()

    def _row(self, *widgets: cloudwatch.IWidget) -> None:
        self.dashboard.add_widgets(*widgets)

    def _summary(self, name: str, alarms: Sequence[cloudwatch.IAlarm]) -> None:
        w, host = self._w, self._rows.host
        self._row(
            cloudwatch.TextWidget(
                markdown=f"# {name}: is everything fine?\nYes when every alarm below is OK (grey: no data yet) and the "
                f"numbers are plausible. Each alarm's description says what to check first. Guide: {GUIDE}",
                width=WIDTH,
                height=2,
            )
        )
        if len(alarms) > MAX_ALARMS:
            raise ValueError(f"{len(alarms)} alarms: an alarm status widget shows at most {MAX_ALARMS}")
        # Four alarms per line of the widget.
        self._row(
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=list(alarms),
                width=WIDTH,
                height=1 + math.ceil(len(alarms) / 4),
                sort_by=cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP,
            )
        )
        turn, bbb = w.turn, w.bbb
        numbers: list[tuple[str, list[cloudwatch.IMetric]]] = [
            (
                "TURN",
                [
                    metrics.auto_scaling(turn, "GroupInServiceInstances", "Relays in service"),
                    host(turn, "UnhealthyTurnInstances", statistic="Maximum", label="Relays failing the probe"),
                    host(turn, "Allocations", label="Allocations"),
                ],
            ),
            (
                "BigBlueButton",
                [
                    metrics.auto_scaling(bbb, "GroupInServiceInstances", "Servers in service"),
                    host(bbb, "Meetings"),
                    host(bbb, "Participants"),
                ],
            ),
            (
                "Recordings and certificate",
                [
                    host(bbb, "RecordingsWaiting", label="Recordings waiting"),
                    host(bbb, "RecordingsFailed", label="Recordings failed"),
                    metrics.days_to_expiry(w.certificate_arn),
                    host(bbb, "CertificateDaysLeft", statistic="Minimum", label="BBB certificate days left"),
                ],
            ),
        ]
        self._row(
            *[
                cloudwatch.SingleValueWidget(title=title, metrics=values, width=WIDTH // len(numbers), height=4)
                for title, values in numbers
            ]
        )

    # -- areas ---------------------------------------------------------------------------------------------
