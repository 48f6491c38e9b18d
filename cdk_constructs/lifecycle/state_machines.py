"""The launch and drain state machines (Standard workflows, JSONPath ASL, few constructs on purpose).

Each Task invokes one step of a function with {step, lifecycle, state, now, started} and stores the
returned state at `$.state`; Choices read `$.state.status` / flags. Waits make the loops survive hours
without a Lambda waiting. Lambda service errors are retried by the default LambdaInvoke retry;
`TransientError` (e.g. Scalelite answering 5xx while registering) with a longer backoff.

Launch:  Prepare -> Proceed? -> [WaitForHost -> CheckReady -> Ready?]* -> Register -> Registered? -> Complete
         single: Proceed? -> [AttachData -> DataAttached? -> WaitForData]* -> WaitForHost (data_volume.py)
         Ready? gone -> Skipped | ready -> Register | expired -> Abandon | heartbeat_due -> Heartbeat -> Wait
         any failure -> Abandon (ABANDON) -> LaunchFailed
BBB drain:  Cordon -> [WaitDrain -> CheckDrained -> Drained?]* -> Finish -> CleanedUp?
         drained -> Finish | unreachable, expired -> ForceRemove loop -> Finish | heartbeat_due -> Heartbeat
TURN drain: Withdraw -> WaitDnsTtl -> SignalDrain -> [WaitDrain -> CheckDrained -> Drained?]* -> Finish
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

STATUS = "$.state.status"
TRANSIENT_RETRY = {
    "errors": ["TransientError"],
    "interval": Duration.seconds(20),
    "max_attempts": 5,
    "backoff_rate": 2.0,
}


def _task(scope: Construct, name: str, function: lambda_.IFunction, step: str) -> tasks.LambdaInvoke:
    task = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(
            {
                "step": step,
                "lifecycle": sfn.JsonPath.object_at("$.lifecycle"),
                "state": sfn.JsonPath.object_at("$.state"),
                "now": sfn.JsonPath.string_at("$$.State.EnteredTime"),
                "started": sfn.JsonPath.string_at("$$.Execution.StartTime"),
            }
        ),
        payload_response_only=True,
        result_path="$.state",
    )
    task.add_retry(**TRANSIENT_RETRY)
    return task


def _status(value: str) -> sfn.Condition:
    return sfn.Condition.string_equals(STATUS, value)


def launch_definition(
    scope: Construct, function: lambda_.IFunction, *, poll: int, data_volume: lambda_.IFunction | None = None
) -> sfn.IChainable:
    skipped = sfn.Succeed(scope, "Skipped", comment="the instance is no longer launching")
    launched = sfn.Succeed(scope, "Launched")
    failed = sfn.Fail(
        scope,
        "LaunchFailed",
        error="LaunchAbandoned",
        cause="the host did not become ready in time, or a launch step failed",
    )
    abandon_failed = sfn.Fail(
        scope,
        "AbandonFailed",
        error="AbandonFailed",
        cause="could not abandon the lifecycle action; the hook's default result applies",
    )

    prepare = _task(scope, "Prepare", function, "prepare")
    wait = sfn.Wait(scope, "WaitForHost", time=sfn.WaitTime.duration(Duration.seconds(poll)))
    check = _task(scope, "CheckReady", function, "check")
    heartbeat = _task(scope, "LaunchHeartbeat", function, "heartbeat")
    register = _task(scope, "Register", function, "register")
    complete = _task(scope, "Complete", function, "complete")
    abandon = _task(scope, "Abandon", function, "abandon")

    abandon.add_catch(abandon_failed, errors=["States.ALL"], result_path="$.state.error")
    abandon.next(failed)
    for task in (prepare, check, heartbeat, register, complete):
        task.add_catch(abandon, errors=["States.ALL"], result_path="$.state.error")

    heartbeat.next(wait)
    wait.next(check)
    check.next(
        sfn.Choice(scope, "Ready?")
        .when(_status("gone"), skipped)
        .when(_status("ready"), register)
        .when(_status("expired"), abandon)
        .when(sfn.Condition.boolean_equals("$.state.heartbeat_due", True), heartbeat)
        .otherwise(wait)
    )
    register.next(
        sfn.Choice(scope, "Registered?")
        .when(sfn.Condition.boolean_equals("$.state.proceed", False), skipped)
        .otherwise(complete)
    )
    complete.next(launched)
    after_prepare: sfn.IChainable = wait
    if data_volume is not None:  # the single host: its data volume first (the host waits for /dev/sdf)
        attach = _task(scope, "AttachData", data_volume, "attach")
        data_wait = sfn.Wait(scope, "WaitForData", time=sfn.WaitTime.duration(Duration.seconds(poll)))
        attach.add_catch(abandon, errors=["States.ALL"], result_path="$.state.error")
        attach.next(
            sfn.Choice(scope, "DataAttached?")
            .when(_status("gone"), skipped)
            .when(_status("attached"), wait)
            .when(_status("expired"), abandon)
            .otherwise(data_wait)
        )
        data_wait.next(attach)
        after_prepare = attach
    prepare.next(
        sfn.Choice(scope, "Proceed?")
        .when(sfn.Condition.boolean_equals("$.state.proceed", False), skipped)
        .otherwise(after_prepare)
    )
    return prepare


def _drain_loop(
    scope: Construct,
    function: lambda_.IFunction,
    *,
    poll: int,
    finish: sfn.IChainable,
    force: sfn.IChainable,
    failed: sfn.Fail,
) -> tuple[sfn.Wait, list[tasks.LambdaInvoke]]:
    wait = sfn.Wait(scope, "WaitDrain", time=sfn.WaitTime.duration(Duration.seconds(poll)))
    check = _task(scope, "CheckDrained", function, "check")
    heartbeat = _task(scope, "DrainHeartbeat", function, "heartbeat")
    wait.next(check)
    heartbeat.next(wait)
    check.next(
        sfn.Choice(scope, "Drained?")
        .when(_status("drained"), finish)
        .when(sfn.Condition.or_(_status("unreachable"), _status("expired")), force)
        .when(sfn.Condition.boolean_equals("$.state.heartbeat_due", True), heartbeat)
        .otherwise(wait)
    )
    return wait, [check, heartbeat]


def _finish(scope: Construct, function: lambda_.IFunction) -> tasks.LambdaInvoke:
    finish = _task(scope, "Finish", function, "finish")
    finish.next(
        sfn.Choice(scope, "CleanedUp?")
        .when(
            sfn.Condition.boolean_equals("$.state.scalelite_cleanup_pending", True),
            sfn.Fail(
                scope,
                "ScaleliteCleanupFailed",
                error="ScaleliteCleanupFailed",
                cause="the server could not be deleted from Scalelite; the reconciler retries",
            ),
        )
        .otherwise(sfn.Succeed(scope, "Drained"))
    )
    return finish


def bbb_drain_definition(scope: Construct, function: lambda_.IFunction, *, poll: int) -> sfn.IChainable:
    failed = sfn.Fail(
        scope,
        "DrainFailed",
        error="DrainFailed",
        cause="a drain step failed; the terminate hook's default result applies after its timeout",
    )
    finish = _finish(scope, function)
    force = _task(scope, "ForceRemove", function, "force_remove")
    force_wait = sfn.Wait(scope, "WaitForceRemove", time=sfn.WaitTime.duration(Duration.seconds(30)))
    force.next(
        sfn.Choice(scope, "Cleared?")
        .when(sfn.Condition.boolean_equals("$.state.force_done", True), finish)
        .otherwise(force_wait)
    )
    force_wait.next(force)
    cordon = _task(scope, "Cordon", function, "cordon")
    wait, loop_tasks = _drain_loop(scope, function, poll=poll, finish=finish, force=force, failed=failed)
    cordon.next(wait)
    for task in (cordon, force, finish, *loop_tasks):
        task.add_catch(failed, errors=["States.ALL"], result_path="$.state.error")
    return cordon


def turn_drain_definition(scope: Construct, function: lambda_.IFunction, *, poll: int, dns_wait: int) -> sfn.IChainable:
    failed = sfn.Fail(
        scope,
        "DrainFailed",
        error="DrainFailed",
        cause="a drain step failed; the terminate hook's default result applies after its timeout",
    )
    finish = _finish(scope, function)
    withdraw = _task(scope, "Withdraw", function, "withdraw")
    dns_ttl = sfn.Wait(scope, "WaitDnsTtl", time=sfn.WaitTime.duration(Duration.seconds(dns_wait)))
    signal = _task(scope, "SignalDrain", function, "signal")
    wait, loop_tasks = _drain_loop(scope, function, poll=poll, finish=finish, force=finish, failed=failed)
    withdraw.next(dns_ttl)
    dns_ttl.next(signal)
    signal.next(sfn.Choice(scope, "Signalled?").when(_status("unreachable"), finish).otherwise(wait))
    for task in (withdraw, signal, finish, *loop_tasks):
        task.add_catch(failed, errors=["States.ALL"], result_path="$.state.error")
    return withdraw
