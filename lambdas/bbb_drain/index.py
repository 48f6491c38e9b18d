"""BBB drain steps (state machine "drain" of a bbb or single fleet): a scale-in that ends no meeting.

cordon        Scalelite stops placing new meetings on the server; running meetings go on.
check         drained = BBB getMeetings is empty, Scalelite's load is 0 (or the poller already flipped the
              cordoned server to disabled) and no recording is processing or waiting for transfer (counted
              on the host through SSM Run Command). Also: unreachable (instance stopped/terminated, or BBB
              silent for UNREACHABLE_AFTER_CHECKS checks in a row) and expired (DRAIN_MAX_SECONDS).
heartbeat     RecordLifecycleActionHeartbeat, so the terminate hook never times out during a long drain.
force_remove  unreachable or expired: panicServer until Scalelite holds no meeting of the server (each
              failing end call still removes one meeting record: panic without working end calls).
finish        deleteServer, delete the DNS record, CONTINUE. A Scalelite failure here does not keep the
              instance: DNS and the hook are still done, the state machine then fails (operator alarm) and
              the reconciler removes the Scalelite entry once the instance is gone.

The same steps serve park (service -> warm pool on scale-in: the instance is stopped, not terminated, once
CONTINUE is sent) and retire (warm pool -> termination: a prepared server never served, so unless Scalelite
still lists it, it is drained at once, stopped or not). See common/transitions.py.

Scalelite being down never ends a meeting: check reports it (metric ScaleliteErrors) and keeps waiting.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from common import bbb, fleet, host_commands, instances, lifecycle, names, observability, steps
from common.scalelite import ScaleliteClient, ScaleliteError, Server

logger, metrics = observability.tools()

# panicServer rounds per invocation: each costs Scalelite up to its connect timeout towards a dead host.
PANIC_ROUNDS = 20
# force_remove invocations (30 s apart) before finish goes ahead anyway.
FORCE_ATTEMPTS = 10


def _scalelite_error(exc: Exception) -> str:
    metrics.add_metric(name="ScaleliteErrors", unit=MetricUnit.Count, value=1)
    logger.warning("Scalelite call failed", extra={"error": str(exc)})
    return str(exc)


def _url(step: steps.Step) -> str:
    return names.bbb_api_url(fleet.host(step.settings, step.instance_id))


def _find(client: ScaleliteClient, step: steps.Step) -> Server | None:
    return client.find_by_url(_url(step))


def _ensure_cordoned(step: steps.Step) -> dict[str, Any]:
    """Scalelite facts for the state: registered, server_id, cordoned, scalelite_state/load/error."""
    try:
        client = fleet.scalelite(step.settings)
        server = _find(client, step)
        if server is None:
            return {"registered": False, "cordoned": False, "scalelite_error": None, "scalelite_state": None}
        if server.state == "enabled":  # not cordoned yet, or re-enabled by a late launch: cordon (again)
            server = client.set_state(server.id, "cordon") or server
            logger.info("cordoned in Scalelite", extra={"server": server.describe()})
        return {
            "registered": True,
            "server_id": server.id,
            "cordoned": server.state in ("cordoned", "disabled"),
            "scalelite_state": server.state,
            "scalelite_load": server.load,
            "scalelite_error": None,
        }
    except ScaleliteError as exc:
        return {"scalelite_error": _scalelite_error(exc)}


def cordon(step: steps.Step) -> dict[str, Any]:
    instance = instances.describe(step.instance_id)
    facts: dict[str, Any] = {"registered": False}
    if fleet.uses_scalelite(step.settings):
        facts = _ensure_cordoned(step)
    metrics.add_metric(name="DrainStarted", unit=MetricUnit.Count, value=1)
    return step.update(
        status="draining",
        last_heartbeat=step.now,
        unreachable_checks=0,
        public_ip=instance.public_ip if instance else None,
        was_ready=bool(instance and instance.ready_since),
        **facts,
    )


def check(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    state = dict(step.state)
    state["heartbeat_due"] = step.heartbeat_due()
    if step.elapsed >= settings.drain_max_seconds:
        return {**state, "status": "expired", "reason": f"still not drained after {int(step.elapsed)} s"}
    uses_scalelite = fleet.uses_scalelite(settings)
    if state.get("transition") == "retire" and not state.get("registered") and not state.get("scalelite_error"):
        return {**state, "status": "drained", "reason": "a prepared server leaves the warm pool: it served nothing"}
    instance = instances.describe(step.instance_id)
    if instance is None or instance.gone:
        return {**state, "status": "unreachable", "reason": f"instance is {instance.state if instance else 'gone'}"}
    if uses_scalelite:
        state.update(_ensure_cordoned(step))
    if not state.get("was_ready") and not (instance.ready_since or state.get("registered")):
        # Never became ready, so never took a meeting: nothing to wait for.
        return {**state, "status": "drained", "reason": "the host never became ready"}

    meetings = _meetings(step)
    if meetings is None:
        state["unreachable_checks"] = int(state.get("unreachable_checks", 0)) + 1
        if state["unreachable_checks"] >= settings.unreachable_after_checks:
            return {**state, "status": "unreachable", "reason": "BBB API does not answer"}
        return {**state, "status": "draining", "reason": "BBB API did not answer", "meetings": None}
    state.update(unreachable_checks=0, meetings=meetings)
    if meetings < 0:
        return {**state, "status": "draining", "reason": "BBB refuses getMeetings (is the BBB secret right?)"}
    if meetings:
        return {**state, "status": "draining", "reason": f"{meetings} meeting(s) still running"}

    if uses_scalelite and state.get("scalelite_error"):
        # Unknown: it may still be enabled there. Never drained on BBB's word alone.
        return {**state, "status": "draining", "reason": "Scalelite state unknown"}
    if uses_scalelite and state.get("registered"):
        load_zero = state.get("scalelite_state") == "disabled" or state.get("scalelite_load") == 0
        if not load_zero:
            return {**state, "status": "draining", "reason": "Scalelite still reports load on the server"}

    recordings = _recordings(step, transfer=uses_scalelite)
    state["recordings"] = recordings
    if recordings is None:
        return {**state, "status": "draining", "reason": "could not count recordings on the host"}
    if recordings["pending"]:
        return {**state, "status": "draining", "reason": f"{recordings['pending']} recording(s) not done"}
    return {**state, "status": "drained", "reason": "no meeting, no load, no pending recording"}


def _meetings(step: steps.Step) -> int | None:
    """Meetings on the server, None if it does not answer (a secret mismatch is logged and waited out)."""
    settings = step.settings
    try:
        found = bbb.get_meetings(
            settings.bbb_api_base(fleet.host(settings, step.instance_id)), fleet.bbb_secret(settings)
        )
    except bbb.BbbUnreachable as exc:
        logger.warning("BBB did not answer", extra={"error": str(exc)})
        return None
    except bbb.BbbApiError as exc:
        logger.error("BBB refused getMeetings", extra={"error": str(exc)})
        metrics.add_metric(name="BbbApiErrors", unit=MetricUnit.Count, value=1)
        return -1  # unknown but answering: keep draining until it is fixed or the maximum is reached
    return len(found)


def _recordings(step: steps.Step, *, transfer: bool) -> dict[str, int] | None:
    result = host_commands.run(
        step.instance_id,
        host_commands.recordings_script(transfer=transfer),
        comment=f"bbb-on-aws drain: recordings on {step.instance_id}",
    )
    if not result.succeeded:
        logger.warning("recordings check did not run", extra={"status": result.status, "stderr": result.stderr[-500:]})
        return None
    try:
        counts = host_commands.RecordingCounts.parse(result.stdout)
    except (ValueError, KeyError, TypeError) as exc:
        logger.error("recordings check printed something unexpected", extra={"error": str(exc)})
        return None
    if counts.failed:
        metrics.add_metric(name="FailedRecordings", unit=MetricUnit.Count, value=counts.failed)
    return {
        "ended": counts.ended,
        "processing": counts.processing,
        "transfer": counts.transfer,
        "failed": counts.failed,
        "pending": counts.pending,
    }


def heartbeat(step: steps.Step) -> dict[str, Any]:
    active = lifecycle.heartbeat(step.action)
    return step.update(last_heartbeat=step.now, heartbeat_due=False, hook_active=active)


def force_remove(step: steps.Step) -> dict[str, Any]:
    """Clear the server's meetings from Scalelite (expired: end calls end them; unreachable: each failing
    end call still drops one meeting record). Loops in the state machine until done."""
    if step.state.get("status") == "expired":
        metrics.add_metric(name="DrainMaxReached", unit=MetricUnit.Count, value=1)
        logger.warning(
            "drain reached its maximum; remaining meetings are ended",
            extra={"max_seconds": step.settings.drain_max_seconds, "meetings": step.state.get("meetings")},
        )
    if not fleet.uses_scalelite(step.settings):
        return step.update(force_done=True)
    rounds = int(step.state.get("panic_rounds", 0))
    attempts = int(step.state.get("force_attempts", 0)) + 1
    try:
        client = fleet.scalelite(step.settings)
        server = _find(client, step)
        outcome = "missing" if server is None else "partial"
        for _ in range(PANIC_ROUNDS):
            if server is None or outcome != "partial":
                break
            outcome = client.panic_server(server.id, keep_state=True)
            rounds += 1
    except ScaleliteError as exc:
        # Scalelite down: try a while, then let finish go ahead (it flags the leftover for the operator).
        give_up = attempts >= FORCE_ATTEMPTS
        return step.update(
            force_done=give_up, force_attempts=attempts, panic_rounds=rounds, scalelite_error=_scalelite_error(exc)
        )
    done = outcome in ("done", "missing") or attempts >= FORCE_ATTEMPTS
    logger.info("panic rounds", extra={"rounds": rounds, "outcome": outcome})
    return step.update(force_done=done, force_attempts=attempts, panic_rounds=rounds, scalelite_error=None)


def finish(step: steps.Step) -> dict[str, Any]:
    settings = step.settings
    removed: list[str] = []
    cleanup_pending = False
    if fleet.uses_scalelite(settings):
        try:
            client = fleet.scalelite(settings)
            server = _find(client, step)
            if server is not None and client.delete_server(server.id):
                removed.append("scalelite server")
        except ScaleliteError as exc:
            _scalelite_error(exc)
            cleanup_pending = True
    zone = fleet.zone(settings)
    comment = f"bbb-on-aws drain {step.instance_id}"
    if settings.role == "single":
        ip = step.state.get("public_ip")
        # Only while the domain still points at this instance: a replacement may own it already.
        if ip and zone.delete_a(settings.domain, only_if_value=str(ip), comment=comment):
            removed.append("domain record")
    elif zone.delete_a(fleet.host(settings, step.instance_id), comment=comment):
        removed.append("instance record")
    active = lifecycle.complete(step.action, "CONTINUE")
    metrics.add_metric(name="DrainCompleted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="DrainSeconds", unit=MetricUnit.Seconds, value=step.elapsed)
    logger.info(
        "drain finished",
        extra={
            "removed": removed,
            "hook_was_active": active,
            "outcome": step.state.get("status"),
            "seconds": step.elapsed,
        },
    )
    return step.update(finished=True, removed=removed, completed=active, scalelite_cleanup_pending=cleanup_pending)


STEPS = {"cordon": cordon, "check": check, "heartbeat": heartbeat, "force_remove": force_remove, "finish": finish}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.run(event, STEPS, logger=logger, metrics=metrics)
