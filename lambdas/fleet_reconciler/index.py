"""Scheduled reconciler (every 15 min): state never outlives its instance, lost events are recovered.

Removes, for this fleet's role, whatever belongs to an instance EC2 no longer has (terminated or unknown):
per-instance A records, weighted TURN records, probe health checks and alarms, Scalelite servers (panic
without working end calls, then delete) and, for the single host, a domain record pointing at no live
instance. Instances that are merely stopped still exist: their own terminate drain cleans up after them.

Then it starts the launch/drain state machine for instances waiting in a lifecycle hook without one
(EventBridge delivery is best effort; the execution name makes this a no-op when one already runs).
Reports what it removed in the logs, as a metric (StaleResourcesRemoved, total) and in its return value.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from common import alarms, config, dns, executions, fleet, instances, names, observability
from common.scalelite import ScaleliteError

logger, metrics = observability.tools()

PANIC_ROUNDS = 20


def reconcile(settings: config.Settings) -> dict[str, Any]:
    live = instances.fleet_instances(settings.environment, settings.role)
    removed: dict[str, list[str]] = {}
    errors: list[str] = []

    def note(kind: str, what: str) -> None:
        removed.setdefault(kind, []).append(what)

    zone = fleet.zone(settings)
    comment = "bbb-on-aws reconciler: instance no longer exists"
    records = list(zone.records())
    prefix = names.host_prefix(settings.role)
    stale_records = []
    for record in records:
        if record.type != "A" or record.set_identifier is not None:
            continue
        parsed = names.parse_instance_host(record.name, settings.domain)
        if parsed and parsed[0] == prefix and parsed[1] not in live and settings.role != "single":
            stale_records.append(record)
    if settings.role == "turn":
        pool = names.turn_pool_name(settings.domain)
        stale_records += [
            r for r in records if r.name == pool and r.set_identifier is not None and r.set_identifier not in live
        ]
    if settings.role == "single":
        live_ips = {i.public_ip for i in live.values() if i.public_ip}
        stale_records += [
            r
            for r in records
            if r.name == settings.domain
            and r.type == "A"
            and not r.is_alias
            and r.set_identifier is None
            and not set(r.values) & live_ips
        ]
    for record in stale_records:
        if zone.delete([record], comment=comment):
            note("record", f"{record.name} {record.set_identifier or ''}".strip())

    if settings.role == "turn":
        checks = dns.HealthChecks(settings.environment)
        for instance_id, ids in checks.by_instance().items():
            if instance_id not in live:
                for health_check in ids:
                    if checks.delete(health_check):
                        note("health-check", f"{health_check} ({instance_id})")
        for instance_id in alarms.probe_alarms(settings.environment):
            if instance_id not in live:
                alarms.delete_probe_alarm(settings.environment, instance_id)
                note("alarm", names.probe_alarm_name(settings.environment, instance_id))

    if fleet.uses_scalelite(settings):
        try:
            _reconcile_scalelite(settings, live, note)
        except ScaleliteError as exc:
            metrics.add_metric(name="ScaleliteErrors", unit=MetricUnit.Count, value=1)
            errors.append(str(exc))
            logger.warning("Scalelite not reconciled this time", extra={"error": str(exc)})

    recovered = executions.recover(settings)
    for kind, items in removed.items():
        logger.info("stale state removed", extra={"kind": kind, "items": items})
    metrics.add_metric(
        name="StaleResourcesRemoved", unit=MetricUnit.Count, value=sum(len(items) for items in removed.values())
    )
    metrics.add_metric(name="LifecycleActionsRecovered", unit=MetricUnit.Count, value=len(recovered["started"]))
    report = {"removed": removed, "recovered": recovered, "errors": errors, "live_instances": sorted(live)}
    logger.info("reconciled", extra=report)
    return report


def _reconcile_scalelite(settings: config.Settings, live: dict[str, instances.Instance], note: Any) -> None:
    client = fleet.scalelite(settings)
    for server in client.get_servers():
        instance_id = names.parse_bbb_api_url(server.url, settings.domain)
        if instance_id is None or instance_id in live:
            continue  # not ours, or its instance still exists
        outcome = "partial"
        for _ in range(PANIC_ROUNDS):
            outcome = client.panic_server(server.id, keep_state=True)
            if outcome != "partial":
                break
        if outcome == "partial":
            logger.warning(
                "meetings of a dead server remain in Scalelite; the next run continues", extra={"server": server.id}
            )
            continue
        if client.delete_server(server.id):
            note("scalelite-server", f"{server.id} ({server.url})")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = config.load()
    observability.group_dimension(metrics, settings.group)
    return reconcile(settings)
