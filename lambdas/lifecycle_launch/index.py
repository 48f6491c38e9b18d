"""Launch steps (state machine "launch"): DNS first, wait until the host is really ready, register, complete.

The same steps serve the three launch-side transitions (common/transitions.py, `state.transition`):
launch (new instance into service), prewarm (new instance into the warm pool: installed and verified, then
its A record withdrawn instead of registering, since the public IPv4 goes with the stop) and wake (pool ->
service: the A record moves to the new public IPv4 first, the host must tag itself ready again after this
start, i.e. after its on-boot address rewrite, then it is registered in Scalelite).

prepare   UPSERT the instance's A record (BBB needs it for its Let's Encrypt certificate before bbb-install
          can finish); TURN also gets its probe alarm and health check (not yet its weighted record).
check     ready = the host tagged itself `bbb-on-aws:ready` AND it answers from outside: BBB getMeetings
          with the checksum over HTTPS, TURN a STUN Binding on UDP and TCP. Also reports gone / expired.
heartbeat keep the launch hook alive while bbb-install runs (up to ~45 min).
register  BBB: add to Scalelite (found by URL first) and enable; TURN: weighted record in turn.<domain>.
complete  CONTINUE.
abandon   undo what is safe to undo, then ABANDON so Auto Scaling replaces the instance.

Every step re-reads the instance's Auto Scaling lifecycle state: a late or replayed launch for an instance
that is already terminating does nothing (a drain owns it then).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from common import alarms, aws, bbb, dns, fleet, instances, lifecycle, names, observability, steps, stun, transitions
from common.errors import TransientError
from common.scalelite import ScaleliteError, ScaleliteUnavailable

logger, metrics = observability.tools()


def _transition(step: steps.Step) -> transitions.Transition:
    return transitions.BY_NAME[str(step.state.get("transition") or "launch")]


def _still_launching(step: steps.Step) -> tuple[instances.Instance | None, str | None]:
    """(instance, None) while the launch may proceed, else (instance or None, why not)."""
    if _transition(step).name == "prewarm":
        return _still_prewarming(step)
    member = instances.group_membership(step.instance_id)
    instance = instances.describe(step.instance_id)
    if instance is None or instance.gone:
        return instance, f"instance is {instance.state if instance else 'unknown to EC2'}"
    if member is None or member.group != step.settings.group:
        return instance, "instance is not (any more) in this Auto Scaling group"
    if member.lifecycle_state not in instances.LAUNCHING_STATES:
        return instance, f"instance is {member.lifecycle_state}; the launch is over"
    return instance, None


def _still_prewarming(step: steps.Step) -> tuple[instances.Instance | None, str | None]:
    member = instances.group_membership(step.instance_id)
    instance = instances.describe(step.instance_id)
    if instance is None or instance.gone:
        return instance, f"instance is {instance.state if instance else 'unknown to EC2'}"
    if member is None or member.group != step.settings.group:
        return instance, "instance is not (any more) in this Auto Scaling group"
    if not transitions.PREWARM.accepts(member.lifecycle_state):
        return instance, f"instance is {member.lifecycle_state}; the prewarm is over"
    return instance, None


def _gone(step: steps.Step, reason: str) -> dict[str, Any]:
    logger.info("launch stops: nothing to do", extra={"reason": reason})
    metrics.add_metric(name="LaunchSkipped", unit=MetricUnit.Count, value=1)
    return step.update(proceed=False, status="gone", reason=reason)


def prepare(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    instance, why_not = _still_launching(step)
    if why_not:
        return _gone(step, why_not)
    assert instance is not None
    if not instance.public_ip:
        raise RuntimeError(
            f"{step.instance_id} has no public IPv4 address; the fleet must launch in public subnets with "
            "public IPs (browsers and TURN clients reach each host directly)"
        )
    host = fleet.host(settings, step.instance_id)
    zone = fleet.zone(settings)
    zone.upsert_a(host, instance.public_ip, comment=f"bbb-on-aws launch {step.instance_id}")
    if settings.role == "turn":
        region = aws.region()
        alarm = alarms.put_probe_alarm(
            settings.environment, settings.namespace, step.instance_id, settings.need("operator_topic_arn")
        )
        dns.HealthChecks(settings.environment).ensure(step.instance_id, instance.launch_time, alarm, region)
    logger.info("instance record in place", extra={"host": host, "ip": instance.public_ip})
    return step.update(
        proceed=True,
        status="waiting",
        host=host,
        public_ip=instance.public_ip,
        launch_time=instance.launch_time,
        last_heartbeat=step.now,
        checks=0,
    )


def check(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    instance, why_not = _still_launching(step)
    if why_not:
        return _gone(step, why_not)
    assert instance is not None
    checks = int(step.state.get("checks", 0)) + 1
    if step.elapsed >= settings.launch_max_seconds:
        return step.update(status="expired", checks=checks, reason=f"not ready after {int(step.elapsed)} s")
    reason = _not_ready_reason(step, instance)
    status = "ready" if reason is None else "waiting"
    if status == "ready":
        logger.info("host is ready", extra={"after_seconds": int(step.elapsed)})
    return step.update(status=status, checks=checks, reason=reason, heartbeat_due=step.heartbeat_due())


def _not_ready_reason(step: steps.Step, instance: instances.Instance) -> str | None:
    if instance.ready_since is None:
        return f"the host has not tagged itself {names.TAG_READY} yet"
    if _transition(step).name == "wake" and instance.started and instance.ready_since < instance.started:
        # Still the tag of an earlier start: the on-boot address rewrite has not finished with BBB up.
        return f"the host has not tagged itself {names.TAG_READY} since it started at {instance.started}"
    settings = step.settings
    if settings.role == "turn":
        ip = str(step.state.get("public_ip") or instance.public_ip)
        try:
            stun.binding_udp(ip, settings.turn_port, timeout=settings.probe_timeout_seconds)
            stun.binding_tcp(ip, settings.turn_port, timeout=settings.probe_timeout_seconds * 2)
        except stun.StunError as exc:
            return f"STUN check failed: {exc}"
        return None
    host = fleet.host(settings, step.instance_id)
    try:
        bbb.get_meetings(settings.bbb_api_base(host), fleet.bbb_secret(settings))
    except (bbb.BbbUnreachable, bbb.BbbApiError) as exc:
        return f"BBB API not answering yet: {exc}"
    return None


def heartbeat(step: steps.Step) -> dict[str, Any]:
    active = lifecycle.heartbeat(step.action)
    return step.update(last_heartbeat=step.now, heartbeat_due=False, hook_active=active)


def register(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    instance, why_not = _still_launching(step)
    if why_not:
        return _gone(step, why_not)
    assert instance is not None
    if _transition(step).name == "prewarm":
        return _prepared(step)
    if settings.role == "bbb":
        return _register_in_scalelite(step)
    if settings.role == "turn":
        health_check = dns.HealthChecks(settings.environment).ensure(
            step.instance_id,
            str(step.state.get("launch_time") or instance.launch_time),
            names.probe_alarm_name(settings.environment, step.instance_id),
            aws.region(),
        )
        fleet.zone(settings).upsert_weighted(
            names.turn_pool_name(settings.domain),
            step.instance_id,
            str(instance.public_ip),
            health_check,
            comment=f"bbb-on-aws launch {step.instance_id}",
        )
        return step.update(proceed=True, status="registered", health_check_id=health_check)
    return step.update(proceed=True, status="registered")  # single: its A record is all it needs


def _prepared(step: steps.Step) -> dict[str, Any]:
    """Prewarm done: verified from outside, not registered anywhere. The A record (and a relay's probe) go now:
    the public IPv4 is released when Auto Scaling stops the instance, and a record pointing at an address
    someone else may get next would let them pass an HTTP-01 challenge for this name."""
    withdrawn = _undo_launch(step)
    metrics.add_metric(name="InstancePrepared", unit=MetricUnit.Count, value=1)
    logger.info("prepared for the warm pool", extra={"withdrawn": withdrawn})
    return step.update(proceed=True, status="prepared", withdrawn=withdrawn)


def _register_in_scalelite(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    url = names.bbb_api_url(fleet.host(settings, step.instance_id))
    try:
        client = fleet.scalelite(settings)
        server = client.find_by_url(url)
        if server is None:
            server = client.add_server(url, fleet.bbb_secret(settings))
            logger.info("added to Scalelite", extra={"server": server.describe()})
        if server.state == "cordoned" and _transition(step).name != "wake":
            # Only a drain cordons: the instance is being taken out, never undo that from here. (A woken server
            # may still carry the cordon of the park that stopped it, if its deleteServer failed: enable it.)
            return _gone(step, "Scalelite already has this server cordoned (a drain started)")
        if server.state != "enabled":
            enabled = client.set_state(server.id, "enable")
            if enabled is None:
                raise TransientError(f"Scalelite server {server.id} vanished while being enabled")
            server = enabled
    except ScaleliteUnavailable as exc:
        metrics.add_metric(name="ScaleliteErrors", unit=MetricUnit.Count, value=1)
        raise TransientError(str(exc)) from None
    except ScaleliteError:
        metrics.add_metric(name="ScaleliteErrors", unit=MetricUnit.Count, value=1)
        raise
    logger.info("enabled in Scalelite", extra={"server": server.describe()})
    return step.update(proceed=True, status="registered", server_id=server.id)


def complete(step: steps.Step) -> dict[str, Any]:
    active = lifecycle.complete(step.action, "CONTINUE")
    metrics.add_metric(name="InstanceLaunched", unit=MetricUnit.Count, value=1)
    logger.info("launch complete", extra={"hook_was_active": active, "after_seconds": int(step.elapsed)})
    return step.update(status="launched", completed=active)


def abandon(step: steps.Step) -> dict[str, Any]:
    """Give the instance up. Cleanup is best effort: the drain and the reconciler finish whatever is left."""
    logger.error("launch abandoned", extra={"reason": step.state.get("reason"), "error": step.state.get("error")})
    cleaned: list[str] = []
    try:
        cleaned = _undo_launch(step)
    except Exception:  # cleanup must never keep the instance from being abandoned
        logger.exception("cleanup after abandoned launch failed; the reconciler will retry")
    active = lifecycle.complete(step.action, "ABANDON")
    metrics.add_metric(name="LaunchAbandoned", unit=MetricUnit.Count, value=1)
    return step.update(status="abandoned", completed=active, cleaned=cleaned)


def _undo_launch(step: steps.Step) -> list[str]:
    settings = step.settings
    zone = fleet.zone(settings)
    cleaned: list[str] = []
    if settings.role == "turn":
        if zone.delete_weighted(names.turn_pool_name(settings.domain), step.instance_id, comment="abandoned launch"):
            cleaned.append("weighted record")
        checks = dns.HealthChecks(settings.environment)
        for health_check in checks.by_instance().get(step.instance_id, []):
            checks.delete(health_check)
            cleaned.append("health check")
        alarms.delete_probe_alarm(settings.environment, step.instance_id)
        cleaned.append("probe alarm")
    if settings.role == "single":
        ip = step.state.get("public_ip")
        if ip and zone.delete_a(settings.domain, only_if_value=str(ip), comment="abandoned launch"):
            cleaned.append("domain record")
        return cleaned
    if settings.role == "bbb":
        client = fleet.scalelite(settings)
        server = client.find_by_url(names.bbb_api_url(fleet.host(settings, step.instance_id)))
        if server is not None and server.state != "disabled":
            # Enabled or cordoned: meetings may exist, so its drain removes it (and needs its DNS name).
            return cleaned
        if server is not None and client.delete_server(server.id):
            cleaned.append("scalelite server")
    if zone.delete_a(fleet.host(settings, step.instance_id), comment="abandoned launch"):
        cleaned.append("instance record")
    return cleaned


STEPS = {
    "prepare": prepare,
    "check": check,
    "heartbeat": heartbeat,
    "register": register,
    "complete": complete,
    "abandon": abandon,
}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.run(event, STEPS, logger=logger, metrics=metrics)
