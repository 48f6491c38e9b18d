"""TURN prober (every minute): a real STUN Binding to each InService TURN instance, over UDP and TCP.

Publishes TurnProbeHealthy{InstanceId} (1/0) and UnhealthyTurnInstances{AutoScalingGroupName} with
PutMetricData (immediately visible to the per-instance alarms behind the Route 53 health checks, and the
namespace is pinned by an IAM condition). Instances still launching are not probed: their health check
is Unhealthy on missing data anyway, and probing them would count booting hosts as failures.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from common import alarms, aws, config, instances, observability, stun

logger, metrics = observability.tools()


def probe(ip: str, port: int, timeout: float) -> dict[str, Any]:
    result: dict[str, Any] = {"ip": ip}
    try:
        udp = stun.binding_udp(ip, port, timeout=timeout)
        result["udp_ms"] = round(udp.rtt_ms, 1)
    except stun.StunError as exc:
        result["udp_error"] = str(exc)
    try:
        tcp = stun.binding_tcp(ip, port, timeout=timeout * 2)
        result["tcp_ms"] = round(tcp.rtt_ms, 1)
    except stun.StunError as exc:
        result["tcp_error"] = str(exc)
    result["healthy"] = "udp_error" not in result and "tcp_error" not in result
    return result


def run(settings: config.Settings) -> dict[str, Any]:
    in_service = [m.instance_id for m in instances.group_members(settings.group) if m.lifecycle_state == "InService"]
    described = instances.describe_many(in_service)
    targets = {iid: inst.public_ip for iid, inst in described.items() if inst.public_ip and not inst.gone}
    results: dict[str, dict[str, Any]] = {}
    if targets:
        with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            futures = {
                iid: pool.submit(probe, ip, settings.turn_port, settings.probe_timeout_seconds)
                for iid, ip in targets.items()
            }
            results = {iid: future.result() for iid, future in futures.items()}
    for iid in in_service:
        if iid not in results:  # InService but no public address: cannot serve clients either
            results[iid] = {"ip": None, "healthy": False, "udp_error": "no public IPv4 address"}
    unhealthy = sorted(iid for iid, r in results.items() if not r["healthy"])
    now = datetime.now(timezone.utc)
    data: list[dict[str, Any]] = [
        {
            "MetricName": alarms.METRIC,
            "Dimensions": [{"Name": "InstanceId", "Value": iid}],
            "Timestamp": now,
            "Value": 1.0 if r["healthy"] else 0.0,
            "Unit": "Count",
        }
        for iid, r in sorted(results.items())
    ]
    data.append(
        {
            "MetricName": "UnhealthyTurnInstances",
            "Dimensions": [{"Name": "AutoScalingGroupName", "Value": settings.group}],
            "Timestamp": now,
            "Value": float(len(unhealthy)),
            "Unit": "Count",
        }
    )
    cloudwatch = aws.client("cloudwatch")
    for start in range(0, len(data), 500):  # PutMetricData takes at most 1000 items; stay well below
        cloudwatch.put_metric_data(Namespace=settings.namespace, MetricData=data[start : start + 500])
    if unhealthy:
        logger.warning("TURN instances failed the probe", extra={"unhealthy": {i: results[i] for i in unhealthy}})
    logger.info("probe round", extra={"probed": len(results), "unhealthy": len(unhealthy)})
    return {"probed": len(results), "unhealthy": unhealthy, "results": results}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run(config.load())
