"""TURN drain steps (state machine "drain" of a turn fleet).

withdraw   delete the instance's weighted record from turn.<domain>; the state machine then waits twice
           the record TTL so resolvers stop handing out the address before the relay refuses Allocates.
signal     SSM Run Command `systemctl kill --signal=SIGUSR1 bbb-turn-relay`: new Allocates get 403,
           existing allocations keep being served (docs/host-contract.md "Drain").
check      drained = the host's own `Allocations{AutoScalingGroupName,InstanceId}` metric, sampled after
           the signal, is 0; or no sample arrived for 5 minutes (the relay exited after its own drain
           timeout); or the instance is gone; expired at DRAIN_MAX.
           The metric (published every 60 s by the host) is read instead of asking the host over SSM:
           one API call, no dependency on the SSM agent, and the same number the dashboards show.
heartbeat  keep the terminate hook alive.
finish     delete the A record, health check and probe alarm (and the weighted record, again), CONTINUE.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from common import alarms, aws, dns, fleet, host_commands, instances, lifecycle, names, observability, steps, timeutil

logger, metrics = observability.tools()

# The host publishes Allocations every 60 s; five minutes without a sample means the relay exited (it
# does after its own drain timeout) - waiting longer would only wait for the maximum.
SILENT_SECONDS = 300


def withdraw(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    removed = fleet.zone(settings).delete_weighted(
        names.turn_pool_name(settings.domain), step.instance_id, comment=f"bbb-on-aws drain {step.instance_id}"
    )
    metrics.add_metric(name="DrainStarted", unit=MetricUnit.Count, value=1)
    logger.info("withdrawn from the TURN name", extra={"record_removed": removed})
    return step.update(status="draining", last_heartbeat=step.now, withdrawn_at=step.now)


def signal(step: steps.Step) -> dict[str, Any]:
    instance = instances.describe(step.instance_id)
    if instance is None or instance.gone:
        return step.update(status="unreachable", signaled_at=step.now, signal="instance gone")
    result = host_commands.run(
        step.instance_id, host_commands.TURN_DRAIN_COMMAND, comment=f"bbb-on-aws drain relay {step.instance_id}"
    )
    if not result.succeeded:
        # Not fatal: allocations still end as clients leave; the maximum bounds the wait.
        metrics.add_metric(name="RelayDrainSignalFailed", unit=MetricUnit.Count, value=1)
        logger.warning("drain signal failed", extra={"status": result.status, "stderr": result.stderr[-500:]})
    return step.update(status="draining", signaled_at=step.now, signal=result.status)


def latest_allocations(settings: Any, instance_id: str, since: str, now: str) -> tuple[str, float] | None:
    """(timestamp, value) of the most recent Allocations sample taken after `since`, if any."""
    end = timeutil.parse(now)
    start = max(timeutil.parse(since), end - timedelta(minutes=15))
    response = aws.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "allocations",
                "MetricStat": {
                    "Metric": {
                        "Namespace": settings.namespace,
                        "MetricName": "Allocations",
                        "Dimensions": [
                            {"Name": "AutoScalingGroupName", "Value": settings.group},
                            {"Name": "InstanceId", "Value": instance_id},
                        ],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=start,
        EndTime=end + timedelta(seconds=1),
        ScanBy="TimestampDescending",
    )
    samples = []
    for result in response.get("MetricDataResults", []):
        samples += list(zip(result.get("Timestamps", []), result.get("Values", []), strict=False))
    if not samples:
        return None
    moment, value = max(samples, key=lambda sample: sample[0])
    return timeutil.iso(moment), float(value)


def check(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    state = step.update(heartbeat_due=step.heartbeat_due())
    if step.elapsed >= settings.drain_max_seconds:
        return {**state, "status": "expired", "reason": f"allocations remain after {int(step.elapsed)} s"}
    instance = instances.describe(step.instance_id)
    if instance is None or instance.gone:
        return {**state, "status": "unreachable", "reason": f"instance is {instance.state if instance else 'gone'}"}
    since = str(step.state.get("signaled_at") or step.state.get("withdrawn_at") or step.started)
    latest = latest_allocations(settings, step.instance_id, since, step.now)
    fresh = latest is not None and timeutil.seconds_between(latest[0], step.now) <= SILENT_SECONDS
    state["allocations"] = latest[1] if latest and fresh else None
    if latest is None or not fresh:
        if timeutil.seconds_between(since, step.now) >= SILENT_SECONDS:
            return {**state, "status": "drained", "reason": f"no Allocations sample for {SILENT_SECONDS} s: relay gone"}
        return {**state, "status": "draining", "reason": "no Allocations sample since the drain signal yet"}
    if latest[1] > 0:
        return {**state, "status": "draining", "reason": f"{int(latest[1])} allocation(s) left"}
    return {**state, "status": "drained", "reason": "no allocation left"}


def heartbeat(step: steps.Step) -> dict[str, Any]:
    active = lifecycle.heartbeat(step.action)
    return step.update(last_heartbeat=step.now, heartbeat_due=False, hook_active=active)


def finish(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    zone = fleet.zone(settings)
    comment = f"bbb-on-aws drain {step.instance_id}"
    removed: list[str] = []
    if step.state.get("status") == "expired":
        metrics.add_metric(name="DrainMaxReached", unit=MetricUnit.Count, value=1)
    # The weighted record references the health check: it goes first (Route 53 refuses the other order).
    if zone.delete_weighted(names.turn_pool_name(settings.domain), step.instance_id, comment=comment):
        removed.append("weighted record")
    checks = dns.HealthChecks(settings.environment)
    for health_check in checks.by_instance().get(step.instance_id, []):
        if checks.delete(health_check):
            removed.append("health check")
    alarms.delete_probe_alarm(settings.environment, step.instance_id)
    if zone.delete_a(fleet.host(settings, step.instance_id), comment=comment):
        removed.append("instance record")
    active = lifecycle.complete(step.action, "CONTINUE")
    metrics.add_metric(name="DrainCompleted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="DrainSeconds", unit=MetricUnit.Seconds, value=step.elapsed)
    logger.info(
        "drain finished", extra={"removed": removed, "hook_was_active": active, "outcome": step.state.get("status")}
    )
    return step.update(finished=True, removed=removed, completed=active, scalelite_cleanup_pending=False)


STEPS = {"withdraw": withdraw, "signal": signal, "check": check, "heartbeat": heartbeat, "finish": finish}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.run(event, STEPS, logger=logger, metrics=metrics)
