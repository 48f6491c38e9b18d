"""The per-instance CloudWatch alarm behind each TURN instance's Route 53 health check.

Missing data is left as INSUFFICIENT_DATA (TreatMissingData=missing): a new instance is then unhealthy for
Route 53 (the health check maps no data to Unhealthy) without paging the operator, while a probe that
fails twice in a row turns the alarm to ALARM, which both removes the instance from `turn.<domain>` and
emails the operator through the topic.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from common import aws, names

METRIC = "TurnProbeHealthy"


def put_probe_alarm(environment: str, namespace: str, instance_id: str, topic_arn: str) -> str:
    name = names.probe_alarm_name(environment, instance_id)
    aws.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        AlarmDescription=(
            f"TURN instance {instance_id} of {environment} does not answer STUN on UDP/TCP 3478; "
            "Route 53 keeps it out of the TURN name while this is in ALARM"
        ),
        Namespace=namespace,
        MetricName=METRIC,
        Dimensions=[{"Name": "InstanceId", "Value": instance_id}],
        Statistic="Minimum",
        Period=60,
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        TreatMissingData="missing",
        ActionsEnabled=True,
        AlarmActions=[topic_arn],
        OKActions=[topic_arn],
    )
    return name


def probe_alarms(environment: str) -> dict[str, str]:
    """instance id -> alarm name, for this environment's probe alarms."""
    found: dict[str, str] = {}
    prefix = names.probe_alarm_prefix(environment)
    paginator = aws.client("cloudwatch").get_paginator("describe_alarms")
    for page in paginator.paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"]):
        for alarm in page["MetricAlarms"]:
            instance_id = alarm["AlarmName"][len(prefix) :]
            try:
                found[names.check_instance_id(instance_id)] = alarm["AlarmName"]
            except names.ContractNameError:
                continue
    return found


def delete_probe_alarm(environment: str, instance_id: str) -> None:
    """DeleteAlarms ignores names that do not exist, so this is safe to repeat."""
    try:
        aws.client("cloudwatch").delete_alarms(AlarmNames=[names.probe_alarm_name(environment, instance_id)])
    except ClientError as exc:
        if aws.error_code(exc) != "ResourceNotFound":
            raise
